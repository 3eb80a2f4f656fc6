//! The webhook ingest: the subscription handshake, the signed POST path (limit → verify → parse
//! → split → enqueue) and the business events path, behind one HTTP edge ([`Route`],
//! [`Ingest::handle`]) that the Lambda and `wacapi serve` both translate to, so they answer
//! identically.
//!
//! Outcomes of a POST:
//! - too large: 413; no or malformed signature: 401; wrong signature: 403. Nothing is queued.
//! - signed but not a webhook: its raw bytes go to the dead-letter queue, 200 (a retry would
//!   not help); if it cannot fit in a queue message, only its digest (SHA-256, size, reason) is
//!   kept, 200: Meta's retries for seven days could not make it fit either.
//! - signed webhook: every signal queued (signals are bounded: long texts and Flow fields are
//!   cut, see [`crate::channels::whatsapp::MAX_TEXT_CHARS`]), every bad part dead-lettered, then 200; any
//!   queue failure answers 500 so Meta retries (the FIFO dedup id makes the retry harmless); a
//!   full queue (`wacapi serve`'s bounded backlog) answers 503 with `Retry-After`.
//! - two `X-Hub-Signature-256` headers: 401, like a malformed one.

mod edge;
mod enqueue;

pub use edge::Route;

use base64::Engine;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use serde_json::json;

use crate::business::{self, EventAuthError, EventKeys, EventsError};
use crate::channels::split;
use crate::metrics::{Metrics, names};
use crate::queue::{MAX_MESSAGE_BYTES, MessageSink, OutboundMessage, QueueError};
use crate::secrets::{CachedSecret, SecretSource, WebhookSecrets};
use crate::signal::{SignalEvent, Split};
use crate::signature::{ClaimedSignature, SignatureError};
use crate::values::hashing::sha256_hex;

/// Meta sends at most 3 MB; a margin above that, anything larger is refused with 413.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The longest `hub.challenge` echoed back.
const MAX_CHALLENGE_LEN: usize = 512;

/// Message attribute names on dead-lettered items (read by operators and the redrive path).
pub mod attributes {
    /// `webhook_body` (a whole signed body) or `webhook_item` (one message or event).
    pub const KIND: &str = "wacapi_kind";
    /// A short reason label.
    pub const REASON: &str = "wacapi_reason";
    /// A longer explanation, free of personal data.
    pub const DETAIL: &str = "wacapi_detail";
    /// `utf-8` or `base64`: how the body holds the raw bytes.
    pub const ENCODING: &str = "wacapi_encoding";
    /// The account (WABA, Page or Instagram account) the item came under, when known.
    pub const ACCOUNT_ID: &str = "wacapi_account_id";
    /// The same, under its earlier name: items dead-lettered before the rename carry it, and a
    /// redrive reads either ([`account_id`]).
    pub const WABA_ID: &str = "wacapi_waba_id";

    /// The account a dead-lettered item came under, under either name.
    pub fn account_id(attributes: &std::collections::HashMap<String, String>) -> Option<&str> {
        attributes
            .get(ACCOUNT_ID)
            .or_else(|| attributes.get(WABA_ID))
            .map(String::as_str)
    }
    /// On a `webhook_item`: `message` or `automatic_event`, what the item was in its webhook, so
    /// a redrive reads it as that (items quarantined before this attribute have none).
    pub const ITEM_KIND: &str = "wacapi_item_kind";
}

/// An HTTP answer: status, content type and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status code.
    pub status: u16,
    /// `text/plain; charset=utf-8` or `application/json`.
    pub content_type: &'static str,
    /// The body.
    pub body: String,
    /// Seconds for a `Retry-After` header (a 503 when the queue is full).
    pub retry_after: Option<u32>,
}

impl Reply {
    /// A plain-text answer.
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
            retry_after: None,
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json",
            body: body.to_string(),
            retry_after: None,
        }
    }

    /// The same answer with a `Retry-After` of `seconds`.
    pub fn with_retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

/// The `Retry-After` of a 503 answered when the queue is full: Meta retries a webhook on its
/// own schedule whatever it says; a CRM posting events may wait this long.
pub const FULL_RETRY_AFTER_SECONDS: u32 = 30;

/// Largest `POST /events` body: 100 events with generous custom data.
pub const MAX_EVENTS_BODY_BYTES: usize = 512 * 1024;

/// Why ingest could not accept a webhook; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Body above [`MAX_BODY_BYTES`].
    #[error("body of {0} bytes exceeds the {MAX_BODY_BYTES}-byte limit")]
    TooLarge(usize),
    /// Signature missing, malformed or wrong.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// Secrets could not be loaded.
    #[error(transparent)]
    Secret(#[from] crate::secrets::SecretError),
    /// A queue refused what had to be queued.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl IngestError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::TooLarge(_) => 413,
            Self::Signature(SignatureError::Missing | SignatureError::Malformed) => 401,
            Self::Signature(SignatureError::Mismatch) => 403,
            Self::Queue(QueueError::Full(_)) => 503,
            Self::Secret(_) | Self::Queue(_) => 500,
        }
    }
}

/// What an accepted webhook became.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepted {
    /// Signals queued.
    pub signals: usize,
    /// Items (or the whole body) dead-lettered.
    pub quarantined: usize,
}

/// The ingest: secrets, the signal queue and the dead-letter queue.
#[derive(Debug)]
pub struct Ingest<S, Q, D> {
    secrets: CachedSecret<WebhookSecrets, S>,
    event_keys: Option<CachedSecret<EventKeys, S>>,
    signals: Q,
    dead_letters: D,
}

impl<S: SecretSource, Q: MessageSink, D: MessageSink> Ingest<S, Q, D> {
    /// Wires the ingest.
    pub fn new(secrets: CachedSecret<WebhookSecrets, S>, signals: Q, dead_letters: D) -> Self {
        Self {
            secrets,
            event_keys: None,
            signals,
            dead_letters,
        }
    }

    /// Enables `POST /events`, authenticated with the keys of this secret.
    pub fn with_event_keys(mut self, keys: CachedSecret<EventKeys, S>) -> Self {
        self.event_keys = Some(keys);
        self
    }

    /// Handles `POST /events`: authenticate, validate every item (all or nothing), enqueue.
    /// `timestamps` and `signatures` hold every `X-Wacapi-Timestamp` and `X-Wacapi-Signature`
    /// value the request carries (two of either is 401, as two `X-Hub-Signature-256` are on
    /// `/webhook`). `now` is unix seconds, for the timestamp window and the 7-day check.
    pub async fn receive_events(
        &self,
        timestamps: &[&[u8]],
        signatures: &[&[u8]],
        body: &[u8],
        now: i64,
        metrics: &mut Metrics,
    ) -> Reply {
        metrics.count(names::BUSINESS_REQUESTS, 1);
        let error = |status, message: String| Reply::json(status, &json!({ "error": message }));
        let Some(keys) = &self.event_keys else {
            return error(
                404,
                "business events are not enabled on this deployment".into(),
            );
        };
        if body.len() > MAX_EVENTS_BODY_BYTES {
            return error(413, format!("body exceeds {MAX_EVENTS_BODY_BYTES} bytes"));
        }
        if let Err(refused) =
            authenticate_events(keys, timestamps, signatures, body, now, metrics).await
        {
            return refused;
        }
        let signals = match business::parse(body, now) {
            Ok(signals) => signals,
            Err(EventsError::Items(items)) => {
                metrics.count_by(
                    names::BUSINESS_EVENTS_REJECTED,
                    "Reason",
                    "invalid",
                    items.len() as u64,
                );
                return Reply::json(
                    400,
                    &json!({"error": format!("{} invalid event(s); none was queued", items.len()), "errors": items}),
                );
            }
            Err(err) => {
                metrics.count_by(names::BUSINESS_EVENTS_REJECTED, "Reason", "bad_body", 1);
                return error(400, err.to_string());
            }
        };
        let split = Split {
            signals,
            ..Split::default()
        };
        let messages = match signal_messages(&split) {
            Ok(m) => m,
            Err(err) => return error(500, err.to_string()),
        };
        if let Err(err) = self.signals.send_all(messages).await {
            metrics.count(names::ENQUEUE_FAILURES, 1);
            if let QueueError::Full(why) = &err {
                tracing::warn!(reason = %why, "business events not queued: the queue is full");
                return error(
                    503,
                    "the queue is full; retry later with the same idempotency keys".into(),
                )
                .with_retry_after(FULL_RETRY_AFTER_SECONDS);
            }
            tracing::error!(error = %err, "business events not queued; the caller should retry");
            return error(
                500,
                "events could not be queued; retry with the same idempotency keys".into(),
            );
        }
        metrics.count(names::BUSINESS_EVENTS_QUEUED, split.signals.len() as u64);
        let results: Vec<_> = split
            .signals
            .iter()
            .enumerate()
            .map(|(index, s)| {
                let key = match &s.event {
                    SignalEvent::Business {
                        idempotency_key, ..
                    } => idempotency_key.as_str(),
                    _ => "",
                };
                json!({"index": index, "idempotency_key": key, "status": "queued"})
            })
            .collect();
        tracing::info!(events = results.len(), "business events queued");
        Reply::json(200, &json!({"accepted": results.len(), "results": results}))
    }

    /// Answers Meta's `GET` subscription handshake: 200 with the raw `hub.challenge` when
    /// `hub.mode=subscribe` and `hub.verify_token` matches; 400 without a challenge; 403 else.
    pub async fn handshake(&self, query: Option<&str>, metrics: &mut Metrics) -> Reply {
        let (mut mode, mut token, mut challenge) = (None, None, None);
        for (k, v) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match k.as_ref() {
                "hub.mode" => mode = Some(v),
                "hub.verify_token" => token = Some(v),
                "hub.challenge" => challenge = Some(v),
                _ => {}
            }
        }
        let outcome =
            |m: &mut Metrics, o: &'static str| m.count_by(names::HANDSHAKES, "Outcome", o, 1);
        let Some(challenge) = challenge.filter(|c| !c.is_empty() && c.len() <= MAX_CHALLENGE_LEN)
        else {
            outcome(metrics, "bad_request");
            return Reply::new(400, "missing hub.challenge");
        };
        if mode.as_deref() != Some("subscribe") {
            outcome(metrics, "wrong_mode");
            return Reply::new(403, "forbidden");
        }
        let secrets = match self.secrets.get().await {
            Ok(s) => s,
            Err(err) => {
                tracing::error!(error = %err, "webhook secret unavailable for the handshake");
                metrics.count(names::SECRET_ERRORS, 1);
                return Reply::new(500, "secret unavailable");
            }
        };
        let expected = secrets.verify_token.expose_secret().as_bytes();
        let given = token.as_deref().unwrap_or_default().as_bytes();
        if !bool::from(expected.ct_eq(given)) || expected.is_empty() {
            outcome(metrics, "wrong_token");
            tracing::warn!("subscription handshake with a wrong verify token");
            return Reply::new(403, "forbidden");
        }
        outcome(metrics, "ok");
        tracing::info!("subscription handshake accepted");
        Reply::new(200, challenge.into_owned())
    }

    /// Handles a webhook `POST`, answering as the module documentation describes. `signatures`
    /// holds every `X-Hub-Signature-256` value the request carries.
    pub async fn receive(&self, signatures: &[&[u8]], body: &[u8], metrics: &mut Metrics) -> Reply {
        metrics.count(names::WEBHOOKS_RECEIVED, 1);
        match self.accept(signatures, body, metrics).await {
            Ok(accepted) => Reply::new(
                200,
                format!(
                    "accepted {} signal(s), quarantined {}",
                    accepted.signals, accepted.quarantined
                ),
            ),
            Err(err) => {
                match &err {
                    IngestError::TooLarge(_) => metrics.count(names::BODIES_TOO_LARGE, 1),
                    IngestError::Signature(e) => {
                        metrics.count_by(names::SIGNATURE_FAILURES, "Reason", e.reason(), 1)
                    }
                    IngestError::Secret(_) => metrics.count(names::SECRET_ERRORS, 1),
                    IngestError::Queue(QueueError::TooLarge { .. }) => {
                        metrics.count(names::QUARANTINE_TOO_LARGE, 1)
                    }
                    IngestError::Queue(_) => metrics.count(names::ENQUEUE_FAILURES, 1),
                }
                let status = err.status();
                if status == 503 {
                    tracing::warn!(error = %err, status, "webhook not accepted: the queue is full; Meta will retry");
                    return Reply::new(status, err.to_string())
                        .with_retry_after(FULL_RETRY_AFTER_SECONDS);
                }
                if status >= 500 {
                    tracing::error!(error = %err, status, "webhook not accepted; Meta will retry");
                } else {
                    tracing::warn!(error = %err, status, "webhook refused");
                }
                Reply::new(status, err.to_string())
            }
        }
    }

    /// The POST path as a `Result`, for callers that want the typed outcome.
    pub async fn accept(
        &self,
        signatures: &[&[u8]],
        body: &[u8],
        metrics: &mut Metrics,
    ) -> Result<Accepted, IngestError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(IngestError::TooLarge(body.len()));
        }
        let claimed = ClaimedSignature::from_headers(signatures)?;
        self.verify(&claimed, body).await?;

        let split = match split(body) {
            Ok(split) => split,
            Err(err) => {
                let (reason, detail) = (err.label(), err.to_string());
                let message = self.fit(
                    quarantine_message(body, "webhook_body", reason, &detail, None),
                    metrics,
                );
                self.dead_letters.send_all(vec![message]).await?;
                metrics.count_by(names::BODIES_QUARANTINED, "Reason", reason, 1);
                tracing::warn!(reason, detail, "signed body quarantined");
                return Ok(Accepted {
                    signals: 0,
                    quarantined: 1,
                });
            }
        };
        self.enqueue(split, metrics).await
    }

    async fn verify(&self, claimed: &ClaimedSignature, body: &[u8]) -> Result<(), IngestError> {
        let secrets = self.secrets.get().await?;
        match claimed.verify(secrets.app_secret.expose_secret().as_bytes(), body) {
            Err(SignatureError::Mismatch) => {
                // The app secret may have been rotated since it was cached: re-read it once.
                match self.secrets.refresh().await {
                    Ok(Some(fresh)) => {
                        claimed.verify(fresh.app_secret.expose_secret().as_bytes(), body)?
                    }
                    Ok(None) => return Err(SignatureError::Mismatch.into()),
                    Err(err) => {
                        tracing::warn!(error = %err, "secret re-read after a mismatch failed");
                        return Err(SignatureError::Mismatch.into());
                    }
                }
            }
            other => other?,
        }
        Ok(())
    }
}

impl<S: SecretSource, Q: MessageSink, D: MessageSink> Ingest<S, Q, D> {
    /// A dead-letter message as it can be queued: itself when it fits a queue message, else a
    /// digest of what it held (SHA-256 and size, reason and detail kept), so a signed body too
    /// large to keep is acknowledged once, the same on every edge, instead of being retried by
    /// Meta for seven days.
    fn fit(&self, message: OutboundMessage, metrics: &mut Metrics) -> OutboundMessage {
        if message.size() <= MAX_MESSAGE_BYTES {
            return message;
        }
        metrics.count(names::QUARANTINE_TOO_LARGE, 1);
        let attr = |name: &str| {
            message
                .attributes
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let kind = attr(attributes::KIND).unwrap_or_default();
        let digest = json!({
            "digest_of": kind,
            "sha256": sha256_hex(message.body.as_bytes()),
            "bytes": message.body.len(),
        });
        tracing::warn!(kind = %kind, bytes = message.body.len(), "quarantined part too large for a queue message: only its digest is kept");
        let mut out = OutboundMessage::new(digest.to_string(), message.group_id, message.dedup_id)
            .with_attribute(attributes::KIND, DIGEST_KIND);
        for name in [
            attributes::REASON,
            attributes::WABA_ID,
            attributes::ITEM_KIND,
        ] {
            if let Some(v) = attr(name) {
                out = out.with_attribute(name, v);
            }
        }
        let detail = attr(attributes::DETAIL).unwrap_or_default();
        out.with_attribute(
            attributes::DETAIL,
            format!("too large for a queue message, only its digest is kept: {detail}")
                .chars()
                .take(512)
                .collect::<String>(),
        )
    }
}

/// Checks a `POST /events` request's timestamp and signature (one of each) against the active
/// keys, re-reading them once on a mismatch; the answer to give when it fails.
async fn authenticate_events<S: SecretSource>(
    keys: &CachedSecret<EventKeys, S>,
    timestamps: &[&[u8]],
    signatures: &[&[u8]],
    body: &[u8],
    now: i64,
    metrics: &mut Metrics,
) -> Result<(), Reply> {
    let error = |status, message: String| Reply::json(status, &json!({ "error": message }));
    let active = match keys.get().await {
        Ok(k) => k,
        Err(err) => {
            metrics.count(names::SECRET_ERRORS, 1);
            tracing::error!(error = %err, "events keys unavailable");
            return Err(error(500, "signing keys unavailable".into()));
        }
    };
    let claimed =
        business::one_header(timestamps).and_then(|t| Ok((t, business::one_header(signatures)?)));
    let mut verdict = claimed.and_then(|(t, s)| business::verify(t, s, body, &active.keys, now));
    if verdict == Err(EventAuthError::Mismatch)
        && let Ok((t, s)) = claimed
        && let Ok(Some(fresh)) = keys.refresh().await
    {
        // A key may have been added since the keys were cached.
        verdict = business::verify(t, s, body, &fresh.keys, now);
    }
    verdict.map_err(|err| {
        metrics.count_by(names::BUSINESS_AUTH_FAILURES, "Reason", err.reason(), 1);
        tracing::warn!(
            reason = err.reason(),
            "business events refused: authentication"
        );
        error(401, err.to_string())
    })
}

/// `wacapi_kind` of a dead-letter message that holds only the digest of what was quarantined.
pub const DIGEST_KIND: &str = "digest";

/// The queue messages for a split's signals: JSON body, FIFO group and deduplication ids.
pub fn signal_messages(split: &Split) -> Result<Vec<OutboundMessage>, QueueError> {
    split
        .signals
        .iter()
        .map(|signal| {
            let body = serde_json::to_string(signal)
                .map_err(|e| QueueError::Transport(format!("signal serialisation: {e}")))?;
            Ok(OutboundMessage::new(
                body,
                signal.group_id(),
                signal.dedup_id(),
            ))
        })
        .collect()
}

/// A dead-letter message holding raw bytes exactly, with the reason as attributes.
fn quarantine_message(
    raw: &[u8],
    kind: &str,
    reason: &str,
    detail: &str,
    account_id: Option<&str>,
) -> OutboundMessage {
    let (body, encoding) = match std::str::from_utf8(raw) {
        Ok(text) if text.chars().all(sqs_allows) => (text.to_owned(), "utf-8"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(raw),
            "base64",
        ),
    };
    let detail: String = detail.chars().take(512).collect();
    let mut message = OutboundMessage::new(
        body,
        sha256_hex(format!("quarantine:{}", account_id.unwrap_or_default()).as_bytes()),
        sha256_hex(raw),
    )
    .with_attribute(attributes::KIND, kind)
    .with_attribute(attributes::REASON, reason)
    .with_attribute(attributes::DETAIL, detail)
    .with_attribute(attributes::ENCODING, encoding);
    if let Some(account_id) = account_id {
        message = message.with_attribute(attributes::ACCOUNT_ID, account_id);
    }
    message
}

/// The characters an SQS message body may contain.
fn sqs_allows(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{a}' | '\u{d}' | '\u{20}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_s_account_is_read_under_its_name_or_the_earlier_one() {
        use std::collections::HashMap;
        let with = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            attributes::account_id(&with(&[(attributes::ACCOUNT_ID, "106295012345678")])),
            Some("106295012345678")
        );
        // Dead-lettered before the rename: read as before.
        assert_eq!(
            attributes::account_id(&with(&[(attributes::WABA_ID, "102290129340398")])),
            Some("102290129340398")
        );
        assert_eq!(
            attributes::account_id(&with(&[
                (attributes::WABA_ID, "old"),
                (attributes::ACCOUNT_ID, "new")
            ])),
            Some("new")
        );
        assert_eq!(attributes::account_id(&with(&[])), None);
        let message = quarantine_message(b"{}", "webhook_item", "r", "d", Some("42"));
        assert!(
            message
                .attributes
                .iter()
                .any(|(k, v)| k == attributes::ACCOUNT_ID && v == "42")
        );
    }

    #[test]
    fn quarantine_keeps_bytes_exactly() {
        let m = quarantine_message(b"{not json", "webhook_body", "not_an_envelope", "d", None);
        assert_eq!(m.body, "{not json");
        assert!(
            m.attributes
                .contains(&(attributes::ENCODING.into(), "utf-8".into()))
        );

        let raw = [0xff, 0x00, b'x'];
        let m = quarantine_message(&raw, "webhook_body", "not_an_envelope", "d", None);
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&m.body)
            .expect("base64");
        assert_eq!(decoded, raw);
        assert!(
            m.attributes
                .contains(&(attributes::ENCODING.into(), "base64".into()))
        );
    }

    #[test]
    fn statuses_map_from_errors() {
        assert_eq!(IngestError::TooLarge(1).status(), 413);
        assert_eq!(IngestError::from(SignatureError::Missing).status(), 401);
        assert_eq!(IngestError::from(SignatureError::Malformed).status(), 401);
        assert_eq!(IngestError::from(SignatureError::Mismatch).status(), 403);
        assert_eq!(
            IngestError::from(QueueError::Transport("x".into())).status(),
            500
        );
        assert_eq!(
            IngestError::from(QueueError::Full("backlog".into())).status(),
            503
        );
    }
}
