//! The whole deployed pipeline on loopback: both Lambda handlers wired exactly as in production
//! (real AWS SDK clients to moto: SQS FIFO queues, DynamoDB, Secrets Manager) and the Graph mock.
//! An SQS event source mapping is imitated: receive a batch, invoke, delete what succeeded, and
//! make the reported failures visible again.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::{Value, json};
use wacapi_shared::config::{DispatchEnv, IngestSettings, env};
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::dispatch::RecordTally;

use crate::graph_mock::{MOCK_TOKEN, MockGraph};
use crate::tiktok_mock::{MOCK_TIKTOK_TOKEN, MockTikTok};
use crate::{ModuleQueue, aws_config, create_module_queue, secret_document, signed_post, unique};

/// The deployed ingest state type.
pub type IngestState = webhook_ingest::State<
    wacapi_shared::aws::secrets_manager::SecretsManagerSource,
    wacapi_shared::aws::sqs::SqsQueue,
    wacapi_shared::aws::sqs::SqsQueue,
>;

/// The deployed dispatch state type.
pub type DispatchState = capi_dispatch::State<
    wacapi_shared::aws::dynamo::DynamoStore,
    wacapi_shared::destinations::LiveDestinations<
        wacapi_shared::aws::secrets_manager::SecretsManagerSource,
    >,
    wacapi_shared::aws::sqs::SqsQueue,
>;

/// Every resource of one test's deployment.
pub struct Stack {
    pub sqs: aws_sdk_sqs::Client,
    pub ddb: aws_sdk_dynamodb::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub signal_url: String,
    pub dlq_url: String,
    pub table: String,
    pub webhook_secret_arn: String,
    pub events_secret_arn: String,
    pub token_secret_arn: String,
    pub graph: MockGraph,
    pub tiktok: MockTikTok,
    pub ingest: IngestState,
    pub dispatch: DispatchState,
}

/// The business events signing key in every stack's events secret.
pub const EVENTS_KEY: &str = "test-events-key-0123";

/// Options for [`Stack::new`].
pub struct StackOptions {
    /// Rules and accounts (TOML text); `None` = the example configuration.
    pub rules: Option<String>,
    /// The Graph client timeout.
    pub graph_timeout: Duration,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            rules: None,
            graph_timeout: Duration::from_secs(5),
        }
    }
}

/// Creates the wacapi table (`pk` string key, on demand, TTL on `expires_at`).
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client) -> String {
    let name = unique("wacapi");
    ddb.create_table()
        .table_name(&name)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("create table");
    ddb.update_time_to_live()
        .table_name(&name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name("expires_at")
                .enabled(true)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("ttl");
    name
}

/// The example configuration shipped in `examples/wacapi.toml`.
pub fn example_rules() -> String {
    std::fs::read_to_string(crate::repo_root().join("examples/wacapi.toml")).expect("example")
}

/// Queue records of `signals` as the dispatcher receives them (ids `m0`, `m1`, ...).
pub fn inbound_records(
    signals: &[wacapi_shared::signal::Signal],
) -> Vec<wacapi_shared::dispatch::InboundRecord> {
    signals
        .iter()
        .enumerate()
        .map(|(i, s)| wacapi_shared::dispatch::InboundRecord {
            message_id: format!("m{i}"),
            group_id: Some(s.group_id()),
            body: serde_json::to_string(s).unwrap(),
            attributes: Default::default(),
        })
        .collect()
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The sample webhooks' reference time (their timestamps are June 2025).
pub const SAMPLE_NOW: i64 = 1_750_100_000;

/// Shifts every `timestamp` in a webhook body so that `SAMPLE_NOW` becomes `now`, keeping its
/// form (a string or a number; seconds, whole-float seconds or milliseconds).
pub fn freshen(body: &[u8], now: i64) -> Vec<u8> {
    fn shift(t: f64, delta: i64) -> f64 {
        // Milliseconds move a thousand times as far.
        if t >= 1e11 {
            t + delta as f64 * 1000.0
        } else {
            t + delta as f64
        }
    }
    fn walk(v: &mut Value, delta: i64) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if k == "timestamp" {
                        match child {
                            Value::String(s) => {
                                if let Ok(t) = s.parse::<i64>() {
                                    *s = (shift(t as f64, delta) as i64).to_string();
                                } else if let Ok(t) = s.parse::<f64>() {
                                    *s = format!("{:.1}", shift(t, delta));
                                }
                            }
                            Value::Number(n) => {
                                if let Some(t) = n.as_i64() {
                                    *child = json!(shift(t as f64, delta) as i64);
                                } else if let Some(t) = n.as_f64() {
                                    *child = json!(shift(t, delta));
                                }
                            }
                            _ => {}
                        }
                    } else {
                        walk(child, delta);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, delta)),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_slice(body).expect("JSON webhook");
    walk(&mut value, now - SAMPLE_NOW);
    serde_json::to_vec(&value).unwrap()
}

impl Stack {
    /// Deploys a fresh stack on moto with a new Graph mock.
    pub async fn new(options: StackOptions) -> Self {
        let graph = MockGraph::start().await;
        Self::new_with_graph(options, graph).await
    }

    /// Deploys a fresh stack on moto with the given Graph mock.
    pub async fn new_with_graph(options: StackOptions, graph: MockGraph) -> Self {
        let aws = aws_config().await;
        let sqs = aws_sdk_sqs::Client::new(&aws);
        let ddb = aws_sdk_dynamodb::Client::new(&aws);
        let secrets = aws_sdk_secretsmanager::Client::new(&aws);
        let signal_url = create_module_queue(&sqs, ModuleQueue::Signals).await;
        let dlq_url = create_module_queue(&sqs, ModuleQueue::DeadLetters).await;
        let table = create_table(&ddb).await;
        let webhook_secret_arn = create_secret(&secrets, "webhook", &secret_document()).await;
        let events_secret_arn = create_secret(
            &secrets,
            "events-keys",
            &json!({ "keys": [EVENTS_KEY] }).to_string(),
        )
        .await;
        let tokens = json!({"access_tokens": {"default": MOCK_TOKEN, "succulents": MOCK_TOKEN},
                            "tiktok_access_tokens": {"default": MOCK_TIKTOK_TOKEN}});
        let tiktok = MockTikTok::start().await;
        let token_secret_arn = create_secret(&secrets, "graph-tokens", &tokens.to_string()).await;

        // Exactly the variables Terraform sets, read the way the binaries read them.
        let vars = [
            (env::SIGNAL_QUEUE_URL, signal_url.clone()),
            (env::DEAD_LETTER_QUEUE_URL, dlq_url.clone()),
            (env::WEBHOOK_SECRET_ARN, webhook_secret_arn.clone()),
            (env::EVENTS_SECRET_ARN, events_secret_arn.clone()),
            (env::TABLE_NAME, table.clone()),
            (env::GRAPH_TOKEN_SECRET_ARN, token_secret_arn.clone()),
            (
                wacapi_shared::destinations::BASE_URLS[0].1,
                graph.url.clone(),
            ),
            (
                wacapi_shared::destinations::BASE_URLS[1].1,
                tiktok.url.clone(),
            ),
            (
                env::GRAPH_TIMEOUT_SECONDS,
                options.graph_timeout.as_secs().max(1).to_string(),
            ),
        ];
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        let ingest_settings = IngestSettings::from_lookup(lookup).expect("ingest env");
        let mut ingest = webhook_ingest::State::from_aws(&aws, &ingest_settings);
        ingest.emit_metrics = false;
        let dispatch_env = DispatchEnv::from_lookup(lookup).expect("dispatch env");
        let rules = Config::from_toml(&options.rules.unwrap_or_else(example_rules)).expect("rules");
        let mut dispatch =
            capi_dispatch::State::from_aws(&aws, &dispatch_env, rules).expect("dispatch state");
        dispatch.emit_metrics = false;
        Self {
            sqs,
            ddb,
            secrets,
            signal_url,
            dlq_url,
            table,
            webhook_secret_arn,
            events_secret_arn,
            token_secret_arn,
            graph,
            tiktok,
            ingest,
            dispatch,
        }
    }

    /// Posts a signed webhook through the ingest handler; returns the HTTP status and how many
    /// signals it accepted.
    pub async fn post(&self, body: &[u8]) -> (u16, usize) {
        let response = webhook_ingest::handler(&self.ingest, signed_post(body))
            .await
            .expect("infallible");
        let text = match response.body() {
            lambda_http::Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        let accepted = text
            .strip_prefix("accepted ")
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        (response.status().as_u16(), accepted)
    }

    /// Posts signed business events (`POST /events`) through the ingest handler; returns the
    /// status and the JSON answer.
    pub async fn post_events(&self, body: &Value) -> (u16, Value) {
        let raw = serde_json::to_vec(body).unwrap();
        let now = unix_now();
        let signature = wacapi_shared::business::sign(EVENTS_KEY.as_bytes(), now, &raw);
        let request = crate::apigw_request(
            "POST",
            "/events",
            "",
            &[
                ("X-Wacapi-Timestamp", &now.to_string()),
                ("X-Wacapi-Signature", &signature),
                ("content-type", "application/json"),
            ],
            Some(&raw),
            false,
        );
        let response = webhook_ingest::handler(&self.ingest, request)
            .await
            .expect("infallible");
        let text = match response.body() {
            lambda_http::Body::Text(t) => t.clone(),
            _ => String::new(),
        };
        (
            response.status().as_u16(),
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    /// Receives up to 10 messages as the Lambda SQS event source would hand them over.
    pub async fn receive(&self) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(&self.signal_url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive")
            .messages()
            .to_vec()
    }

    /// Invokes the dispatch handler on `messages` with `budget` before the deadline.
    pub async fn invoke(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
        budget: Duration,
    ) -> capi_dispatch::Invocation {
        capi_dispatch::handle(&self.dispatch, sqs_event(messages, budget)).await
    }

    /// Makes received messages visible again at once without deleting them, as SQS does when
    /// an invocation times out.
    pub async fn time_out(&self, messages: &[aws_sdk_sqs::types::Message]) {
        for m in messages {
            self.sqs
                .change_message_visibility()
                .queue_url(&self.signal_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .visibility_timeout(0)
                .send()
                .await
                .expect("visibility");
        }
    }

    /// Finishes an invocation like the event source mapping: deletes the records that did not
    /// fail and makes the failed ones visible again at once.
    pub async fn settle(
        &self,
        messages: &[aws_sdk_sqs::types::Message],
        response: &SqsBatchResponse,
    ) {
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        for m in messages {
            let handle = m.receipt_handle().unwrap_or_default();
            if failed.contains(&m.message_id().unwrap_or_default()) {
                self.time_out(std::slice::from_ref(m)).await;
            } else {
                self.sqs
                    .delete_message()
                    .queue_url(&self.signal_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// Receives, invokes and settles until the queue is empty or `max_rounds` pass; returns
    /// every response.
    pub async fn pump(&self, max_rounds: usize) -> Vec<capi_dispatch::Invocation> {
        let mut invocations = Vec::new();
        for _ in 0..max_rounds {
            let messages = self.receive().await;
            if messages.is_empty() {
                break;
            }
            let invocation = self.invoke(&messages, Duration::from_secs(30)).await;
            self.settle(&messages, &invocation.response).await;
            invocations.push(invocation);
        }
        invocations
    }

    /// Moves every dead-lettered message back to the signal queue, as `aws sqs
    /// start-message-move-task` does; returns how many moved.
    pub async fn redrive(&self) -> usize {
        let dead = self.dead_letters().await;
        for m in &dead {
            self.redrive_message(m).await;
        }
        dead.len()
    }

    /// Sends one received dead-letter message back to the signal queue, body, attributes and
    /// group kept.
    pub async fn redrive_message(&self, m: &aws_sdk_sqs::types::Message) {
        let group = Some(crate::system_attribute(
            m,
            aws_sdk_sqs::types::MessageSystemAttributeName::MessageGroupId,
        ))
        .filter(|g| !g.is_empty())
        .unwrap_or_else(|| "redrive".to_owned());
        let mut send = self
            .sqs
            .send_message()
            .queue_url(&self.signal_url)
            .message_body(m.body().unwrap_or_default())
            .message_group_id(group)
            .message_deduplication_id(format!("redrive-{}", m.message_id().unwrap_or_default()));
        for (name, value) in m.message_attributes().into_iter().flatten() {
            send = send.message_attributes(name, value.clone());
        }
        send.send().await.expect("redrive");
    }

    /// Every message on the dead-letter queue (received and deleted).
    pub async fn dead_letters(&self) -> Vec<aws_sdk_sqs::types::Message> {
        crate::drain_queue(&self.sqs, &self.dlq_url).await
    }
}

/// The record outcomes of several invocations added up.
pub fn total(invocations: &[capi_dispatch::Invocation]) -> RecordTally {
    let mut t = RecordTally::default();
    for i in invocations {
        let r = &i.report.records;
        t.sent += r.sent;
        t.duplicate += r.duplicate;
        t.skipped += r.skipped;
        t.dead_lettered += r.dead_lettered;
        t.failed += r.failed;
    }
    t
}

async fn create_secret(
    client: &aws_sdk_secretsmanager::Client,
    prefix: &str,
    value: &str,
) -> String {
    client
        .create_secret()
        .name(unique(prefix))
        .secret_string(value)
        .send()
        .await
        .expect("create secret")
        .arn()
        .expect("arn")
        .to_owned()
}

/// The SQS event Lambda delivers for `messages`, with a context whose deadline is `budget` away.
pub fn sqs_event(
    messages: &[aws_sdk_sqs::types::Message],
    budget: Duration,
) -> LambdaEvent<SqsEvent> {
    let records: Vec<Value> = messages
        .iter()
        .map(|m| {
            let attributes: serde_json::Map<String, Value> = m
                .attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| (k.as_str().to_owned(), json!(v)))
                        .collect()
                })
                .unwrap_or_default();
            let message_attributes: serde_json::Map<String, Value> = m
                .message_attributes()
                .map(|a| {
                    a.iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                json!({"stringValue": v.string_value(), "dataType": "String",
                                       "stringListValues": [], "binaryListValues": []}),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            json!({
                "messageId": m.message_id(),
                "receiptHandle": m.receipt_handle(),
                "body": m.body(),
                "attributes": attributes,
                "messageAttributes": message_attributes,
                "md5OfBody": m.md5_of_body(),
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:signals.fifo",
                "awsRegion": "us-east-1",
            })
        })
        .collect();
    let event: SqsEvent =
        serde_json::from_value(json!({ "Records": records })).expect("SQS event shape");
    let mut context = Context::default();
    context.request_id = unique("invocation");
    context.deadline = (SystemTime::now() + budget)
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    LambdaEvent::new(event, context)
}
