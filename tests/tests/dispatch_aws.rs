//! The whole pipeline as deployed: webhook-ingest → SQS FIFO (moto) → capi-dispatch with
//! DynamoDB and Secrets Manager (moto) → a loopback Graph API that checks every request.
//! Every test also checks the accounting: accepted signals = sent + duplicate + skipped + DLQ.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

use wacapi_shared::aws::dynamo::DynamoStore;
use wacapi_shared::aws::secrets_manager::SecretsManagerSource;
use wacapi_shared::aws::sqs::SqsQueue;
use wacapi_shared::channels::split;
use wacapi_shared::conversion::clicks::{Click, StoreError};
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::destinations::Destinations;
use wacapi_shared::dispatch::{DispatchSettings, Dispatcher, InboundRecord};
use wacapi_shared::ingest::attributes;
use wacapi_shared::meta::graph::GraphClient;
use wacapi_shared::meta::graph::attributes as graph_attributes;
use wacapi_shared::metrics::Metrics;
use wacapi_shared::report::{FactKey, Tally};
use wacapi_shared::signal::Signal;
use wacapi_shared::store::ledger::{Claim, ClaimRequest, SentMark};
use wacapi_shared::store::{ClickWrite, DispatchStore};
use wacapi_tests::graph_mock::Reply;
use wacapi_tests::stack::{
    SAMPLE_NOW, Stack, StackOptions, example_rules, freshen, inbound_records, total, unix_now,
};
use wacapi_tests::{ad_clicks, message_attribute, sample, sample_webhooks};

fn assert_clean(stack: &Stack) {
    let violations = stack.graph.violations();
    assert!(
        violations.is_empty(),
        "Graph contract violations: {violations:#?}"
    );
}

/// Events as snapshot-stable JSON: `event_time` back on the sample clock.
fn stable(events: Vec<Value>, now: i64) -> Vec<Value> {
    events
        .into_iter()
        .map(|mut e| {
            let t = e["event_time"].as_i64().unwrap();
            e["event_time"] = json!(t - now + SAMPLE_NOW);
            e
        })
        .collect()
}

#[tokio::test]
async fn every_example_webhook_reaches_the_graph_api_as_expected() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    let mut accepted = 0;
    let mut invocations = Vec::new();
    for (name, body) in sample_webhooks() {
        let before = stack.graph.received().len();
        let (status, n) = stack.post(&freshen(&body, now)).await;
        assert_eq!(status, 200, "{name}");
        accepted += n;
        invocations.extend(stack.pump(5).await);
        let requests: Vec<Value> = stack.graph.received()[before..]
            .iter()
            .map(|r| {
                assert_eq!(r.status, 200);
                json!({
                    "version": r.version,
                    "dataset_id": r.dataset_id,
                    "test_event_code": r.body["test_event_code"],
                    "partner_agent": r.body["partner_agent"],
                    "data": stable(r.body["data"].as_array().unwrap().clone(), now),
                })
            })
            .collect();
        insta::assert_json_snapshot!(format!("graph-{name}"), requests);
    }
    assert_clean(&stack);
    let t = total(&invocations);
    assert_eq!(accepted, 6);
    assert_eq!((t.sent, t.failed, t.dead_lettered), (6, 0, 0));
    assert_eq!(accepted, t.sent + t.duplicate + t.skipped + t.dead_lettered);
    assert_eq!(stack.graph.accepted_events().len(), 6);
}

#[tokio::test]
async fn a_click_in_one_webhook_attributes_an_order_in_a_later_one() {
    let stack = Stack::new(StackOptions {
        rules: Some(wacapi_shared::conversion::rules::DEFAULT_CONFIG.to_owned()),
        ..StackOptions::default()
    })
    .await;
    let now = unix_now();
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), now))
        .await;
    let first = stack.pump(5).await;
    assert_eq!(
        total(&first).skipped,
        1,
        "the default rules send nothing for a first message"
    );
    stack.post(&freshen(&sample("order"), now)).await;
    let second = stack.pump(5).await;
    assert_eq!(total(&second).sent, 1);
    let events = stack.graph.accepted_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_name"], "Purchase");
    assert!(
        events[0]["user_data"]["ctwa_clid"]
            .as_str()
            .unwrap()
            .starts_with("Aff-n8ZT")
    );
    assert_eq!(events[0]["custom_data"]["value"], 85.5);
    assert_clean(&stack);
}

#[tokio::test]
async fn duplicates_and_redelivered_batches_are_sent_once() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    let body = freshen(&sample("text-from-ctwa-ad"), now);
    // Meta delivers the same webhook twice: the FIFO dedup id drops the copy.
    assert_eq!(stack.post(&body).await, (200, 1));
    assert_eq!(stack.post(&body).await, (200, 1));

    // The first invocation sends, then "times out": nothing is deleted, SQS redelivers.
    let messages = stack.receive().await;
    assert_eq!(messages.len(), 1);
    let first = stack.invoke(&messages, Duration::from_secs(30)).await;
    assert_eq!(first.report.records.sent, 1);
    stack.time_out(&messages).await;
    let redelivered = stack.pump(5).await;
    let t = total(&redelivered);
    assert_eq!((t.duplicate, t.sent), (1, 0));
    assert_eq!(redelivered[0].report.dedup_hits, 1);

    // Days later (past the 5-minute FIFO window) Meta re-delivers again: the ledger holds.
    let signal = messages[0].body().unwrap();
    stack
        .sqs
        .send_message()
        .queue_url(&stack.signal_url)
        .message_body(signal)
        .message_group_id("g")
        .message_deduplication_id("a-different-dedup-id")
        .send()
        .await
        .unwrap();
    let later = stack.pump(5).await;
    assert_eq!(total(&later).duplicate, 1);

    assert_eq!(stack.graph.accepted_events().len(), 1, "exactly one send");
    assert_clean(&stack);
}

#[tokio::test]
async fn graph_500_then_200_is_sent_once() {
    let stack = Stack::new(StackOptions::default()).await;
    stack.graph.script([Reply::Status(
        500,
        json!({"error": {"message": "boom", "code": 1}}),
    )]);
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), unix_now()))
        .await;
    let invocations = stack.pump(5).await;
    let statuses: Vec<u16> = stack.graph.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200]);
    assert_eq!(stack.graph.accepted_events().len(), 1);
    assert_eq!(total(&invocations).sent, 1);
    assert_eq!(
        invocations[0].metrics.total_by(
            wacapi_shared::meta::metric_names::GRAPH_ERRORS,
            "Code",
            "1"
        ),
        1.0
    );
    assert_clean(&stack);
}

#[tokio::test]
async fn throttling_backs_off_then_sends() {
    let stack = Stack::new(StackOptions::default()).await;
    stack.graph.script([
        Reply::Status(429, json!({"error": {"message": "slow down"}})),
        Reply::error(400, 4, None),
        Reply::error(400, 17, Some(2_446_079)),
    ]);
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), unix_now()))
        .await;
    let started = Instant::now();
    let invocations = stack.pump(5).await;
    let statuses: Vec<u16> = stack.graph.received().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 400, 400, 200]);
    assert_eq!(total(&invocations).sent, 1);
    assert_eq!(invocations.len(), 1, "recovered inside one invocation");
    // Throttling waits at least the jittered floor of three backoffs (0.4 + 0.8 + 1.6 s).
    assert!(started.elapsed() >= Duration::from_millis(1400));
    assert_clean(&stack);
}

#[tokio::test]
async fn a_hanging_graph_times_out_and_nothing_is_marked_sent() {
    let stack = Stack::new(StackOptions {
        graph_timeout: Duration::from_secs(1),
        ..StackOptions::default()
    })
    .await;
    stack.graph.script([Reply::Hang(Duration::from_secs(3))]);
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), unix_now()))
        .await;
    let messages = stack.receive().await;
    // A short invocation: no time for a retry after the timeout.
    let hung = stack.invoke(&messages, Duration::from_secs(4)).await;
    assert_eq!(hung.response.batch_item_failures.len(), 1);
    assert_eq!(hung.report.records.failed, 1);
    assert_eq!(
        hung.metrics.total_by(
            wacapi_shared::meta::metric_names::GRAPH_ERRORS,
            "Code",
            "transport"
        ),
        1.0
    );
    let items = stack
        .ddb
        .scan()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    let sent = items
        .items()
        .iter()
        .filter(|i| {
            i.get("state")
                .and_then(|s| s.as_s().ok())
                .map(String::as_str)
                == Some("sent")
        })
        .count();
    assert_eq!(sent, 0, "nothing marked sent");
    stack.settle(&messages, &hung.response).await;

    let retried = stack.pump(5).await;
    assert_eq!(total(&retried).sent, 1);
    assert_eq!(stack.graph.accepted_events().len(), 1);
    assert_clean(&stack);
}

#[tokio::test]
async fn a_token_error_loses_nothing_and_raises_the_alarm_metric() {
    let stack = Stack::new(StackOptions::default()).await;
    stack.graph.script([Reply::error(401, 190, Some(463))]);
    let (_, accepted) = stack
        .post(&freshen(&sample("text-from-ctwa-ad"), unix_now()))
        .await;
    let first = stack.pump(1).await;
    assert_eq!(first[0].report.records.failed, 1);
    assert_eq!(
        first[0]
            .metrics
            .total(wacapi_shared::meta::metric_names::GRAPH_AUTH_ERRORS),
        1.0
    );
    assert_eq!(
        stack.graph.received().len(),
        1,
        "no retry inside the invocation"
    );
    // The token is fixed: the kept record goes out on redelivery.
    let then = stack.pump(5).await;
    let t = total(&then);
    assert_eq!(t.sent, 1);
    assert_eq!(accepted, t.sent + t.duplicate + t.skipped + t.dead_lettered);
    assert_clean(&stack);
}

#[tokio::test]
async fn an_unknown_account_goes_to_the_dead_letter_queue_with_its_reason() {
    let rules = r#"
[[accounts]]
waba_id = "999"
dataset_id = "1"
[[rules]]
name = "click"
event = "ViewContent"
trigger = { kind = "ad_click" }
"#;
    let stack = Stack::new(StackOptions {
        rules: Some(rules.to_owned()),
        ..StackOptions::default()
    })
    .await;
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), unix_now()))
        .await;
    let invocations = stack.pump(5).await;
    assert_eq!(total(&invocations).dead_lettered, 1);
    let dead = stack.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(
        message_attribute(&dead[0], attributes::REASON).as_deref(),
        Some("unknown_account")
    );
    let signal: Signal = serde_json::from_str(dead[0].body().unwrap()).unwrap();
    assert_eq!(
        signal.account_id, "102290129340398",
        "the signal is kept whole for a redrive"
    );
    assert!(stack.graph.received().is_empty());
}

#[tokio::test]
async fn one_invalid_event_in_a_request_of_50_is_isolated() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    stack.graph.poison_click("clid-17");
    let (_, accepted) = stack.post(&ad_clicks(50, now)).await;
    assert_eq!(accepted, 50);
    // One invocation with all 50 records (as a standard-queue batch would bring them), so the
    // 50 events share one Graph request.
    let mut messages = Vec::new();
    while messages.len() < 50 {
        let batch = stack.receive().await;
        assert!(!batch.is_empty());
        messages.extend(batch);
    }
    let invocation = stack.invoke(&messages, Duration::from_secs(30)).await;
    stack.settle(&messages, &invocation.response).await;
    let r = &invocation.report.records;
    assert_eq!((r.sent, r.dead_lettered, r.failed), (49, 1, 0));
    assert_eq!(invocation.report.events_sent, 49);
    assert_eq!(
        stack.graph.received()[0].body["data"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
    let accepted_events = stack.graph.accepted_events();
    assert_eq!(accepted_events.len(), 49);
    assert!(
        accepted_events
            .iter()
            .all(|e| e["user_data"]["ctwa_clid"] != "clid-17")
    );

    let dead = stack.dead_letters().await;
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(
        message_attribute(d, attributes::REASON).as_deref(),
        Some("graph_event_too_old")
    );
    assert_eq!(
        message_attribute(d, graph_attributes::CODE).as_deref(),
        Some("100")
    );
    assert_eq!(
        message_attribute(d, graph_attributes::SUBCODE).as_deref(),
        Some("2804003")
    );
    assert!(
        message_attribute(d, graph_attributes::MESSAGE)
            .unwrap()
            .contains("mock error 100")
    );
    assert!(d.body().unwrap().contains("clid-17"));
    assert_eq!(accepted, r.sent + r.duplicate + r.skipped + r.dead_lettered);
    assert_clean(&stack);
}

/// The real DynamoDB adapter, failing chosen calls as a throttled or unavailable table would.
/// It also counts the calls made, to check round trips per batch.
struct FlakyStore {
    inner: DynamoStore,
    failing_reads: AtomicUsize,
    failing_commits: AtomicUsize,
    /// Calls made: reads, commits, sent marks, releases.
    calls: [AtomicUsize; 4],
}

fn injected() -> StoreError {
    StoreError("ProvisionedThroughputExceededException (injected)".into())
}

fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

impl DispatchStore for FlakyStore {
    async fn clicks(&self, keys: &[String]) -> Result<HashMap<String, Click>, StoreError> {
        self.calls[0].fetch_add(1, Ordering::SeqCst);
        if take_one(&self.failing_reads) {
            return Err(injected());
        }
        self.inner.clicks(keys).await
    }
    async fn commit(
        &self,
        clicks: &[ClickWrite],
        claims: &[ClaimRequest],
        now: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        self.calls[1].fetch_add(1, Ordering::SeqCst);
        if take_one(&self.failing_commits) {
            return Err(injected());
        }
        self.inner.commit(clicks, claims, now).await
    }
    async fn mark_sent(
        &self,
        marks: &[SentMark],
        report: &[(FactKey, Tally)],
    ) -> Result<(), StoreError> {
        self.calls[2].fetch_add(1, Ordering::SeqCst);
        self.inner.mark_sent(marks, report).await
    }
    async fn release(&self, ids: &[String]) -> Result<(), StoreError> {
        self.calls[3].fetch_add(1, Ordering::SeqCst);
        self.inner.release(ids).await
    }
}

impl FlakyStore {
    fn calls(&self) -> [usize; 4] {
        self.calls.each_ref().map(|c| c.load(Ordering::SeqCst))
    }
}

async fn flaky_dispatcher(
    stack: &Stack,
    reads: usize,
    commits: usize,
) -> Dispatcher<FlakyStore, Destinations<GraphClient<SecretsManagerSource>>, SqsQueue> {
    let aws = wacapi_tests::aws_config().await;
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&aws),
        &stack.table,
        86_400 * 7,
    );
    let graph = GraphClient::new(
        &stack.graph.url,
        Duration::from_secs(5),
        wacapi_shared::secrets::CachedSecret::new(
            SecretsManagerSource::new(stack.secrets.clone(), &stack.token_secret_arn),
            Duration::from_secs(60),
            Duration::from_secs(30),
        ),
    )
    .unwrap();
    Dispatcher::new(
        Config::from_toml(&example_rules()).unwrap(),
        FlakyStore {
            inner: store,
            failing_reads: AtomicUsize::new(reads),
            failing_commits: AtomicUsize::new(commits),
            calls: Default::default(),
        },
        wacapi_shared::destinations::Destinations::new(graph),
        SqsQueue::new(stack.sqs.clone(), &stack.dlq_url),
        DispatchSettings::default(),
    )
}

async fn run(
    dispatcher: &Dispatcher<FlakyStore, Destinations<GraphClient<SecretsManagerSource>>, SqsQueue>,
    records: &[InboundRecord],
    now: i64,
) -> wacapi_shared::dispatch::DispatchReport {
    let mut metrics = Metrics::new("wacapi", "test");
    dispatcher
        .dispatch(
            records,
            now,
            Instant::now() + Duration::from_secs(30),
            &mut metrics,
        )
        .await
}

#[tokio::test]
async fn a_batch_of_ten_costs_one_read_one_commit_one_mark_and_one_graph_request() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    // Eight users click; a ninth clicks and then orders in the same batch.
    let mut signals = split(&ad_clicks(50, now)).unwrap().signals;
    signals.truncate(8);
    signals.extend(
        split(&freshen(&sample("text-from-ctwa-ad"), now))
            .unwrap()
            .signals,
    );
    signals.extend(split(&freshen(&sample("order"), now)).unwrap().signals);
    assert_eq!(signals.len(), 10);
    let dispatcher = flaky_dispatcher(&stack, 0, 0).await;
    let report = run(&dispatcher, &inbound_records(&signals), now).await;
    assert_eq!((report.records.sent, report.events_sent), (10, 10));
    assert_eq!(report.graph_requests, 1);
    assert_eq!(dispatcher.store().calls(), [1, 1, 1, 0]);
    // The order saw the click recorded earlier in the same batch.
    let events = stack.graph.accepted_events();
    let purchase = events
        .iter()
        .find(|e| e["event_name"] == "Purchase")
        .expect("a Purchase");
    assert!(purchase["user_data"]["ctwa_clid"].is_string());
    // Redelivered whole: the same four calls at most, and nothing sent again.
    let again = run(&dispatcher, &inbound_records(&signals), now).await;
    assert_eq!((again.records.duplicate, again.graph_requests), (10, 0));
    assert_eq!(dispatcher.store().calls(), [2, 2, 1, 0]);
    assert_clean(&stack);
}

#[tokio::test]
async fn a_failed_claim_write_fails_the_batch_and_its_retry_sends_each_event_once() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    let signals = split(&ad_clicks(50, now)).unwrap().signals;
    let records = inbound_records(&signals[..10]);
    let dispatcher = flaky_dispatcher(&stack, 0, 1).await;
    let first = run(&dispatcher, &records, now).await;
    // Nothing was claimed, so nothing may be sent: every record goes back to SQS.
    assert_eq!(first.failed.len(), 10);
    assert_eq!(first.graph_requests, 0);
    assert!(stack.graph.accepted_events().is_empty());
    let retry = run(&dispatcher, &records, now).await;
    assert_eq!((retry.records.sent, retry.records.failed), (10, 0));
    assert_eq!(retry.graph_requests, 1);
    let again = run(&dispatcher, &records, now).await;
    assert_eq!((again.records.duplicate, again.events_sent), (10, 0));
    assert_eq!(stack.graph.accepted_events().len(), 10);
    assert_eq!(dispatcher.store().failing_commits.load(Ordering::SeqCst), 0);
    assert_clean(&stack);
}

#[tokio::test]
async fn a_failed_click_read_fails_only_the_records_that_need_a_click() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    // Five users click (no lookup needed); then the last of them orders (a lookup).
    let mut signals = split(&ad_clicks(50, now)).unwrap().signals;
    signals.truncate(4);
    signals.extend(
        split(&freshen(&sample("text-from-ctwa-ad"), now))
            .unwrap()
            .signals,
    );
    let orders = split(&freshen(&sample("order"), now)).unwrap().signals;
    assert_eq!(orders.len(), 1);
    let records = inbound_records(&signals);
    let dispatcher = flaky_dispatcher(&stack, 1, 0).await;
    let clicks = run(&dispatcher, &records, now).await;
    assert_eq!((clicks.records.sent, clicks.records.failed), (5, 0));
    assert_eq!(
        dispatcher.store().failing_reads.load(Ordering::SeqCst),
        1,
        "clicks need no read"
    );
    let order = inbound_records(&orders);
    let failed = run(&dispatcher, &order, now).await;
    assert_eq!(failed.failed, ["m0"], "the order needed its click");
    let retried = run(&dispatcher, &order, now).await;
    assert_eq!(retried.records.sent, 1);
    assert_eq!(stack.graph.accepted_events().len(), 6);
    assert_clean(&stack);
}

#[tokio::test]
async fn a_record_that_fails_holds_back_the_later_records_of_its_group() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    // One user: the click, then an order. The click's send fails with a token error.
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), now))
        .await;
    stack.post(&freshen(&sample("order"), now)).await;
    stack.graph.script([Reply::error(400, 190, None)]);
    let messages = stack.receive().await;
    assert_eq!(messages.len(), 2, "one group, in order");
    let invocation = stack.invoke(&messages, Duration::from_secs(30)).await;
    assert_eq!(
        invocation.response.batch_item_failures.len(),
        2,
        "the later record fails too"
    );
    stack.settle(&messages, &invocation.response).await;
    let retried = stack.pump(5).await;
    assert_eq!(total(&retried).sent, 2);
    let names: Vec<String> = stack
        .graph
        .accepted_events()
        .iter()
        .map(|e| e["event_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["ViewContent", "Purchase"]);
    assert_clean(&stack);
}

#[tokio::test]
async fn undecodable_records_are_dead_lettered_and_quarantined_bodies_can_be_redriven() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    // A signed body that is not a webhook is quarantined by ingest.
    stack
        .post(b"{\"object\":\"whatsapp_business_account\",\"entry\":[{")
        .await;
    let quarantined = stack.dead_letters().await;
    assert_eq!(quarantined.len(), 1);
    // Not a signal at all, and a webhook body redriven from the DLQ after a fix.
    let fixed = freshen(&sample("text-from-ctwa-ad"), now);
    for (body, kind) in [
        ("not json".to_owned(), None),
        (String::from_utf8(fixed).unwrap(), Some("webhook_body")),
    ] {
        let mut send = stack
            .sqs
            .send_message()
            .queue_url(&stack.signal_url)
            .message_body(body)
            .message_group_id("redrive")
            .message_deduplication_id(wacapi_tests::unique("d"));
        if let Some(kind) = kind {
            send = send.message_attributes(
                attributes::KIND,
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(kind)
                    .build()
                    .unwrap(),
            );
        }
        send.send().await.unwrap();
    }
    let invocations = stack.pump(5).await;
    let t = total(&invocations);
    assert_eq!((t.dead_lettered, t.sent), (1, 1));
    let dead = stack.dead_letters().await;
    assert_eq!(
        message_attribute(&dead[0], attributes::REASON).as_deref(),
        Some("undecodable_signal")
    );
    assert_eq!(stack.graph.accepted_events().len(), 1);
    assert_clean(&stack);
}

/// An order webhook whose one signal serialises to just under 1 MiB (SQS's largest message):
/// `lines` order lines whose retailer ids are long enough to fill it.
fn order_of_size(now: i64, target: usize) -> (Vec<u8>, usize) {
    let build = |id_len: usize| {
        let mut body: Value = serde_json::from_slice(&freshen(&sample("order"), now)).unwrap();
        let items: Vec<Value> = (0..1000)
            .map(|i| {
                json!({"product_retailer_id": format!("{i:04}{}", "x".repeat(id_len)),
                       "quantity": 1, "item_price": 1.5, "currency": "USD"})
            })
            .collect();
        body["entry"][0]["changes"][0]["value"]["messages"][0]["order"]["product_items"] =
            Value::Array(items);
        let bytes = serde_json::to_vec(&body).unwrap();
        let signal = split(&bytes).unwrap().signals.remove(0);
        let size = serde_json::to_vec(&signal).unwrap().len();
        (bytes, size)
    };
    let (_, base) = build(0);
    // Each line grows by one byte per id character.
    build((target - base) / 1000)
}

#[tokio::test]
async fn a_signal_just_under_1_mib_is_queued_and_dispatched() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    let limit = wacapi_shared::queue::MAX_MESSAGE_BYTES;
    let (body, size) = order_of_size(now, limit - 2048);
    assert!(
        size > limit - 4096 && size <= limit - 1024,
        "the signal is {size} bytes"
    );
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), now))
        .await;
    assert_eq!(stack.post(&body).await, (200, 1), "queued, not refused");
    let t = total(&stack.pump(5).await);
    assert_eq!((t.failed, t.dead_lettered), (0, 0), "{t:?}");
    let purchase = stack
        .graph
        .accepted_events()
        .into_iter()
        .find(|e| e["event_name"] == "Purchase")
        .expect("the order's Purchase");
    assert_eq!(
        purchase["custom_data"]["contents"]
            .as_array()
            .unwrap()
            .len(),
        1000
    );
    assert_eq!(purchase["custom_data"]["value"], 1500.0);
    assert_clean(&stack);
}
