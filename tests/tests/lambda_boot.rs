//! Boots each real release binary against a loopback Lambda Runtime API, with the environment
//! variables exactly as `infra/lambda.tf` sets them (names read from the Terraform, values
//! pointing at moto and the Graph mock), and drives one invocation each: a signed webhook through
//! ingest, then the SQS batch it produced through dispatch to the Graph mock. Prints init time
//! and peak RSS of each binary (`tests/benches/lambda_footprint.rs` measures them properly).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use serde_json::json;
use wacapi_tests::runtime_api::{
    boot, function_values, invoke, sqs_event_json, start_runtime, webhook_event,
};
use wacapi_tests::sample;
use wacapi_tests::stack::{Stack, StackOptions, freshen, unix_now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_binaries_boot_with_the_terraform_environment_and_deliver() {
    let stack = Stack::new(StackOptions::default()).await;
    let values = function_values(&stack);

    // 1. webhook-ingest: one API Gateway v2 event with a signed sample.
    let (rt, api) = start_runtime().await;
    let ingest = boot("webhook-ingest", "ingest", &api, &values);
    let body = freshen(&sample("text-from-ctwa-ad"), unix_now());
    let event = webhook_event(&body);
    let (response, _) = invoke(&rt, "ingest-1", event).await;
    let init_ingest = rt.first_poll.lock().unwrap().unwrap() - ingest.spawned;
    assert_eq!(response["statusCode"], 200, "{response}");
    let rss_ingest = ingest.peak_rss_kb();
    drop(ingest);

    // 2. capi-dispatch: the SQS batch the ingest produced.
    let messages = stack.receive().await;
    assert_eq!(messages.len(), 1);
    let event = sqs_event_json(&messages);
    let (rt, api) = start_runtime().await;
    let dispatch = boot("capi-dispatch", "dispatch", &api, &values);
    let (response, _) = invoke(&rt, "dispatch-1", event).await;
    let init_dispatch = rt.first_poll.lock().unwrap().unwrap() - dispatch.spawned;
    assert_eq!(response, json!({"batchItemFailures": []}));
    let rss_dispatch = dispatch.peak_rss_kb();
    drop(dispatch);

    let events = stack.graph.accepted_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_name"], "ViewContent");
    assert!(
        stack.graph.violations().is_empty(),
        "{:?}",
        stack.graph.violations()
    );
    println!(
        "webhook-ingest: init {:.1} ms, peak RSS {} kB; capi-dispatch: init {:.1} ms, peak RSS {} kB",
        init_ingest.as_secs_f64() * 1e3,
        rss_ingest,
        init_dispatch.as_secs_f64() * 1e3,
        rss_dispatch
    );
}
