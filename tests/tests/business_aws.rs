//! `POST /events` end to end: signed business events through the ingest handler, SQS (moto), the
//! dispatcher (DynamoDB on moto) and the Graph mock: validation, signatures and key rotation,
//! idempotency, and attribution to the click of an earlier webhook.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use serde_json::{Value, json};
use wacapi_shared::business::sign;
use wacapi_shared::dispatch::metric_names;
use wacapi_tests::stack::{EVENTS_KEY, Stack, StackOptions, freshen, total, unix_now};
use wacapi_tests::{apigw_request, sample};

fn qualified(key: &str) -> Value {
    json!({"event_name": "QualifiedLead", "idempotency_key": key,
           "user": {"wa_id": "16505551234"}, "waba_id": "102290129340398",
           "user_data": {"em": " Sheena.Nelson@Example.com ", "external_id": "crm-8812"}})
}

fn purchase(key: &str) -> Value {
    json!({"event_name": "Purchase", "idempotency_key": key, "user": {"bsuid": "US.13491208655302741918"},
           "custom_data": {"value": 480.0, "currency": "usd", "order_id": "8812",
                           "contents": [{"id": "sku-1", "quantity": 2, "item_price": 240.0}]}})
}

/// A stack whose user already clicked an ad (the first sample webhook, dispatched).
async fn clicked() -> Stack {
    let stack = Stack::new(StackOptions::default()).await;
    assert_eq!(
        stack
            .post(&freshen(&sample("text-from-ctwa-ad"), unix_now()))
            .await
            .0,
        200
    );
    stack.pump(5).await;
    stack
}

#[tokio::test]
async fn a_crm_event_is_attributed_to_the_click_of_an_earlier_webhook() {
    let stack = clicked().await;
    let (status, answer) = stack
        .post_events(&json!({"events": [qualified("lead-8812")]}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"accepted": 1, "results": [{"index": 0, "idempotency_key": "lead-8812", "status": "queued"}]})
    );
    let invocations = stack.pump(5).await;
    assert_eq!(total(&invocations).sent, 1);
    let events = stack.graph.accepted_events();
    let lead = events
        .iter()
        .find(|e| e["event_name"] == "QualifiedLead")
        .unwrap();
    assert!(
        lead["user_data"]["ctwa_clid"]
            .as_str()
            .unwrap()
            .starts_with("Aff-n8ZT")
    );
    let em = wacapi_shared::values::hashing::hash(
        wacapi_shared::values::hashing::UserDataKey::Em,
        "sheena.nelson@example.com",
    )
    .unwrap();
    assert_eq!(lead["user_data"]["em"], json!([em]));
    assert_eq!(lead["user_data"]["ph"].as_array().unwrap().len(), 1);
    assert!(
        stack.graph.violations().is_empty(),
        "{:?}",
        stack.graph.violations()
    );
}

#[tokio::test]
async fn a_batch_with_a_purchase_by_bsuid_and_no_waba_id() {
    // The example rules have one explicit account, so waba_id may be left out.
    let stack = clicked().await;
    let (status, answer) = stack
        .post_events(&json!({"events": [qualified("lead-1"), purchase("deal-1")]}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2);
    stack.pump(5).await;
    let events = stack.graph.accepted_events();
    let buy = events
        .iter()
        .find(|e| e["event_name"] == "Purchase")
        .unwrap();
    assert_eq!(buy["custom_data"]["value"], 480.0);
    assert_eq!(buy["custom_data"]["currency"], "USD");
    assert_eq!(buy["custom_data"]["order_id"], "8812");
    assert_eq!(
        buy["user_data"]["whatsapp_business_account_id"],
        "102290129340398"
    );
    assert!(
        stack.graph.violations().is_empty(),
        "{:?}",
        stack.graph.violations()
    );
}

#[tokio::test]
async fn the_same_idempotency_key_twice_is_sent_once() {
    let stack = clicked().await;
    for _ in 0..2 {
        assert_eq!(
            stack
                .post_events(&json!({"events": [qualified("lead-dup")]}))
                .await
                .0,
            200
        );
    }
    // And once more past the FIFO window, with a different dedup id: the ledger holds.
    let signal = {
        let raw = serde_json::to_vec(&json!({"events": [qualified("lead-dup")]})).unwrap();
        wacapi_shared::business::parse(&raw, unix_now())
            .unwrap()
            .remove(0)
    };
    stack
        .sqs
        .send_message()
        .queue_url(&stack.signal_url)
        .message_body(serde_json::to_string(&signal).unwrap())
        .message_group_id("retry")
        .message_deduplication_id("another-dedup-id")
        .send()
        .await
        .unwrap();
    let t = total(&stack.pump(5).await);
    assert_eq!((t.sent, t.duplicate), (1, 1));
    let leads = stack
        .graph
        .accepted_events()
        .into_iter()
        .filter(|e| e["event_name"] == "QualifiedLead")
        .count();
    assert_eq!(leads, 1);
}

#[tokio::test]
async fn one_key_for_two_event_names_is_two_events_and_the_same_retry_is_one() {
    let stack = clicked().await;
    let mut lead = qualified("deal-4471");
    let mut won = purchase("deal-4471");
    won["user"] = json!({"wa_id": "16505551234"});
    lead["waba_id"] = json!("102290129340398");
    won["waba_id"] = json!("102290129340398");
    for body in [&lead, &won, &lead, &won] {
        let (status, answer) = stack.post_events(&json!({"events": [body]})).await;
        assert_eq!(status, 200, "{answer}");
    }
    let t = total(&stack.pump(5).await);
    assert_eq!(
        t.sent, 2,
        "QualifiedLead and Purchase under one key are two events"
    );
    let mut names: Vec<String> = stack
        .graph
        .accepted_events()
        .iter()
        .filter_map(|e| e["event_name"].as_str().map(str::to_owned))
        .filter(|n| n != "ViewContent")
        .collect();
    names.sort();
    assert_eq!(names, ["Purchase", "QualifiedLead"]);
    // The identical retries were collapsed by the queue (same scope, same dedup id) or the
    // ledger; nothing was sent twice.
    assert_eq!(stack.graph.accepted_events().len(), 1 + 2);
}

#[tokio::test]
async fn an_unknown_user_is_skipped_as_no_click() {
    let stack = Stack::new(StackOptions::default()).await;
    let mut event = qualified("lead-stranger");
    event["user"] = json!({"wa_id": "4915199999999"});
    assert_eq!(stack.post_events(&json!({"events": [event]})).await.0, 200);
    let invocations = stack.pump(5).await;
    assert_eq!(total(&invocations).skipped, 1);
    assert_eq!(
        invocations[0]
            .metrics
            .total_by(metric_names::EVENTS_SKIPPED, "Reason", "no_click"),
        1.0
    );
    assert!(stack.graph.received().is_empty());
}

#[tokio::test]
async fn every_validation_error_names_the_item_and_nothing_is_queued() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    let with = |patch: Value| {
        let mut e = qualified("k");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                e.as_object_mut().unwrap().remove(k);
            } else {
                e[k] = v.clone();
            }
        }
        e
    };
    let cases = [
        (
            with(json!({"event_name": "Lead"})),
            "event_name \"Lead\" is not a business-messaging event name",
        ),
        (
            purchase_without_value(),
            "Purchase needs custom_data.value and custom_data.currency",
        ),
        (
            with(json!({"custom_data": {"value": 1, "currency": "dollars"}})),
            "custom_data.currency must be an ISO 4217 code",
        ),
        (
            with(json!({"custom_data": {"value": 1, "currency": "ABC"}})),
            "custom_data.currency must be an ISO 4217 code",
        ),
        (
            with(json!({"event_time": (now * 1000)})),
            "event_time looks like milliseconds",
        ),
        (
            with(json!({"event_time": now - 8 * 86_400})),
            "event_time is older than 7 days",
        ),
        (
            with(json!({"event_time": now + 3600})),
            "event_time is in the future",
        ),
        (
            with(json!({"user": {}})),
            "user needs wa_id, phone or bsuid",
        ),
        (
            with(json!({"user": null})),
            "not an event: missing field `user`",
        ),
        (
            with(json!({"idempotency_key": ""})),
            "idempotency_key must be 1 to 256 characters",
        ),
        (
            with(json!({"user_data": {"em": "not-an-email"}})),
            "user_data.em: an email needs an @",
        ),
        (
            with(json!({"user_data": {"email": "a@b.co"}})),
            "user_data.email is not one of",
        ),
        (
            with(json!({"surprise": 1})),
            "not an event: unknown field `surprise`",
        ),
    ];
    for (event, want) in cases {
        let good = qualified("good-one");
        let (status, answer) = stack.post_events(&json!({"events": [good, event]})).await;
        assert_eq!(status, 400, "{want}: {answer}");
        let errors = answer["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{answer}");
        assert_eq!(errors[0]["index"], 1);
        let reason = errors[0]["reason"].as_str().unwrap();
        assert!(
            reason.starts_with(want),
            "{reason:?} should start with {want:?}"
        );
        assert!(!reason.contains("16505551234") && !reason.contains("not-an-email"));
    }
    for (body, want) in [
        (
            json!({"events": []}),
            "a request carries 1 to 100 events, not 0",
        ),
        (
            json!({"events": (0..101).map(|i| qualified(&format!("k{i}"))).collect::<Vec<_>>()}),
            "not 101",
        ),
        (
            json!([qualified("k")]),
            "the body must be {\"events\": [...]}",
        ),
        (
            json!({"events": [qualified("same"), qualified("same")]}),
            "1 invalid event(s)",
        ),
    ] {
        let (status, answer) = stack.post_events(&body).await;
        assert_eq!(status, 400);
        assert!(answer["error"].as_str().unwrap().contains(want), "{answer}");
    }
    assert!(
        stack.receive().await.is_empty(),
        "all or nothing: nothing was queued"
    );
}

fn purchase_without_value() -> Value {
    let mut p = purchase("p");
    p["custom_data"] = json!({"currency": "USD"});
    p
}

fn signed(body: &[u8], key: &str, timestamp: i64) -> lambda_http::Request {
    let signature = sign(key.as_bytes(), timestamp, body);
    apigw_request(
        "POST",
        "/events",
        "",
        &[
            ("X-Wacapi-Timestamp", &timestamp.to_string()),
            ("X-Wacapi-Signature", &signature),
        ],
        Some(body),
        false,
    )
}

async fn status(stack: &Stack, request: lambda_http::Request) -> u16 {
    webhook_ingest::handler(&stack.ingest, request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn bad_missing_and_stale_signatures_are_refused() {
    let stack = Stack::new(StackOptions::default()).await;
    let body = serde_json::to_vec(&json!({"events": [qualified("sig")]})).unwrap();
    let now = unix_now();
    assert_eq!(status(&stack, signed(&body, EVENTS_KEY, now)).await, 200);
    assert_eq!(status(&stack, signed(&body, "wrong-key", now)).await, 401);
    assert_eq!(
        status(&stack, signed(&body, EVENTS_KEY, now - 600)).await,
        401,
        "stale"
    );
    let missing = apigw_request("POST", "/events", "", &[], Some(&body), false);
    assert_eq!(status(&stack, missing).await, 401);
    let mut tampered = body.clone();
    tampered[12] ^= 1;
    let sig = sign(EVENTS_KEY.as_bytes(), now, &body);
    let request = apigw_request(
        "POST",
        "/events",
        "",
        &[
            ("X-Wacapi-Timestamp", &now.to_string()),
            ("X-Wacapi-Signature", &sig),
        ],
        Some(&tampered),
        false,
    );
    assert_eq!(status(&stack, request).await, 401);
}

#[tokio::test]
async fn a_rotated_key_works_beside_the_old_one_without_a_redeploy() {
    let stack = Stack::new(StackOptions::default()).await;
    let now = unix_now();
    let body = serde_json::to_vec(&json!({"events": [qualified("before")]})).unwrap();
    assert_eq!(status(&stack, signed(&body, EVENTS_KEY, now)).await, 200);
    // The new key is added beside the old one. The first request signed with it misses the
    // cached keys, which makes the function re-read the secret (at most every 30 s).
    stack
        .secrets
        .put_secret_value()
        .secret_id(&stack.events_secret_arn)
        .secret_string(json!({"keys": [EVENTS_KEY, "next-events-key-0123"]}).to_string())
        .send()
        .await
        .unwrap();
    let body = serde_json::to_vec(&json!({"events": [qualified("rotated")]})).unwrap();
    assert_eq!(
        status(&stack, signed(&body, "next-events-key-0123", now)).await,
        200
    );
    let body = serde_json::to_vec(&json!({"events": [qualified("old-still-ok")]})).unwrap();
    assert_eq!(status(&stack, signed(&body, EVENTS_KEY, now)).await, 200);
    assert_eq!(
        stack.receive().await.len(),
        3,
        "all three requests were queued"
    );
}
