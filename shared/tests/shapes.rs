//! The class of input, not only the fixtures: every sample, real-world shape and documented
//! example body (Meta's own, `tests/fixtures/documented`), with each of its values in turn
//! replaced by `null`, a string, a number, an object, a list or a formatted price (one change
//! at a time), goes through the splitter and the mapping.
//!
//! What must hold for every such body:
//! - the splitter answers (no panic) and quarantines at most the one part that changed;
//! - a changed value that is not one a message cannot do without (its id or timestamp, an
//!   entry's account id, a change's field; on Messenger and Instagram the sender and an ad
//!   referral's ad id and source) costs nothing: no quarantine, every signal kept;
//! - every signal reads back exactly as the dispatcher reads it (nothing acknowledged can be
//!   dead-lettered as undecodable);
//! - mapping answers, and every event it builds carries a finite, non-negative value and, for a
//!   Purchase, a value and an ISO currency.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::path::PathBuf;

use serde_json::{Value, json};
use wacapi_shared::channels::split;
use wacapi_shared::conversion::clicks::MemoryClickStore;
use wacapi_shared::conversion::mapping::Outcome;
use wacapi_shared::conversion::pipeline::Processor;
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::meta::capi::EventName;
use wacapi_shared::model::Destination;
use wacapi_shared::signal::Signal;
use wacapi_shared::values::money::is_currency_code;

const NOW: i64 = 1_750_100_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn bodies() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for dir in [
        "examples/webhooks",
        "examples/webhooks/messenger",
        "examples/webhooks/instagram",
        "examples/webhooks/tiktok",
        "tests/fixtures/shapes",
        "tests/fixtures/channels",
        "tests/fixtures/standby",
    ] {
        let mut files: Vec<_> = std::fs::read_dir(repo().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        for p in files {
            let value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
            out.push((p.display().to_string(), value));
        }
    }
    // Meta's own examples, each in the envelope it is delivered in.
    for doc in crate::documented::documented() {
        for (i, body) in doc.bodies.into_iter().enumerate() {
            out.push((format!("{}#{i}", doc.name), body));
        }
    }
    assert!(
        out.len() >= 31 + 140,
        "samples, shapes and documented examples found"
    );
    out
}

/// Paths (object keys and list indexes) of every value below the root, except `object`.
fn paths(value: &Value, at: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    let children: Vec<(Step, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (Step::Key(k.clone()), v)).collect(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| (Step::Index(i), v))
            .collect(),
        _ => return,
    };
    for (step, child) in children {
        at.push(step);
        if at.as_slice() != [Step::Key("object".into())] {
            out.push(at.clone());
        }
        paths(child, at, out);
        at.pop();
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn replaced(body: &Value, path: &[Step], with: &Value) -> Value {
    let mut out = body.clone();
    let mut at = &mut out;
    for step in path {
        at = match step {
            Step::Key(k) => &mut at[k.as_str()],
            Step::Index(i) => &mut at[*i],
        };
    }
    *at = with.clone();
    out
}

/// Values a message cannot do without, and the parts themselves: changing them may cost that
/// one part.
fn is_required(path: &[Step]) -> bool {
    let keys: Vec<&str> = path
        .iter()
        .map(|s| match s {
            Step::Key(k) => k.as_str(),
            Step::Index(_) => "#",
        })
        .collect();
    matches!(
        keys.as_slice(),
        ["entry", "#"]
            | ["entry", "#", "id"]
            | ["entry", "#", "changes", "#"]
            | ["entry", "#", "changes", "#", "field" | "value"]
            | [.., "messages" | "automatic_events", "#"]
            | [.., "messages", "#", "id" | "timestamp"]
            // Messenger and Instagram: an item is a conversion moment only from a person
            // (`sender.id`) at a time, and a bare referral only when it is an ad's.
            | ["entry", "#", "messaging" | "standby", "#"]
            | [.., "messaging" | "standby" | "value", "timestamp"]
            | [.., "messaging" | "standby", "#", "timestamp"]
            | [.., "sender", "id"]
            | [.., "referral", "ad_id" | "source"]
            | [
                ..,
                "automatic_events",
                "#",
                "id" | "timestamp" | "event_name"
            ]
    )
}

fn config() -> Config {
    let text = std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap();
    Config::from_toml(&text).unwrap()
}

#[tokio::test]
async fn one_changed_value_never_costs_more_than_its_part() {
    let config = config();
    let replacements = [
        Value::Null,
        json!(""),
        json!("x"),
        json!(12345),
        json!(-1.5),
        json!({}),
        json!([]),
        json!(true),
        json!("1,299.00"),
        json!(1e300),
    ];
    let mut cases = 0;
    for (name, body) in bodies() {
        let original = split(&serde_json::to_vec(&body).unwrap()).unwrap();
        let bad = original.rejected.len();
        let mut all = Vec::new();
        paths(&body, &mut Vec::new(), &mut all);
        for path in all {
            let old = {
                let mut at = &body;
                for step in &path {
                    at = match step {
                        Step::Key(k) => &at[k.as_str()],
                        Step::Index(i) => &at[*i],
                    };
                }
                at.clone()
            };
            for with in &replacements {
                cases += 1;
                let mutated = replaced(&body, &path, with);
                let bytes = serde_json::to_vec(&mutated).unwrap();
                let split = match split(&bytes) {
                    Ok(split) => split,
                    // `entry` itself is the whole body's content: refused, it is quarantined
                    // whole (and acknowledged), which is its part.
                    Err(_) if path == [Step::Key("entry".into())] => continue,
                    Err(e) => panic!("{name} {path:?} = {with}: whole body refused: {e}"),
                };
                let what = || format!("{name} {path:?} = {with}");
                assert!(
                    split.rejected.len() <= bad + 1,
                    "{}: {:?}",
                    what(),
                    split.rejected
                );
                let leaf = !old.is_object() && !old.is_array();
                if leaf && !is_required(&path) {
                    assert!(
                        split.rejected.len() <= bad,
                        "{}: {:?}",
                        what(),
                        split.rejected
                    );
                    assert!(split.signals.len() >= original.signals.len(), "{}", what());
                }
                for signal in &split.signals {
                    let text = serde_json::to_string(signal).unwrap();
                    let back: Signal = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{}: signal unreadable: {e}", what()));
                    assert_eq!(&back, signal, "{}", what());
                }
                let store = MemoryClickStore::new();
                let processor = Processor::new(&config, &store);
                for signal in &split.signals {
                    for outcome in processor.process(signal, NOW).await.unwrap() {
                        let Outcome::Event(mapped) = outcome else {
                            continue;
                        };
                        // Value and currency as the destination receives them.
                        let sent = mapped.event.to_value();
                        let data = match mapped.event.destination() {
                            Destination::Meta => &sent["custom_data"],
                            Destination::TikTok => &sent["properties"],
                        };
                        let value = data["value"].as_f64();
                        let currency = data["currency"].as_str().map(str::to_owned);
                        assert_eq!(
                            (value, currency.as_deref()),
                            mapped.event.value(),
                            "{}: the value the report counts is the value sent",
                            what()
                        );
                        if let Some(v) = value {
                            assert!(v.is_finite() && v >= 0.0, "{}: value {v}", what());
                        }
                        if mapped.event.event_name() == EventName::Purchase {
                            assert!(value.is_some(), "{}", what());
                            assert!(
                                currency.as_deref().is_some_and(is_currency_code),
                                "{}",
                                what()
                            );
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 5_000, "{cases} cases");
}
