//! The webhook-ingest Lambda handler end to end, with in-memory queues: signature and handshake
//! matrices, every sample body (signals snapshotted), bad items, and a 1,000-message POST.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use lambda_http::Body;
use secrecy::SecretString;
use serde_json::Value;
use wacapi_shared::ingest::{Ingest, attributes};
use wacapi_shared::metrics::{Metrics, names};
use wacapi_shared::queue::{MemoryQueue, OutboundMessage};
use wacapi_shared::secrets::{CachedSecret, StaticSecret};
use wacapi_shared::signal::Signal;
use wacapi_tests::*;
use webhook_ingest::{State, handler};

const EVENTS_KEY: &str = "handler-test-events-key";

struct Harness {
    state: State<StaticSecret, Arc<MemoryQueue>, Arc<MemoryQueue>>,
    signals: Arc<MemoryQueue>,
    dead_letters: Arc<MemoryQueue>,
}

fn harness() -> Harness {
    let signals = Arc::new(MemoryQueue::new());
    let dead_letters = Arc::new(MemoryQueue::new());
    let secrets = CachedSecret::new(
        StaticSecret(SecretString::from(secret_document())),
        Duration::from_secs(300),
        Duration::from_secs(30),
    );
    Harness {
        state: State {
            ingest: Ingest::new(secrets, Arc::clone(&signals), Arc::clone(&dead_letters))
                .with_event_keys(CachedSecret::new(
                    StaticSecret(SecretString::from(
                        serde_json::json!({ "keys": [EVENTS_KEY] }).to_string(),
                    )),
                    Duration::from_secs(300),
                    Duration::from_secs(30),
                )),
            metrics_namespace: "wacapi".into(),
            emit_metrics: false,
        },
        signals,
        dead_letters,
    }
}

async fn call(h: &Harness, request: lambda_http::Request) -> (u16, String) {
    let response = handler(&h.state, request).await.expect("infallible");
    let body = match response.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        Body::Empty => String::new(),
        _ => String::new(),
    };
    (response.status().as_u16(), body)
}

fn decode(messages: &[OutboundMessage]) -> Vec<Signal> {
    messages
        .iter()
        .map(|m| serde_json::from_str(&m.body).expect("signal JSON"))
        .collect()
}

// --- signature matrix -------------------------------------------------------------------------

#[tokio::test]
async fn valid_signature_is_accepted_and_enqueued() {
    let h = harness();
    let body = sample("text-from-ctwa-ad");
    let (status, _) = call(&h, signed_post(&body)).await;
    assert_eq!(status, 200);
    assert_eq!(h.signals.len(), 1);
}

#[tokio::test]
async fn refused_signatures_enqueue_nothing() {
    let body = sample("order");
    let good = sign(&body);
    let wrong_secret = wacapi_shared::signature::sign(b"another-secret", &body);
    let mut tampered = body.clone();
    let i = tampered.iter().position(|&b| b == b'2').expect("a digit");
    tampered[i] = b'3';
    let legacy = "sha1=2fd4e1c67a2d28fced849ee1bb76e7391b93eb12";
    type Case<'a> = (&'a str, Vec<(&'a str, String)>, Vec<u8>, u16);
    let cases: Vec<Case<'_>> = vec![
        ("missing header", vec![], body.clone(), 401),
        (
            "sha1 only",
            vec![("X-Hub-Signature", legacy.to_owned())],
            body.clone(),
            401,
        ),
        (
            "malformed hex",
            vec![("X-Hub-Signature-256", format!("sha256={}", "zz".repeat(32)))],
            body.clone(),
            401,
        ),
        (
            "no sha256= prefix",
            vec![(
                "X-Hub-Signature-256",
                good.trim_start_matches("sha256=").to_owned(),
            )],
            body.clone(),
            401,
        ),
        (
            "wrong secret",
            vec![("X-Hub-Signature-256", wrong_secret)],
            body.clone(),
            403,
        ),
        (
            "body tampered by one byte",
            vec![("X-Hub-Signature-256", good.clone())],
            tampered,
            403,
        ),
    ];
    for (name, headers, body, want) in cases {
        let h = harness();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let request = apigw_request("POST", "/webhook", "", &headers, Some(&body), false);
        let (status, _) = call(&h, request).await;
        assert_eq!(status, want, "{name}");
        assert!(h.signals.is_empty(), "{name}: nothing enqueued");
        assert!(h.dead_letters.is_empty(), "{name}: nothing quarantined");
    }
}

#[tokio::test]
async fn legacy_sha1_header_beside_a_valid_one_is_ignored() {
    let h = harness();
    let body = sample("order");
    let sig = sign(&body);
    let request = apigw_request(
        "POST",
        "/webhook",
        "",
        &[
            (
                "X-Hub-Signature",
                "sha1=0000000000000000000000000000000000000000",
            ),
            ("X-Hub-Signature-256", &sig),
        ],
        Some(&body),
        false,
    );
    assert_eq!(call(&h, request).await.0, 200);
}

#[tokio::test]
async fn escaped_unicode_verifies_as_received_not_reserialised() {
    let h = harness();
    let raw = fixture("escaped-unicode.json");
    assert!(
        raw.windows(6).any(|w| w == br"\u00e9"),
        "fixture is ASCII-escaped"
    );
    let (status, _) = call(&h, signed_post(&raw)).await;
    assert_eq!(status, 200);
    let signals = decode(&h.signals.drain());
    assert_eq!(
        serde_json::to_value(&signals[0].event).unwrap()["body"],
        "Café crème äöå 😀"
    );

    // The same document re-serialised is different bytes, so the original signature fails.
    let reserialised = serde_json::to_vec(&serde_json::from_slice::<Value>(&raw).unwrap()).unwrap();
    assert_ne!(reserialised, raw);
    let sig = sign(&raw);
    let request = apigw_request(
        "POST",
        "/webhook",
        "",
        &[("X-Hub-Signature-256", &sig)],
        Some(&reserialised),
        false,
    );
    assert_eq!(call(&h, request).await.0, 403);
}

#[tokio::test]
async fn base64_encoded_body_is_decoded_before_verification() {
    let h = harness();
    let body = sample("order");
    let sig = sign(&body);
    let request = apigw_request(
        "POST",
        "/webhook",
        "",
        &[("X-Hub-Signature-256", &sig)],
        Some(&body),
        true,
    );
    assert_eq!(call(&h, request).await.0, 200);
    assert_eq!(h.signals.len(), 1);
}

#[tokio::test]
async fn oversized_body_is_refused_before_anything_else() {
    let h = harness();
    let body = vec![b' '; wacapi_shared::ingest::MAX_BODY_BYTES + 1];
    let (status, _) = call(&h, signed_post(&body)).await;
    assert_eq!(status, 413);
    assert!(h.signals.is_empty() && h.dead_letters.is_empty());
}

#[tokio::test]
async fn other_routes_and_methods() {
    let h = harness();
    let request = apigw_request("PUT", "/webhook", "", &[], None, false);
    assert_eq!(call(&h, request).await.0, 405);
    let request = apigw_request("GET", "/elsewhere", "", &[], None, false);
    assert_eq!(call(&h, request).await.0, 404);
}

// --- handshake matrix -------------------------------------------------------------------------

#[tokio::test]
async fn handshake_matrix() {
    let cases = [
        (
            "right token",
            format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"),
            200,
            Some("1158201444"),
        ),
        (
            "wrong token",
            "hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1158201444".to_owned(),
            403,
            None,
        ),
        (
            "wrong mode",
            format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1"),
            403,
            None,
        ),
        (
            "missing token",
            "hub.mode=subscribe&hub.challenge=1".to_owned(),
            403,
            None,
        ),
        (
            "missing challenge",
            format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"),
            400,
            None,
        ),
    ];
    for (name, query, want, body) in cases {
        let h = harness();
        let (status, text) = call(
            &h,
            apigw_request("GET", "/webhook", &query, &[], None, false),
        )
        .await;
        assert_eq!(status, want, "{name}");
        if let Some(body) = body {
            assert_eq!(text, body, "{name}: raw challenge, not JSON-quoted");
        }
    }
}

#[tokio::test]
async fn handshake_decodes_percent_encoded_values() {
    let h = harness();
    let query = "hub.mode=subscribe&hub.verify_token=test%2Dverify%2Dtoken&hub.challenge=a%20b";
    let (status, text) = call(
        &h,
        apigw_request("GET", "/webhook", query, &[], None, false),
    )
    .await;
    assert_eq!((status, text.as_str()), (200, "a b"));
}

// --- every sample body ------------------------------------------------------------------------

#[tokio::test]
async fn every_sample_webhook_becomes_the_expected_signals() {
    for (name, body) in sample_webhooks() {
        let h = harness();
        let (status, _) = call(&h, signed_post(&body)).await;
        assert_eq!(status, 200, "{name}");
        let messages = h.signals.drain();
        let queued: Vec<Value> = messages
            .iter()
            .map(|m| {
                serde_json::json!({
                    "group_id": m.group_id,
                    "dedup_id": m.dedup_id,
                    "signal": serde_json::from_str::<Value>(&m.body).unwrap(),
                })
            })
            .collect();
        insta::assert_json_snapshot!(format!("signals-{name}"), queued);
        assert!(h.dead_letters.is_empty(), "{name}");
        for m in &messages {
            assert_no_personal_data(&m.body);
        }
    }
}

#[tokio::test]
async fn system_messages_and_username_only_users() {
    let h = harness();
    let (status, _) = call(&h, signed_post(&fixture("system-and-bsuid-only.json"))).await;
    assert_eq!(status, 200);
    let messages = h.signals.drain();
    for m in &messages {
        assert_no_personal_data(&m.body);
        assert!(!m.body.contains("@private"), "username is not carried");
        assert!(!m.body.contains("video.example"), "ad media is not carried");
    }
    insta::assert_json_snapshot!("signals-system-and-bsuid-only", decode(&messages));
}

/// Only the payloads the mapping reads (text for pattern rules, Flow form fields for hashed user
/// data) may hold personal data; everything else in a signal must be free of it.
fn assert_no_personal_data(body: &str) {
    let mut signal: Value = serde_json::from_str(body).unwrap();
    if let Some(event) = signal["event"].as_object_mut() {
        event.remove("fields");
        event.remove("body");
    }
    let body = signal.to_string();
    for pii in [
        "16505551234",
        "1650555010",
        "1650555020",
        "1650555040",
        "1650555050",
        "Sheena",
        "Nelson",
        "Test User",
        "Private Person",
        "Ana Souza",
        "ana.souza@",
    ] {
        assert!(!body.contains(pii), "signal carries {pii:?}: {body}");
    }
}

#[tokio::test]
async fn bad_items_are_quarantined_and_the_rest_flows() {
    let h = harness();
    let mut metrics = Metrics::new("wacapi", "test");
    let body = fixture("mixed-bad-items.json");
    let sig = sign(&body);
    let reply = h
        .state
        .ingest
        .receive(&[sig.as_bytes()], &body, &mut metrics)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let signals = decode(&h.signals.drain());
    let ids: Vec<&str> = signals.iter().map(|s| s.id.as_str()).collect();
    // A Flow whose response_json is not JSON is still a completed Flow: kept, without fields.
    assert_eq!(ids, ["wamid.good0001", "wamid.badflow01", "wamid.future01"]);

    let dead = h.dead_letters.drain();
    let reasons: Vec<String> = dead.iter().map(|m| attr(m, attributes::REASON)).collect();
    assert_eq!(reasons, ["bad_message"]);
    assert_eq!(
        attr(&dead[0], attributes::DETAIL),
        "message does not parse: missing field `id` at line 1 column 90"
    );
    assert!(dead[0].body.contains("no id here"), "raw item kept exactly");
    assert_eq!(metrics.total(names::CHANGES_IGNORED), 1.0);
    assert_eq!(metrics.total(names::WEBHOOK_ERRORS), 1.0);
    assert_eq!(metrics.total(names::BODIES_QUARANTINED), 1.0);
    assert_eq!(metrics.total(names::SIGNALS_ENQUEUED), 3.0);
    assert_eq!(metrics.total(names::FLOW_FIELDS_DROPPED), 1.0);
}

/// Every body under `tests/fixtures/shapes/` and `tests/fixtures/channels/`, and the Messenger and
/// Instagram samples: what real senders and relays write beside Meta's
/// documented shapes (nulls, numbers for ids, formatted prices, identity changes, odd
/// sub-objects). Signals and dead letters are snapshotted; every queued signal must read back
/// as the dispatcher reads it.
#[tokio::test]
async fn real_world_shapes_become_signals_and_only_the_unreadable_is_quarantined() {
    let bodies = shape_fixtures()
        .into_iter()
        .chain(channel_fixtures())
        .chain(channel_samples());
    for (name, body) in bodies {
        let h = harness();
        let (status, _) = call(&h, signed_post(&body)).await;
        assert_eq!(status, 200, "{name}");
        let messages = h.signals.drain();
        for m in &messages {
            assert_no_personal_data(&m.body);
            let signal: Signal = serde_json::from_str(&m.body).expect("the dispatcher reads it");
            assert_eq!(signal.dedup_id(), m.dedup_id, "{name}");
        }
        let dead: Vec<Value> = h
            .dead_letters
            .drain()
            .iter()
            .map(|m| {
                serde_json::json!({
                    "kind": attr(m, attributes::KIND),
                    "reason": attr(m, attributes::REASON),
                    "detail": attr(m, attributes::DETAIL),
                    "body": serde_json::from_str::<Value>(&m.body).expect("kept as JSON"),
                })
            })
            .collect();
        let queued: Vec<Value> = messages
            .iter()
            .map(|m| {
                serde_json::json!({
                    "group_id": m.group_id,
                    "signal": serde_json::from_str::<Value>(&m.body).unwrap(),
                })
            })
            .collect();
        insta::assert_json_snapshot!(
            format!("shapes-{name}"),
            serde_json::json!({"signals": queued, "dead_letters": dead})
        );
    }
}

async fn post(h: &Harness, body: Vec<u8>, metrics: &mut Metrics) -> wacapi_shared::ingest::Reply {
    let sig = sign(&body);
    h.state
        .ingest
        .receive(&[sig.as_bytes()], &body, metrics)
        .await
}

/// Numbers running Meta Business Agent: the conversation on the `standby` field is queued as on
/// `messages` (the same signals, groups and dedup ids); the agent's echoes, the business's own
/// messages, their receipts and the handovers of the thread are acknowledged and counted, never
/// dead-lettered.
#[tokio::test]
async fn standby_conversations_are_queued_and_echoes_and_handovers_are_not() {
    let h = harness();
    let mut metrics = Metrics::new("wacapi", "test");
    for name in [
        "standby/click.json",
        "standby/order.json",
        "standby/echoed-order.json",
    ] {
        let reply = post(&h, fixture(name), &mut metrics).await;
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    }
    let standby = h.signals.drain();
    let signals = decode(&standby);
    let kinds: Vec<&str> = signals.iter().map(|s| s.event.kind()).collect();
    assert_eq!(kinds, ["text", "order"]);
    assert!(signals[0].referral.as_ref().unwrap().ctwa_clid.is_some());
    for m in &standby {
        assert_no_personal_data(&m.body);
    }
    assert!(h.dead_letters.is_empty());
    assert_eq!(metrics.total(names::SIGNALS_ENQUEUED), 2.0);
    assert_eq!(metrics.total(names::STATUSES_IGNORED), 1.0);
    // The agent's echo, the order from the business's number, the handover.
    assert_eq!(metrics.total(names::CHANGES_IGNORED), 3.0);

    // The same messages on the `messages` field queue as the same messages.
    let h = harness();
    let mut metrics = Metrics::new("wacapi", "test");
    for name in ["text-from-ctwa-ad", "order"] {
        post(&h, sample(name), &mut metrics).await;
    }
    let on_messages = h.signals.drain();
    let ids = |m: &[OutboundMessage]| -> Vec<(String, String, String)> {
        m.iter()
            .map(|m| (m.body.clone(), m.group_id.clone(), m.dedup_id.clone()))
            .collect()
    };
    assert_eq!(ids(&standby), ids(&on_messages));
}

/// Receipts as Meta documents them (a Messenger delivery has no `timestamp`, a read only a
/// watermark, an Instagram read a `mid`) are acknowledged and counted, never dead-lettered.
#[tokio::test]
async fn documented_receipts_are_acknowledged_and_never_dead_lettered() {
    for (object, file) in [
        ("page", "documented/messenger/delivery.json"),
        ("page", "documented/messenger/read.json"),
        (
            "instagram",
            "documented/instagram/read--messaging-seen.json",
        ),
    ] {
        let raw: Value = serde_json::from_slice(&fixture(file)).unwrap();
        let body = if raw.get("object").is_some() {
            raw
        } else {
            // Meta documents these as the bare `messaging[]` item.
            serde_json::json!({"object": object, "entry": [
                {"id": "106295012345678", "time": 1458668856463_i64, "messaging": [raw]}]})
        };
        let h = harness();
        let mut metrics = Metrics::new("wacapi", "test");
        let reply = post(&h, serde_json::to_vec(&body).unwrap(), &mut metrics).await;
        assert_eq!(reply.status, 200, "{file}: {}", reply.body);
        assert!(h.signals.is_empty(), "{file}");
        assert!(h.dead_letters.is_empty(), "{file}");
        assert_eq!(metrics.total(names::BODIES_QUARANTINED), 0.0, "{file}");
        assert_eq!(metrics.total(names::CHANGES_IGNORED), 1.0, "{file}");
    }
}

#[tokio::test]
async fn signed_garbage_is_quarantined_whole_and_acknowledged() {
    for (body, reason) in [
        (
            b"{\"object\": \"whatsapp_business_account\", \"entry\": [".to_vec(),
            "not_an_envelope",
        ),
        (
            br#"{"object":"permissions","entry":[]}"#.to_vec(),
            "wrong_object",
        ),
        (vec![0xff, 0xfe, 0x00, 0x01], "not_an_envelope"),
    ] {
        let h = harness();
        let (status, _) = call(&h, signed_post_bytes(&body)).await;
        assert_eq!(status, 200);
        let dead = h.dead_letters.drain();
        assert_eq!(dead.len(), 1);
        assert_eq!(attr(&dead[0], attributes::REASON), reason);
        assert_eq!(attr(&dead[0], attributes::KIND), "webhook_body");
        assert!(h.signals.is_empty());
    }
}

fn signed_post_bytes(body: &[u8]) -> lambda_http::Request {
    let sig = sign(body);
    apigw_request(
        "POST",
        "/webhook",
        "",
        &[("X-Hub-Signature-256", &sig)],
        Some(body),
        std::str::from_utf8(body).is_err(),
    )
}

#[tokio::test]
async fn signed_garbage_too_large_to_keep_is_acknowledged_with_its_digest() {
    let h = harness();
    let mut metrics = Metrics::new("wacapi", "test");
    let body = vec![b'['; 2 * 1024 * 1024];
    let sig = sign(&body);
    let reply = h
        .state
        .ingest
        .receive(&[sig.as_bytes()], &body, &mut metrics)
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(metrics.total(names::QUARANTINE_TOO_LARGE), 1.0);
    let dead = h.dead_letters.drain();
    assert_eq!(dead.len(), 1);
    assert_eq!(attr(&dead[0], attributes::KIND), "digest");
    assert_eq!(attr(&dead[0], attributes::REASON), "not_an_envelope");
    let digest: Value = serde_json::from_str(&dead[0].body).unwrap();
    assert_eq!(digest["bytes"], 2 * 1024 * 1024);
    assert_eq!(
        digest["sha256"],
        wacapi_shared::values::hashing::sha256_hex(&body)
    );
    assert!(h.signals.is_empty());
}

/// A 3.9 MiB webhook whose texts are longer than any queue message: every message lands, its
/// text cut to WhatsApp's 4,096 characters, and the webhook is acknowledged.
#[tokio::test]
async fn every_message_of_an_oversized_webhook_lands() {
    let h = harness();
    let mut body = String::from_utf8(bulk_webhook(3, 1, 1, 1_300_000)).unwrap();
    body = body.replace("\"text\":{\"body\":\"x", "\"text\":{\"body\":\"y");
    assert!(
        body.len() > 3_900_000 && body.len() < 4 * 1024 * 1024,
        "{}",
        body.len()
    );
    let (status, answer) = call(&h, signed_post(body.as_bytes())).await;
    assert_eq!(status, 200, "{answer}");
    let signals = decode(&h.signals.drain());
    assert_eq!(signals.len(), 3);
    for s in &signals {
        match &s.event {
            wacapi_shared::signal::SignalEvent::Text { body } => {
                assert_eq!(
                    body.chars().count(),
                    wacapi_shared::channels::whatsapp::MAX_TEXT_CHARS
                )
            }
            other => panic!("a text: {other:?}"),
        }
    }
    assert!(h.dead_letters.is_empty());
}

#[tokio::test]
async fn two_signature_headers_are_refused() {
    let h = harness();
    let body = sample("order");
    let sig = sign(&body);
    // API Gateway joins repeated headers with commas.
    let joined = format!("{sig},{sig}");
    let request = apigw_request(
        "POST",
        "/webhook",
        "",
        &[("X-Hub-Signature-256", &joined)],
        Some(&body),
        false,
    );
    assert_eq!(call(&h, request).await.0, 401);
    let mut metrics = Metrics::new("wacapi", "test");
    let reply = h
        .state
        .ingest
        .receive(&[sig.as_bytes(), sig.as_bytes()], &body, &mut metrics)
        .await;
    assert_eq!(reply.status, 401);
    assert!(h.signals.is_empty());
}

/// The requests `wacapi serve` is held to as well (cli/tests/serve.rs): trailing slashes and
/// repeated signature headers, as API Gateway delivers them (repeated headers joined with
/// commas) and as separate values (a Function URL or a test harness).
#[tokio::test]
async fn the_edge_requests_get_the_answers_serve_gives() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for case in wacapi_tests::edge::edge_requests(APP_SECRET, EVENTS_KEY, now) {
        let mut joined: Vec<(String, String)> = Vec::new();
        for (name, value) in &case.headers {
            match joined.iter_mut().find(|(n, _)| n == name) {
                Some((_, v)) => *v = format!("{v},{value}"),
                None => joined.push((name.clone(), value.clone())),
            }
        }
        let headers: Vec<(&str, &str)> = joined
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let request = apigw_request("POST", case.path, "", &headers, Some(&case.body), false);
        let (status, answer) = call(&harness(), request).await;
        assert_eq!(status, case.status, "{} {}: {answer}", case.name, case.path);

        let mut request = apigw_request("POST", case.path, "", &[], Some(&case.body), false);
        for (name, value) in &case.headers {
            request.headers_mut().append(
                lambda_http::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let (status, answer) = call(&harness(), request).await;
        assert_eq!(
            status, case.status,
            "{} {} (separate values): {answer}",
            case.name, case.path
        );
    }
}

fn attr(m: &OutboundMessage, name: &str) -> String {
    m.attributes
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

// --- volume -----------------------------------------------------------------------------------

#[tokio::test]
async fn one_post_with_1000_messages_across_entries_and_changes() {
    let h = harness();
    let body = bulk_webhook(1000, 4, 5, 64);
    let (status, text) = call(&h, signed_post(&body)).await;
    assert_eq!(status, 200, "{text}");
    let signals = decode(&h.signals.drain());
    assert_eq!(signals.len(), 1000);
    let ids: std::collections::HashSet<_> = signals.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids.len(), 1000, "every message once");
    assert_eq!(signals[0].id, "wamid.bulk000000");
    assert_eq!(signals[999].id, "wamid.bulk000999");
    let wabas: std::collections::HashSet<_> =
        signals.iter().map(|s| s.account_id.clone()).collect();
    assert_eq!(wabas.len(), 4);
}

/// The inputs the split fuzzer found (issue 23) through the handler: an unreadable part costs
/// that part, counted as `UnreadableParts`, and the message and its click are queued; a
/// quarantined item says what it was (`wacapi_item_kind`), so a redrive reads it as that.
#[tokio::test]
async fn unreadable_parts_are_counted_and_quarantined_items_say_what_they_were() {
    let fixture = |name: &str| {
        std::fs::read(
            wacapi_tests::repo_root()
                .join("tests/fixtures/fuzz/split")
                .join(name),
        )
        .expect("fixture")
    };
    let h = harness();
    let mut metrics = Metrics::new("wacapi", "test");
    let reply = post(&h, fixture("lone-surrogate-text.json"), &mut metrics).await;
    assert_eq!(reply.status, 200);
    let signals = decode(&h.signals.drain());
    assert_eq!(signals.len(), 1);
    assert!(signals[0].referral.is_some(), "the click is queued");
    assert_eq!(metrics.total(names::UNREADABLE_PARTS), 2.0);
    assert!(h.dead_letters.drain().is_empty());

    for (name, kind) in [
        ("automatic-event-without-name.json", "automatic_event"),
        ("unreadable-id.json", "message"),
    ] {
        let reply = post(&h, fixture(name), &mut metrics).await;
        assert_eq!(reply.status, 200, "{name}");
        let dead = h.dead_letters.drain();
        assert!(!dead.is_empty(), "{name}");
        for m in &dead {
            assert_eq!(attr(m, attributes::KIND), "webhook_item", "{name}");
            assert_eq!(attr(m, attributes::ITEM_KIND), kind, "{name}");
        }
    }
}
