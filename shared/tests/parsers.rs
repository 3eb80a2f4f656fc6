//! The parsers under fuzzing (issue 23): the inputs the fuzzers found (`tests/fixtures/fuzz/`)
//! run through the fuzz targets' own checks, and what each one showed is held here: times near
//! i64's ends refused rather than wrapped, a split linear in the body, unreadable parts of an
//! item dropped and counted while the item (and its ad click) is kept, a redriven item read as
//! what it was, and signals that read back from the queue exactly.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use proptest::prelude::*;
use secrecy::SecretString;
use serde_json::json;
use wacapi_shared::business::{self, EventAuthError, EventsError};
use wacapi_shared::channels::split;
use wacapi_shared::channels::whatsapp::{NO_FIELD, signal_from_item};
use wacapi_shared::conversion::attribution::attributed_click;
use wacapi_shared::conversion::clicks::Click;
use wacapi_shared::conversion::mapping::{Outcome, SkipReason, map_signal};
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::fuzzing::{self, NOW};
use wacapi_shared::lenient::Amount;
use wacapi_shared::signal::AutomaticCustomData;
use wacapi_shared::signal::{
    ItemKind, OrderItem, RawKind, RejectReason, SIGNAL_VERSION, Signal, SignalEvent, UserRef,
};
use wacapi_shared::values::hashing::hash_phone;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(repo().join("tests/fixtures/fuzz").join(path)).unwrap()
}

/// Every input under `tests/fixtures/fuzz/<target>/`.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("tests/fixtures/fuzz").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn every_input_the_fuzzers_found_passes_its_target_s_checks() {
    type Target = fn(&[u8]) -> Result<(), String>;
    let targets: [(&str, Target); 3] = [
        ("split", fuzzing::split_target),
        ("events", fuzzing::events_target),
        ("signature", fuzzing::signature_target),
    ];
    for (target, check) in targets {
        let inputs = inputs(target);
        assert!(!inputs.is_empty(), "no regression inputs for {target}");
        for (name, data) in inputs {
            assert_eq!(check(&data), Ok(()), "{target}/{name}");
        }
    }
}

// --- A1: times near i64's ends ------------------------------------------------------------------

fn item_reason(body: &[u8]) -> String {
    match business::parse(body, NOW) {
        Err(EventsError::Items(items)) => items[0].reason.clone(),
        other => panic!("a refused item expected: {other:?}"),
    }
}

#[test]
fn an_event_time_near_i64_min_or_max_is_refused_not_wrapped() {
    assert_eq!(
        item_reason(&fixture("events/event-time-i64-min.json")),
        "event_time must be positive unix seconds"
    );
    assert_eq!(
        item_reason(&fixture("events/event-time-near-i64-min.json")),
        "event_time must be positive unix seconds"
    );
    assert_eq!(
        item_reason(&fixture("events/event-time-i64-max.json")),
        "event_time looks like milliseconds: send unix seconds"
    );
}

fn signature_input(path: &str) -> (Vec<u8>, Vec<u8>) {
    let data = fixture(path);
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let ts = parts.next().unwrap().to_vec();
    let _ = parts.next();
    (ts, parts.next().unwrap().to_vec())
}

#[test]
fn a_signed_request_stamped_near_i64_min_is_stale() {
    let keys = [SecretString::from(fuzzing::KEY.to_owned())];
    for path in [
        "signature/timestamp-i64-min.txt",
        "signature/timestamp-abs-wraps.txt",
        "signature/timestamp-i64-max.txt",
    ] {
        let (ts, body) = signature_input(path);
        let at: i64 = std::str::from_utf8(&ts).unwrap().parse().unwrap();
        // Signed with the right key: only the time can refuse it.
        let signed = business::sign(fuzzing::KEY.as_bytes(), at, &body);
        assert_eq!(
            business::verify(Some(&ts), Some(signed.as_bytes()), &body, &keys, NOW),
            Err(EventAuthError::Stale),
            "{path}"
        );
    }
}

fn text_signal(timestamp: i64) -> Signal {
    Signal {
        v: SIGNAL_VERSION,
        id: "wamid.t".into(),
        channel: Default::default(),
        account_id: "102290129340398".into(),
        phone_number_id: None,
        timestamp,
        user: UserRef {
            bsuid: Some("US.1".into()),
            ..UserRef::default()
        },
        referral: None,
        event: SignalEvent::Order {
            catalog_id: None,
            items: vec![OrderItem {
                product_retailer_id: Some("a".into()),
                quantity: Some(1.0),
                item_price: Some(2.0),
                currency: Some("USD".into()),
            }],
        },
    }
}

#[test]
fn signal_and_click_times_near_i64_s_ends_map_without_wrapping() {
    let config =
        Config::from_toml(&std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap())
            .unwrap();
    let click = |at: i64| Click {
        ctwa_clid: Some("c".into()),
        ad_id: Some("1".into()),
        clicked_at: at,
        channel: Default::default(),
        destination: Default::default(),
    };
    // A queued signal may carry any i64 (a hand-edited redrive, an old bug): the oldest is too
    // old, never wrapped into the window.
    let outcomes = map_signal(&config, &text_signal(i64::MIN), Some(&click(NOW)), NOW);
    assert!(!outcomes.is_empty());
    for outcome in outcomes {
        assert!(
            matches!(
                outcome,
                Outcome::Skipped {
                    reason: SkipReason::TooOld,
                    ..
                }
            ),
            "{outcome:?}"
        );
    }
    // A click at one end and a signal at the other attribute nothing, and nothing overflows.
    for (signal_at, click_at) in [
        (i64::MAX, i64::MIN),
        (i64::MIN, i64::MAX),
        (i64::MAX, i64::MAX),
        (NOW, i64::MIN),
    ] {
        let attributed = attributed_click(&config, &text_signal(signal_at), Some(&click(click_at)));
        if signal_at != click_at {
            assert_eq!(attributed, None, "{signal_at} {click_at}");
        }
        let _ = map_signal(
            &config,
            &text_signal(signal_at),
            Some(&click(click_at)),
            NOW,
        );
    }
    // The report's day of any time is a date string, whatever the year.
    for at in [i64::MIN, i64::MAX, 0] {
        assert!(!wacapi_shared::report::day_of(at).is_empty());
    }
}

// --- A2: a split linear in the body ---------------------------------------------------------

/// A body of `filler` empty contacts, then `n` contacts with a phone and a BSUID, then `n`
/// messages from them: half by phone, half by BSUID only, each from a contact near the end of
/// the list (where a scan per message found it last).
fn crowded_body(filler: usize, n: usize) -> Vec<u8> {
    let mut body = String::from(
        r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":["#,
    );
    for i in 0..filler {
        if i > 0 {
            body.push(',');
        }
        body.push_str("{}");
    }
    for i in 0..n {
        body.push_str(&format!(
            r#",{{"wa_id":"1650{i:07}","user_id":"US.{i:020}"}}"#
        ));
    }
    body.push_str(r#"],"messages":["#);
    for i in 0..n {
        if i > 0 {
            body.push(',');
        }
        let from = if i % 2 == 0 {
            format!(r#""from":"1650{i:07}""#)
        } else {
            format!(r#""from_user_id":"US.{i:020}""#)
        };
        body.push_str(&format!(
            r#"{{{from},"id":"wamid.crowd{i}","timestamp":"1750096325","type":"text","text":{{"body":"hi"}}}}"#
        ));
    }
    body.push_str("]}}]}]}");
    body.into_bytes()
}

#[test]
fn a_body_of_a_million_contacts_and_thirty_thousand_messages_splits_each_to_its_sender() {
    // Scanning every contact per message, this body took minutes (3e10 comparisons); indexed
    // once per value it is linear. Correctness is asserted, not time.
    let n = 30_000;
    let body = crowded_body(1_000_000, n);
    let split = split(&body).unwrap();
    assert!(split.rejected.is_empty());
    assert_eq!(split.signals.len(), n);
    for (i, signal) in split.signals.iter().enumerate() {
        assert_eq!(signal.id, format!("wamid.crowd{i}"));
        let phone = hash_phone(&format!("1650{i:07}")).unwrap();
        assert_eq!(
            signal.user.ph.as_deref(),
            Some(phone.digits.as_str()),
            "{i}"
        );
        assert_eq!(
            signal.user.bsuid.as_deref(),
            Some(format!("US.{i:020}").as_str()),
            "{i}"
        );
    }
}

#[test]
fn the_first_matching_contact_fills_the_gaps_as_before() {
    // Two contacts match one message (one by phone, one by BSUID): the first in the list wins,
    // as a scan found it; a lone contact fills a message that names no sender it matches.
    let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
        "contacts":[{"wa_id":"16505550000","user_id":"US.b","parent_user_id":"P.first"},{"wa_id":"16505551111","user_id":"US.a","parent_user_id":"P.second"}],
        "messages":[{"from":"16505551111","from_user_id":"US.b","id":"m1","timestamp":"1750096325","type":"text"}]}},
        {"field":"messages","value":{"contacts":[{"wa_id":"16505552222","parent_user_id":"P.only"}],
        "messages":[{"id":"m2","timestamp":"1750096325","type":"text"}]}}]}]}"#;
    let split = split(body).unwrap();
    let parents: Vec<_> = split
        .signals
        .iter()
        .map(|s| s.user.parent_bsuid.as_deref())
        .collect();
    assert_eq!(parents, [Some("P.first"), Some("P.only")]);
}

// --- A3: unreadable parts dropped, the item kept ------------------------------------------

fn referral_clid(signal: &Signal) -> Option<&str> {
    signal.referral.as_ref()?.ctwa_clid.as_deref()
}

#[test]
fn a_lone_surrogate_costs_the_text_not_the_message_or_its_click() {
    let split = split(&fixture("split/lone-surrogate-text.json")).unwrap();
    assert!(split.rejected.is_empty(), "{:?}", split.rejected);
    let [signal] = split.signals.as_slice() else {
        panic!("one signal");
    };
    assert_eq!(signal.id, "wamid.fuzz-surrogate");
    assert_eq!(referral_clid(signal), Some("fuzz-clid-1"));
    assert!(signal.user.ph.is_some() && signal.user.bsuid.is_some());
    assert_eq!(
        signal.event,
        SignalEvent::Text {
            body: String::new()
        }
    );
    // The text, and the referral's headline (never modelled, but unreadable all the same).
    assert_eq!(split.unreadable_parts, 2);

    let split =
        wacapi_shared::channels::split(&fixture("split/messenger-lone-surrogate.json")).unwrap();
    assert!(split.rejected.is_empty(), "{:?}", split.rejected);
    assert_eq!(split.signals.len(), 1);
    let signal = &split.signals[0];
    assert_eq!(signal.id, "m_fuzz-surrogate");
    assert_eq!(
        signal
            .referral
            .as_ref()
            .and_then(|r| r.source_id.as_deref()),
        Some("120226305854810726")
    );
    assert_eq!(split.unreadable_parts, 1);
}

#[test]
fn a_number_out_of_range_costs_that_number() {
    let split = split(&fixture("split/number-out-of-range.json")).unwrap();
    assert!(split.rejected.is_empty(), "{:?}", split.rejected);
    let [text, order] = split.signals.as_slice() else {
        panic!("two signals");
    };
    assert_eq!(referral_clid(text), Some("fuzz-clid-2"));
    assert_eq!(
        text.event,
        SignalEvent::Text {
            body: String::new()
        }
    );
    let SignalEvent::Order { items, .. } = &order.event else {
        panic!("an order");
    };
    // The unreadable price leaves a hole: the order's value is not computed from a part of it.
    let prices: Vec<_> = items.iter().map(|i| i.item_price).collect();
    assert_eq!(prices, [None, Some(3.5)]);
    assert_eq!(items[0].product_retailer_id.as_deref(), Some("a"));
    assert_eq!(split.unreadable_parts, 2);
}

#[test]
fn a_repeated_key_keeps_its_last_copy() {
    let split = split(&fixture("split/repeated-keys.json")).unwrap();
    assert!(split.rejected.is_empty(), "{:?}", split.rejected);
    let [signal] = split.signals.as_slice() else {
        panic!("one signal");
    };
    assert_eq!(
        signal.event,
        SignalEvent::Text {
            body: "second".into()
        }
    );
    assert_eq!(referral_clid(signal), Some("fuzz-clid-3"));
    // The change's `field` twice, the message's `text` and `referral` twice.
    assert_eq!(split.unreadable_parts, 3);
}

#[test]
fn a_change_without_a_field_is_read_by_its_value() {
    let split = split(&fixture("split/change-without-field.json")).unwrap();
    // metadata + messages: read as `messages`.
    let ids: Vec<_> = split.signals.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["wamid.fuzz-nofield"]);
    assert_eq!(referral_clid(&split.signals[0]), Some("fuzz-clid-4"));
    assert_eq!(
        split.signals[0].phone_number_id.as_deref(),
        Some("106540352242922")
    );
    // No conversation in it: counted by name, not dead-lettered.
    assert_eq!(split.ignored_of(NO_FIELD), 1);
    // Messages without a messages value's metadata: kept for an operator, not guessed at.
    let [rejected] = split.rejected.as_slice() else {
        panic!("one rejected change: {:?}", split.rejected);
    };
    assert_eq!(rejected.kind, RawKind::Envelope);
    assert!(matches!(rejected.reason, RejectReason::BadChange(_)));
    assert!(rejected.raw.contains("wamid.fuzz-nofield-nometa"));
}

#[test]
fn an_item_with_no_readable_id_or_time_is_still_dead_lettered() {
    let split = split(&fixture("split/unreadable-id.json")).unwrap();
    assert!(split.signals.is_empty());
    assert_eq!(split.rejected.len(), 2);
    for r in &split.rejected {
        assert_eq!(r.kind, RawKind::Item(ItemKind::Message));
        assert!(matches!(r.reason, RejectReason::BadMessage(_)), "{r:?}");
    }
    // The raw item is kept exactly, unreadable bytes and all.
    assert!(split.rejected[0].raw.contains(r"\udc00"));
}

// --- A4: a redriven item is read as what it was ---------------------------------------------

#[test]
fn an_automatic_event_without_a_name_stays_an_automatic_event() {
    let split = split(&fixture("split/automatic-event-without-name.json")).unwrap();
    let [rejected] = split.rejected.as_slice() else {
        panic!("one rejected item");
    };
    assert_eq!(rejected.kind, RawKind::Item(ItemKind::AutomaticEvent));
    assert_eq!(
        rejected.kind.item_kind().map(ItemKind::label),
        Some("automatic_event")
    );
    assert!(matches!(
        rejected.reason,
        RejectReason::BadAutomaticEvent(_)
    ));
    // Redriven with its kind, or as an old item without it: refused again as what it was.
    for kind in [Some(ItemKind::AutomaticEvent), None] {
        let again = signal_from_item("102290129340398", &rejected.raw, kind);
        assert!(
            matches!(again, Err(RejectReason::BadAutomaticEvent(_))),
            "{kind:?}: {again:?}"
        );
    }
    // Fixed (its name added), it is read as the automatic event it was.
    let fixed = rejected
        .raw
        .replacen('{', r#"{"event_name":"Purchase","#, 1);
    let signal =
        signal_from_item("102290129340398", &fixed, Some(ItemKind::AutomaticEvent)).unwrap();
    assert!(matches!(signal.event, SignalEvent::AutomaticEvent { .. }));
    // An old quarantined message (no attribute) still reads as a message.
    let message = r#"{"from":"16505551234","id":"wamid.old","timestamp":"1750096325","type":"text","text":{"body":"hi"}}"#;
    let signal = signal_from_item("1", message, None).unwrap();
    assert_eq!(signal.event, SignalEvent::Text { body: "hi".into() });
    // And an old item without a type: a message, as it always was.
    let signal = signal_from_item("1", r#"{"id":"w","timestamp":"1750096325"}"#, None).unwrap();
    assert!(matches!(signal.event, SignalEvent::Other { .. }));
}

// --- A5: signals read back from the queue exactly ---------------------------------------------

fn priced_signal(price: f64, quantity: f64) -> Signal {
    let mut signal = text_signal(NOW);
    signal.event = SignalEvent::Order {
        catalog_id: None,
        items: vec![OrderItem {
            product_retailer_id: Some("a".into()),
            quantity: Some(quantity),
            item_price: Some(price),
            currency: Some("USD".into()),
        }],
    };
    signal
}

fn automatic_signal(value: f64) -> Signal {
    let mut signal = text_signal(NOW);
    signal.event = SignalEvent::AutomaticEvent {
        event_name: "Purchase".into(),
        ctwa_clid: None,
        custom_data: Some(AutomaticCustomData {
            currency: Some("USD".into()),
            value: Some(Amount::Number(value)),
        }),
    };
    signal
}

fn read_back(signal: &Signal) -> Signal {
    serde_json::from_str(&serde_json::to_string(signal).unwrap()).unwrap()
}

#[test]
fn a_float_whose_default_parse_is_one_digit_off_reads_back_exactly() {
    // Floats serde_json's default parser reads one ulp off (the second needs 17 digits).
    for value in [2.638_344_098_318_483e-187_f64, 9.007_199_254_740_993e15] {
        let signal = priced_signal(value, value);
        assert_eq!(read_back(&signal), signal, "{value:e}");
    }
}

fn business_signal(value: f64) -> Signal {
    let body = json!({"events": [{"event_name": "Purchase", "idempotency_key": "k",
        "user": {"wa_id": "16505551234"}, "custom_data": {"value": value.abs().min(1e12), "currency": "USD"}}]});
    let mut signals = business::parse(body.to_string().as_bytes(), NOW).unwrap();
    signals.remove(0)
}

proptest! {
    #[test]
    fn signals_with_any_price_read_back_from_the_queue_exactly(
        price in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        quantity in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        value in any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ) {
        let signal = priced_signal(price, quantity);
        prop_assert_eq!(read_back(&signal), signal);
        let signal = automatic_signal(value);
        prop_assert_eq!(read_back(&signal), signal);
        let signal = business_signal(value);
        prop_assert_eq!(read_back(&signal), signal);
    }
}

// --- B: one key, two event names, one request -------------------------------------------------

#[test]
fn one_key_may_carry_two_event_names_in_one_request_but_not_one_name_twice() {
    let event = |name: &str| {
        json!({"event_name": name, "idempotency_key": "deal-8812", "user": {"wa_id": "16505551234"},
            "custom_data": {"value": 10.0, "currency": "USD"}})
    };
    let body = json!({"events": [event("QualifiedLead"), event("Purchase")]}).to_string();
    let signals = business::parse(body.as_bytes(), NOW).unwrap();
    assert_eq!(signals.len(), 2);
    assert_ne!(signals[0].dedup_id(), signals[1].dedup_id());
    let body = json!({"events": [event("Purchase"), event("QualifiedLead"), event("Purchase")]})
        .to_string();
    match business::parse(body.as_bytes(), NOW) {
        Err(EventsError::Items(items)) => {
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].index, 2);
            assert!(
                items[0].reason.contains("repeat an earlier item"),
                "{}",
                items[0].reason
            );
        }
        other => panic!("the repeat refused: {other:?}"),
    }
}

// --- C: a configuration that does not parse ----------------------------------------------------

const TOKEN: &str = "EAAGm0PX4ZCpsBAKZCZBz7hQ9";

/// The example configuration with `line` inserted after its first account's `dataset_id`.
fn config_with(line: &str) -> (String, usize) {
    let text = std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap();
    let mut out = Vec::new();
    let mut at = 0;
    for (i, l) in text.lines().enumerate() {
        out.push(l.to_owned());
        if at == 0 && l.trim_start().starts_with("dataset_id") {
            out.push(line.to_owned());
            at = i + 2;
        }
    }
    (out.join("\n"), at)
}

#[test]
fn a_bad_token_line_is_shown_by_number_with_its_value_redacted() {
    for bad in [
        format!(r#"token = "{TOKEN}"#),
        format!(r#"token = "{TOKEN}" "x""#),
        format!(r#"access_token = {TOKEN}"#),
        format!(r#"tiktok = {{ token = "{TOKEN}", event_source_id = }}"#),
    ] {
        let (text, line) = config_with(&bad);
        let message = Config::from_toml(&text).unwrap_err().to_string();
        assert!(
            message.contains(&format!("line {line}")),
            "{bad}: {message}"
        );
        assert!(message.contains(&format!("{line} | ")), "{bad}: {message}");
        assert!(message.contains("<redacted>"), "{bad}: {message}");
        assert!(!message.contains("EAAG"), "{bad}: {message}");
    }
    // A value left open runs into the lines below: whichever line the error names, the token
    // is not printed.
    for bad in [
        format!(r#"app_secret = ["{TOKEN}""#),
        format!("access_tokens = [\n  \"{TOKEN}\" \"x\",\n]"),
    ] {
        let (text, _) = config_with(&bad);
        let message = Config::from_toml(&text).unwrap_err().to_string();
        assert!(
            message.contains("TOML parse error at line"),
            "{bad}: {message}"
        );
        assert!(!message.contains("EAAG"), "{bad}: {message}");
    }
}

#[test]
fn a_bad_harmless_line_is_shown_as_written() {
    let (text, line) = config_with(r#"test_event_code = "TEST123" oops"#);
    let message = Config::from_toml(&text).unwrap_err().to_string();
    assert!(message.contains(&format!("line {line}")), "{message}");
    assert!(
        message.contains(&format!(r#"{line} | test_event_code = "TEST123" oops"#)),
        "{message}"
    );
    assert!(!message.contains("<redacted>"), "{message}");
}

#[test]
fn the_cold_start_reports_the_line_without_the_token() {
    let (text, line) = config_with(&format!(r#"token = "{TOKEN}"#));
    let path = std::env::temp_dir().join(format!("wacapi-bad-config-{}.toml", std::process::id()));
    std::fs::write(&path, text).unwrap();
    let env = wacapi_shared::config::DispatchEnv::from_lookup(|name| match name {
        "WACAPI_TABLE_NAME" => Some("t".into()),
        "WACAPI_DEAD_LETTER_QUEUE_URL" => Some("https://sqs.example/q.fifo".into()),
        "WACAPI_GRAPH_TOKEN_SECRET_ARN" => Some("arn:aws:secretsmanager:x".into()),
        "WACAPI_CONFIG_FILE" => Some(path.display().to_string()),
        _ => None,
    })
    .unwrap();
    let error = env.load_rules().unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert!(error.contains(&format!("line {line}")), "{error}");
    assert!(error.contains("token = <redacted>"), "{error}");
    assert!(!error.contains("EAAG"), "{error}");
}
