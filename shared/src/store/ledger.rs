//! The sent-ledger: durable deduplication of conversion events by `event_id`, because Meta does
//! not deduplicate business-messaging events. This is where the dedup decision is stated; every
//! [`DispatchStore`](crate::store::DispatchStore) keeps it (checked by
//! [`crate::store::contract`]) and the dispatcher acts on its answers.
//!
//! An event is *claimed* before it is sent (a `pending` record with a lease), and marked *sent*
//! with the destination's trace id once the destination accepts it. A claim fails when the event
//! is already sent (a dedup hit) or when another invocation holds a live lease
//! (`lease_until >= now`); an expired lease (a crashed or timed-out invocation) can be claimed
//! again, so a redelivered SQS batch sends it once. A refused claim changes nothing, and a
//! release drops a pending claim (never a sent mark) so a retry can claim at once.
//!
//! Residual window: if an invocation dies after the destination's 200 but before the sent mark
//! is written, the lease expires and a redelivery sends the event again. The mark is written
//! immediately after the response, in one batch call, to keep that window to a few
//! milliseconds.

/// The answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This invocation may send the event.
    Claimed,
    /// The destination already accepted it: a dedup hit.
    AlreadySent,
    /// Another invocation holds a live lease: retry later.
    Leased,
}

/// An event the destination accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMark {
    /// The event's id, the key of its ledger record.
    pub event_id: String,
    /// The destination's trace id for the request, when it gave one.
    pub fbtrace_id: Option<String>,
    /// Unix seconds of the acceptance.
    pub sent_at: i64,
    /// Unix seconds after which the record may be deleted (its TTL).
    pub expires_at: i64,
}

/// A claim to make: `event_id` is held until `lease_until` (unix seconds) and its record kept
/// until `expires_at` (the TTL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The event's id, the key of its ledger record.
    pub event_id: String,
    /// Unix seconds until which this invocation holds the event.
    pub lease_until: i64,
    /// Unix seconds after which the record may be deleted (its TTL).
    pub expires_at: i64,
}
