//! Every documented webhook shape answered right: each of Meta's own examples under
//! `tests/fixtures/documented/<product>/<kind>[--<variant>].json` (its `README.md` names each
//! file's page and date) splits with nothing rejected (nothing dead-lettered); a conversation
//! kind becomes at least one signal, any other kind none, and is counted under its name.
//!
//! Meta documents many events as a bare `messaging[]` item, entry or change, and some as a JSON
//! array of bodies: the files keep that form, and [`bodies`] wraps them in the envelope they are
//! delivered in.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use serde_json::{Value, json};
use wacapi_shared::channels::split;

/// The kinds that are a user's conversation moment, per product; every other file's kind is the
/// name the splitter counts it under.
const CONVERSATION_KINDS: [(&str, &[&str]); 3] = [
    ("whatsapp", &["messages", "standby", "automatic_events"]),
    ("messenger", &["message", "postback", "referral"]),
    ("instagram", &["message", "postback", "referral"]),
];

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/documented")
}

/// One documented example: its product, kind and path, and the webhook bodies it stands for.
pub struct Documented {
    pub product: &'static str,
    pub kind: String,
    pub name: String,
    pub bodies: Vec<Value>,
}

/// Every documented example, in file order.
pub fn documented() -> Vec<Documented> {
    let mut out = Vec::new();
    for (product, _) in CONVERSATION_KINDS {
        let mut files: Vec<_> = std::fs::read_dir(dir().join(product))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for path in files {
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            let kind = stem.split("--").next().unwrap().to_owned();
            let value: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            out.push(Documented {
                product,
                kind,
                name: format!("{product}/{stem}"),
                bodies: bodies(product, value),
            });
        }
    }
    out
}

/// The bodies a documented example stands for: itself when it is a webhook body, each element
/// of an array, or a bare entry, change or messaging item in the envelope Meta delivers it in.
pub fn bodies(product: &str, value: Value) -> Vec<Value> {
    let object = match product {
        "whatsapp" => "whatsapp_business_account",
        "messenger" => "page",
        _ => "instagram",
    };
    let is = |key: &str| value.get(key).is_some();
    match &value {
        Value::Array(items) => items
            .iter()
            .flat_map(|v| bodies(product, v.clone()))
            .collect(),
        _ if is("object") => vec![value],
        _ if is("messaging") || is("standby") || is("changes") || is("calls") => {
            vec![json!({"object": object, "entry": [value]})]
        }
        _ if is("field") => {
            vec![
                json!({"object": object, "entry": [{"id": "PAGE_ID", "time": 1, "changes": [value]}]}),
            ]
        }
        _ => vec![
            json!({"object": object, "entry": [{"id": "PAGE_ID", "time": 1, "messaging": [value]}]}),
        ],
    }
}

#[test]
fn every_documented_shape_is_a_signal_or_ignored_by_name_and_never_dead_lettered() {
    let all = documented();
    assert!(all.len() >= 140, "{} documented examples", all.len());
    for (product, conversation) in CONVERSATION_KINDS {
        assert!(
            all.iter()
                .any(|d| d.product == product && conversation.contains(&d.kind.as_str())),
            "{product} has conversation examples"
        );
    }
    for doc in &all {
        let conversation = CONVERSATION_KINDS
            .iter()
            .find(|(p, _)| *p == doc.product)
            .is_some_and(|(_, kinds)| kinds.contains(&doc.kind.as_str()));
        let (mut signals, mut named) = (0, 0);
        for body in &doc.bodies {
            let split = split(&serde_json::to_vec(body).unwrap())
                .unwrap_or_else(|e| panic!("{}: refused: {e}", doc.name));
            assert!(
                split.rejected.is_empty(),
                "{}: {:?}",
                doc.name,
                split.rejected
            );
            signals += split.signals.len();
            named += split.ignored_of(&doc.kind);
        }
        if conversation {
            assert!(signals >= 1, "{}: no signal", doc.name);
        } else {
            assert_eq!(signals, 0, "{}: a signal", doc.name);
            assert!(named >= 1, "{}: not counted as {}", doc.name, doc.kind);
        }
    }
}
