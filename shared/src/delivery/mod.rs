//! Delivering conversions, in words no ad platform owns: the event a destination built at mapping
//! ([`Outbound`]), where a request goes ([`Target`], which the destination describes through
//! [`Endpoint`]), what an answer says was received ([`Answer`], [`Receipt`]), a failed request
//! with the destination's verdict on it ([`DeliveryError`], [`ErrorClass`]), the metric names a
//! destination publishes ([`Profile`]), and the port the dispatcher reaches every
//! destination through ([`Deliver`]).
//!
//! Each destination's folder (`meta/`, `tiktok/`) implements this vocabulary and imports no
//! other destination; `destinations` registers them. Retries, splits, dead-letter moves and
//! metrics are then one code path in the dispatcher whatever the platform.

pub mod checks;
pub mod error;
pub mod outbound;

use std::future::Future;

pub use error::{DeliveryError, ErrorClass, Verdict};
pub use outbound::{Conversion, Endpoint, Facts, Outbound, Target, Unfit, event_id};

/// What a destination's answer to an accepted request says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// How many events the destination counted as received (`None` when it gave no count).
    pub received: Option<u64>,
    /// The destination's id of the request or answer, for its support (Meta's `fbtrace_id`,
    /// TikTok's `request_id`).
    pub trace_id: Option<String>,
    /// A warning that the API version called is deprecated (Meta's `X-Ad-Api-Version-Warning`),
    /// capped by the destination.
    pub version_warning: Option<Box<str>>,
}

impl Answer {
    /// Whether the answer accounts for every event sent: the count must equal the number of
    /// events in the request. An answer that counts fewer (or none) is not a success.
    pub fn receipt(&self, sent: usize) -> Receipt {
        match self.received {
            Some(n) if n == sent as u64 => Receipt::All,
            Some(0) => Receipt::None,
            other => Receipt::Partial(other),
        }
    }
}

/// What a 2xx answer says was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// Every event was received.
    All,
    /// None of them: safe to send again.
    None,
    /// Some other count, or no count: which events the destination kept is unknown.
    Partial(Option<u64>),
}

/// How a destination's deliveries are named in metrics, logs and dead-letter moves (the
/// contract with `infra/`: the metric names are in `shared/src/metrics/catalogue.json`, and
/// the alarms and Logs Insights queries read them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// The API as logs name it (`Graph API`): its errors are logged as `"{api} error"`.
    pub api: &'static str,
    /// Requests made (retries and splits included).
    pub requests: &'static str,
    /// Errors; dimension `Code`.
    pub errors: &'static str,
    /// Errors nothing but a person can fix (a token, its permissions, an API version): an
    /// alarm.
    pub needs_operator: &'static str,
    /// Answers warning that the API version is deprecated, where the destination sends such
    /// warnings (an alarm).
    pub version_warnings: Option<&'static str>,
    /// 2xx answers that counted another number of events than were sent, where the
    /// destination's answers count events (an alarm).
    pub receipt_mismatches: Option<&'static str>,
    /// The dead-letter reason of an event in such an answer.
    pub receipt_mismatch_reason: &'static str,
    /// The dead-letter attributes of such an answer: the count received, the count sent and
    /// the answer's trace id.
    pub receipt_attributes: [&'static str; 3],
}

impl Profile {
    /// Every metric name of the profile.
    pub fn metric_names(&self) -> Vec<&'static str> {
        let mut names = vec![self.requests, self.errors, self.needs_operator];
        names.extend(self.version_warnings);
        names.extend(self.receipt_mismatches);
        names
    }

    /// The metric names that page someone.
    pub fn alarmed(&self) -> Vec<&'static str> {
        let mut names = vec![self.needs_operator];
        names.extend(self.version_warnings);
        names.extend(self.receipt_mismatches);
        names
    }
}

/// The port to the destinations: posts one request, built by its [`Target`], and reads the
/// answer. The dispatcher holds one `Deliver` (the registry of every destination) and never
/// names a platform.
pub trait Deliver: Send + Sync {
    /// Posts `events` to `target`.
    fn deliver(
        &self,
        target: &Target,
        events: &[&Outbound],
    ) -> impl Future<Output = Result<Answer, DeliveryError>> + Send;

    /// How `destination`'s deliveries are named.
    fn profile(&self, destination: crate::model::Destination) -> &'static Profile;
}
