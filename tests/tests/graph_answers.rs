//! Meta's answers checked, not trusted: each refusal subcode integrators meet ends on the
//! dead-letter queue with its own reason (per event, or for the whole request when the dataset
//! refuses everything), and a 2xx whose `events_received` does not count every event sent is
//! not a success. Through the deployed wiring: ingest → SQS (moto) → dispatch with DynamoDB
//! (moto) → the loopback Graph mock.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;
use wacapi_shared::dispatch::metric_names;
use wacapi_shared::ingest::attributes;
use wacapi_shared::meta::graph::attributes as graph_attributes;
use wacapi_tests::graph_mock::Reply;
use wacapi_tests::stack::{Stack, StackOptions, example_rules, total, unix_now};
use wacapi_tests::{ad_clicks, message_attribute};

/// Posts `users` ad clicks and dispatches all of them in one invocation (one Graph request).
async fn one_batch(stack: &Stack, users: usize) -> capi_dispatch::Invocation {
    let (status, accepted) = stack.post(&ad_clicks(users, unix_now())).await;
    assert_eq!((status, accepted), (200, users));
    let mut messages = Vec::new();
    while messages.len() < users {
        let batch = stack.receive().await;
        assert!(!batch.is_empty());
        messages.extend(batch);
    }
    let invocation = stack.invoke(&messages, Duration::from_secs(30)).await;
    stack.settle(&messages, &invocation.response).await;
    invocation
}

/// Dead-lettered messages by reason, with their subcodes.
async fn dead_by_reason(stack: &Stack) -> BTreeMap<String, Vec<Option<String>>> {
    let mut out: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    for m in stack.dead_letters().await {
        out.entry(message_attribute(&m, attributes::REASON).unwrap_or_default())
            .or_default()
            .push(message_attribute(&m, graph_attributes::SUBCODE));
    }
    out
}

#[tokio::test]
async fn per_event_refusals_are_isolated_and_dead_lettered_by_subcode() {
    let stack = Stack::new(StackOptions::default()).await;
    stack.graph.poison_click_with(
        "clid-01",
        Reply::error_with_message(
            400,
            100,
            Some(2_804_066),
            "Invalid parameter (event name not allowed)",
        ),
    );
    stack.graph.poison_click_with(
        "clid-03",
        Reply::error_with_message(
            400,
            100,
            Some(2_804_087),
            "Invalid parameter (invalid ctwa_clid)",
        ),
    );
    let invocation = one_batch(&stack, 6).await;
    let r = &invocation.report.records;
    assert_eq!((r.sent, r.dead_lettered, r.failed), (4, 2, 0));
    assert_eq!(stack.graph.accepted_events().len(), 4);
    let dead = dead_by_reason(&stack).await;
    assert_eq!(
        dead,
        BTreeMap::from([
            (
                "graph_event_name_not_allowed".to_owned(),
                vec![Some("2804066".to_owned())]
            ),
            (
                "graph_invalid_ctwa_clid".to_owned(),
                vec![Some("2804087".to_owned())]
            ),
        ])
    );
    let metrics = &invocation.metrics;
    for reason in ["graph_event_name_not_allowed", "graph_invalid_ctwa_clid"] {
        assert_eq!(
            metrics.total_by(metric_names::DLQ_MOVES, "Reason", reason),
            1.0,
            "{reason}"
        );
    }
    assert!(stack.graph.violations().is_empty());
}

#[tokio::test]
async fn dataset_refusals_dead_letter_the_request_without_splitting_it() {
    for (reply, reason) in [
        (
            Reply::error_with_message(
                400,
                100,
                Some(2_804_132),
                "Invalid parameter (no WhatsApp Business Account linked to the dataset)",
            ),
            "graph_dataset_without_waba",
        ),
        (
            Reply::error_with_message(
                400,
                100,
                None,
                "Messaging Event Within Messaging Restrictive Region",
            ),
            "graph_restricted_region",
        ),
    ] {
        let stack = Stack::new(StackOptions::default()).await;
        stack.graph.script([reply]);
        let invocation = one_batch(&stack, 5).await;
        let r = &invocation.report.records;
        assert_eq!((r.sent, r.dead_lettered, r.failed), (0, 5, 0), "{reason}");
        assert_eq!(
            stack.graph.received().len(),
            1,
            "{reason}: no split, no retry"
        );
        let dead = dead_by_reason(&stack).await;
        assert_eq!(dead.keys().collect::<Vec<_>>(), [reason]);
        assert_eq!(dead[reason].len(), 5);
        assert_eq!(
            invocation
                .metrics
                .total_by(metric_names::DLQ_MOVES, "Reason", reason),
            5.0
        );
    }
}

#[tokio::test]
async fn a_2xx_counting_fewer_events_than_sent_is_not_a_success() {
    let stack = Stack::new(StackOptions::default()).await;
    stack.graph.script([Reply::Status(
        200,
        json!({"events_received": 2, "messages": [], "fbtrace_id": "short-count"}),
    )]);
    let invocation = one_batch(&stack, 3).await;
    let r = &invocation.report.records;
    assert_eq!((r.sent, r.dead_lettered, r.failed), (0, 3, 0));
    assert_eq!(invocation.report.events_sent, 0);
    assert_eq!(
        invocation
            .metrics
            .total(wacapi_shared::meta::metric_names::GRAPH_RECEIPT_MISMATCHES),
        1.0
    );
    assert_eq!(
        invocation
            .metrics
            .total_by(metric_names::DLQ_MOVES, "Reason", "graph_receipt_mismatch"),
        3.0
    );
    let dead = stack.dead_letters().await;
    assert_eq!(dead.len(), 3);
    for m in &dead {
        assert_eq!(
            message_attribute(m, attributes::REASON).as_deref(),
            Some("graph_receipt_mismatch")
        );
        assert_eq!(
            message_attribute(m, graph_attributes::EVENTS_RECEIVED).as_deref(),
            Some("2")
        );
        assert_eq!(
            message_attribute(m, graph_attributes::EVENTS_SENT).as_deref(),
            Some("3")
        );
        assert_eq!(
            message_attribute(m, graph_attributes::FBTRACE_ID).as_deref(),
            Some("short-count")
        );
    }

    // Not marked sent: an operator's redrive (after checking Events Manager) sends them.
    for m in dead {
        stack.redrive_message(&m).await;
    }
    let again = stack.pump(5).await;
    assert_eq!(total(&again).sent, 3);
    assert!(stack.graph.violations().is_empty());
}

#[tokio::test]
async fn a_2xx_without_a_count_is_unconfirmed_and_one_receiving_nothing_is_retried() {
    let stack = Stack::new(StackOptions::default()).await;
    stack
        .graph
        .script([Reply::Status(200, json!({"fbtrace_id": "no-count"}))]);
    let invocation = one_batch(&stack, 2).await;
    assert_eq!(invocation.report.records.dead_lettered, 2);
    let dead = stack.dead_letters().await;
    assert_eq!(
        message_attribute(&dead[0], graph_attributes::EVENTS_RECEIVED).as_deref(),
        Some("none")
    );

    // events_received 0: nothing was kept, so sending again cannot duplicate anything.
    let stack = Stack::new(StackOptions::default()).await;
    stack.graph.script([Reply::Status(
        200,
        json!({"events_received": 0, "messages": [], "fbtrace_id": "zero"}),
    )]);
    let invocation = one_batch(&stack, 2).await;
    let r = &invocation.report.records;
    assert_eq!((r.sent, r.dead_lettered, r.failed), (2, 0, 0));
    assert_eq!(
        stack.graph.received().len(),
        2,
        "retried once in the invocation"
    );
    assert_eq!(stack.graph.accepted_events().len(), 2 + 2);
    assert_eq!(
        invocation
            .metrics
            .total(wacapi_shared::meta::metric_names::GRAPH_RECEIPT_MISMATCHES),
        0.0
    );
}

/// The second window of "nothing sent twice": Meta processes a request and then answers 500 (or
/// never answers). The events are sent again and Meta, which does not deduplicate, may count
/// them twice. The dispatcher cannot tell, but it counts every such resend, and the count
/// matches the duplicates Meta saw.
#[tokio::test]
async fn resends_after_an_ambiguous_failure_are_counted() {
    let stack = Stack::new(StackOptions::default()).await;
    stack.graph.process_then_fail_every(3);
    let (status, accepted) = stack.post(&ad_clicks(30, unix_now())).await;
    assert_eq!((status, accepted), (200, 30));
    let mut ambiguous = 0;
    let mut sent = 0;
    for _ in 0..20 {
        let messages = stack.receive().await;
        if messages.is_empty() {
            break;
        }
        // One record per invocation: one Graph request per event.
        for m in &messages {
            let invocation = stack
                .invoke(std::slice::from_ref(m), Duration::from_secs(30))
                .await;
            stack
                .settle(std::slice::from_ref(m), &invocation.response)
                .await;
            ambiguous += invocation.report.ambiguous_resends;
            sent += invocation.report.events_sent;
            assert_eq!(
                invocation.metrics.total(metric_names::AMBIGUOUS_RESENDS),
                invocation.report.ambiguous_resends as f64
            );
        }
    }
    assert_eq!(sent, 30, "every event was delivered");
    let processed = stack.graph.processed_events();
    let mut ids: Vec<&str> = processed
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    let unique = {
        let mut u = ids.clone();
        u.dedup();
        u.len()
    };
    let duplicates = ids.len() - unique;
    assert_eq!(unique, 30);
    assert!(duplicates > 0, "the mock processed some events twice");
    assert_eq!(
        ambiguous, duplicates,
        "every duplicate was counted as an ambiguous resend"
    );
    println!("{duplicates} of 30 events reached Meta twice; {ambiguous} ambiguous resends counted");
}

/// The example rules sending with Graph API `version`.
fn rules_with_version(version: &str) -> String {
    let default = format!(
        "graph_api_version = {:?}",
        wacapi_shared::conversion::rules::DEFAULT_GRAPH_API_VERSION
    );
    let rules = example_rules();
    assert!(rules.contains(&default), "the example names the default");
    rules.replace(&default, &format!("graph_api_version = {version:?}"))
}

/// Meta auto-upgrades a call to an expired version and says so in `X-Ad-Api-Version-Warning`
/// on every answer, errors included; within a version's last 90 days the header already warns.
/// The events are sent all the same; every such answer is counted, so the alarm fires.
#[tokio::test]
async fn version_warnings_on_any_answer_are_counted_and_the_events_still_sent() {
    // (version, scripted transient errors first, the header expected on each answer)
    for (version, errors, expected) in [
        (
            "v24.0",
            1,
            Some("The call has been auto-upgraded to v25.0 as v24.0 has been deprecated"),
        ),
        (
            "v25.0",
            0,
            Some("The call has been auto-upgraded to v26.0 as v25.0 will be deprecated."),
        ),
        ("v27.0", 0, None),
    ] {
        let stack = Stack::new(StackOptions {
            rules: Some(rules_with_version(version)),
            ..StackOptions::default()
        })
        .await;
        // The day the mock's copy of Meta's calendar was read: v24.0 expired on 2026-11-10,
        // v25.0 expires on 2027-02-23 (82 days later).
        stack.graph.set_today((2026, 12, 3));
        stack
            .graph
            .script(std::iter::repeat_n(Reply::error(500, 2, None), errors).collect::<Vec<_>>());
        let invocation = one_batch(&stack, 3).await;
        let r = &invocation.report.records;
        assert_eq!((r.sent, r.dead_lettered, r.failed), (3, 0, 0), "{version}");
        let received = stack.graph.received();
        assert_eq!(received.len(), 1 + errors, "{version}");
        for answer in &received {
            assert_eq!(answer.version, version);
            assert_eq!(answer.version_warning.as_deref(), expected, "{version}");
        }
        let warned = if expected.is_some() {
            received.len()
        } else {
            0
        };
        assert_eq!(
            invocation
                .metrics
                .total(wacapi_shared::meta::metric_names::GRAPH_VERSION_WARNINGS),
            warned as f64,
            "{version}: one count per answer carrying the header"
        );
        assert_eq!(invocation.report.graph_version_warnings, warned);
        assert_eq!(
            invocation.report.graph_version_warning.as_deref(),
            expected,
            "{version}"
        );
        assert_eq!(
            invocation
                .metrics
                .total(wacapi_shared::meta::metric_names::GRAPH_AUTH_ERRORS),
            0.0
        );
        assert!(stack.graph.violations().is_empty());
    }
}

/// Where Meta does not auto-upgrade (affected endpoints, auto-upgrade turned off, or before May
/// 2024) a deprecated version is refused with code 2635. Nothing is wrong with the events: they
/// are kept on the queue (not dead-lettered, not retried inside the invocation) and the auth
/// alarm's metric counts the refusal until the version is moved.
#[tokio::test]
async fn a_refused_deprecated_version_keeps_the_records_and_raises_the_alarm() {
    let stack = Stack::new(StackOptions {
        rules: Some(rules_with_version("v24.0")),
        ..StackOptions::default()
    })
    .await;
    stack.graph.set_today((2026, 12, 3));
    stack.graph.refuse_deprecated();
    let invocation = one_batch(&stack, 3).await;
    let r = &invocation.report.records;
    assert_eq!((r.sent, r.dead_lettered, r.failed), (0, 0, 3));
    assert_eq!(invocation.report.failed.len(), 3);
    let received = stack.graph.received();
    assert_eq!(received.len(), 1, "no retry, no split");
    assert_eq!(received[0].status, 400);
    assert!(stack.graph.processed_events().is_empty());
    let metrics = &invocation.metrics;
    assert_eq!(
        metrics.total(wacapi_shared::meta::metric_names::GRAPH_AUTH_ERRORS),
        1.0
    );
    assert_eq!(
        metrics.total_by(
            wacapi_shared::meta::metric_names::GRAPH_ERRORS,
            "Code",
            "2635"
        ),
        1.0
    );
    assert!(
        stack.dead_letters().await.is_empty(),
        "nothing dead-lettered"
    );
    // The records are back on the signal queue for the next delivery.
    let mut again = Vec::new();
    for _ in 0..5 {
        again.extend(stack.receive().await);
        if again.len() == 3 {
            break;
        }
    }
    assert_eq!(again.len(), 3);
}
