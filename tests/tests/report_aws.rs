//! The conversion report's DynamoDB path, against moto through the real AWS SDK: the deployed
//! dispatcher adds every sent event to its ad's daily aggregate in the transaction that marks it
//! sent, a redelivered batch counts nothing, concurrent batches adding to one aggregate all
//! count, and `read_report` (what `wacapi report --table` runs) reads the rows back.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;
use std::time::Instant;

use wacapi_shared::aws::dynamo::DynamoStore;
use wacapi_shared::aws::report::read_report;
use wacapi_shared::aws::secrets_manager::SecretsManagerSource;
use wacapi_shared::aws::sqs::SqsQueue;
use wacapi_shared::channels::split;
use wacapi_shared::conversion::clicks::{Click, StoreError};
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::dispatch::{DispatchSettings, Dispatcher, InboundRecord};
use wacapi_shared::meta::graph::GraphClient;
use wacapi_shared::metrics::Metrics;
use wacapi_shared::report::{FactKey, Filter, Format, Report, Section, Tally};
use wacapi_shared::secrets::CachedSecret;
use wacapi_shared::store::ledger::{Claim, ClaimRequest, SentMark};
use wacapi_shared::store::{ClickWrite, DispatchStore};
use wacapi_tests::stack::{
    Stack, StackOptions, create_table, example_rules, freshen, inbound_records, total, unix_now,
};
use wacapi_tests::{clicks_then_buttons, sample};

/// Sent rows of the report as `(ad_id, event_name, currency) -> (count, value)`.
async fn sent_rows(stack: &Stack) -> BTreeMap<(String, String, String), (u64, f64)> {
    let aggregates = read_report(&stack.ddb, &stack.table, &Filter::default())
        .await
        .expect("report read");
    let report = Report::new(&aggregates, &Filter::default());
    let json = report.render(Format::Json, Section::Rows);
    json.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).unwrap();
            (
                (
                    row["ad_id"].as_str().unwrap_or("").to_owned(),
                    row["event_name"].as_str().unwrap().to_owned(),
                    row["currency"].as_str().unwrap_or("").to_owned(),
                ),
                (
                    row["count"].as_u64().unwrap(),
                    row["value"].as_f64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Every `report#` item of the table.
async fn report_items(stack: &Stack) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    stack
        .ddb
        .scan()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap()
        .items()
        .iter()
        .filter(|i| i["pk"].as_s().unwrap().starts_with("report#"))
        .cloned()
        .collect()
}

/// An item's size as DynamoDB bills it: attribute names plus values (a number about one byte
/// per two digits, plus one).
fn item_size(item: &std::collections::HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(s) => s.len(),
                    AttributeValue::N(n) => n.len().div_ceil(2) + 1,
                    other => panic!("unexpected attribute {other:?}"),
                }
        })
        .sum()
}

#[tokio::test]
async fn each_sent_event_is_counted_once_under_its_ad_even_when_its_batch_is_redelivered() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    // Six users click ad-1 and press the confirm button: a ViewContent and an OrderCreated each.
    stack.post(&clicks_then_buttons(7, 0, 6, now)).await;
    // A click on another ad, then an order: ViewContent and a Purchase of 85.50 USD.
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), now))
        .await;
    stack.post(&freshen(&sample("order"), now)).await;

    // The first batch is sent and marked, then its invocation "times out": SQS redelivers it.
    let messages = stack.receive().await;
    let first = stack.invoke(&messages, Duration::from_secs(30)).await;
    assert!(first.report.records.sent > 0);
    stack.time_out(&messages).await;
    let rest = stack.pump(10).await;
    assert!(
        total(&rest).duplicate > 0,
        "the redelivery found its events sent"
    );

    let sent = stack.graph.accepted_events();
    let rows = sent_rows(&stack).await;
    let counted: u64 = rows.values().map(|(n, _)| n).sum();
    assert_eq!(
        counted as usize,
        sent.len(),
        "totals equal what was sent: {rows:?}"
    );
    assert_eq!(
        rows[&("ad-1".into(), "ViewContent".into(), String::new())].0,
        6
    );
    assert_eq!(
        rows[&("ad-1".into(), "OrderCreated".into(), String::new())].0,
        6
    );
    let purchase: Vec<_> = rows
        .iter()
        .filter(|((_, event, _), _)| event == "Purchase")
        .collect();
    assert_eq!(purchase.len(), 1, "{rows:?}");
    let ((ad, _, currency), (count, value)) = purchase[0];
    assert_eq!(
        (ad.as_str(), currency.as_str(), *count),
        ("120226305854810726", "USD", 1)
    );
    let graph_value: f64 = sent
        .iter()
        .filter(|e| e["event_name"] == "Purchase")
        .map(|e| e["custom_data"]["value"].as_f64().unwrap())
        .sum();
    assert_eq!(*value, graph_value);

    // Coverage: every sent event here came from an ad click, so all carry ctwa_clid.
    let aggregates = read_report(&stack.ddb, &stack.table, &Filter::default())
        .await
        .unwrap();
    let coverage =
        Report::new(&aggregates, &Filter::default()).render(Format::Json, Section::Coverage);
    for line in coverage.lines() {
        let row: Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["destination"], "meta", "{row}");
        assert_eq!(row["keys"]["ctwa_clid"], 1.0, "{row}");
    }

    // Every aggregate has a TTL and holds ids, names, counts and amounts only.
    let allowed = [
        "pk",
        "day",
        "outcome",
        "destination",
        "channel",
        "account",
        "ad_id",
        "rule",
        "event_name",
        "currency",
        "n",
        "value",
        "expires_at",
    ];
    for item in report_items(&stack).await {
        // Under 1 KB: one write unit (two in a transaction) per aggregate update.
        let size = item_size(&item);
        assert!(size < 1024, "{size} bytes: {item:?}");
        let expires: i64 = item["expires_at"].as_n().unwrap().parse().unwrap();
        assert!(expires > now + 300 * 86_400, "{item:?}");
        for (name, value) in &item {
            assert!(
                allowed.contains(&name.as_str()) || name.starts_with("k_"),
                "{name}"
            );
            if let Ok(text) = value.as_s() {
                assert!(
                    !text.contains("100007"),
                    "no phone number in {name}: {text}"
                );
            }
        }
    }
}

/// The dispatcher's store, letting two batches run side by side up to their ledger writes,
/// then writing them one after the other. Why: moto's `UpdateItem` is not atomic across
/// concurrent requests (its `ADD` reads, validates and writes in separate steps; two first writes
/// of one item both create it), which lost one writer's counts in 6 of 20 runs of 16 parallel
/// writers. DynamoDB's `ADD` is atomic and conflicting transactions are cancelled with
/// `TransactionConflict`, which the adapter retries (`store_aws.rs` drives that through a
/// scripted endpoint). What this test proves against moto is the part that is the dispatcher's:
/// two batches in flight at once, each adding its own counts to the same aggregate without
/// reading it, both counted.
struct Interleaved {
    inner: DynamoStore,
    arrived: tokio::sync::Barrier,
    turn: tokio::sync::Mutex<()>,
    marks: std::sync::atomic::AtomicUsize,
}

impl DispatchStore for Interleaved {
    async fn clicks(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashMap<String, Click>, StoreError> {
        self.inner.clicks(keys).await
    }
    async fn commit(
        &self,
        clicks: &[ClickWrite],
        claims: &[ClaimRequest],
        now: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        self.inner.commit(clicks, claims, now).await
    }
    async fn mark_sent(
        &self,
        marks: &[SentMark],
        report: &[(FactKey, Tally)],
    ) -> Result<(), StoreError> {
        // Both batches have claimed and sent before either writes.
        tokio::time::timeout(Duration::from_secs(20), self.arrived.wait())
            .await
            .expect("both batches reach their ledger write");
        let _turn = self.turn.lock().await;
        self.marks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.mark_sent(marks, report).await
    }
    async fn release(&self, ids: &[String]) -> Result<(), StoreError> {
        self.inner.release(ids).await
    }
}

#[tokio::test]
async fn concurrent_batches_adding_to_the_same_aggregate_all_count() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    // Ten users of ad-1 (a ViewContent and an OrderCreated each) in two batches of five users.
    let signals = split(&clicks_then_buttons(8, 0, 10, now)).unwrap().signals;
    let records = inbound_records(&signals);
    let (a, b) = records.split_at(10);
    let aws = wacapi_tests::aws_config().await;
    let store = Interleaved {
        inner: DynamoStore::new(aws_sdk_dynamodb::Client::new(&aws), &stack.table, 86_400),
        arrived: tokio::sync::Barrier::new(2),
        turn: tokio::sync::Mutex::new(()),
        marks: Default::default(),
    };
    let graph = GraphClient::new(
        &stack.graph.url,
        Duration::from_secs(5),
        CachedSecret::new(
            SecretsManagerSource::new(stack.secrets.clone(), &stack.token_secret_arn),
            Duration::from_secs(60),
            Duration::from_secs(30),
        ),
    )
    .unwrap();
    let dispatcher = Dispatcher::new(
        Config::from_toml(&example_rules()).unwrap(),
        store,
        wacapi_shared::destinations::Destinations::new(graph),
        SqsQueue::new(stack.sqs.clone(), &stack.dlq_url),
        DispatchSettings::default(),
    );
    let run = |records: &'static [InboundRecord]| {
        let dispatcher = &dispatcher;
        async move {
            let mut metrics = Metrics::new("wacapi", "test");
            let deadline = Instant::now() + Duration::from_secs(30);
            dispatcher
                .dispatch(records, now, deadline, &mut metrics)
                .await
        }
    };
    let (a, b): (&'static [InboundRecord], &'static [InboundRecord]) = (
        Box::leak(a.to_vec().into_boxed_slice()),
        Box::leak(b.to_vec().into_boxed_slice()),
    );
    let (ra, rb) = tokio::join!(run(a), run(b));
    assert_eq!((ra.events_sent, rb.events_sent), (10, 10));
    assert_eq!(
        dispatcher
            .store()
            .marks
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );

    assert_eq!(stack.graph.accepted_events().len(), 20);
    let rows = sent_rows(&stack).await;
    assert_eq!(
        rows[&("ad-1".into(), "ViewContent".into(), String::new())].0,
        10
    );
    assert_eq!(
        rows[&("ad-1".into(), "OrderCreated".into(), String::new())].0,
        10
    );

    // Both batches delivered again: found sent, nothing added.
    let (ra, rb) = tokio::join!(run(a), run(b));
    assert_eq!((ra.records.duplicate, rb.records.duplicate), (10, 10));
    let again = sent_rows(&stack).await;
    assert_eq!(again, rows);
}

#[tokio::test]
async fn batch_after_batch_adds_to_one_aggregate_to_the_cent() {
    let aws = wacapi_tests::aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let table = create_table(&ddb).await;
    let store = DynamoStore::new(ddb.clone(), &table, 600);
    let key = FactKey {
        day: "2026-12-01".into(),
        outcome: "sent".into(),
        destination: "meta".into(),
        channel: "whatsapp".into(),
        account: "102290129340398".into(),
        ad_id: "ad-9".into(),
        rule: "order-purchase".into(),
        event_name: "Purchase".into(),
        currency: "EUR".into(),
    };
    let tally = Tally {
        count: 3,
        value: 0.1 + 0.2 + 0.3,
        keys: [("ctwa_clid".to_owned(), 3), ("ph".to_owned(), 2)].into(),
    };
    for w in 0..16 {
        let marks: Vec<SentMark> = (0..3)
            .map(|i| SentMark {
                event_id: format!("{:064x}", w * 10 + i),
                fbtrace_id: None,
                sent_at: 1,
                expires_at: 10_000,
            })
            .collect();
        store
            .mark_sent(&marks, &[(key.clone(), tally.clone())])
            .await
            .expect("written");
    }

    let aggregates = read_report(&ddb, &table, &Filter::default()).await.unwrap();
    assert_eq!(aggregates.len(), 1);
    let (read_key, read) = &aggregates[0];
    assert_eq!(read_key, &key);
    assert_eq!(read.count, 48);
    assert_eq!(read.value, 9.6, "16 × 0.60, exactly");
    assert_eq!(read.keys["ctwa_clid"], 48);
    assert_eq!(read.keys["ph"], 32);

    // Filters apply to what is read.
    let other_ad = Filter {
        ad: Some("ad-8".into()),
        ..Filter::default()
    };
    assert!(
        read_report(&ddb, &table, &other_ad)
            .await
            .unwrap()
            .is_empty()
    );
}

/// An automatic event names its click, not its user or ad: the dispatcher keeps each click of a
/// deployment that sends automatic events under its hashed click id too, and counts the event
/// under that click's ad.
#[tokio::test]
async fn automatic_events_are_counted_under_the_ad_of_their_click() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    stack
        .post(&freshen(&sample("text-from-ctwa-ad"), now))
        .await;
    stack.pump(10).await;
    stack.post(&freshen(&sample("automatic-events"), now)).await;
    stack.pump(10).await;

    let automatic: Vec<Value> = stack
        .graph
        .accepted_events()
        .into_iter()
        .filter(|e| e["messaging_outcome_data"]["outcome_type"] == "automatic_events")
        .collect();
    assert_eq!(automatic.len(), 1, "{automatic:?}");
    assert!(
        automatic[0].get("ad_id").is_none(),
        "the ad id is the report's, never sent"
    );
    let rows = sent_rows(&stack).await;
    let purchase: Vec<_> = rows
        .iter()
        .filter(|((_, event, _), _)| event == "Purchase")
        .collect();
    assert_eq!(purchase.len(), 1, "{rows:?}");
    let ((ad, _, currency), (count, value)) = purchase[0];
    assert_eq!(
        (ad.as_str(), currency.as_str(), *count),
        ("120226305854810726", "USD", 1)
    );
    assert_eq!(
        Some(*value),
        automatic[0]["custom_data"]["value"].as_f64(),
        "{rows:?}"
    );
    // The click id's key is hashed like the user keys: no click id in clear in any key.
    let items = stack
        .ddb
        .scan()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap();
    for item in items.items() {
        let pk = item["pk"].as_s().unwrap();
        assert!(!pk.contains("Aff-n8ZT"), "{pk}");
    }
}
