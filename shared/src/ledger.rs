//! The sent-ledger: durable deduplication of CAPI events by `event_id`, because Meta does not
//! deduplicate business-messaging events.
//!
//! An event is *claimed* before it is sent (a `pending` record with a lease), and marked *sent*
//! with Meta's `fbtrace_id` once Meta accepts it. A claim fails when the event is already sent
//! (a dedup hit) or when another invocation holds a live lease; an expired lease (a crashed or
//! timed-out invocation) can be claimed again, so a redelivered SQS batch sends it once.
//!
//! Residual window: if an invocation dies after Meta's 200 but before the sent mark is written,
//! the lease expires and a redelivery sends the event again. The mark is written immediately
//! after the response, in one batch call, to keep that window to a few milliseconds.
//!
//! The port that keeps the ledger is [`crate::store::DispatchStore`].

/// The result of a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This invocation may send the event.
    Claimed,
    /// Meta already accepted it: a dedup hit.
    AlreadySent,
    /// Another invocation holds a live lease: retry later.
    Leased,
}

/// An event Meta accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMark {
    /// The event id.
    pub event_id: String,
    /// Meta's trace id for the request.
    pub fbtrace_id: Option<String>,
    /// Unix seconds of the acceptance.
    pub sent_at: i64,
    /// Unix seconds after which the record may be deleted (TTL).
    pub expires_at: i64,
}

/// A claim to make: `event_id` is held until `lease_until` (unix seconds) and its record kept
/// until `expires_at` (the TTL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The event id.
    pub event_id: String,
    /// Until when this invocation holds the event.
    pub lease_until: i64,
    /// Unix seconds after which the record may be deleted (TTL).
    pub expires_at: i64,
}
