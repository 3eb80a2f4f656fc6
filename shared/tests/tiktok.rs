//! TikTok as a destination, at the mapping core: a user whose message matches the account's
//! `first_message_pattern` has a TikTok touch, and each conversion goes to the platform of the
//! user's latest touch inside the window: Meta for a referral, TikTok for a TikTok touch,
//! nowhere without one. Also the configuration syntax and its errors.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use serde_json::{Value, json};
use wacapi_shared::channels::split;
use wacapi_shared::conversion::clicks::MemoryClickStore;
use wacapi_shared::conversion::mapping::{MappedEvent, Outcome, SkipReason};
use wacapi_shared::conversion::pipeline::{Processor, batch_requests};
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::delivery::Unfit;
use wacapi_shared::model::Destination;
use wacapi_shared::signal::Signal;
use wacapi_shared::values::hashing::sha256_hex;

const NOW: i64 = 1_750_100_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn body(path: &str) -> Vec<u8> {
    std::fs::read(repo().join(path)).unwrap()
}

fn signals(path: &str) -> Vec<Signal> {
    split(&body(path)).unwrap().signals
}

fn config(extra_rules: &str) -> Config {
    Config::from_toml(&format!(
        r#"
[[accounts]]
waba_id = "102290129340398"
dataset_id = "1234567890123456"
tiktok = {{ event_source_id = "OFFLINE7X2K9Q1EXAMPLE", first_message_pattern = "(?i)saw your ad on tiktok", token = "shop", test_event_code = "TT123" }}

[[rules]]
name = "order-purchase"
event = "Purchase"
trigger = {{ kind = "message_type", message_type = "order" }}
custom_data = {{ from_order = true }}
dedup = "order"

[[rules]]
name = "chat-from-ad"
event = "ViewContent"
trigger = {{ kind = "ad_click" }}
dedup = "click"
{extra_rules}
"#
    ))
    .expect("valid config")
}

async fn run(
    config: &Config,
    store: &MemoryClickStore,
    signals: &[Signal],
    now: i64,
) -> Vec<Outcome> {
    let p = Processor::new(config, store);
    let mut out = Vec::new();
    for s in signals {
        out.extend(p.process(s, now).await.expect("store"));
    }
    out
}

fn events(outcomes: &[Outcome]) -> Vec<&MappedEvent> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Event(e) => Some(e.as_ref()),
            _ => None,
        })
        .collect()
}

fn tiktok_chat() -> Vec<Signal> {
    let mut s = signals("examples/webhooks/tiktok/01-first-message-from-tiktok-ad.json");
    s.extend(signals("examples/webhooks/tiktok/02-order.json"));
    s
}

#[tokio::test]
async fn a_tiktok_chat_s_order_goes_to_tiktok_hashed_as_tiktok_hashes() {
    let config = config("");
    let store = MemoryClickStore::new();
    let outcomes = run(&config, &store, &tiktok_chat(), NOW).await;
    let sent = events(&outcomes);
    assert_eq!(
        sent.len(),
        1,
        "the touch itself is no conversion: {outcomes:?}"
    );
    assert_eq!(sent[0].event.destination(), Destination::TikTok);
    let event = sent[0].event.to_value();
    assert_eq!(event["event"], "Purchase");
    assert_eq!(event["event_time"], 1_750_097_300);
    // TikTok hashes the E.164 form, `+` included; Meta hashes the digits.
    assert_eq!(
        event["user"]["phone"],
        sha256_hex(b"+447700900123").as_str()
    );
    let properties = event["properties"].clone();
    assert_eq!(properties["value"], 42.5);
    assert_eq!(properties["currency"], "GBP");
    let requests = batch_requests(sent.into_iter().cloned());
    let [request] = requests.as_slice() else {
        panic!("one TikTok request: {requests:?}");
    };
    let line = request.line();
    assert_eq!(line["destination"], "tiktok");
    assert_eq!(line["event_source_id"], "OFFLINE7X2K9Q1EXAMPLE");
    assert_eq!(line["body"]["event_source"], "offline");
    assert!(line["body"]["data"][0].get("lead").is_none());
    assert_eq!(line["body"]["test_event_code"], "TT123");
    let text = line.to_string();
    for clear in ["447700900123", "Priya", "Leeds", "GB.2039"] {
        assert!(!text.contains(clear), "{clear} in {text}");
    }
}

#[tokio::test]
async fn the_meta_user_stays_with_meta_and_nothing_goes_to_tiktok() {
    let config = config("");
    let store = MemoryClickStore::new();
    let mut meta_chat = signals("examples/webhooks/01-text-from-ctwa-ad.json");
    meta_chat.extend(signals("examples/webhooks/02-order.json"));
    let outcomes = run(&config, &store, &meta_chat, NOW).await;
    let sent = events(&outcomes);
    assert_eq!(sent.len(), 2);
    assert!(
        sent.iter()
            .all(|e| e.event.destination() == Destination::Meta)
    );
}

#[tokio::test]
async fn the_latest_touch_decides_and_none_sends_nothing() {
    let config = config("");
    let touch = |text: &str, at: i64, id: &str| {
        let mut s = tiktok_chat().remove(0);
        s.id = id.into();
        s.timestamp = at;
        if let wacapi_shared::signal::SignalEvent::Text { body } = &mut s.event {
            *body = text.into();
        }
        s
    };
    let mut order = tiktok_chat().remove(1);
    let store = MemoryClickStore::new();

    // No touch at all: no_click.
    let outcomes = run(&config, &store, std::slice::from_ref(&order), NOW).await;
    assert_eq!(
        outcomes,
        [Outcome::Skipped {
            rule: Some("order-purchase".into()),
            reason: SkipReason::NoClick
        }]
    );

    // A Meta click, then the TikTok text: TikTok is the latest touch.
    let mut meta_click = signals("examples/webhooks/01-text-from-ctwa-ad.json").remove(0);
    meta_click.user = order.user.clone();
    meta_click.timestamp = 1_750_096_000;
    let tiktok = touch("hey, saw your ad on TikTok", 1_750_096_500, "wamid.t1");
    let outcomes = run(&config, &store, &[meta_click.clone(), tiktok], NOW).await;
    assert_eq!(events(&outcomes).len(), 1, "the Meta click's ViewContent");
    let outcomes = run(&config, &store, std::slice::from_ref(&order), NOW).await;
    assert_eq!(
        events(&outcomes)[0].event.destination(),
        Destination::TikTok
    );

    // A Meta click after it: Meta again (another order id, another conversion).
    meta_click.id = "wamid.m2".into();
    meta_click.timestamp = 1_750_097_100;
    run(&config, &store, &[meta_click], NOW).await;
    order.id = "wamid.o2".into();
    let outcomes = run(&config, &store, &[order], NOW).await;
    assert_eq!(events(&outcomes)[0].event.destination(), Destination::Meta);
}

#[tokio::test]
async fn event_ids_are_deterministic_and_scoped_by_event_set() {
    let config = config("");
    let ids = |outcomes: &[Outcome]| -> Vec<String> {
        events(outcomes)
            .iter()
            .map(|e| e.event.event_id().to_owned())
            .collect()
    };
    let a = run(&config, &MemoryClickStore::new(), &tiktok_chat(), NOW).await;
    let b = run(&config, &MemoryClickStore::new(), &tiktok_chat(), NOW + 60).await;
    assert_eq!(ids(&a), ids(&b), "a redelivery maps to the same id");
    let other = Config::from_toml(&toml_with_event_set("OFFLINE7X2K9Q1OTHER")).unwrap();
    let c = run(&other, &MemoryClickStore::new(), &tiktok_chat(), NOW).await;
    assert_ne!(ids(&a), ids(&c));
}

fn toml_with_event_set(id: &str) -> String {
    format!(
        r#"
[[accounts]]
waba_id = "102290129340398"
dataset_id = "1234567890123456"
tiktok = {{ event_source_id = "{id}", first_message_pattern = "(?i)saw your ad on tiktok" }}

[[rules]]
name = "order-purchase"
event = "Purchase"
trigger = {{ kind = "message_type", message_type = "order" }}
custom_data = {{ from_order = true }}
dedup = "order"
"#
    )
}

#[tokio::test]
async fn a_rule_may_name_its_tiktok_event_and_text_rules_follow_the_user() {
    let config = config(
        r#"
[[rules]]
name = "delivery-question"
event = "InitiateCheckout"
trigger = { kind = "text", pattern = "deliver" }
tiktok_event = "Contact"
"#,
    );
    let outcomes = run(&config, &MemoryClickStore::new(), &tiktok_chat(), NOW).await;
    let names: Vec<(Destination, String)> = events(&outcomes)
        .iter()
        .map(|e| {
            let name = match e.event.destination() {
                Destination::TikTok => e.event.to_value()["event"].clone(),
                Destination::Meta => e.event.to_value()["event_name"].clone(),
            };
            (e.event.destination(), name.as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        names,
        [
            (Destination::TikTok, "Contact".to_owned()),
            (Destination::TikTok, "Purchase".to_owned())
        ]
    );
}

#[tokio::test]
async fn a_tiktok_user_without_a_phone_number_is_skipped_for_want_of_identity() {
    let config = config("");
    let mut chat = tiktok_chat();
    for s in &mut chat {
        s.user.ph = None;
        s.user.ph_e164 = None;
    }
    let outcomes = run(&config, &MemoryClickStore::new(), &chat, NOW).await;
    assert_eq!(
        outcomes.last(),
        Some(&Outcome::Skipped {
            rule: Some("order-purchase".into()),
            reason: SkipReason::Unfit(Unfit("no_identity"))
        })
    );
}

#[test]
fn the_configuration_says_what_is_wrong_with_a_tiktok_account() {
    let bad = |tiktok: &str, rule_extra: &str| {
        let text = format!(
            r#"
[[accounts]]
waba_id = "1"
dataset_id = "2"
tiktok = {tiktok}

[[rules]]
name = "r"
event = "Purchase"
trigger = {{ kind = "message_type", message_type = "order" }}
custom_data = {{ from_order = true }}
{rule_extra}
"#
        );
        Config::from_toml(&text).err().map(|e| e.to_string())
    };
    let cases: [(&str, &str, &str); 10] = [
        (
            r#"{ event_source_id = "C1", first_message_pattern = "(unclosed" }"#,
            "",
            "tiktok.first_message_pattern: pattern \"(unclosed\" is not a valid regular expression",
        ),
        (
            r#"{ event_source_id = "C1", first_message_pattern = "" }"#,
            "",
            "tiktok.first_message_pattern is empty",
        ),
        (
            r#"{ event_source_id = "C1", first_message_pattern = ".*" }"#,
            "",
            "matches an empty message",
        ),
        (
            r#"{ event_source_id = "", first_message_pattern = "tiktok" }"#,
            "",
            "tiktok.event_source_id must be the event set id",
        ),
        (
            r#"{ event_source_id = "C1", first_message_pattern = "tiktok", pixel = "x" }"#,
            "",
            "unknown field `pixel`",
        ),
        (
            r#"{ event_source_id = "C1", first_message_pattern = "tiktok", event_source = "web" }"#,
            "",
            "tiktok.event_source: \"web\" is not offline or crm",
        ),
        (
            r#"{ event_source_id = "C1", first_message_pattern = "tiktok" }"#,
            r#"tiktok_event = "Complete Payment""#,
            "tiktok_event \"Complete Payment\" is not a standard event an offline event set takes",
        ),
        (
            r#"{ event_source_id = "C1", first_message_pattern = "tiktok" }"#,
            r#"tiktok_event = "CompletePayment""#,
            "tiktok_event \"CompletePayment\" is not a standard event an offline event set takes",
        ),
        (
            r#"{ event_source_id = "C1", first_message_pattern = "tiktok" }"#,
            r#"tiktok_event = "ApplicationApproval""#,
            "is not a standard event an offline event set takes",
        ),
        (
            r#"{ event_source_id = "C1", first_message_pattern = "tiktok", event_source = "crm" }"#,
            r#"tiktok_event = "Checkout""#,
            "tiktok_event \"Checkout\" is not a custom event name a CRM event set takes",
        ),
    ];
    for (tiktok, rule_extra, want) in cases {
        let err =
            bad(tiktok, rule_extra).unwrap_or_else(|| panic!("{tiktok} {rule_extra} accepted"));
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    assert_eq!(
        bad(
            r#"{ event_source_id = "C1", first_message_pattern = "tiktok" }"#,
            ""
        ),
        None
    );
}

#[test]
fn the_examples_configuration_has_a_tiktok_event_set() {
    let text = std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap();
    let config = Config::from_toml(&text).unwrap();
    let tiktok: Vec<Value> = config
        .accounts
        .values()
        .filter_map(|a| a.destinations.tiktok.as_ref())
        .map(|t| json!(t.event_source_id))
        .collect();
    assert_eq!(tiktok, [json!("OFFLINE7X2K9Q1EXAMPLE")]);
}

/// Configuration with an account whose TikTok event set is `source`, and `rules`.
fn config_with(source: &str, rules: &str) -> Config {
    Config::from_toml(&format!(
        r#"
[[accounts]]
waba_id = "102290129340398"
dataset_id = "1234567890123456"
tiktok = {{ event_source_id = "ES7X2K9Q1", first_message_pattern = "(?i)saw your ad on tiktok", event_source = "{source}" }}
{rules}
"#
    ))
    .expect("valid config")
}

const ORDER_RULE: &str = r#"
[[rules]]
name = "order-purchase"
event = "Purchase"
trigger = { kind = "message_type", message_type = "order" }
custom_data = { from_order = true }
dedup = "order"
"#;

fn skips(outcomes: &[Outcome]) -> Vec<SkipReason> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Skipped { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// The TikTok events of `outcomes`, as TikTok receives them.
fn tiktok_events(outcomes: &[Outcome]) -> Vec<Value> {
    events(outcomes)
        .into_iter()
        .filter(|e| e.event.destination() == Destination::TikTok)
        .map(|e| e.event.to_value())
        .collect()
}

/// A business event body of the TikTok chat's user (its phone number), `extra` merged in.
fn business(now: i64, extra: Value) -> Vec<Signal> {
    let mut event = json!({"event_name": "Purchase", "idempotency_key": "deal-1",
        "user": {"wa_id": "447700900123"}, "waba_id": "102290129340398",
        "custom_data": {"value": 99.0, "currency": "GBP"},
        "user_data": {"em": "Priya@Example.com", "external_id": "crm-77"}});
    if let (Some(e), Value::Object(more)) = (event.as_object_mut(), extra) {
        e.extend(more);
    }
    let body = json!({ "events": [event] }).to_string();
    wacapi_shared::business::parse(body.as_bytes(), now).expect("valid events")
}

#[tokio::test]
async fn an_offline_event_set_gets_standard_events_with_email_and_phone_only() {
    let config = config_with(
        "offline",
        &format!(
            "{ORDER_RULE}
[[rules]]
name = \"asked-delivery\"
event = \"OrderShipped\"
trigger = {{ kind = \"text\", pattern = \"deliver\" }}

[[rules]]
name = \"lead\"
event = \"LeadSubmitted\"
trigger = {{ kind = \"text\", pattern = \"deliver\" }}
"
        ),
    );
    let store = MemoryClickStore::new();
    let outcomes = run(&config, &store, &tiktok_chat(), NOW).await;
    let names: Vec<String> = tiktok_events(&outcomes)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["Lead", "Purchase"], "{outcomes:?}");
    assert_eq!(
        skips(&outcomes),
        [SkipReason::Unfit(Unfit("tiktok_not_standard_event"))]
    );

    // A CRM-reported event with an external id: offline event sets take email and phone only.
    let outcomes = run(&config, &store, &business(NOW, json!({})), NOW).await;
    let [event] = &tiktok_events(&outcomes)[..] else {
        panic!("one TikTok event: {outcomes:?}");
    };
    assert!(event["user"].get("external_id").is_none());
    assert_eq!(
        event["user"]["email"],
        sha256_hex(b"priya@example.com").as_str()
    );
    assert!(event.get("lead").is_none());
    let request = batch_requests(events(&outcomes).into_iter().cloned());
    let line = request[0].line();
    assert_eq!(line["body"]["event_source"], "offline");
    assert!(line["body"]["data"][0]["user"].get("external_id").is_none());
}

#[tokio::test]
async fn currencies_tiktok_does_not_list_are_skipped_by_name() {
    let config = config_with("offline", ORDER_RULE);
    let mut chat = tiktok_chat();
    if let wacapi_shared::signal::SignalEvent::Order { items, .. } = &mut chat[1].event {
        items[0].currency = Some("XOF".into());
    }
    let outcomes = run(&config, &MemoryClickStore::new(), &chat, NOW).await;
    assert!(tiktok_events(&outcomes).is_empty());
    assert_eq!(
        skips(&outcomes),
        [
            SkipReason::NoRule,
            SkipReason::Unfit(Unfit("tiktok_currency_not_supported"))
        ],
        "the touch matches no rule; the order is skipped by name"
    );
    assert_eq!(
        SkipReason::Unfit(Unfit("tiktok_currency_not_supported")).label(),
        "tiktok_currency_not_supported"
    );
}

#[tokio::test]
async fn a_crm_event_set_gets_only_events_that_name_a_tiktok_lead() {
    let config = config_with("crm", ORDER_RULE);
    let store = MemoryClickStore::new();
    // A chat's order carries no TikTok lead id.
    let outcomes = run(&config, &store, &tiktok_chat(), NOW).await;
    assert!(tiktok_events(&outcomes).is_empty());
    assert_eq!(
        skips(&outcomes),
        [
            SkipReason::NoRule,
            SkipReason::Unfit(Unfit("tiktok_no_lead_id"))
        ]
    );
    // Nor does a CRM event without tiktok_lead_id.
    let outcomes = run(&config, &store, &business(NOW, json!({})), NOW).await;
    assert_eq!(
        skips(&outcomes),
        [SkipReason::Unfit(Unfit("tiktok_no_lead_id"))]
    );
    // One with it: the lead, wacapi's name as a custom event, and the external id.
    let outcomes = run(
        &config,
        &store,
        &business(
            NOW,
            json!({"idempotency_key": "deal-2", "event_name": "QualifiedLead",
                   "tiktok_lead_id": "7301234567890123456"}),
        ),
        NOW,
    )
    .await;
    let [event] = &tiktok_events(&outcomes)[..] else {
        panic!("one TikTok event: {outcomes:?}");
    };
    assert_eq!(event["event"], "QualifiedLead");
    assert_eq!(event["lead"], json!({"lead_id": "7301234567890123456"}));
    assert_eq!(event["user"]["external_id"], sha256_hex(b"crm-77").as_str());
}

#[tokio::test]
async fn a_tiktok_lead_id_is_a_tiktok_touch_when_wacapi_saw_none() {
    let config = config_with("crm", ORDER_RULE);
    // No chat at all: the lead id alone says TikTok brought the user.
    let outcomes = run(
        &config,
        &MemoryClickStore::new(),
        &business(NOW, json!({"tiktok_lead_id": "7301234567890123456"})),
        NOW,
    )
    .await;
    assert_eq!(tiktok_events(&outcomes).len(), 1, "{outcomes:?}");
    // A Meta click wacapi saw comes first.
    let store = MemoryClickStore::new();
    let mut meta_click = signals("examples/webhooks/01-text-from-ctwa-ad.json").remove(0);
    meta_click.user = tiktok_chat()[1].user.clone();
    meta_click.timestamp = NOW - 600;
    run(&config, &store, &[meta_click], NOW).await;
    let outcomes = run(
        &config,
        &store,
        &business(NOW, json!({"tiktok_lead_id": "7301234567890123456"})),
        NOW,
    )
    .await;
    assert_eq!(events(&outcomes)[0].event.destination(), Destination::Meta);
}

#[test]
fn check_config_warns_of_what_a_tiktok_event_set_will_not_get() {
    let shipped = r#"
[[rules]]
name = "shipped"
event = "OrderShipped"
trigger = { kind = "button_reply", id = "track" }

[[rules]]
name = "fixed-price"
event = "Purchase"
trigger = { kind = "button_reply", id = "buy" }
custom_data = { value = 10.0, currency = "XOF" }
"#;
    let warnings = config_with("offline", shipped).warnings;
    assert!(
        warnings.iter().any(|w| w
            .starts_with("rule \"shipped\": OrderShipped has no TikTok standard event")
            && w.contains("tiktok_not_standard_event")),
        "{warnings:#?}"
    );
    assert!(
        warnings.iter().any(|w| w
            .starts_with("rule \"fixed-price\": TikTok does not list the currency XOF")
            && w.contains("tiktok_currency_not_supported")),
        "{warnings:#?}"
    );
    let warnings = config_with("crm", shipped).warnings;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("CRM event set takes only events that carry a TikTok lead id")),
        "{warnings:#?}"
    );
    assert!(
        !warnings
            .iter()
            .any(|w| w.contains("has no TikTok standard event")),
        "CRM event sets take custom names: {warnings:#?}"
    );
}
