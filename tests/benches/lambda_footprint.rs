//! The Lambda footprint of each real release binary, booted against the loopback Runtime API
//! with the environment `infra/lambda.tf` sets (AWS at moto, Graph at the loopback mock): init
//! time (process start to the first `/next` poll), per-invocation time (hand-out to answer) for a
//! typical webhook (the 2 KB ad-click sample) and for a 10-record SQS batch (5 users: an ad click
//! and a button press each), and peak RSS after all invocations.
//!
//! The first invocation of each binary is cold (it fetches its secret and opens connections);
//! the rest are warm. moto answers slower than AWS and closes every connection, so invocation
//! times here are upper bounds for the code.
//!
//! Run: `cargo bench -p wacapi-tests --bench lambda_footprint` (`WACAPI_BENCH_INVOCATIONS=N`).

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};
use wacapi_tests::runtime_api::{
    boot, function_values, invoke, sqs_event_json, start_runtime, webhook_event,
};
use wacapi_tests::stack::{Stack, StackOptions, freshen, unix_now};
use wacapi_tests::{clicks_then_buttons, sample};

/// The ad-click sample with a unique message id.
fn typical_webhook(round: usize, now: i64) -> Vec<u8> {
    let body = String::from_utf8(freshen(&sample("text-from-ctwa-ad"), now)).unwrap();
    let mut value: Value = serde_json::from_str(&body).unwrap();
    value["entry"][0]["changes"][0]["value"]["messages"][0]["id"] =
        json!(format!("wamid.footprint.{round}"));
    serde_json::to_vec(&value).unwrap()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(times: &[Duration]) -> String {
    let cold = times[0];
    let mut warm = times[1..].to_vec();
    warm.sort();
    format!(
        "{:.1} ms | {:.1} ms | {:.1} ms | {}",
        ms(cold),
        ms(percentile(&warm, 0.5)),
        ms(percentile(&warm, 0.9)),
        warm.len()
    )
}

fn main() {
    let rounds: usize = std::env::var("WACAPI_BENCH_INVOCATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .max(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let stack = Stack::new(StackOptions::default()).await;
        let values = function_values(&stack);
        let now = unix_now();

        // webhook-ingest: the typical webhook, `rounds` times.
        let (runtime, api) = start_runtime().await;
        let ingest = boot("webhook-ingest", "ingest", &api, &values);
        let mut ingest_times = Vec::new();
        let mut ingest_cpu = Duration::ZERO;
        for round in 0..rounds {
            let event = webhook_event(&typical_webhook(round, now));
            let before = ingest.cpu_time();
            let (response, took) = invoke(&runtime, &format!("i{round}"), event).await;
            if round > 0 {
                ingest_cpu += ingest.cpu_time() - before;
            }
            assert_eq!(response["statusCode"], 200, "{response}");
            ingest_times.push(took);
        }
        let ingest_init = runtime.first_poll.lock().unwrap().unwrap() - ingest.spawned;
        let ingest_rss = ingest.peak_rss_kb();
        drop(ingest);
        // Those signals are not part of the dispatch measure.
        loop {
            let messages = stack.receive().await;
            if messages.is_empty() {
                break;
            }
            let none = aws_lambda_events::event::sqs::SqsBatchResponse::default();
            stack.settle(&messages, &none).await;
        }

        // capi-dispatch: a fresh 10-record batch, `rounds` times.
        let (runtime, api) = start_runtime().await;
        let dispatch = boot("capi-dispatch", "dispatch", &api, &values);
        let mut dispatch_times = Vec::new();
        let mut dispatch_cpu = Duration::ZERO;
        let mut sent = 0;
        for round in 0..rounds {
            let (status, accepted) = stack.post(&clicks_then_buttons(round as u32, 0, 5, now)).await;
            assert_eq!((status, accepted), (200, 10));
            let mut messages = Vec::new();
            while messages.len() < 10 {
                let got = stack.receive().await;
                assert!(!got.is_empty(), "10 records queued");
                messages.extend(got);
            }
            let before = dispatch.cpu_time();
            let (response, took) =
                invoke(&runtime, &format!("d{round}"), sqs_event_json(&messages)).await;
            if round > 0 {
                dispatch_cpu += dispatch.cpu_time() - before;
            }
            assert_eq!(response, json!({"batchItemFailures": []}));
            dispatch_times.push(took);
            let none = aws_lambda_events::event::sqs::SqsBatchResponse::default();
            stack.settle(&messages, &none).await;
            sent += 10;
        }
        let dispatch_init = runtime.first_poll.lock().unwrap().unwrap() - dispatch.spawned;
        let dispatch_rss = dispatch.peak_rss_kb();
        drop(dispatch);
        assert_eq!(stack.graph.accepted_events().len(), sent);
        assert!(stack.graph.violations().is_empty());

        let warm = (rounds - 1) as f64;
        println!("| binary | init | invocation | cold | warm p50 | warm p90 | warm invocations | CPU per warm invocation (all threads) | peak RSS |");
        println!("|---|---|---|---|---|---|---|---|---|");
        println!(
            "| webhook-ingest | {:.1} ms | typical webhook (2 KB ad-click sample) | {} | {:.2} ms | {:.1} MB |",
            ms(ingest_init),
            summary(&ingest_times),
            ms(ingest_cpu) / warm,
            ingest_rss as f64 / 1024.0
        );
        println!(
            "| capi-dispatch | {:.1} ms | 10-record SQS batch (5 clicks, 5 button presses) | {} | {:.2} ms | {:.1} MB |",
            ms(dispatch_init),
            summary(&dispatch_times),
            ms(dispatch_cpu) / warm,
            dispatch_rss as f64 / 1024.0
        );
    });
}
