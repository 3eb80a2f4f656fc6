//! The `capi-dispatch` Lambda: an SQS FIFO event source (with `ReportBatchItemFailures`) in
//! front of [`wacapi_shared::dispatch::Dispatcher`].

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::LambdaEvent;
use wacapi_shared::aws::dynamo::DynamoStore;
use wacapi_shared::aws::secrets_manager::SecretsManagerSource;
use wacapi_shared::aws::sqs::SqsQueue;
use wacapi_shared::config::{DispatchEnv, SECRET_FORCED_REFRESH_INTERVAL};
use wacapi_shared::delivery::Deliver;
use wacapi_shared::destinations::LiveDestinations;
use wacapi_shared::dispatch::{DispatchReport, DispatchSettings, Dispatcher, InboundRecord};
use wacapi_shared::metrics::Metrics;
use wacapi_shared::queue::MessageSink;
use wacapi_shared::store::DispatchStore;

/// The `Service` dimension of this function's metrics.
pub const SERVICE: &str = "capi-dispatch";

/// The AWS actions this function needs, on which Terraform resource: what its code calls, plus
/// what the SQS event source mapping calls with the function's role. `infra/iam.tf` grants
/// exactly these (plus writing its own logs); tests/tests/infra_contract.rs checks both.
pub const AWS_PERMISSIONS: &[(&str, &str)] = &[
    ("sqs:ReceiveMessage", "aws_sqs_queue.signals"),
    ("sqs:DeleteMessage", "aws_sqs_queue.signals"),
    ("sqs:GetQueueAttributes", "aws_sqs_queue.signals"),
    ("sqs:SendMessage", "aws_sqs_queue.dead_letters"),
    ("dynamodb:BatchGetItem", "aws_dynamodb_table.main"),
    // TransactWriteItems is authorised per item action: the claims, click writes and report
    // counts are updates, the sent marks puts.
    ("dynamodb:UpdateItem", "aws_dynamodb_table.main"),
    ("dynamodb:PutItem", "aws_dynamodb_table.main"),
    ("dynamodb:DeleteItem", "aws_dynamodb_table.main"),
    (
        "secretsmanager:GetSecretValue",
        "aws_secretsmanager_secret.graph_tokens",
    ),
];

/// Actions of [`AWS_PERMISSIONS`] that the event source mapping, not the code, calls.
pub const EVENT_SOURCE_ACTIONS: &[&str] = &[
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

/// The dispatcher as deployed.
pub type AwsDispatcher = Dispatcher<DynamoStore, LiveDestinations<SecretsManagerSource>, SqsQueue>;

/// What every invocation borrows.
#[derive(Debug)]
pub struct State<S, X, D> {
    /// The dispatcher core.
    pub dispatcher: Dispatcher<S, X, D>,
    /// CloudWatch namespace for EMF metrics.
    pub metrics_namespace: String,
    /// Whether EMF documents are written to stdout (off in tests).
    pub emit_metrics: bool,
    /// Whether the detailed metric breakdowns are published (`WACAPI_DETAILED_METRICS`).
    pub detailed_metrics: bool,
}

impl State<DynamoStore, LiveDestinations<SecretsManagerSource>, SqsQueue> {
    /// Wires the deployed dispatcher from settings, rules and one AWS configuration.
    pub fn from_aws(
        aws: &aws_config::SdkConfig,
        env: &DispatchEnv,
        rules: wacapi_shared::conversion::rules::Config,
    ) -> Result<Self, String> {
        let store = DynamoStore::new(
            aws_sdk_dynamodb::Client::new(aws),
            &env.table_name,
            rules.attribution_window_seconds,
        );
        // One secret holds every destination's tokens; each client caches its own view of it
        // (one extra read per TTL per destination, and only once it sends).
        let tokens = || {
            SecretsManagerSource::new(
                aws_sdk_secretsmanager::Client::new(aws),
                &env.graph_token_secret_arn,
            )
        };
        let destinations = LiveDestinations::connect(
            &env.base_urls,
            env.graph_timeout,
            tokens,
            (env.secret_ttl, SECRET_FORCED_REFRESH_INTERVAL),
        )
        .map_err(|e| e.to_string())?;
        let dead_letters = SqsQueue::new(aws_sdk_sqs::Client::new(aws), &env.dead_letter_queue_url);
        let settings = DispatchSettings {
            request_timeout: env.graph_timeout,
            ..DispatchSettings::default()
        };
        Ok(Self {
            dispatcher: Dispatcher::new(rules, store, destinations, dead_letters, settings),
            metrics_namespace: env.metrics_namespace.clone(),
            emit_metrics: true,
            detailed_metrics: env.detailed_metrics,
        })
    }
}

/// What one invocation came to.
#[derive(Debug)]
pub struct Invocation {
    /// The answer to the event source mapping.
    pub response: SqsBatchResponse,
    /// Per-record outcomes.
    pub report: DispatchReport,
    /// The invocation's metrics (already flushed when emitting is on).
    pub metrics: Metrics,
}

/// Handles one SQS batch; failed records are reported, never raised.
pub async fn handler<S: DispatchStore, X: Deliver, D: MessageSink>(
    state: &State<S, X, D>,
    event: LambdaEvent<SqsEvent>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    Ok(handle(state, event).await.response)
}

/// [`handler`], returning the report and metrics as well.
pub async fn handle<S: DispatchStore, X: Deliver, D: MessageSink>(
    state: &State<S, X, D>,
    event: LambdaEvent<SqsEvent>,
) -> Invocation {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // The runtime gives the deadline in epoch milliseconds; keep the invocation's own clock.
    let remaining = Duration::from_millis(event.context.deadline).saturating_sub(now);
    let deadline = Instant::now() + remaining;
    let records: Vec<InboundRecord> = event
        .payload
        .records
        .into_iter()
        .map(|r| InboundRecord {
            message_id: r.message_id.unwrap_or_default(),
            group_id: r.attributes.get("MessageGroupId").cloned(),
            body: r.body.unwrap_or_default(),
            attributes: r
                .message_attributes
                .into_iter()
                .filter_map(|(k, v)| v.string_value.map(|s| (k, s)))
                .collect::<HashMap<_, _>>(),
        })
        .collect();
    let mut metrics =
        Metrics::new(state.metrics_namespace.clone(), SERVICE).with_detail(state.detailed_metrics);
    let report = state
        .dispatcher
        .dispatch(&records, now.as_secs() as i64, deadline, &mut metrics)
        .await;
    let mut emitted = metrics.clone();
    if state.emit_metrics
        && let Err(err) = emitted.flush_to(&mut std::io::stdout().lock())
    {
        tracing::warn!(error = %err, "metrics could not be written");
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = report
        .failed
        .iter()
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id.clone();
            failure
        })
        .collect();
    Invocation {
        response,
        report,
        metrics,
    }
}
