//! Messenger and Instagram Direct through the pipeline as deployed: webhook-ingest → SQS FIFO
//! (moto) → capi-dispatch with DynamoDB (moto) → the loopback Graph mock, which checks each
//! channel's `user_data` keys against Meta's contract. Clicks are kept under hashed keys with the
//! ad id and channel; events are attributed to them, deduplicated and counted by channel.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wacapi_shared::dispatch::metric_names;
use wacapi_shared::metrics::Metrics;
use wacapi_tests::stack::{SAMPLE_NOW, Stack, StackOptions, freshen, total, unix_now};
use wacapi_tests::{channel_fixtures, channel_samples};

const PAGE: &str = "106295012345678";
const IG_ACCOUNT: &str = "17841400000000001";

fn assert_clean(stack: &Stack) {
    let violations = stack.graph.violations();
    assert!(
        violations.is_empty(),
        "Graph contract violations: {violations:#?}"
    );
}

fn sample(name: &str) -> Vec<u8> {
    channel_samples()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no sample {name}"))
        .1
}

/// Events with `event_time` back on the sample clock, snapshot-stable. Event ids of the
/// `click` scope hash the click's time, which moves with the clock here, so ids are checked
/// for shape and replaced (`wacapi demo`'s snapshot, on the samples' own clock, pins them).
fn stable(events: &[Value], now: i64) -> Vec<Value> {
    events
        .iter()
        .cloned()
        .map(|mut e| {
            let t = e["event_time"].as_i64().unwrap();
            e["event_time"] = json!(t - now + SAMPLE_NOW);
            let id = e["event_id"].as_str().unwrap();
            assert!(
                id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
            e["event_id"] = json!("[sha-256]");
            e
        })
        .collect()
}

/// A copy of a sample body with every `mid` given `suffix` (a new message, same user and time).
fn with_new_mids(body: &[u8], suffix: &str) -> Vec<u8> {
    fn walk(v: &mut Value, suffix: &str) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    match child {
                        Value::String(s) if k == "mid" => s.push_str(suffix),
                        _ => walk(child, suffix),
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, suffix)),
            _ => {}
        }
    }
    let mut value: Value = serde_json::from_slice(body).unwrap();
    walk(&mut value, suffix);
    serde_json::to_vec(&value).unwrap()
}

#[tokio::test]
async fn every_messenger_and_instagram_sample_reaches_the_graph_api_as_expected() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    let mut accepted = 0;
    let mut invocations = Vec::new();
    for (name, body) in channel_samples() {
        let before = stack.graph.received().len();
        let (status, n) = stack.post(&freshen(&body, now)).await;
        assert_eq!(status, 200, "{name}");
        accepted += n;
        invocations.extend(stack.pump(5).await);
        let requests: Vec<Value> = stack.graph.received()[before..]
            .iter()
            .map(|r| {
                assert_eq!(r.status, 200);
                json!({
                    "version": r.version,
                    "dataset_id": r.dataset_id,
                    "data": stable(r.body["data"].as_array().unwrap(), now),
                })
            })
            .collect();
        insta::assert_json_snapshot!(format!("graph-{name}"), requests);
    }
    assert_clean(&stack);
    let t = total(&invocations);
    assert_eq!(accepted, 8);
    assert_eq!((t.sent, t.skipped, t.failed, t.dead_lettered), (7, 1, 0, 0));
    assert_eq!(accepted, t.sent + t.duplicate + t.skipped + t.dead_lettered);

    let events = stack.graph.accepted_events();
    let by_channel = |c: &str| {
        events
            .iter()
            .filter(|e| e["messaging_channel"] == c)
            .count()
    };
    assert_eq!((by_channel("messenger"), by_channel("instagram")), (5, 2));
    for e in &events {
        let time = e["event_time"].as_i64().unwrap();
        assert!(
            time <= now && now - time < 4 * 3600,
            "seconds, not ms: {time}"
        );
    }
    let mut metrics = Metrics::new("wacapi", "capi-dispatch");
    for i in invocations {
        metrics.merge(i.metrics);
    }
    assert_eq!(
        metrics.total_by(metric_names::EVENTS_SENT, "Channel", "messenger"),
        5.0
    );
    assert_eq!(
        metrics.total_by(metric_names::EVENTS_SENT, "Channel", "instagram"),
        2.0
    );
    assert_eq!(
        metrics.total_by(metric_names::EVENTS_SKIPPED, "Channel", "instagram"),
        1.0,
        "the icebreaker no rule takes"
    );
}

#[tokio::test]
async fn clicks_are_stored_hashed_with_ad_and_channel_and_attribute_later_events() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();

    // A quick reply before any ad click: not attributable.
    let early = with_new_mids(&sample("messenger-02-quick-reply"), ".early");
    assert_eq!(stack.post(&freshen(&early, now - 600)).await, (200, 1));
    let t = total(&stack.pump(5).await);
    assert_eq!((t.sent, t.skipped), (0, 1), "no_click");

    // Get Started from an ad, then the quick reply: both sent, the lead attributed.
    stack
        .post(&freshen(&sample("messenger-01-get-started-from-ad"), now))
        .await;
    stack
        .post(&freshen(&sample("messenger-02-quick-reply"), now))
        .await;
    let t = total(&stack.pump(5).await);
    assert_eq!(t.sent, 2);

    // A second quick reply of the same click: LeadSubmitted is once per click.
    let again = with_new_mids(&sample("messenger-02-quick-reply"), ".again");
    stack.post(&freshen(&again, now)).await;
    let t = total(&stack.pump(5).await);
    assert_eq!((t.sent, t.duplicate), (0, 1));

    // The Instagram thread opened from an ad: its click is the Instagram account's, not the
    // Page's.
    stack
        .post(&freshen(&sample("instagram-01-message-from-ad"), now))
        .await;
    stack.pump(5).await;

    let items = stack
        .ddb
        .scan()
        .table_name(&stack.table)
        .send()
        .await
        .unwrap()
        .items
        .unwrap_or_default();
    let clicks: Vec<_> = items
        .iter()
        .filter(|i| i.contains_key("clicked_at"))
        .collect();
    assert_eq!(clicks.len(), 2, "one click per user");
    let mut channels: Vec<String> = clicks
        .iter()
        .map(|i| i["channel"].as_s().unwrap().clone())
        .collect();
    channels.sort();
    assert_eq!(channels, ["instagram", "messenger"]);
    for item in &clicks {
        assert!(!item.contains_key("ctwa_clid"), "no click id off WhatsApp");
        assert!(
            item["ad_id"]
                .as_s()
                .unwrap()
                .starts_with("12021000000000000")
        );
        let key = item["pk"].as_s().unwrap();
        assert!(!key.contains("24681357902468135") && !key.contains("1122334455667788"));
        assert!(item.contains_key("expires_at"), "kept with a TTL");
    }
    // No item (clicks, ledger, report) holds a scoped user id; clicks are keyed by hash alone,
    // so not even the account appears in them (report aggregates name the account: a business
    // id, no person's).
    let text = format!("{items:?}");
    for scoped in ["24681357902468135", "1122334455667788"] {
        assert!(!text.contains(scoped), "{scoped} stored in clear");
    }
    let click_text = format!("{clicks:?}");
    for account in [PAGE, IG_ACCOUNT] {
        assert!(!click_text.contains(account), "{account} in a click");
    }
    assert_clean(&stack);
}

#[tokio::test]
async fn a_redelivered_referral_is_sent_once() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    let body = freshen(&sample("messenger-04-ad-referral-existing-thread"), now);
    assert_eq!(stack.post(&body).await, (200, 1));
    stack.pump(5).await;
    // Past SQS's five-minute dedup window Meta redelivers: the referral has no mid, and its
    // derived id (sender and time) makes the same event id, which the ledger has sent.
    let sent_before = stack.graph.accepted_events().len();
    assert_eq!(sent_before, 1);
    let signals = wacapi_shared::channels::split(&body).unwrap().signals;
    let records = wacapi_tests::stack::inbound_records(&signals);
    let mut metrics = Metrics::new("wacapi", "test");
    let report = stack
        .dispatch
        .dispatcher
        .dispatch(
            &records,
            now,
            Instant::now() + Duration::from_secs(30),
            &mut metrics,
        )
        .await;
    assert_eq!(report.records.duplicate, 1, "{report:?}");
    assert_eq!(stack.graph.accepted_events().len(), sent_before);
}

#[tokio::test]
async fn crm_events_for_messenger_and_instagram_users_are_attributed_to_their_clicks() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    for name in [
        "messenger-01-get-started-from-ad",
        "instagram-01-message-from-ad",
    ] {
        stack.post(&freshen(&sample(name), now)).await;
    }
    stack.pump(5).await;
    let before = stack.graph.accepted_events().len();
    let (status, answer) = stack
        .post_events(&json!({"events": [
            {"event_name": "QualifiedLead", "idempotency_key": "crm-m-1",
             "user": {"psid": "24681357902468135", "page_id": PAGE}},
            {"event_name": "Purchase", "idempotency_key": "crm-ig-1",
             "user": {"igsid": "1122334455667788", "instagram_account_id": IG_ACCOUNT},
             "custom_data": {"value": 42.5, "currency": "EUR"},
             "user_data": {"em": "Ana.Souza@Example.com"}},
            {"event_name": "QualifiedLead", "idempotency_key": "crm-m-2",
             "user": {"psid": "99999999999999999", "page_id": PAGE}}
        ]}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 3);
    let t = total(&stack.pump(5).await);
    assert_eq!((t.sent, t.skipped), (2, 1), "the unknown user has no click");
    let events = stack.graph.accepted_events()[before..].to_vec();
    let lead = events
        .iter()
        .find(|e| e["event_name"] == "QualifiedLead")
        .unwrap();
    assert_eq!(lead["messaging_channel"], "messenger");
    assert_eq!(
        lead["user_data"],
        json!({"page_id": PAGE, "page_scoped_user_id": "24681357902468135"})
    );
    let purchase = events
        .iter()
        .find(|e| e["event_name"] == "Purchase")
        .unwrap();
    assert_eq!(purchase["messaging_channel"], "instagram");
    assert_eq!(purchase["user_data"]["ig_sid"], "1122334455667788");
    assert_eq!(
        purchase["user_data"]["instagram_business_account_id"],
        IG_ACCOUNT
    );
    assert_eq!(purchase["user_data"]["em"].as_array().unwrap().len(), 1);
    assert_eq!(purchase["custom_data"]["value"], 42.5);
    assert_clean(&stack);

    // Ids of two channels, or a scoped id without its account, are refused with a reason.
    let (status, answer) = stack
        .post_events(&json!({"events": [
            {"event_name": "QualifiedLead", "idempotency_key": "bad-1",
             "user": {"psid": "1", "igsid": "2", "page_id": PAGE}},
            {"event_name": "QualifiedLead", "idempotency_key": "bad-2",
             "user": {"igsid": "2"}}
        ]}))
        .await;
    assert_eq!(status, 400, "{answer}");
    let text = answer.to_string();
    assert!(text.contains("more than one channel"), "{text}");
    assert!(text.contains("igsid and instagram_account_id"), "{text}");
}

#[tokio::test]
async fn every_channel_fixture_is_accepted_and_accounted_for() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    let mut accepted = 0;
    let mut invocations = Vec::new();
    for (name, body) in channel_fixtures() {
        let (status, n) = stack.post(&freshen(&body, now)).await;
        assert_eq!(status, 200, "{name}");
        accepted += n;
        invocations.extend(stack.pump(5).await);
    }
    let t = total(&invocations);
    assert!(accepted > 0);
    assert_eq!(accepted, t.sent + t.duplicate + t.skipped + t.dead_lettered);
    assert_eq!(t.failed, 0);
    assert!(
        t.sent > 0,
        "ad referrals in standby, changes and bare referrals are sent"
    );
    assert_clean(&stack);
}
