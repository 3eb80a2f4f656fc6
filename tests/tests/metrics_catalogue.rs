//! The metrics the functions actually publish, held to the catalogue
//! (`shared/src/metrics/catalogue.json`): every EMF document names a metric the catalogue lists,
//! under a dimension set the catalogue gives it (the detailed sets only with detailed metrics
//! on). Driven through the real ingest and dispatcher against moto and the loopback mocks, with
//! a mix that reaches most outcomes: every sample webhook of every channel, a TikTok chat,
//! business events, a bad signature, a signed body that is no webhook, Graph errors.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use serde_json::json;
use wacapi_shared::metrics::Metrics;
use wacapi_shared::metrics::catalogue::allows;
use wacapi_tests::graph_mock::Reply;
use wacapi_tests::stack::{Stack, StackOptions, freshen, unix_now};
use wacapi_tests::{APP_SECRET, channel_samples, json_files, sample_webhooks};

/// Every (service, metric, dimension set) the documents publish.
fn published(mut metrics: Metrics) -> Vec<(String, String, Vec<String>)> {
    let mut out = Vec::new();
    for doc in metrics.take_documents(1) {
        let service = doc["Service"].as_str().unwrap().to_owned();
        let cw = &doc["_aws"]["CloudWatchMetrics"][0];
        for set in cw["Dimensions"].as_array().unwrap() {
            let dims: Vec<String> = set
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap().to_owned())
                .filter(|d| d != "Service")
                .collect();
            for m in cw["Metrics"].as_array().unwrap() {
                out.push((
                    service.clone(),
                    m["Name"].as_str().unwrap().to_owned(),
                    dims.clone(),
                ));
            }
        }
    }
    out
}

async fn drive(detailed: bool) -> Vec<(String, String, Vec<String>)> {
    let mut stack = Stack::new(StackOptions::default()).await;
    stack.dispatch.detailed_metrics = detailed;
    let now = unix_now();
    let mut ingest = Metrics::new("wacapi", "webhook-ingest");
    let mut bodies: Vec<Vec<u8>> = sample_webhooks().into_iter().map(|(_, b)| b).collect();
    bodies.extend(channel_samples().into_iter().map(|(_, b)| b));
    bodies.extend(
        json_files("examples/webhooks/tiktok")
            .into_iter()
            .map(|(_, b)| b),
    );
    for body in &bodies {
        let body = freshen(body, now);
        let signature = wacapi_shared::signature::sign(APP_SECRET.as_bytes(), &body);
        let reply = stack
            .ingest
            .ingest
            .receive(&[signature.as_bytes()], &body, &mut ingest)
            .await;
        assert_eq!(reply.status, 200);
    }
    // A wrong signature, and a signed body that is no webhook (quarantined).
    stack
        .ingest
        .ingest
        .receive(&[b"sha256=00"], b"{}", &mut ingest)
        .await;
    let junk = br#"{"object":"something_else","entry":[]}"#;
    let signature = wacapi_shared::signature::sign(APP_SECRET.as_bytes(), junk);
    stack
        .ingest
        .ingest
        .receive(&[signature.as_bytes()], junk, &mut ingest)
        .await;
    // Business events: one queued, one refused.
    let (status, _) = stack
        .post_events(
            &json!({"events": [{"event_name": "QualifiedLead", "idempotency_key": "m-1",
            "user": {"wa_id": "16505551234"}, "waba_id": "102290129340398"}]}),
        )
        .await;
    assert_eq!(status, 200);
    stack
        .post_events(
            &json!({"events": [{"event_name": "Lead", "idempotency_key": "m-2",
            "user": {"wa_id": "16505551234"}}]}),
        )
        .await;
    // The dispatcher, with a throttle and an invalid event on the way.
    stack.graph.script([Reply::error(400, 4, None)]);
    let mut out = published(ingest);
    for invocation in stack.pump(10).await {
        out.extend(published(invocation.metrics));
    }
    out
}

#[tokio::test]
async fn every_published_metric_is_in_the_catalogue_under_its_dimension_sets() {
    for detailed in [false, true] {
        let published = drive(detailed).await;
        assert!(published.len() > 20, "{published:?}");
        for (service, name, dims) in &published {
            let dims: Vec<&str> = dims.iter().map(String::as_str).collect();
            assert!(
                allows(service, name, &dims, detailed),
                "detailed={detailed}: {service} publishes {name} by {dims:?}, which the catalogue does not list"
            );
        }
        let by_event_name = published
            .iter()
            .any(|(_, name, dims)| name == "EventsSent" && dims == &["EventName"]);
        assert_eq!(by_event_name, detailed, "the breakdowns follow the switch");
        let coverage = published
            .iter()
            .any(|(_, name, _)| name == "MatchKeyEvents");
        assert_eq!(coverage, detailed);
    }
}
