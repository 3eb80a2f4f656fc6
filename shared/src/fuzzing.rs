//! The logic of the fuzz targets (`fuzz/`, cargo-fuzz): each feeds arbitrary bytes to one of the
//! parsers that read what the internet sends, and checks what must hold whatever the bytes. A
//! broken invariant is returned as an error, never a panic here: the fuzz targets panic on it
//! (that is how libFuzzer learns of it), and the test suite runs the same functions over every
//! input the fuzzers found (`tests/fixtures/fuzz/<target>/`), so each stays a regression test
//! on stable Rust without the fuzz crate.

use secrecy::SecretString;

use crate::business;
use crate::channels::split;
use crate::signal::Signal;
use crate::signature;

/// The "now" the targets run at (inside the sample webhooks' 7-day window).
pub const NOW: i64 = 1_750_100_000;

/// The key the signature target signs with (long enough to be a usable key).
pub const KEY: &str = "fuzz-signing-key-0123456789";

/// A signal written to the queue and read back, as the dispatcher reads it.
fn round_trip(signal: &Signal) -> Result<(), String> {
    let text =
        serde_json::to_string(signal).map_err(|e| format!("a signal does not serialise: {e}"))?;
    let back: Signal = serde_json::from_str(&text).map_err(|e| {
        format!(
            "a signal does not read back: {}",
            crate::redact::safe_json_error(&e)
        )
    })?;
    if &back != signal {
        return Err(format!("signal {} reads back different", signal.id.len()));
    }
    Ok(())
}

/// The webhook split ([`crate::channels::split`]): whatever the body, it returns; every signal
/// reads back from the queue as written, and no two signals share a deduplication id.
pub fn split_target(data: &[u8]) -> Result<(), String> {
    let Ok(split) = split(data) else {
        return Ok(());
    };
    let mut seen = std::collections::HashSet::new();
    for signal in &split.signals {
        round_trip(signal)?;
        if !seen.insert(signal.dedup_id()) {
            return Err("two signals of one body share a deduplication id".into());
        }
    }
    Ok(())
}

/// The events parser ([`business::parse`] at [`NOW`]): whatever the body, it returns; every
/// accepted event's time lies in Meta's window ending now, and it reads back from the queue as
/// written.
pub fn events_target(data: &[u8]) -> Result<(), String> {
    let Ok(signals) = business::parse(data, NOW) else {
        return Ok(());
    };
    for signal in &signals {
        if signal.timestamp > NOW || crate::conversion::mapping::too_old(signal.timestamp, NOW) {
            return Err(format!(
                "an event was accepted at {}, outside the window ending at {NOW}",
                signal.timestamp
            ));
        }
        round_trip(signal)?;
    }
    Ok(())
}

/// The signature headers. `data` is `<X-Wacapi-Timestamp>\n<signature header>\n<body>`: the
/// events check ([`business::verify`]) and Meta's (`X-Hub-Signature-256`, [`signature::verify`])
/// must return whatever the headers; and a request signed with the key at the given timestamp
/// must pass the events check exactly when that timestamp is within
/// [`business::MAX_CLOCK_SKEW_SECONDS`] of now (a wrapped subtraction let one through).
pub fn signature_target(data: &[u8]) -> Result<(), String> {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let timestamp = parts.next().unwrap_or_default();
    let header = parts.next().unwrap_or_default();
    let body = parts.next().unwrap_or_default();
    let keys = [SecretString::from(KEY.to_owned())];
    let _ = business::verify(Some(timestamp), Some(header), body, &keys, NOW);
    let _ = signature::verify(Some(header), KEY.as_bytes(), body);
    let _ = signature::ClaimedSignature::from_headers(&[header, timestamp]);
    let Some(ts) = std::str::from_utf8(timestamp)
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
    else {
        return Ok(());
    };
    let signed = business::sign(KEY.as_bytes(), ts, body);
    let verdict = business::verify(Some(timestamp), Some(signed.as_bytes()), body, &keys, NOW);
    let fresh = NOW.abs_diff(ts) <= business::MAX_CLOCK_SKEW_SECONDS.unsigned_abs();
    // `sign` writes the timestamp as i64 text; a header that wrote it otherwise (`+5`, `05`)
    // is another signed text, so only the canonical form must verify.
    let canonical = std::str::from_utf8(timestamp).is_ok_and(|t| t.trim() == ts.to_string());
    match (verdict, fresh) {
        (Ok(()), false) => Err(format!(
            "a request signed at {ts} passed the window at {NOW}"
        )),
        (Err(e), true) if canonical => Err(format!("a fresh signed request was refused: {e}")),
        _ => Ok(()),
    }
}
