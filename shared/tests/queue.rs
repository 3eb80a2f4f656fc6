//! The queue format: signals as ingest wrote them before the signal owned its payload types
//! (issue 24) still read, and write back byte for byte. Each file under `tests/fixtures/queue/`
//! is one queue message body, serialised by the code of that time from real webhook and
//! business-event bodies: every kind of signal of every channel, and automatic events with and
//! without value data (a number, a string, a currency alone). A change to a type a signal
//! carries that would change what is queued, or refuse what is already queued, fails here.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use wacapi_shared::signal::{SIGNAL_VERSION, Signal, SignalEvent};

/// Every queue body under `tests/fixtures/queue/`, by file name, without the file's final
/// line break.
fn bodies() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/queue");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let body = text.strip_suffix('\n').unwrap_or(&text).to_owned();
            (name, body)
        })
        .collect()
}

#[test]
fn queued_signals_decode_and_encode_back_byte_for_byte() {
    let bodies = bodies();
    assert!(bodies.len() >= 20, "{} queue fixtures", bodies.len());
    for (name, body) in &bodies {
        let signal: Signal = serde_json::from_str(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(signal.v, SIGNAL_VERSION, "{name}");
        assert_eq!(&serde_json::to_string(&signal).unwrap(), body, "{name}");
    }
}

#[test]
fn the_fixtures_cover_every_kind_of_signal_of_every_channel() {
    let covered: BTreeSet<String> = bodies()
        .iter()
        .map(|(_, body)| {
            let signal: Signal = serde_json::from_str(body).unwrap();
            format!("{}:{}", signal.channel.as_str(), signal.event.kind())
        })
        .collect();
    for expected in [
        "whatsapp:text",
        "whatsapp:button_reply",
        "whatsapp:list_reply",
        "whatsapp:flow_reply",
        "whatsapp:template_button",
        "whatsapp:order",
        "whatsapp:request_welcome",
        "whatsapp:identity_changed",
        "whatsapp:automatic_event",
        "whatsapp:business",
        "whatsapp:other",
        "messenger:text",
        "messenger:quick_reply",
        "messenger:postback",
        "messenger:referral",
        "messenger:business",
        "instagram:text",
        "instagram:postback",
        "instagram:referral",
        "instagram:other",
    ] {
        assert!(covered.contains(expected), "no queue fixture of {expected}");
    }
}

#[test]
fn automatic_event_value_data_reads_as_it_was_queued() {
    let automatic: Vec<String> = bodies()
        .iter()
        .filter_map(|(name, body)| {
            let signal: Signal = serde_json::from_str(body).unwrap();
            match signal.event {
                SignalEvent::AutomaticEvent { custom_data, .. } => Some(format!(
                    "{name}: {:?}",
                    custom_data.map(|c| (c.currency, c.value))
                )),
                _ => None,
            }
        })
        .collect();
    assert_eq!(
        automatic,
        [
            "whatsapp-automatic-event-currency-only.json: Some((Some(\"BRL\"), None))",
            "whatsapp-automatic-event-lead.json: None",
            "whatsapp-automatic-event-purchase.json: Some((Some(\"USD\"), Some(Number(85500.0))))",
            "whatsapp-automatic-event-text-value.json: Some((Some(\"inr\"), Some(Text(\"1299000\"))))",
        ]
    );
}
