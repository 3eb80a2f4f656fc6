//! Dispatch throughput: N signals (default 10,000) posted through the ingest handler onto a moto
//! SQS FIFO queue, then dispatched batch by batch (as the event source mapping would) against
//! moto DynamoDB and the loopback Graph mock.
//!
//! Reports dispatcher CPU per event (the CPU time of the thread running the handler; the Graph
//! mock runs on its own thread), events per second, and Graph requests per SQS batch.
//!
//! Run: `cargo bench -p wacapi-tests --bench dispatch_throughput` (`WACAPI_BENCH_SIGNALS=N`).

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wacapi_tests::graph_mock::MockGraph;
use wacapi_tests::stack::{Stack, StackOptions, unix_now};

/// CPU time of the calling thread: the first field of `/proc/thread-self/schedstat` is the
/// nanoseconds it has run on a CPU.
fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat run time");
    Duration::from_nanos(ns)
}

/// A webhook of `users` users: each sends an ad-click message then presses a button.
fn webhook(first_user: usize, users: usize, now: i64) -> Vec<u8> {
    let mut messages = Vec::new();
    for u in first_user..first_user + users {
        let phone = format!("1555{u:07}");
        messages.push(json!({"from": phone, "id": format!("wamid.b{u}.1"),
            "timestamp": (now - 120).to_string(), "type": "text", "text": {"body": "hi"},
            "referral": {"source_id": "ad-1", "source_type": "ad", "ctwa_clid": format!("clid-{u}")}}));
        messages.push(json!({"from": phone, "id": format!("wamid.b{u}.2"),
            "timestamp": (now - 60).to_string(), "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "confirm-order", "title": "OK"}}}));
    }
    let body: Value = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"phone_number_id": "1"}, "messages": messages}}]}]});
    serde_json::to_vec(&body).unwrap()
}

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
        let stack = Stack::new_with_graph(StackOptions::default(), graph).await;
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
            let started = Instant::now();
            let (status, n) = stack
                .post(&webhook(first, per_webhook.min(users - first), now))
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
        println!("| dispatcher CPU per event | {per_event_us:.1} µs |");
        println!(
            "| dispatcher CPU per batch | {:.2} ms |",
            cpu.as_secs_f64() * 1e3 / invocations.max(1) as f64
        );
        println!(
            "| events per second (wall, moto round trips included) | {:.0} |",
            events as f64 / wall.as_secs_f64()
        );
    });
}
