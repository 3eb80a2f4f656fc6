//! The dispatcher core over the in-memory store and a scripted Graph API: store round trips per
//! batch, clicks seen within a batch, and the records that share an event inside one batch
//! (the copy that is sent decides for all of them, so none is counted done while unsent).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use wacapi_shared::channels::split;
use wacapi_shared::conversion::rules::{Account, Config};
use wacapi_shared::dispatch::{DispatchReport, DispatchSettings, Dispatcher, InboundRecord};
use wacapi_shared::meta::capi::EventsRequest;
use wacapi_shared::meta::graph::{GraphError, GraphSender, GraphSuccess};
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
    async fn send(
        &self,
        _version: &str,
        _account: &Account,
        request: &EventsRequest,
    ) -> Result<GraphSuccess, GraphError> {
        if *self.down.lock().unwrap() {
            return Err(GraphError {
                status: Some(500),
                code: Some(2),
                message: "service temporarily unavailable".into(),
                is_transient: true,
                ..GraphError::default()
            });
        }
        let ids = request.data.iter().map(|e| e.event_id.clone()).collect();
        self.accepted.lock().unwrap().push(ids);
        Ok(GraphSuccess {
            events_received: Some(request.data.len() as u64),
            ..GraphSuccess::default()
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
    dispatcher: &Dispatcher<MemoryStore, &Graph, MemoryQueue>,
    records: &[InboundRecord],
    now: i64,
) -> DispatchReport {
    let mut metrics = Metrics::new("wacapi", "test");
    let deadline = Instant::now() + Duration::from_secs(30);
    dispatcher
        .dispatch(records, now, deadline, &mut metrics)
        .await
}

fn dispatcher(graph: &Graph) -> Dispatcher<MemoryStore, &Graph, MemoryQueue> {
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
        graph,
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
