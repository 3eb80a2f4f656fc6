//! The mapping core over real webhook bodies: every trigger kind, click attribution across
//! webhooks, windows, skip reasons, and the CAPI output of every sample (snapshotted).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use serde_json::{Value, json};
use wacapi_shared::channels::split;
use wacapi_shared::conversion::clicks::{ClickStore, MemoryClickStore};
use wacapi_shared::conversion::mapping::{MappedEvent, Outcome, SkipReason};
use wacapi_shared::conversion::pipeline::{Processor, batch_requests};
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::meta::capi::EventName;
use wacapi_shared::signal::Signal;

const NOW: i64 = 1_750_100_000;
const DAY: i64 = 86_400;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn example_config() -> Config {
    let text = std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap();
    Config::from_toml(&text).expect("example config")
}

fn samples() -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(repo().join("examples/webhooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

fn sample_signals(name: &str) -> Vec<Signal> {
    let (_, body) = samples()
        .into_iter()
        .find(|(stem, _)| stem.ends_with(name))
        .unwrap_or_else(|| panic!("sample {name}"));
    split(&body).expect("sample parses").signals
}

/// A signal from JSON, for the cases the samples do not cover.
fn signal(v: Value) -> Signal {
    let mut base = json!({
        "v": 1,
        "id": "wamid.test",
        "waba_id": "102290129340398",
        "timestamp": NOW - 60,
        "user": {"ph": "6069d14bf122fdfd931dc7beb58e5dfbba395b1faf05bdcd42d12358d63d8599"},
        "event": {"type": "text", "body": "hello"}
    });
    for (k, val) in v.as_object().unwrap() {
        base[k] = val.clone();
    }
    serde_json::from_value(base).expect("signal JSON")
}

fn click_signal(clid: &str, at: i64) -> Signal {
    signal(json!({
        "id": format!("wamid.click.{clid}"),
        "timestamp": at,
        "referral": {"ctwa_clid": clid, "source_id": "ad-1", "source_type": "ad"},
        "event": {"type": "text", "body": "hi"}
    }))
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

fn skips(outcomes: &[Outcome]) -> Vec<SkipReason> {
    outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Skipped { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn names(outcomes: &[Outcome]) -> Vec<(String, EventName)> {
    events(outcomes)
        .iter()
        .map(|e| (e.rule.clone(), e.event.event_name()))
        .collect()
}

// --- every sample, snapshotted ----------------------------------------------------------------

#[tokio::test]
async fn every_sample_webhook_with_the_example_config() {
    let config = example_config();
    let store = MemoryClickStore::new();
    for (name, body) in samples() {
        let signals = split(&body).unwrap().signals;
        let outcomes = run(&config, &store, &signals, NOW).await;
        let requests = batch_requests(events(&outcomes).into_iter().cloned());
        let bodies: Vec<Value> = requests.iter().map(|r| r.line()).collect();
        let skipped: Vec<&str> = skips(&outcomes).iter().map(|s| s.label()).collect();
        insta::assert_json_snapshot!(
            format!("capi-{name}"),
            json!({"requests": bodies, "skipped": skipped})
        );
    }
}

#[tokio::test]
async fn every_sample_webhook_with_the_default_config() {
    let config = Config::default_config().unwrap();
    let store = MemoryClickStore::new();
    let mut all = Vec::new();
    for (_, body) in samples() {
        all.extend(run(&config, &store, &split(&body).unwrap().signals, NOW).await);
    }
    assert_eq!(
        names(&all),
        [
            ("order-purchase".to_owned(), EventName::Purchase),
            ("flow-lead".to_owned(), EventName::LeadSubmitted),
        ]
    );
    assert!(events(&all).iter().all(|e| e.account.dataset_id() == "0"));
}

// --- triggers ---------------------------------------------------------------------------------

#[tokio::test]
async fn every_trigger_kind_fires() {
    let config = example_config();
    let store = MemoryClickStore::new();
    run(&config, &store, &[click_signal("clid-1", NOW - 3600)], NOW).await;
    let cases = [
        (
            json!({"type": "order", "items": [{"product_retailer_id": "a", "quantity": 1, "item_price": 5, "currency": "EUR"}]}),
            "order-purchase",
        ),
        (
            json!({"type": "button_reply", "id": "confirm-order"}),
            "confirm-order-button",
        ),
        (
            json!({"type": "list_reply", "id": "product-42"}),
            "product-list-choice",
        ),
        (
            json!({"type": "template_button", "payload": "REORDER"}),
            "reorder-template",
        ),
        (
            json!({"type": "flow_reply", "name": "flow", "flow_token": "lead_form_v1", "fields": {"email": "a@b.co"}}),
            "lead-form",
        ),
        (
            json!({"type": "flow_reply", "name": "flow", "flow_token": "quote_big", "fields": {"budget": "1200.50", "email": "a@b.co", "country": "DE"}}),
            "quote-request",
        ),
        (
            json!({"type": "text", "body": "I want to BUY two"}),
            "ready-to-buy",
        ),
        (json!({"type": "request_welcome"}), "welcome"),
    ];
    for (i, (event, rule)) in cases.into_iter().enumerate() {
        let s = signal(json!({"id": format!("wamid.t{i}"), "event": event}));
        let outcomes = run(&config, &store, &[s], NOW).await;
        let fired: Vec<String> = events(&outcomes).iter().map(|e| e.rule.clone()).collect();
        assert_eq!(fired, [rule], "{rule}: {outcomes:?}");
    }
    // ad_click fires on the message that carries the click.
    let outcomes = run(
        &config,
        &MemoryClickStore::new(),
        &[click_signal("clid-2", NOW - 10)],
        NOW,
    )
    .await;
    assert_eq!(
        names(&outcomes),
        [("chat-from-ad".to_owned(), EventName::ViewContent)]
    );
    // automatic_events pass through with Meta's name and the outcome type.
    let outcomes = run(&config, &store, &sample_signals("automatic-events"), NOW).await;
    let e = events(&outcomes)[0];
    assert_eq!(e.event.event_name(), EventName::Purchase);
    assert_eq!(
        e.event.to_value()["messaging_outcome_data"]["outcome_type"],
        "automatic_events"
    );
}

#[tokio::test]
async fn non_matching_values_do_not_fire() {
    let config = example_config();
    let store = MemoryClickStore::new();
    run(&config, &store, &[click_signal("clid-1", NOW - 3600)], NOW).await;
    for event in [
        json!({"type": "button_reply", "id": "confirm-order-later"}),
        json!({"type": "list_reply", "id": "not-product-42"}),
        json!({"type": "template_button", "payload": "reorder"}),
        json!({"type": "flow_reply", "name": "flow", "flow_token": "other", "fields": {}}),
        json!({"type": "text", "body": "buyer's remorse"}),
        json!({"type": "other", "message_type": "image"}),
    ] {
        let outcomes = run(
            &config,
            &store,
            &[signal(json!({"event": event.clone()}))],
            NOW,
        )
        .await;
        assert_eq!(skips(&outcomes), [SkipReason::NoRule], "{event}");
    }
}

#[tokio::test]
async fn flow_fields_are_normalised_and_hashed() {
    let config = example_config();
    let store = MemoryClickStore::new();
    let mut outcomes = Vec::new();
    for name in ["text-from-ctwa-ad", "flow-lead-form"] {
        outcomes.extend(run(&config, &store, &sample_signals(name), NOW).await);
    }
    let lead = events(&outcomes)
        .into_iter()
        .find(|e| e.rule == "lead-form")
        .expect("lead-form fired");
    let ud = lead.event.to_value()["user_data"].clone();
    let h = |k, v| wacapi_shared::values::hashing::hash(k, v).unwrap();
    use wacapi_shared::values::hashing::UserDataKey as K;
    assert_eq!(ud["em"], json!([h(K::Em, "sheena.nelson@example.com")]));
    assert_eq!(ud["fn"], json!([h(K::Fn, "sheena")]));
    assert_eq!(ud["ln"], json!([h(K::Ln, "nelson")]));
    assert_eq!(ud["ct"], json!([h(K::Ct, "menlopark")]));
    assert_eq!(ud["zp"], json!([h(K::Zp, "94025")]));
    assert_eq!(ud["ph"], json!([h(K::Ph, "16505551234")]));
    let text = serde_json::to_string(&lead.event).unwrap();
    for clear in [
        "Sheena",
        "sheena",
        "Nelson",
        "Menlo",
        "example.com",
        "16505551234",
    ] {
        assert!(!text.contains(clear), "{clear} in {text}");
    }
}

#[tokio::test]
async fn invalid_flow_fields_are_dropped_not_sent() {
    let config = example_config();
    let store = MemoryClickStore::new();
    run(&config, &store, &[click_signal("clid-1", NOW - 3600)], NOW).await;
    let s = signal(
        json!({"event": {"type": "flow_reply", "name": "flow", "flow_token": "lead_form_v1",
        "fields": {"email": "not-an-email", "full_name": "  ", "zip": "94025"}}}),
    );
    let outcomes = run(&config, &store, &[s], NOW).await;
    let e = events(&outcomes)[0];
    assert!(e.event.to_value()["user_data"].get("em").is_none());
    assert!(e.event.to_value()["user_data"].get("zp").is_some());
    assert_eq!(e.dropped_user_data.len(), 1);
}

// --- attribution ------------------------------------------------------------------------------

#[tokio::test]
async fn a_click_in_one_webhook_attributes_an_order_in_a_later_one() {
    let config = Config::default_config().unwrap();
    let store = MemoryClickStore::new();
    let click = run(&config, &store, &sample_signals("text-from-ctwa-ad"), NOW).await;
    assert_eq!(
        skips(&click),
        [SkipReason::NoRule],
        "the default config has no ad_click rule"
    );
    let order = run(&config, &store, &sample_signals("order"), NOW).await;
    let e = events(&order)[0];
    assert_eq!(e.event.event_name(), EventName::Purchase);
    assert!(
        e.event.to_value()["user_data"]["ctwa_clid"]
            .as_str()
            .unwrap()
            .starts_with("Aff-n8ZT")
    );
    // Stored under hashed keys only: no BSUID or phone digits in any key.
    for key in store.keys() {
        assert_eq!(key.len(), 64);
        assert!(!key.contains("US.") && !key.contains("1650"));
    }
}

#[tokio::test]
async fn a_click_recorded_with_bsuid_and_phone_is_found_by_phone_alone() {
    let config = example_config();
    let store = MemoryClickStore::new();
    run(&config, &store, &sample_signals("text-from-ctwa-ad"), NOW).await;
    // The button reply sample carries only wa_id.
    let s = &sample_signals("interactive-button-reply")[0];
    assert!(s.user.bsuid.is_none() && s.user.ph.is_some());
    let outcomes = run(&config, &store, std::slice::from_ref(s), NOW).await;
    assert_eq!(events(&outcomes).len(), 1);
}

#[tokio::test]
async fn a_second_click_replaces_the_first() {
    let config = example_config();
    let store = MemoryClickStore::new();
    run(
        &config,
        &store,
        &[click_signal("first", NOW - 2 * DAY)],
        NOW,
    )
    .await;
    run(&config, &store, &[click_signal("second", NOW - DAY)], NOW).await;
    let s = signal(json!({"event": {"type": "button_reply", "id": "confirm-order"}}));
    let outcomes = run(&config, &store, &[s], NOW).await;
    assert_eq!(
        events(&outcomes)[0].event.to_value()["user_data"]["ctwa_clid"],
        "second"
    );

    // An older click arriving late (out of order) does not replace a newer one.
    run(
        &config,
        &store,
        &[click_signal("stale", NOW - 3 * DAY)],
        NOW,
    )
    .await;
    let s = signal(
        json!({"id": "wamid.again", "event": {"type": "button_reply", "id": "confirm-order"}}),
    );
    let outcomes = run(&config, &store, &[s], NOW).await;
    assert_eq!(
        events(&outcomes)[0].event.to_value()["user_data"]["ctwa_clid"],
        "second"
    );
}

#[tokio::test]
async fn a_click_outside_the_window_does_not_attribute() {
    let config = example_config();
    let store = MemoryClickStore::new();
    run(&config, &store, &[click_signal("old", NOW - 8 * DAY)], NOW).await;
    let s = signal(json!({"event": {"type": "button_reply", "id": "confirm-order"}}));
    let outcomes = run(&config, &store, &[s], NOW).await;
    assert_eq!(skips(&outcomes), [SkipReason::NoClick]);

    // A window of 10 days, set in the configuration, takes it.
    let text = std::fs::read_to_string(repo().join("examples/wacapi.toml"))
        .unwrap()
        .replace(
            "attribution_window_days = 7",
            "attribution_window_days = 10",
        );
    let wide = Config::from_toml(&text).unwrap();
    let s =
        signal(json!({"id": "wamid.w", "event": {"type": "button_reply", "id": "confirm-order"}}));
    assert_eq!(events(&run(&wide, &store, &[s], NOW).await).len(), 1);
}

#[tokio::test]
async fn identity_changes_carry_the_click_to_the_new_number() {
    let config = example_config();
    let store = MemoryClickStore::new();
    let old = signal(json!({
        "id": "wamid.c", "timestamp": NOW - 100,
        "user": {"bsuid": "US.1", "ph": "aa".repeat(32)},
        "referral": {"ctwa_clid": "clid-x"},
    }));
    let change = signal(json!({
        "id": "wamid.sys", "user": {"bsuid": "US.1", "ph": "aa".repeat(32)},
        "event": {"type": "identity_changed", "change": "user_changed_number",
                  "new": {"bsuid": "US.2", "ph": "bb".repeat(32)}, "previous_bsuid": "US.1"}
    }));
    let later = signal(json!({
        "id": "wamid.later", "user": {"ph": "bb".repeat(32)},
        "event": {"type": "button_reply", "id": "confirm-order"}
    }));
    let outcomes = run(&config, &store, &[old, change, later], NOW).await;
    let fired: Vec<_> = events(&outcomes).iter().map(|e| e.rule.clone()).collect();
    assert_eq!(fired, ["chat-from-ad", "confirm-order-button"]);
}

// --- skip reasons -----------------------------------------------------------------------------

#[tokio::test]
async fn no_click_too_old_and_unknown_account() {
    let config = example_config();
    let store = MemoryClickStore::new();
    let order = sample_signals("order");
    assert_eq!(
        skips(&run(&config, &store, &order, NOW).await),
        [SkipReason::NoClick]
    );

    run(&config, &store, &sample_signals("text-from-ctwa-ad"), NOW).await;
    // Seven days after the order, less the safety margin, it is too old to send.
    let late = NOW + 7 * DAY;
    assert_eq!(
        skips(&run(&config, &store, &order, late).await),
        [SkipReason::TooOld]
    );

    let only_one = r#"
[[accounts]]
waba_id = "999"
dataset_id = "1"
[[rules]]
name = "o"
event = "Purchase"
trigger = { kind = "message_type", message_type = "order" }
custom_data = { from_order = true }
"#;
    let config = Config::from_toml(only_one).unwrap();
    assert_eq!(
        skips(&run(&config, &store, &order, NOW).await),
        [SkipReason::UnknownAccount]
    );
}

#[tokio::test]
async fn future_timestamps_are_clamped_to_now() {
    let config = example_config();
    let store = MemoryClickStore::new();
    let s = click_signal("future", NOW + 600);
    let outcomes = run(&config, &store, &[s], NOW).await;
    assert_eq!(events(&outcomes)[0].event.event_time(), NOW);
}

#[tokio::test]
async fn orders_with_mixed_currencies_are_not_sent_as_purchases() {
    let config = example_config();
    let store = MemoryClickStore::new();
    run(&config, &store, &[click_signal("c", NOW - 60)], NOW).await;
    let s = signal(json!({"event": {"type": "order", "items": [
        {"product_retailer_id": "a", "quantity": 1, "item_price": 5, "currency": "EUR"},
        {"product_retailer_id": "b", "quantity": 1, "item_price": 5, "currency": "USD"}]}}));
    assert_eq!(
        skips(&run(&config, &store, &[s], NOW).await),
        [SkipReason::InvalidCustomData]
    );
}

// --- event ids --------------------------------------------------------------------------------

#[tokio::test]
async fn event_ids_are_deterministic_and_scoped() {
    let config = example_config();
    let a = run(
        &config,
        &MemoryClickStore::new(),
        &sample_signals("text-from-ctwa-ad"),
        NOW,
    )
    .await;
    let b = run(
        &config,
        &MemoryClickStore::new(),
        &sample_signals("text-from-ctwa-ad"),
        NOW + 3600,
    )
    .await;
    assert_eq!(
        events(&a)[0].event.event_id(),
        events(&b)[0].event.event_id()
    );

    // dedup = "click": two Flow leads after one click share one id.
    let store = MemoryClickStore::new();
    run(&config, &store, &[click_signal("one-click", NOW - 60)], NOW).await;
    let lead = |id: &str| {
        signal(
            json!({"id": id, "event": {"type": "flow_reply", "name": "flow",
            "flow_token": "lead_form_v1", "fields": {}}}),
        )
    };
    let outcomes = run(&config, &store, &[lead("wamid.f1"), lead("wamid.f2")], NOW).await;
    let ids: Vec<_> = events(&outcomes)
        .iter()
        .map(|e| e.event.event_id().to_owned())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], ids[1]);

    // dedup = "message": two button presses are two events.
    let press = |id: &str| {
        signal(json!({"id": id, "event": {"type": "button_reply", "id": "confirm-order"}}))
    };
    let outcomes = run(
        &config,
        &store,
        &[press("wamid.b1"), press("wamid.b2")],
        NOW,
    )
    .await;
    let ids: Vec<_> = events(&outcomes)
        .iter()
        .map(|e| e.event.event_id().to_owned())
        .collect();
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn requests_group_by_dataset_and_hold_at_most_1000_events() {
    let config = example_config();
    let store = MemoryClickStore::new();
    let mut signals = Vec::new();
    for i in 0..1500 {
        let waba = if i % 3 == 0 {
            "other-waba"
        } else {
            "102290129340398"
        };
        let mut s = click_signal(&format!("c{i}"), NOW - 60);
        s.id = format!("wamid.{i}");
        s.account_id = waba.to_owned();
        s.user.ph = Some(format!("{i:064x}"));
        signals.push(s);
    }
    let outcomes = run(&config, &store, &signals, NOW).await;
    let requests = batch_requests(events(&outcomes).into_iter().cloned());
    let shape: Vec<(String, usize)> = requests
        .iter()
        .map(|r| (r.target.id().to_owned(), r.events.len()))
        .collect();
    assert_eq!(
        shape,
        [
            ("9876543210987654".to_owned(), 500),
            ("1234567890123456".to_owned(), 1000),
        ]
    );
    assert!(store.len() >= 1500);
    assert!(
        store
            .latest("other-waba", &signals[0].user)
            .await
            .unwrap()
            .is_some()
    );
}

fn automatic(id: &str, custom_data: Value) -> Signal {
    signal(json!({
        "id": id,
        "user": {},
        "event": {"type": "automatic_event", "event_name": "Purchase", "ctwa_clid": "Aff-auto",
                  "custom_data": custom_data}
    }))
}

#[tokio::test]
async fn automatic_event_amounts_are_sent_in_currency_units_and_unusable_ones_are_skipped() {
    let config = example_config();
    let store = MemoryClickStore::new();
    let out = run(
        &config,
        &store,
        &[
            automatic("a", json!({"currency": "USD", "value": 25000})),
            automatic("b", json!({"currency": "usd", "value": "85500"})),
            automatic("c", json!({"currency": "USD"})),
            automatic("d", json!({"value": 25000})),
            automatic("e", json!({"currency": "USD", "value": -5})),
            automatic("f", json!({"currency": "USD", "value": 1e300})),
        ],
        NOW,
    )
    .await;
    let values: Vec<(f64, String)> = events(&out)
        .iter()
        .map(|e| {
            let c = &e.event.to_value()["custom_data"];
            (
                c["value"].as_f64().unwrap(),
                c["currency"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(values, [(25.0, "USD".into()), (85.5, "USD".into())]);
    assert_eq!(skips(&out), [SkipReason::InvalidCustomData; 4]);
}

#[tokio::test]
async fn a_user_changed_user_id_without_a_sender_carries_the_click_once() {
    let config = example_config();
    let store = MemoryClickStore::new();
    let click = signal(json!({
        "id": "wamid.click", "timestamp": NOW - 300, "user": {"bsuid": "BR.old"},
        "referral": {"ctwa_clid": "Aff-old", "source_id": "ad", "source_type": "ad"}
    }));
    let change = signal(json!({
        "id": "wamid.change", "timestamp": NOW - 200, "user": {},
        "event": {"type": "identity_changed", "change": "user_changed_user_id",
                  "new": {"bsuid": "BR.new"}, "previous_bsuid": "BR.old"}
    }));
    let order = signal(json!({
        "id": "wamid.order", "timestamp": NOW - 100, "user": {"bsuid": "BR.new"},
        "event": {"type": "order", "items": [
            {"product_retailer_id": "p", "quantity": 1, "item_price": 10.0, "currency": "USD"}]}
    }));
    run(&config, &store, &[click, change.clone()], NOW).await;
    let keys = store.keys();
    // The same change again writes nothing new.
    run(&config, &store, &[change], NOW).await;
    assert_eq!(store.keys(), keys);
    let out = run(&config, &store, &[order], NOW).await;
    let purchase = events(&out)
        .into_iter()
        .find(|e| e.event.event_name() == EventName::Purchase)
        .expect("attributed");
    assert_eq!(
        purchase.event.to_value()["user_data"]["ctwa_clid"],
        "Aff-old"
    );
}

#[tokio::test]
async fn a_form_value_reading_as_an_email_or_phone_never_reaches_custom_data() {
    let config = Config::from_toml(
        r#"
[[accounts]]
waba_id = "102290129340398"
dataset_id = "1"
[[rules]]
name = "plan-form"
event = "LeadSubmitted"
trigger = { kind = "flow" }
custom_data = { fields = { content_name = "plan", content_category = "notes", order_id = "ref" } }
"#,
    )
    .expect("non-personal field names pass the config check");
    let store = MemoryClickStore::new();
    let flow = signal(json!({
        "referral": {"ctwa_clid": "Aff-plan", "source_id": "ad", "source_type": "ad"},
        "event": {"type": "flow_reply", "name": "flow", "fields": {
            "plan": "sheena@example.com", "notes": "+1 (650) 555-1234", "ref": "8812"}}
    }));
    let out = run(&config, &store, &[flow], NOW).await;
    let event = events(&out)[0];
    assert_eq!(event.dropped_custom_data, 2);
    let sent = serde_json::to_string(&event.event).unwrap();
    assert!(!sent.contains("sheena") && !sent.contains("555"), "{sent}");
    assert_eq!(event.event.to_value()["custom_data"]["order_id"], "8812");
}

/// Rule-built `custom_data` follows the line `/events` draws: international phone numbers and
/// copies of the event's own personal values (the sender's phone, by its hash; the Flow fields
/// the rule hashes) are left out, ids and words stay.
#[tokio::test]
async fn rule_built_custom_data_never_repeats_the_event_s_personal_values() {
    let config = Config::from_toml(
        r#"
[[accounts]]
waba_id = "102290129340398"
dataset_id = "1"
[[rules]]
name = "lead-form"
event = "LeadSubmitted"
trigger = { kind = "flow" }
user_data = { em = "email", full_name = "name" }
custom_data = { fields = { order_id = "ref", content_category = "nick", content_name = "plan", delivery_category = "contact" } }
"#,
    )
    .expect("valid");
    let store = MemoryClickStore::new();
    let flow = signal(json!({
        "referral": {"ctwa_clid": "Aff-form", "source_id": "ad", "source_type": "ad"},
        "event": {"type": "flow_reply", "name": "flow", "fields": {
            "email": "ana@example.org", "name": "Ana Souza",
            "ref": "1 650 555 1234", "nick": "Ana Souza", "plan": "Gold",
            "contact": "+55 11 98765 4321"}}
    }));
    let out = run(&config, &store, &[flow], NOW).await;
    let event = events(&out)[0];
    assert_eq!(
        event.dropped_custom_data, 3,
        "ref (the sender's phone), nick, contact"
    );
    let custom = &event.event.to_value()["custom_data"];
    assert_eq!(custom.get("order_id"), None);
    assert_eq!(custom.get("content_name"), Some(&json!("Gold")));
    let sent = serde_json::to_string(&event.event).unwrap();
    for clear in ["Ana", "555", "98765"] {
        assert!(!sent.contains(clear), "{clear} in {sent}");
    }
}

// --- Meta Business Agent numbers (the standby field) -------------------------------------------

fn fixture_signals(name: &str) -> Vec<Signal> {
    let body = std::fs::read(repo().join("tests/fixtures").join(name)).unwrap();
    let split = split(&body).unwrap();
    assert!(split.rejected.is_empty(), "{name}: {:?}", split.rejected);
    split.signals
}

#[tokio::test]
async fn a_standby_click_then_a_standby_order_send_one_purchase_attributed_to_the_click() {
    // The defaults: an order is a Purchase; the click itself sends nothing but is kept.
    let config = Config::default_config().unwrap();
    let store = MemoryClickStore::new();
    let click = fixture_signals("standby/click.json");
    let order = fixture_signals("standby/order.json");
    assert_eq!((click.len(), order.len()), (1, 1));
    let clid = click[0]
        .referral
        .as_ref()
        .unwrap()
        .ctwa_clid
        .clone()
        .unwrap();
    let mut out = run(&config, &store, &click, NOW).await;
    out.extend(run(&config, &store, &order, NOW).await);
    assert_eq!(
        names(&out),
        [("order-purchase".to_owned(), EventName::Purchase)]
    );
    let purchase = events(&out)[0].event.to_value();
    assert_eq!(purchase["user_data"]["ctwa_clid"], clid.as_str());
    assert_eq!(purchase["custom_data"]["value"], 85.5);

    // The agent's echo of an order, and an order from the business's own number, are the
    // business talking: no signal, so nothing is sent.
    let body = std::fs::read(repo().join("tests/fixtures/standby/echoed-order.json")).unwrap();
    let echoed = split(&body).unwrap();
    assert!(echoed.signals.is_empty() && echoed.rejected.is_empty());
    assert_eq!(echoed.ignored_of("message_echoes"), 1);
    assert_eq!(echoed.ignored_of("own_messages"), 1);
    assert_eq!(echoed.ignored_of("messaging_handovers"), 1);
    assert_eq!(echoed.statuses, 1);
}
