//! A failed delivery, and the destination's verdict on it: [`DeliveryError`] carries what the
//! platform answered (status, code, subcode, message, trace id) and what its destination module
//! made of it ([`ErrorClass`], the dead-letter reason and attributes), so the dispatcher decides
//! retries, splits and dead-letter moves without knowing the platform's error table.

use crate::model::Destination;

/// What to do about a failed request. Each destination maps its own error table onto it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorClass {
    /// A temporary failure (Meta's 1 and 2, HTTP 5xx, timeouts): retry with backoff.
    Transient,
    /// Too many requests: retry, backing off longer.
    Throttled,
    /// Temporarily blocked: retry slowly.
    Blocked,
    /// A refusal of one event: isolate it by splitting the request; the rest is fine.
    InvalidEvent,
    /// A refusal of every event the target receives (Meta: no WhatsApp Business Account linked
    /// to the dataset; a restricted region): permanent, and splitting would only repeat it.
    DatasetRefused,
    /// The token is invalid or expired: alert, keep the events.
    Auth,
    /// The token lacks a permission: alert, keep the events.
    Permission,
    /// The API version called is deprecated and was not upgraded: retrying cannot help and the
    /// events are fine: alert, keep them, until the version is moved (README › Operate).
    DeprecatedVersion,
    /// Anything else: keep the events (they reach the DLQ after the queue's retries).
    #[default]
    Other,
}

impl ErrorClass {
    /// Whether waiting and retrying inside the invocation can help.
    pub fn retryable(self) -> bool {
        matches!(self, Self::Transient | Self::Throttled | Self::Blocked)
    }

    /// Whether the error means the token or its permissions are wrong (an alarm).
    pub fn is_auth(self) -> bool {
        matches!(self, Self::Auth | Self::Permission)
    }

    /// Whether nothing can be sent until a person fixes the deployment (the token, its
    /// permissions, or the API version): the events are kept and an alarm fires.
    pub fn needs_operator(self) -> bool {
        self.is_auth() || self == Self::DeprecatedVersion
    }
}

/// A failed request: the platform's error object, or a transport failure, with the verdict of
/// the destination that read it. One type for every destination, so retries, splits and
/// dead-letter moves are one code path.
#[derive(Debug, Clone, Default, PartialEq, Eq, thiserror::Error)]
#[error("{destination} error (status {status:?}, code {code:?}, subcode {subcode:?}): {message}")]
pub struct DeliveryError {
    /// Whose API answered.
    pub destination: Destination,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// The platform's error code.
    pub code: Option<i64>,
    /// The platform's error subcode.
    pub subcode: Option<i64>,
    /// The platform's message, or the transport failure.
    pub message: String,
    /// The platform said the error is transient (Meta's `is_transient`).
    pub is_transient: bool,
    /// The platform's id of the request, for its support (Meta's `fbtrace_id`, TikTok's
    /// `request_id`).
    pub trace_id: Option<String>,
    /// A timeout or connection failure (no answer).
    pub transport: bool,
    /// The request reached the platform and its fate is unknown (a 5xx, or no answer after it
    /// was sent): the events may have been processed, so sending them again may duplicate them.
    pub maybe_processed: bool,
    /// The platform's warning that the API version called is deprecated, capped. Boxed: the
    /// error travels in every `Result` of the send path, so it stays small (under clippy's
    /// `result_large_err`).
    pub version_warning: Option<Box<str>>,
    /// What the destination made of the error. Boxed, to keep the error small.
    pub verdict: Box<Verdict>,
}

/// A destination's reading of an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// What to do about it ([`ErrorClass::Other`] until a destination reads it).
    pub class: ErrorClass,
    /// The dead-letter reason of a permanent refusal, in the destination's words
    /// (`graph_event_name_not_allowed`, `tiktok_invalid_event`, ...).
    pub refusal: &'static str,
    /// The dead-letter attributes of a refusal (the destination's code, message and trace id
    /// under its own attribute names).
    pub attributes: Vec<(&'static str, String)>,
}

impl DeliveryError {
    /// What to do about the error: a transport failure or an error the platform calls
    /// transient is [`ErrorClass::Transient`], anything else the destination's verdict.
    pub fn class(&self) -> ErrorClass {
        if self.transport || self.is_transient {
            ErrorClass::Transient
        } else {
            self.verdict.class
        }
    }

    /// The dead-letter reason of a permanent refusal.
    pub fn refusal_reason(&self) -> &'static str {
        if self.verdict.refusal.is_empty() {
            "invalid_event"
        } else {
            self.verdict.refusal
        }
    }

    /// The metric label of the error code (`transport` when there was no answer).
    pub fn code_label(&self) -> String {
        match (self.code, self.transport) {
            (Some(code), _) => code.to_string(),
            (None, true) => "transport".to_owned(),
            (None, false) => format!("http_{}", self.status.unwrap_or(0)),
        }
    }

    /// An error raised before or instead of an answer: `class_code` is the platform code it
    /// stands for (a missing token stands for an invalid one), `transport` when nothing was
    /// answered. The destination classifies it like an answer.
    pub fn local(
        destination: Destination,
        message: String,
        class_code: Option<i64>,
        transport: bool,
    ) -> Self {
        Self {
            destination,
            code: class_code,
            message,
            transport,
            ..Self::default()
        }
    }
}

/// Cuts `text` to at most `max` characters (dead-letter attributes are bounded).
pub fn truncate(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}
