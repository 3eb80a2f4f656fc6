//! The loopback TikTok mock refuses what TikTok's documents say TikTok refuses (the rules and
//! their sources are in `tests/src/tiktok_mock.rs`), so a green suite cannot hide a request
//! TikTok would turn down. Each class of refusal is posted once, beside a request it takes.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use serde_json::{Value, json};
use wacapi_tests::tiktok_mock::{MOCK_TIKTOK_TOKEN, MockTikTok};

const SHA: &str = "9f7ec22d72092cd3c0b58726ed9c2d91b92e51a3f29837508fb2948bb22dd2fd";

fn now() -> i64 {
    wacapi_tests::stack::unix_now()
}

/// An offline request TikTok takes: a standard event, hashed email and phone.
fn offline() -> Value {
    json!({"event_source": "offline", "event_source_id": "ES1", "data": [{
        "event": "Purchase", "event_time": now() - 60, "event_id": "e1",
        "user": {"phone": SHA, "email": SHA},
        "properties": {"value": 42.5, "currency": "GBP", "content_type": "product",
                       "contents": [{"content_id": "sku", "quantity": 1, "price": 42.5}]}}]})
}

/// A CRM request TikTok takes: a custom event naming a TikTok lead.
fn crm() -> Value {
    json!({"event_source": "crm", "event_source_id": "ES2", "data": [{
        "event": "QualifiedLead", "event_time": now() - 60, "event_id": "e2",
        "user": {"external_id": SHA}, "lead": {"lead_id": "7301234567890123456"}}]})
}

async fn code(mock: &MockTikTok, body: &Value, token: &str) -> i64 {
    let bytes = reqwest::Client::new()
        .post(format!("{}/open_api/v1.3/event/track/", mock.url))
        .header("Access-Token", token)
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    answer["code"].as_i64().unwrap()
}

#[tokio::test]
async fn the_mock_refuses_each_class_tiktok_refuses() {
    let mock = MockTikTok::start().await;
    assert_eq!(code(&mock, &offline(), MOCK_TIKTOK_TOKEN).await, 0);
    assert_eq!(code(&mock, &crm(), MOCK_TIKTOK_TOKEN).await, 0);
    assert_eq!(code(&mock, &offline(), "").await, 40104);
    assert_eq!(code(&mock, &offline(), "revoked").await, 40105);

    let cases: Vec<(&str, Value)> = vec![
        ("CRM event without a lead id", {
            let mut b = crm();
            b["data"][0].as_object_mut().unwrap().remove("lead");
            b
        }),
        ("CRM lead without lead_id", {
            let mut b = crm();
            b["data"][0]["lead"] = json!({"lead_event_source": "HubSpot"});
            b
        }),
        ("reserved name as a CRM custom event", {
            let mut b = crm();
            b["data"][0]["event"] = json!("Checkout");
            b
        }),
        ("custom event on an offline event set", {
            let mut b = offline();
            b["data"][0]["event"] = json!("OrderShipped");
            b
        }),
        ("standard event offline sets do not take", {
            let mut b = offline();
            b["data"][0]["event"] = json!("ApplicationApproval");
            b
        }),
        ("external_id on an offline event", {
            let mut b = offline();
            b["data"][0]["user"]["external_id"] = json!(SHA);
            b
        }),
        ("ttclid on a CRM event", {
            let mut b = crm();
            b["data"][0]["user"]["ttclid"] = json!("E.C.P.abc");
            b
        }),
        ("an unlisted currency", {
            let mut b = offline();
            b["data"][0]["properties"]["currency"] = json!("XOF");
            b
        }),
        ("an email in clear", {
            let mut b = offline();
            b["data"][0]["user"]["email"] = json!("a@example.com");
            b
        }),
        ("value with a comma", {
            let mut b = offline();
            b["data"][0]["properties"]["value"] = json!("42,50");
            b
        }),
        ("content_type outside its enum", {
            let mut b = offline();
            b["data"][0]["properties"]["content_type"] = json!("sku");
            b
        }),
        ("Meta's custom_data in a TikTok event", {
            let mut b = offline();
            b["data"][0]["custom_data"] = json!({"value": 1});
            b
        }),
        ("event_time in milliseconds", {
            let mut b = offline();
            b["data"][0]["event_time"] = json!(now() * 1000);
            b
        }),
        ("more than 1,000 events", {
            let mut b = offline();
            let one = b["data"][0].clone();
            b["data"] = Value::Array(
                (0..1001)
                    .map(|i| {
                        let mut e = one.clone();
                        e["event_id"] = json!(format!("e{i}"));
                        e
                    })
                    .collect(),
            );
            b
        }),
        ("a web event without page.url", {
            let mut b = offline();
            b["event_source"] = json!("web");
            b
        }),
    ];
    for (what, body) in cases {
        assert_eq!(
            code(&mock, &body, MOCK_TIKTOK_TOKEN).await,
            40002,
            "{what} must be refused"
        );
    }
    // Renamed and sunsetting names are still taken (TikTok converts them), but recorded: wacapi
    // must not send them.
    let mut legacy = offline();
    legacy["data"][0]["event"] = json!("CompletePayment");
    let before = mock.violations().len();
    assert_eq!(code(&mock, &legacy, MOCK_TIKTOK_TOKEN).await, 0);
    assert!(
        mock.violations()[before..]
            .iter()
            .any(|v| v.contains("renamed or is sunsetting"))
    );
}
