//! The ingest's AWS adapters against a moto server, through the real AWS SDK: SQS FIFO sends
//! (group and dedup ids, duplicate deliveries, failures), the dead-letter queue, and Secrets
//! Manager (empty secret, rotation).

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_sqs::types::MessageSystemAttributeName as Attr;
use lambda_http::Body;
use wacapi_shared::aws::secrets_manager::SecretsManagerSource;
use wacapi_shared::aws::sqs::SqsQueue;
use wacapi_shared::ingest::{Ingest, attributes};
use wacapi_shared::metrics::{Metrics, names};
use wacapi_shared::queue::{MessageSink, OutboundMessage, QueueError};
use wacapi_shared::secrets::{CachedSecret, SecretError};
use wacapi_shared::signal::Signal;
use wacapi_shared::values::hashing::sha256_hex;
use wacapi_tests::*;
use webhook_ingest::{State, handler};

struct Aws {
    sqs: aws_sdk_sqs::Client,
    secrets: aws_sdk_secretsmanager::Client,
    signal_url: String,
    dlq_url: String,
    secret_arn: String,
}

async fn aws() -> Aws {
    let config = aws_config().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let secrets = aws_sdk_secretsmanager::Client::new(&config);
    let signal_url = create_module_queue(&sqs, ModuleQueue::Signals).await;
    let dlq_url = create_module_queue(&sqs, ModuleQueue::DeadLetters).await;
    let secret_arn = secrets
        .create_secret()
        .name(unique("webhook-secret"))
        .secret_string(secret_document())
        .send()
        .await
        .expect("create secret")
        .arn()
        .expect("arn")
        .to_owned();
    Aws {
        sqs,
        secrets,
        signal_url,
        dlq_url,
        secret_arn,
    }
}

fn cached(aws: &Aws) -> CachedSecret<wacapi_shared::secrets::WebhookSecrets, SecretsManagerSource> {
    CachedSecret::new(
        SecretsManagerSource::new(aws.secrets.clone(), &aws.secret_arn),
        Duration::from_secs(300),
        Duration::from_secs(30),
    )
}

fn deployed_state(aws: &Aws) -> State<SecretsManagerSource, SqsQueue, SqsQueue> {
    State {
        ingest: Ingest::new(
            cached(aws),
            SqsQueue::new(aws.sqs.clone(), &aws.signal_url),
            SqsQueue::new(aws.sqs.clone(), &aws.dlq_url),
        ),
        metrics_namespace: "wacapi".into(),
        emit_metrics: false,
    }
}

#[tokio::test]
async fn signals_land_on_the_fifo_queue_with_group_and_dedup_ids() {
    let aws = aws().await;
    let state = deployed_state(&aws);
    for (name, body) in sample_webhooks() {
        let response = handler(&state, signed_post(&body)).await.unwrap();
        assert_eq!(response.status(), 200, "{name}");
    }
    let received = drain_queue(&aws.sqs, &aws.signal_url).await;
    // 7 samples: statuses.json yields no signal, the other six one each.
    assert_eq!(received.len(), 6);
    for m in &received {
        let signal: Signal = serde_json::from_str(m.body().unwrap()).unwrap();
        assert_eq!(system_attribute(m, Attr::MessageGroupId), signal.group_id());
        assert_eq!(
            system_attribute(m, Attr::MessageDeduplicationId),
            signal.dedup_id()
        );
        assert_eq!(signal.dedup_id().len(), 64);
    }
    // One user (same phone hash) but with and without BSUID on different messages: the group
    // follows the identity given on each message, BSUID first.
    let groups: std::collections::HashSet<String> = received
        .iter()
        .map(|m| system_attribute(m, Attr::MessageGroupId))
        .collect();
    assert!(groups.len() >= 2);
}

#[tokio::test]
async fn a_duplicate_delivery_is_enqueued_once() {
    let aws = aws().await;
    let state = deployed_state(&aws);
    let body = sample("order");
    for _ in 0..3 {
        let response = handler(&state, signed_post(&body)).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    assert_eq!(drain_queue(&aws.sqs, &aws.signal_url).await.len(), 1);
}

#[tokio::test]
async fn a_user_s_messages_keep_their_order_in_one_group() {
    let aws = aws().await;
    let queue = SqsQueue::new(aws.sqs.clone(), &aws.signal_url);
    let messages: Vec<OutboundMessage> = (0..35)
        .map(|i| {
            OutboundMessage::new(
                format!("{i}"),
                format!("group-{}", i % 3),
                format!("dedup-{i}"),
            )
        })
        .collect();
    queue.send_all(messages).await.expect("sent");
    let received = drain_queue(&aws.sqs, &aws.signal_url).await;
    assert_eq!(received.len(), 35);
    for g in 0..3 {
        let order: Vec<u32> = received
            .iter()
            .filter(|m| system_attribute(m, Attr::MessageGroupId) == format!("group-{g}"))
            .map(|m| m.body().unwrap().parse().unwrap())
            .collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(order, sorted, "group {g} in order");
    }
}

/// Wraps the real SQS adapter and fails the first `fail_first` calls, like a throttled or
/// unreachable queue partway through a webhook.
struct Flaky {
    inner: SqsQueue,
    calls: AtomicUsize,
    fail_from_call: usize,
    fail_calls: usize,
}

impl MessageSink for Flaky {
    async fn send_all(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n >= self.fail_from_call && n < self.fail_from_call + self.fail_calls {
            // Half the messages make it before the failure.
            let half = messages.len() / 2;
            self.inner.send_all(messages[..half].to_vec()).await?;
            return Err(QueueError::Transport("simulated outage".into()));
        }
        self.inner.send_all(messages).await
    }
}

#[tokio::test]
async fn a_failing_queue_answers_500_and_the_retry_enqueues_nothing_twice() {
    let aws = aws().await;
    let flaky = Flaky {
        inner: SqsQueue::new(aws.sqs.clone(), &aws.signal_url),
        calls: AtomicUsize::new(0),
        fail_from_call: 0,
        fail_calls: 1,
    };
    let state = State {
        ingest: Ingest::new(
            cached(&aws),
            flaky,
            SqsQueue::new(aws.sqs.clone(), &aws.dlq_url),
        ),
        metrics_namespace: "wacapi".into(),
        emit_metrics: false,
    };
    let body = bulk_webhook(40, 2, 2, 16);
    let first = handler(&state, signed_post(&body)).await.unwrap();
    assert_eq!(first.status(), 500, "Meta must retry");
    // Meta retries the same body; the half that got through is deduplicated by SQS.
    let retry = handler(&state, signed_post(&body)).await.unwrap();
    assert_eq!(retry.status(), 200);
    let received = drain_queue(&aws.sqs, &aws.signal_url).await;
    let ids: Vec<String> = received
        .iter()
        .map(|m| {
            serde_json::from_str::<Signal>(m.body().unwrap())
                .unwrap()
                .id
        })
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), 40, "every message exactly once");
    assert_eq!(unique.len(), 40);
}

#[tokio::test]
async fn a_missing_queue_answers_500() {
    let aws = aws().await;
    let state = State {
        ingest: Ingest::new(
            cached(&aws),
            SqsQueue::new(
                aws.sqs.clone(),
                format!("{}/123456789012/does-not-exist.fifo", moto_url()),
            ),
            SqsQueue::new(aws.sqs.clone(), &aws.dlq_url),
        ),
        metrics_namespace: "wacapi".into(),
        emit_metrics: false,
    };
    let mut metrics = Metrics::new("wacapi", "test");
    let body = sample("order");
    let sig = sign(&body);
    let reply = state
        .ingest
        .receive(&[sig.as_bytes()], &body, &mut metrics)
        .await;
    assert_eq!(reply.status, 500);
    assert_eq!(metrics.total(names::ENQUEUE_FAILURES), 1.0);
}

#[tokio::test]
async fn quarantined_bodies_reach_the_dead_letter_queue_with_their_reason() {
    let aws = aws().await;
    let state = deployed_state(&aws);
    let body = b"{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":1".to_vec();
    let response = handler(&state, signed_post(&body)).await.unwrap();
    assert_eq!(response.status(), 200);
    let dead = drain_queue(&aws.sqs, &aws.dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body().unwrap().as_bytes(), body.as_slice());
    assert_eq!(
        message_attribute(&dead[0], attributes::REASON).as_deref(),
        Some("not_an_envelope")
    );
    assert_eq!(
        system_attribute(&dead[0], Attr::MessageDeduplicationId),
        sha256_hex(&body)
    );
    assert!(drain_queue(&aws.sqs, &aws.signal_url).await.is_empty());

    let response = handler(&state, signed_post(&fixture("mixed-bad-items.json")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let dead = drain_queue(&aws.sqs, &aws.dlq_url).await;
    assert_eq!(dead.len(), 1, "only the message without an id");
    assert_eq!(
        message_attribute(&dead[0], attributes::ACCOUNT_ID).as_deref(),
        Some("102290129340398")
    );

    assert_eq!(drain_queue(&aws.sqs, &aws.signal_url).await.len(), 3);

    // An entry without a WABA id is kept whole, as a webhook of its own (SQS takes no empty
    // attribute, so it carries none for the WABA).
    let response = handler(&state, signed_post(&fixture("shapes/relay-shapes.json")))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let dead = drain_queue(&aws.sqs, &aws.dlq_url).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        message_attribute(&dead[0], attributes::KIND).as_deref(),
        Some("webhook_body")
    );
    assert_eq!(message_attribute(&dead[0], attributes::ACCOUNT_ID), None);
    let kept: serde_json::Value = serde_json::from_str(dead[0].body().unwrap()).unwrap();
    assert_eq!(kept["object"], "whatsapp_business_account");
    assert_eq!(drain_queue(&aws.sqs, &aws.signal_url).await.len(), 4);
}

#[tokio::test]
async fn the_handshake_reads_the_verify_token_from_secrets_manager() {
    let aws = aws().await;
    let state = deployed_state(&aws);
    let query = format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42");
    let response = handler(
        &state,
        apigw_request("GET", "/webhook", &query, &[], None, false),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(matches!(response.body(), Body::Text(t) if t == "42"));
}

#[tokio::test]
async fn a_rotated_app_secret_is_picked_up_without_a_redeploy() {
    let aws = aws().await;
    let state = deployed_state(&aws);
    let body = sample("order");
    assert_eq!(
        handler(&state, signed_post(&body)).await.unwrap().status(),
        200
    );

    let rotated = r#"{"app_secret":"rotated-secret-0123456","verify_token":"t"}"#;
    aws.secrets
        .put_secret_value()
        .secret_id(&aws.secret_arn)
        .secret_string(rotated)
        .send()
        .await
        .expect("rotate");
    let body = sample("template-quick-reply");
    let sig = wacapi_shared::signature::sign(b"rotated-secret-0123456", &body);
    let request = apigw_request(
        "POST",
        "/webhook",
        "",
        &[("X-Hub-Signature-256", &sig)],
        Some(&body),
        false,
    );
    assert_eq!(handler(&state, request).await.unwrap().status(), 200);

    // A second wrong signature right after does not re-read the secret again (rate limited).
    let request = apigw_request(
        "POST",
        "/webhook",
        "",
        &[("X-Hub-Signature-256", &sign(&body))],
        Some(&body),
        false,
    );
    assert_eq!(handler(&state, request).await.unwrap().status(), 403);
}

#[tokio::test]
async fn an_empty_secret_is_a_clear_error_and_a_500() {
    let aws = aws().await;
    let empty_arn = aws
        .secrets
        .create_secret()
        .name(unique("empty-secret"))
        .send()
        .await
        .expect("create")
        .arn()
        .unwrap()
        .to_owned();
    let source = SecretsManagerSource::new(aws.secrets.clone(), &empty_arn);
    let cache: CachedSecret<wacapi_shared::secrets::WebhookSecrets, _> =
        CachedSecret::new(source, Duration::from_secs(1), Duration::from_secs(1));
    let err = cache.get().await.expect_err("no value");
    assert!(
        matches!(err, SecretError::Empty | SecretError::Fetch(_)),
        "{err:?}"
    );
    let state = State {
        ingest: Ingest::new(
            cache,
            Arc::new(wacapi_shared::queue::MemoryQueue::new()),
            Arc::new(wacapi_shared::queue::MemoryQueue::new()),
        ),
        metrics_namespace: "wacapi".into(),
        emit_metrics: false,
    };
    let body = sample("order");
    assert_eq!(
        handler(&state, signed_post(&body)).await.unwrap().status(),
        500
    );
}

/// A secret whose key is empty (or too short) fails closed: a body signed with that key is
/// answered 500 (Meta retries), counted, and nothing is queued, for webhooks and `/events`.
#[tokio::test]
async fn empty_or_short_keys_accept_nothing() {
    let aws = aws().await;
    for (webhook_doc, events_doc, key) in [
        (
            r#"{"app_secret":"","verify_token":"t"}"#,
            r#"{"keys":[""]}"#,
            "",
        ),
        (
            r#"{"app_secret":"short","verify_token":"t"}"#,
            r#"{"keys":["a-long-enough-key-0123","short"]}"#,
            "short",
        ),
    ] {
        let secret = |doc: &str| {
            let secrets = aws.secrets.clone();
            let doc = doc.to_owned();
            async move {
                secrets
                    .create_secret()
                    .name(unique("weak-secret"))
                    .secret_string(doc)
                    .send()
                    .await
                    .expect("create")
                    .arn()
                    .unwrap()
                    .to_owned()
            }
        };
        fn cache<T: wacapi_shared::secrets::SecretDocument>(
            aws: &Aws,
            arn: String,
        ) -> CachedSecret<T, SecretsManagerSource> {
            CachedSecret::new(
                SecretsManagerSource::new(aws.secrets.clone(), &arn),
                Duration::from_secs(300),
                Duration::from_secs(30),
            )
        }
        let signals = Arc::new(wacapi_shared::queue::MemoryQueue::new());
        let ingest = Ingest::new(
            cache(&aws, secret(webhook_doc).await),
            Arc::clone(&signals),
            Arc::new(wacapi_shared::queue::MemoryQueue::new()),
        )
        .with_event_keys(cache(&aws, secret(events_doc).await));

        let body = sample("order");
        let signature = wacapi_shared::signature::sign(key.as_bytes(), &body);
        let mut metrics = Metrics::new("wacapi", "test");
        let reply = ingest
            .receive(&[signature.as_bytes()], &body, &mut metrics)
            .await;
        assert_eq!(reply.status, 500, "{webhook_doc}: {}", reply.body);
        assert!(reply.body.contains("unusable"), "{}", reply.body);
        assert_eq!(metrics.total(names::SECRET_ERRORS), 1.0);

        let events = br#"{"events":[{"event_name":"QualifiedLead","idempotency_key":"k","user":{"wa_id":"16505551234"}}]}"#;
        let now = stack::unix_now();
        let signature = wacapi_shared::business::sign(key.as_bytes(), now, events);
        let reply = ingest
            .receive_events(
                &[now.to_string().as_bytes()],
                &[signature.as_bytes()],
                events,
                now,
                &mut metrics,
            )
            .await;
        assert_eq!(reply.status, 500, "{events_doc}: {}", reply.body);
        assert_eq!(metrics.total(names::SECRET_ERRORS), 2.0);
        assert!(signals.is_empty(), "nothing accepted under an unusable key");
    }
}
