//! The dispatcher core over the in-memory store and a scripted Graph API: store round trips per
//! batch, clicks seen within a batch, and the records that share an event inside one batch
//! (the copy that is sent decides for all of them, so none is counted done while unsent).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wacapi_shared::channels::split;
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::delivery::{Answer, DeliveryError, Outbound, Target};
use wacapi_shared::destinations::Destinations;
use wacapi_shared::dispatch::{DispatchReport, DispatchSettings, Dispatcher, InboundRecord};
use wacapi_shared::meta::graph::GraphSender;
use wacapi_shared::metrics::Metrics;
use wacapi_shared::queue::MemoryQueue;
use wacapi_shared::signal::Signal;
use wacapi_shared::store::MemoryStore;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Accepts requests, or fails them all with a transient error while `down` is set; records
/// the event ids of every accepted request.
#[derive(Default)]
struct Graph {
    down: Mutex<bool>,
    accepted: Mutex<Vec<Vec<String>>>,
}

impl GraphSender for &Graph {
    async fn send(&self, _target: &Target, events: &[&Outbound]) -> Result<Answer, DeliveryError> {
        if *self.down.lock().unwrap() {
            return Err(DeliveryError {
                status: Some(500),
                code: Some(2),
                message: "service temporarily unavailable".into(),
                is_transient: true,
                ..DeliveryError::default()
            });
        }
        let ids = events.iter().map(|e| e.event_id().to_owned()).collect();
        self.accepted.lock().unwrap().push(ids);
        Ok(Answer {
            received: Some(events.len() as u64),
            ..Answer::default()
        })
    }
}

fn sample_signals(name: &str, now: i64) -> Vec<Signal> {
    let text = std::fs::read_to_string(repo().join("examples/webhooks").join(name)).unwrap();
    let mut signals = split(text.as_bytes()).unwrap().signals;
    for s in &mut signals {
        s.timestamp = now - 60;
    }
    signals
}

fn record(id: &str, group: &str, signal: &Signal) -> InboundRecord {
    InboundRecord {
        message_id: id.into(),
        group_id: Some(group.into()),
        body: serde_json::to_string(signal).unwrap(),
        attributes: Default::default(),
    }
}

async fn run(
    dispatcher: &Dispatcher<MemoryStore, Destinations<&Graph>, MemoryQueue>,
    records: &[InboundRecord],
    now: i64,
) -> DispatchReport {
    let mut metrics = Metrics::new("wacapi", "test");
    let deadline = Instant::now() + Duration::from_secs(30);
    dispatcher
        .dispatch(records, now, deadline, &mut metrics)
        .await
}

fn dispatcher(graph: &Graph) -> Dispatcher<MemoryStore, Destinations<&Graph>, MemoryQueue> {
    let config =
        Config::from_toml(&std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap())
            .unwrap();
    let settings = DispatchSettings {
        max_attempts: 1,
        ..DispatchSettings::default()
    };
    Dispatcher::new(
        config,
        MemoryStore::new(),
        wacapi_shared::destinations::Destinations::new(graph),
        MemoryQueue::new(),
        settings,
    )
}

const NOW: i64 = 1_750_100_000;

#[tokio::test]
async fn a_click_and_an_order_in_one_batch_cost_three_store_calls_and_one_request() {
    let graph = Graph::default();
    let d = dispatcher(&graph);
    let click = sample_signals("01-text-from-ctwa-ad.json", NOW).remove(0);
    let order = sample_signals("02-order.json", NOW).remove(0);
    let group = click.group_id();
    let report = run(
        &d,
        &[record("r0", &group, &click), record("r1", &group, &order)],
        NOW,
    )
    .await;
    assert_eq!((report.records.sent, report.events_sent), (2, 2));
    assert_eq!(report.graph_requests, 1);
    // One click read, one commit (click write + two claims), one sent mark.
    assert_eq!(d.store().calls(), 3);
    assert_eq!(graph.accepted.lock().unwrap()[0].len(), 2);
}

#[tokio::test]
async fn records_sharing_an_event_in_one_batch_send_it_once_and_fail_together() {
    let graph = Graph::default();
    let d = dispatcher(&graph);
    let click = sample_signals("01-text-from-ctwa-ad.json", NOW).remove(0);
    // The same signal enqueued twice under different ids and groups (as a redelivery past the
    // FIFO dedup window would): the second record's event is the first one's.
    let records = [record("r0", "g0", &click), record("r1", "g1", &click)];

    // Meta is down: the first copy fails, so the second may not count as done.
    *graph.down.lock().unwrap() = true;
    let report = run(&d, &records, NOW).await;
    assert_eq!(report.failed, ["r0", "r1"]);
    assert!(graph.accepted.lock().unwrap().is_empty());

    // Back up: one send, the other record is a duplicate; a third delivery finds it sent.
    *graph.down.lock().unwrap() = false;
    let report = run(&d, &records, NOW).await;
    assert_eq!((report.records.sent, report.records.duplicate), (1, 1));
    assert_eq!(report.events_sent, 1);
    let report = run(&d, &records[1..], NOW).await;
    assert_eq!((report.records.duplicate, report.events_sent), (1, 0));
    assert_eq!(graph.accepted.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_message_on_messages_and_again_on_standby_is_one_signal_and_one_event() {
    // Control of a Meta Business Agent number moved while Meta retried: the same order came on
    // the `messages` field in one webhook and on `standby` in another.
    let graph = Graph::default();
    let d = dispatcher(&graph);
    let click = sample_signals("01-text-from-ctwa-ad.json", NOW).remove(0);
    let on_messages = sample_signals("02-order.json", NOW).remove(0);
    let body = std::fs::read(repo().join("tests/fixtures/standby/order.json")).unwrap();
    let mut on_standby = split(&body).unwrap().signals.remove(0);
    on_standby.timestamp = NOW - 60;
    // The same signal: the same FIFO group and deduplication id, so SQS keeps one within its
    // five minutes, and the same event id after that.
    assert_eq!(on_standby, on_messages);
    assert_eq!(on_standby.dedup_id(), on_messages.dedup_id());
    let group = click.group_id();
    let report = run(
        &d,
        &[
            record("r0", &group, &click),
            record("r1", &group, &on_messages),
        ],
        NOW,
    )
    .await;
    assert_eq!(report.events_sent, 2, "{report:?}");
    let report = run(&d, &[record("r2", &group, &on_standby)], NOW).await;
    assert_eq!((report.records.duplicate, report.events_sent), (1, 0));
    let sent: Vec<String> = graph.accepted.lock().unwrap().concat();
    assert_eq!(sent.len(), 2, "the click's event and one Purchase");
}

/// A dispatcher whose dead-letter queue the test reads.
fn dispatcher_with_dead_letters<'a>(
    graph: &'a Graph,
    dead_letters: &'a MemoryQueue,
) -> Dispatcher<MemoryStore, Destinations<&'a Graph>, &'a MemoryQueue> {
    let config =
        Config::from_toml(&std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap())
            .unwrap();
    let settings = DispatchSettings {
        max_attempts: 1,
        ..DispatchSettings::default()
    };
    Dispatcher::new(
        config,
        MemoryStore::new(),
        Destinations::new(graph),
        dead_letters,
        settings,
    )
}

#[tokio::test]
async fn one_request_with_one_key_for_two_event_names_sends_both() {
    let graph = Graph::default();
    let dead = MemoryQueue::new();
    let d = dispatcher_with_dead_letters(&graph, &dead);
    let click = sample_signals("01-text-from-ctwa-ad.json", NOW).remove(0);
    let group = click.group_id();
    run_with(&d, &[record("r0", &group, &click)], NOW).await;
    graph.accepted.lock().unwrap().clear();
    let event = |name: &str| {
        serde_json::json!({"event_name": name, "idempotency_key": "deal-8812",
            "waba_id": "102290129340398", "user": {"wa_id": "16505551234"},
            "custom_data": {"value": 120.0, "currency": "USD"}})
    };
    let body = serde_json::json!({"events": [event("QualifiedLead"), event("Purchase")]});
    let signals =
        wacapi_shared::business::parse(body.to_string().as_bytes(), NOW).expect("accepted");
    assert_eq!(signals.len(), 2);
    let records: Vec<_> = signals
        .iter()
        .enumerate()
        .map(|(i, s)| record(&format!("b{i}"), &s.group_id(), s))
        .collect();
    let report = run_with(&d, &records, NOW).await;
    assert_eq!(report.events_sent, 2, "{report:?}");
    let accepted = graph.accepted.lock().unwrap().concat();
    assert_eq!(accepted.len(), 2);
    assert_ne!(accepted[0], accepted[1], "two events, two ids");
    assert!(dead.is_empty());
}

#[tokio::test]
async fn a_redriven_automatic_event_without_a_name_is_dead_lettered_as_one_again() {
    use wacapi_shared::ingest::attributes;
    let graph = Graph::default();
    let dead = MemoryQueue::new();
    let d = dispatcher_with_dead_letters(&graph, &dead);
    let item = r#"{"id":"wamid.fuzz-auto","timestamp":1750096325,"ctwa_clid":"fuzz-clid-5"}"#;
    let redriven = |id: &str, kind: Option<&str>| {
        let mut attrs = std::collections::HashMap::from([
            (attributes::KIND.to_owned(), "webhook_item".to_owned()),
            (attributes::WABA_ID.to_owned(), "102290129340398".to_owned()),
        ]);
        if let Some(kind) = kind {
            attrs.insert(attributes::ITEM_KIND.to_owned(), kind.to_owned());
        }
        InboundRecord {
            message_id: id.into(),
            group_id: Some("g".into()),
            body: item.into(),
            attributes: attrs,
        }
    };
    // With its kind recorded, and as an item quarantined before the kind was.
    let report = run_with(
        &d,
        &[
            redriven("r1", Some("automatic_event")),
            redriven("r2", None),
        ],
        NOW,
    )
    .await;
    assert_eq!(report.events_sent, 0);
    let letters = dead.drain();
    assert_eq!(letters.len(), 2);
    for letter in &letters {
        let attr = |name: &str| {
            letter
                .attributes
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(attr(attributes::REASON), Some("bad_automatic_event"));
        assert_eq!(attr(attributes::KIND), Some("webhook_item"));
        assert_eq!(letter.body, item);
    }
    let kinds: Vec<_> = letters
        .iter()
        .map(|l| {
            l.attributes
                .iter()
                .find(|(n, _)| n == attributes::ITEM_KIND)
                .map(|(_, v)| v.as_str())
        })
        .collect();
    assert_eq!(kinds, [Some("automatic_event"), None]);
}

async fn run_with(
    dispatcher: &Dispatcher<MemoryStore, Destinations<&Graph>, &MemoryQueue>,
    records: &[InboundRecord],
    now: i64,
) -> DispatchReport {
    let mut metrics = Metrics::new("wacapi", "test");
    let deadline = Instant::now() + Duration::from_secs(30);
    dispatcher
        .dispatch(records, now, deadline, &mut metrics)
        .await
}
