//! Criterion benchmarks of the hot paths: verify+parse+split (and queue message building) of
//! webhook bodies (and of one value crowded with a million contacts), the bare floor (HMAC-SHA256 + a `serde_json` parse of the same bytes),
//! normalise+hash per user record, mapping per signal, CAPI request serialisation, and the
//! dispatcher core on one SQS batch of 10 records (in-memory store; the Graph request is only
//! serialised, not sent).
//!
//! Run: `cargo bench -p wacapi-shared --bench ingest` (results in target/criterion).

#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use wacapi_shared::channels::split;
use wacapi_shared::conversion::attribution::attributed_click;
use wacapi_shared::conversion::clicks::{Click, MemoryClickStore};
use wacapi_shared::conversion::mapping::{Outcome, map_signal};
use wacapi_shared::conversion::pipeline::batch_requests;
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::delivery::{Answer, DeliveryError, Outbound, Target};
use wacapi_shared::destinations::Destinations;
use wacapi_shared::dispatch::{DispatchSettings, Dispatcher, InboundRecord};
use wacapi_shared::ingest::signal_messages;
use wacapi_shared::meta::graph::GraphSender;
use wacapi_shared::metrics::Metrics;
use wacapi_shared::queue::MemoryQueue;
use wacapi_shared::signature::{ClaimedSignature, sign};
use wacapi_shared::store::MemoryStore;
use wacapi_shared::values::hashing::{UserDataKey, hash, normalize, sha256_hex};

const SECRET: &[u8] = b"bench-app-secret";
const NOW: i64 = 1_750_100_000;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A body of `n` text messages of `text_len` characters from distinct users, one message per
/// change (as Meta batches them) across 10 entries, each contact with phone and BSUID.
fn bulk(n: usize, text_len: usize) -> Vec<u8> {
    let text = "x".repeat(text_len);
    let entries: Vec<Value> = (0..10)
        .map(|e| {
            let per = n / 10;
            let changes: Vec<Value> = (0..per)
                .map(|i| {
                    let k = e * per + i;
                    let phone = format!("1555{k:07}");
                    json!({"field": "messages", "value": {"messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                        "contacts": [{"profile": {"name": "User"}, "wa_id": phone, "user_id": format!("US.{k:020}")}],
                        "messages": [{"from": phone, "from_user_id": format!("US.{k:020}"),
                            "id": format!("wamid.bulk{k:06}"), "timestamp": (1_750_095_000 + k).to_string(),
                            "type": "text", "text": {"body": text}}]}})
                })
                .collect();
            json!({"id": "102290129340398", "changes": changes})
        })
        .collect();
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": entries})).unwrap()
}

fn verify_parse_split(header: &[u8], body: &[u8]) -> usize {
    ClaimedSignature::parse(Some(header))
        .and_then(|c| c.verify(SECRET, body))
        .expect("valid");
    let split = split(body).expect("parses");
    signal_messages(&split).expect("serialises").len()
}

fn floor(body: &[u8]) -> Value {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
    mac.update(body);
    black_box(mac.finalize());
    serde_json::from_slice(body).unwrap()
}

/// Writes the inputs where the peer scripts (bench/peers) read them: the same bytes both sides.
fn export_inputs(large: &[u8]) {
    let dir = repo().join("target/bench-inputs");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("1000_messages_3mb.json"), large).unwrap();
}

fn ingest(c: &mut Criterion) {
    let small = std::fs::read(repo().join("examples/webhooks/01-text-from-ctwa-ad.json")).unwrap();
    let large = bulk(1000, 2900);
    export_inputs(&large);
    let mut group = c.benchmark_group("ingest");
    for (name, body) in [("sample_2kb", &small), ("1000_messages_3mb", &large)] {
        let header = sign(SECRET, body);
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("verify_parse_split", name),
            body,
            |b, body| b.iter(|| verify_parse_split(header.as_bytes(), black_box(body))),
        );
        group.bench_with_input(
            BenchmarkId::new("floor_hmac_plus_json", name),
            body,
            |b, body| b.iter(|| floor(black_box(body))),
        );
    }
    group.finish();
}

/// A body of `filler` empty contacts, then `n` contacts with a phone and a BSUID, and `n`
/// messages from them (half by phone, half by BSUID), each sender near the end of the list:
/// the shape that took minutes while each message scanned every contact (issue 23).
fn crowded(filler: usize, n: usize) -> Vec<u8> {
    let mut body = String::from(
        r#"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"106540352242922"},"contacts":["#,
    );
    body.push_str(&vec!["{}"; filler].join(","));
    for i in 0..n {
        body.push_str(&format!(
            r#",{{"wa_id":"1650{i:07}","user_id":"US.{i:020}"}}"#
        ));
    }
    body.push_str(r#"],"messages":["#);
    let messages: Vec<String> = (0..n)
        .map(|i| {
            let from = if i % 2 == 0 {
                format!(r#""from":"1650{i:07}""#)
            } else {
                format!(r#""from_user_id":"US.{i:020}""#)
            };
            format!(r#"{{{from},"id":"wamid.crowd{i}","timestamp":"1750096325","type":"text"}}"#)
        })
        .collect();
    body.push_str(&messages.join(","));
    body.push_str("]}}]}]}");
    body.into_bytes()
}

/// The split of one value holding a million contacts and 30,000 messages (linear since each
/// value's contacts are indexed once).
fn crowded_contacts(c: &mut Criterion) {
    let body = crowded(1_000_000, 30_000);
    let mut group = c.benchmark_group("split_crowded");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("1m_contacts_30k_messages", |b| {
        b.iter(|| split(black_box(&body)).expect("parses").signals.len())
    });
    group.finish();
}

fn hashing(c: &mut Criterion) {
    let record = [
        (UserDataKey::Ph, "+1 (650) 555-1234"),
        (UserDataKey::Em, " Sheena.Nelson@Example.com "),
        (UserDataKey::Fn, "Sheena"),
        (UserDataKey::Ln, "Nelson"),
        (UserDataKey::Ct, "Menlo Park"),
        (UserDataKey::Zp, "94025-1234"),
    ];
    let mut group = c.benchmark_group("hashing");
    group.throughput(Throughput::Elements(1));
    group.bench_function("normalise_hash_user_record", |b| {
        b.iter(|| {
            for (key, value) in &record {
                black_box(hash(*key, black_box(value)).unwrap());
            }
        })
    });
    // The floor: only the six SHA-256 hex digests of the already normalised values.
    let normalised: Vec<String> = record
        .iter()
        .map(|(key, value)| normalize(*key, value).unwrap())
        .collect();
    group.bench_function("floor_sha256_hex_6_values", |b| {
        b.iter(|| {
            for value in &normalised {
                black_box(sha256_hex(black_box(value.as_bytes())));
            }
        })
    });
    group.finish();
}

fn mapping(c: &mut Criterion) {
    let config =
        Config::from_toml(&std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap())
            .unwrap();
    let order = split(&std::fs::read(repo().join("examples/webhooks/02-order.json")).unwrap())
        .unwrap()
        .signals
        .remove(0);
    let flow =
        split(&std::fs::read(repo().join("examples/webhooks/04-flow-lead-form.json")).unwrap())
            .unwrap()
            .signals
            .remove(0);
    let click = Click {
        ctwa_clid: Some("Aff-n8ZTODiE79d22KtAwQKj9e".into()),
        ad_id: Some("1".into()),
        clicked_at: NOW - 3600,
        channel: Default::default(),
        destination: Default::default(),
    };
    let _ = MemoryClickStore::new();
    let mut group = c.benchmark_group("mapping");
    group.throughput(Throughput::Elements(1));
    for (name, signal) in [("order_signal", &order), ("flow_signal", &flow)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let click = attributed_click(&config, signal, Some(&click));
                black_box(map_signal(&config, black_box(signal), click.as_ref(), NOW))
            })
        });
    }
    group.finish();

    let mapped = match map_signal(&config, &order, Some(&click), NOW).remove(0) {
        Outcome::Event(e) => *e,
        other => panic!("{other:?}"),
    };
    let mut group = c.benchmark_group("capi_serialise");
    for n in [1usize, 1000] {
        let events: Vec<_> = (0..n).map(|_| mapped.clone()).collect();
        let request = batch_requests(events).remove(0);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| black_box(&request).body().unwrap())
        });
    }
    group.finish();
}

/// A Graph API that takes every request after serialising it (as the real client does).
struct SerialisingGraph;

impl GraphSender for SerialisingGraph {
    async fn send(&self, target: &Target, events: &[&Outbound]) -> Result<Answer, DeliveryError> {
        let body = target.body(events).map_err(|e| DeliveryError {
            message: e.to_string(),
            transport: true,
            ..DeliveryError::default()
        })?;
        black_box(body);
        // Meta's answer names how many events it received; the dispatcher checks it.
        Ok(Answer {
            received: Some(events.len() as u64),
            ..Answer::default()
        })
    }
}

/// Five users, each an ad-click message then a button press: an SQS batch of 10 records.
fn ten_records() -> Vec<InboundRecord> {
    let mut messages = Vec::new();
    for u in 0..5 {
        let phone = format!("1556000{u:04}");
        messages.push(json!({"from": phone, "id": format!("wamid.b{u}.1"),
            "timestamp": (NOW - 120).to_string(), "type": "text", "text": {"body": "hi"},
            "referral": {"source_id": "ad-1", "source_type": "ad", "ctwa_clid": format!("clid-{u}")}}));
        messages.push(json!({"from": phone, "id": format!("wamid.b{u}.2"),
            "timestamp": (NOW - 60).to_string(), "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "confirm-order", "title": "OK"}}}));
    }
    let body = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"phone_number_id": "1"}, "messages": messages}}]}]});
    split(&serde_json::to_vec(&body).unwrap())
        .unwrap()
        .signals
        .iter()
        .enumerate()
        .map(|(i, s)| InboundRecord {
            message_id: format!("m{i}"),
            group_id: Some(s.group_id()),
            body: serde_json::to_string(s).unwrap(),
            attributes: Default::default(),
        })
        .collect()
}

fn dispatch(c: &mut Criterion) {
    let config =
        Config::from_toml(&std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap())
            .unwrap();
    let records = ten_records();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("dispatch");
    group.throughput(Throughput::Elements(records.len() as u64));
    group.bench_function("batch_of_10_in_memory", |b| {
        b.iter_batched(
            // A fresh store each time, so every batch claims and sends its 10 events.
            || {
                Dispatcher::new(
                    config.clone(),
                    MemoryStore::new(),
                    Destinations::new(SerialisingGraph),
                    MemoryQueue::new(),
                    DispatchSettings::default(),
                )
            },
            |dispatcher| {
                let report = rt.block_on(async {
                    let mut metrics = Metrics::new("wacapi", "bench");
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
                    dispatcher
                        .dispatch(&records, NOW, deadline, &mut metrics)
                        .await
                });
                assert_eq!(report.events_sent, 10);
                dispatcher
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(
    benches,
    ingest,
    crowded_contacts,
    hashing,
    mapping,
    dispatch
);
criterion_main!(benches);
