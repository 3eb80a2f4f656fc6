//! Dispatch throughput: N signals (default 10,000) posted through the ingest handler onto a moto
//! SQS FIFO queue, then dispatched batch by batch (as the event source mapping would) against
//! moto DynamoDB and the loopback Graph mock.
//!
//! Reports dispatcher CPU per event (the CPU time of the thread running the handler; the Graph
//! mock runs on its own thread), events per second, and Graph requests per SQS batch.
//!
//! A second pass sends the same kind of signals, 10 records per batch, through the same
//! dispatcher with the in-memory store: the CPU of wacapi's own work per event (decode, attribute,
//! map, hash, serialise, the Graph request over loopback HTTP) without moto's connection churn.
//!
//! Run: `cargo bench -p wacapi-tests --bench dispatch_throughput` (`WACAPI_BENCH_SIGNALS=N`).

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use secrecy::SecretString;
use wacapi_shared::channels::split;
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::dispatch::{DispatchSettings, Dispatcher};
use wacapi_shared::meta::graph::{AccessTokens, GraphClient};
use wacapi_shared::metrics::Metrics;
use wacapi_shared::queue::MemoryQueue;
use wacapi_shared::secrets::{CachedSecret, StaticSecret};
use wacapi_shared::store::MemoryStore;
use wacapi_tests::graph_mock::{MOCK_TOKEN, MockGraph};
use wacapi_tests::stack::{Stack, StackOptions, unix_now};
use wacapi_tests::stack::{example_rules, inbound_records};
use wacapi_tests::{clicks_then_buttons, thread_cpu};

/// Users (two signals each) per moto table.
const TABLE_USERS: usize = 250;

fn main() {
    let signals: usize = std::env::var("WACAPI_BENCH_SIGNALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    // The Graph mock on its own runtime and thread, so its CPU is not counted.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tx.send(MockGraph::start().await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let graph = rx.recv().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut stack = Stack::new_with_graph(StackOptions::default(), graph.clone()).await;
        let now = unix_now();
        let users = signals / 2;
        // Post a webhook, then dispatch until the queue is empty: moto's FIFO receive scans
        // every queued message, so a queue of thousands would measure moto, not wacapi.
        let per_webhook = 50;
        let mut ingest_time = Duration::ZERO;
        let mut accepted = 0;
        let mut cpu = Duration::ZERO;
        let mut invocations = 0usize;
        let mut events = 0usize;
        let mut requests = 0usize;
        let mut failed = 0usize;
        let wall = Instant::now();
        for first in (0..users).step_by(per_webhook) {
            // moto's TransactWriteItems deep-copies the whole table for each item (its rollback),
            // so a table of thousands of items would measure moto: a fresh table every 500
            // signals. The users of each slice are new, so no state is lost by it.
            if first > 0 && first % TABLE_USERS == 0 {
                stack = Stack::new_with_graph(StackOptions::default(), graph.clone()).await;
            }
            let started = Instant::now();
            let (status, n) = stack
                .post(&clicks_then_buttons(1, first, per_webhook.min(users - first), now))
                .await;
            ingest_time += started.elapsed();
            assert_eq!(status, 200);
            accepted += n;
            loop {
                let messages = stack.receive().await;
                if messages.is_empty() {
                    break;
                }
                let before = thread_cpu();
                let invocation = stack.invoke(&messages, Duration::from_secs(60)).await;
                cpu += thread_cpu() - before;
                invocations += 1;
                events += invocation.report.events_sent;
                requests += invocation.report.graph_requests;
                failed += invocation.report.records.failed;
                stack.settle(&messages, &invocation.response).await;
            }
        }
        let wall = wall.elapsed();
        assert!(graph.violations().is_empty());

        // The same work with the in-memory store: wacapi's own CPU per event.
        let tokens = serde_json::json!({"access_tokens": {"default": MOCK_TOKEN, "succulents": MOCK_TOKEN}});
        let graph = GraphClient::new(
            &graph.url,
            Duration::from_secs(10),
            CachedSecret::<AccessTokens, _>::new(
                StaticSecret(SecretString::from(tokens.to_string())),
                Duration::from_secs(3600),
                Duration::from_secs(30),
            ),
        )
        .unwrap();
        let dispatcher = Dispatcher::new(
            Config::from_toml(&example_rules()).unwrap(),
            MemoryStore::new(),
            wacapi_shared::destinations::Destinations::new(graph),
            MemoryQueue::default(),
            DispatchSettings::default(),
        );
        let mut core_cpu = Duration::ZERO;
        let mut core_events = 0;
        let mut core_batches = 0;
        for first in (0..users).step_by(per_webhook) {
            let body = clicks_then_buttons(2, first, per_webhook.min(users - first), now);
            let signals = split(&body).unwrap().signals;
            for batch in signals.chunks(10) {
                let records = inbound_records(batch);
                let mut metrics = Metrics::new("wacapi", "bench");
                let before = thread_cpu();
                let report = dispatcher
                    .dispatch(&records, now, Instant::now() + Duration::from_secs(60), &mut metrics)
                    .await;
                core_cpu += thread_cpu() - before;
                core_events += report.events_sent;
                core_batches += 1;
                assert!(report.failed.is_empty());
            }
        }
        assert_eq!(core_events, signals / 2 * 2);
        assert_eq!(dispatcher.store().calls(), core_batches * 3);
        assert!(stack.graph.violations().is_empty());
        let per_event_us = cpu.as_secs_f64() * 1e6 / events.max(1) as f64;
        println!("| measure | value |");
        println!("|---|---|");
        println!(
            "| signals accepted by ingest | {accepted} (in {:.2} s) |",
            ingest_time.as_secs_f64()
        );
        println!("| events sent to the Graph mock | {events} |");
        println!("| records failed (retried) | {failed} |");
        println!("| SQS batches (invocations) | {invocations} |");
        println!(
            "| Graph requests per SQS batch | {:.2} |",
            requests as f64 / invocations.max(1) as f64
        );
        println!("| dispatcher CPU per event (DynamoDB on moto) | {per_event_us:.1} µs |");
        println!(
            "| dispatcher CPU per batch | {:.2} ms |",
            cpu.as_secs_f64() * 1e3 / invocations.max(1) as f64
        );
        println!(
            "| events per second (wall, moto round trips included) | {:.0} |",
            events as f64 / wall.as_secs_f64()
        );
        println!(
            "| dispatcher CPU per event, in-memory store, batches of 10 ({core_events} events) | {:.1} µs |",
            core_cpu.as_secs_f64() * 1e6 / core_events.max(1) as f64
        );
        println!(
            "| store calls per batch (in-memory store: read, commit, sent marks) | {:.2} |",
            dispatcher.store().calls() as f64 / core_batches.max(1) as f64
        );
    });
}
