//! Boots each real release binary against a loopback Lambda Runtime API, with the environment
//! variables exactly as `infra/lambda.tf` sets them (names read from the Terraform, values
//! pointing at moto and the Graph mock), and drives one invocation each: a signed webhook through
//! ingest, then the SQS batch it produced through dispatch to the Graph mock. Prints init time
//! and peak RSS of each binary (`tests/benches/lambda_footprint.rs` measures them properly).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use serde_json::json;
use wacapi_tests::runtime_api::{
    boot, boot_logged, events_event, function_values, invoke, sqs_event_json, start_runtime,
    webhook_event,
};
use wacapi_tests::sample;
use wacapi_tests::stack::{EVENTS_KEY, Stack, StackOptions, freshen, unix_now};

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

/// At every level the module accepts (`infra/variables.tf`), the booted binaries' logs hold none
/// of the personal data the invocations carried: phone numbers, names, emails, message text,
/// Flow fields, clear `user_data` posted to `/events`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_personal_data_at_any_level() {
    let dir = std::env::temp_dir().join(format!("wacapi-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let personal = [
        "16505551234",
        "6505551234",
        "Sheena",
        "sheena",
        "Nelson",
        "Menlo",
        "succulents, what are the prices",
        "94025",
        "crm-8812-secret-external",
        "Ana Souza",
        "ana.souza",
        "650 555 1234",
        "want to buy the 3-pack",
    ];
    let rfc3339 =
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
            .unwrap();
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] {
        let stack = Stack::new(StackOptions::default()).await;
        let values = function_values(&stack);
        let log = dir.join(format!("{level}.log"));
        let _ = std::fs::remove_file(&log);

        let (rt, api) = start_runtime().await;
        let ingest = boot_logged("webhook-ingest", "ingest", &api, &values, level, Some(&log));
        let now = unix_now();
        for (i, name) in ["text-from-ctwa-ad", "flow-lead-form"].iter().enumerate() {
            let body = freshen(&sample(name), now);
            let (response, _) = invoke(&rt, &format!("in-{i}"), webhook_event(&body)).await;
            assert_eq!(response["statusCode"], 200, "{level}: {response}");
        }
        // A Messenger text with a name, an email and a phone number in it.
        let messenger = wacapi_tests::channel_samples()
            .into_iter()
            .find(|(n, _)| n == "messenger-03-text")
            .unwrap()
            .1;
        let (response, _) = invoke(&rt, "in-m", webhook_event(&freshen(&messenger, now))).await;
        assert_eq!(response["statusCode"], 200, "{level}: {response}");
        let events = serde_json::to_vec(&json!({"events": [{
            "event_name": "QualifiedLead", "idempotency_key": "lead-logs",
            "user": {"wa_id": "+1 (650) 555-1234"}, "waba_id": "102290129340398",
            "user_data": {"em": "Sheena.Nelson@Example.com", "fn": "Sheena", "ln": "Nelson",
                          "ct": "Menlo Park", "external_id": "crm-8812-secret-external"}}]}))
        .unwrap();
        let (response, _) = invoke(&rt, "in-events", events_event(&events, EVENTS_KEY)).await;
        assert_eq!(response["statusCode"], 200, "{level}: {response}");
        drop(ingest);

        let mut messages = Vec::new();
        for _ in 0..5 {
            messages.extend(stack.receive().await);
        }
        assert_eq!(messages.len(), 4, "{level}");
        let (rt, api) = start_runtime().await;
        let dispatch = boot_logged(
            "capi-dispatch",
            "dispatch",
            &api,
            &values,
            level,
            Some(&log),
        );
        let (response, _) = invoke(&rt, "out-1", sqs_event_json(&messages)).await;
        assert_eq!(response, json!({"batchItemFailures": []}), "{level}");
        drop(dispatch);
        assert!(
            stack.graph.accepted_events().len() >= 2,
            "{level}: events were sent"
        );

        let text = std::fs::read_to_string(&log).unwrap();
        for pii in personal {
            assert!(
                !text.contains(pii),
                "{level}: the logs hold {pii:?}:\n{}",
                text.lines()
                    .filter(|l| l.contains(pii))
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        if level == "DEBUG" || level == "TRACE" {
            assert!(
                text.contains("signal enqueued"),
                "{level}: own debug logs are kept"
            );
        }
        // What Lambda's log-level filtering keeps at this level: the metrics of both functions
        // (EMF documents), whatever the level.
        let app = wacapi_tests::runtime_api::application_log_level(level);
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| wacapi_tests::runtime_api::lambda_keeps(l, app))
            .collect();
        for service in ["webhook-ingest", "capi-dispatch"] {
            assert!(
                kept.iter()
                    .any(|l| l.contains("\"_aws\"")
                        && l.contains(&format!("\"Service\":\"{service}\""))),
                "{level}: Lambda would drop {service}'s metrics"
            );
        }
        // Every log line (not an EMF document) has a level and an RFC 3339 timestamp.
        for line in text.lines().filter(|l| !l.contains("\"_aws\"")) {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else {
                panic!("{level}: a log line that is not JSON: {line}");
            };
            assert!(json["level"].is_string(), "{level}: no level: {line}");
            assert!(
                json["timestamp"]
                    .as_str()
                    .is_some_and(|t| rfc3339.is_match(t)),
                "{level}: no RFC 3339 timestamp: {line}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
