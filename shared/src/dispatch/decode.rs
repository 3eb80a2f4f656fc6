//! The decode step: a queue record is a signal, or a quarantined webhook body or item redriven
//! from the dead-letter queue; what cannot be read is bound for the dead-letter queue.

use base64::Engine;

use super::InboundRecord;
use super::record::DeadLetter;
use crate::channels::split;
use crate::channels::whatsapp::signal_from_item;
use crate::ingest::attributes;
use crate::redact::safe_json_error;
use crate::signal::{SIGNAL_VERSION, Signal};

/// Reads a record: a signal, or a quarantined webhook body or item redriven from the DLQ.
pub(super) fn decode(record: &InboundRecord) -> Result<Vec<Signal>, DeadLetter> {
    let kind = record.attributes.get(attributes::KIND).map(String::as_str);
    let raw = || -> Result<String, DeadLetter> {
        match record
            .attributes
            .get(attributes::ENCODING)
            .map(String::as_str)
        {
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(&record.body)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(DeadLetter {
                    reason: "not_an_envelope",
                    detail: "redriven body is not UTF-8 JSON".into(),
                    extra: vec![],
                }),
            _ => Ok(record.body.clone()),
        }
    };
    match kind {
        Some(crate::ingest::DIGEST_KIND) => Err(DeadLetter {
            reason: "digest_only",
            detail: "only a digest of this part was kept (it was too large for a queue message): there is nothing to process".into(),
            extra: vec![],
        }),
        Some("webhook_body") => {
            let body = raw()?;
            let split = split(body.as_bytes()).map_err(|e| DeadLetter {
                reason: e.label(),
                detail: e.to_string(),
                extra: vec![],
            })?;
            if let Some(rejected) = split.rejected.first() {
                return Err(DeadLetter {
                    reason: rejected.reason.label(),
                    detail: rejected.reason.to_string(),
                    extra: vec![],
                });
            }
            Ok(split.signals)
        }
        Some("webhook_item") => {
            let account = attributes::account_id(&record.attributes).unwrap_or_default();
            // What the item was (absent on items quarantined before the attribute existed).
            let item_kind = record
                .attributes
                .get(attributes::ITEM_KIND)
                .and_then(|k| crate::signal::ItemKind::from_label(k));
            signal_from_item(account, &raw()?, item_kind)
                .map(|s| vec![s])
                .map_err(|e| DeadLetter {
                    reason: e.label(),
                    detail: e.to_string(),
                    extra: vec![],
                })
        }
        _ => {
            let signal: Signal = serde_json::from_str(&record.body).map_err(|e| DeadLetter {
                reason: "undecodable_signal",
                detail: safe_json_error(&e),
                extra: vec![],
            })?;
            if signal.v != SIGNAL_VERSION {
                return Err(DeadLetter {
                    reason: "unsupported_signal_version",
                    detail: format!("signal version {} is not {SIGNAL_VERSION}", signal.v),
                    extra: vec![],
                });
            }
            Ok(vec![signal])
        }
    }
}
