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

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use crate::clicks::StoreError;

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

/// Where claims and sent marks are kept.
pub trait Ledger: Send + Sync {
    /// Claims `event_id` until `lease_until` (unix seconds), keeping the record until
    /// `expires_at`.
    fn claim(
        &self,
        event_id: &str,
        now: i64,
        lease_until: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send;

    /// Marks events sent.
    fn mark_sent(&self, marks: &[SentMark]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops this invocation's pending claims (never a sent mark), so a retry can claim at once.
    fn release(&self, event_ids: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Pending { lease_until: i64 },
    Sent,
}

/// An in-memory ledger (the CLI and tests).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    entries: Mutex<HashMap<String, Entry>>,
}

impl MemoryLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<String, Entry>>, StoreError> {
        self.entries
            .lock()
            .map_err(|_| StoreError("ledger lock poisoned".into()))
    }
}

impl Ledger for MemoryLedger {
    async fn claim(
        &self,
        event_id: &str,
        now: i64,
        lease_until: i64,
        _expires_at: i64,
    ) -> Result<Claim, StoreError> {
        let mut entries = self.lock()?;
        match entries.get(event_id) {
            Some(Entry::Sent) => Ok(Claim::AlreadySent),
            Some(Entry::Pending { lease_until: held }) if *held >= now => Ok(Claim::Leased),
            _ => {
                entries.insert(event_id.to_owned(), Entry::Pending { lease_until });
                Ok(Claim::Claimed)
            }
        }
    }

    async fn mark_sent(&self, marks: &[SentMark]) -> Result<(), StoreError> {
        let mut entries = self.lock()?;
        for mark in marks {
            entries.insert(mark.event_id.clone(), Entry::Sent);
        }
        Ok(())
    }

    async fn release(&self, event_ids: &[String]) -> Result<(), StoreError> {
        let mut entries = self.lock()?;
        for id in event_ids {
            if matches!(entries.get(id), Some(Entry::Pending { .. })) {
                entries.remove(id);
            }
        }
        Ok(())
    }
}

impl<T: Ledger> Ledger for &T {
    fn claim(
        &self,
        event_id: &str,
        now: i64,
        lease_until: i64,
        expires_at: i64,
    ) -> impl Future<Output = Result<Claim, StoreError>> + Send {
        (**self).claim(event_id, now, lease_until, expires_at)
    }

    fn mark_sent(&self, marks: &[SentMark]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_sent(marks)
    }

    fn release(&self, event_ids: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(event_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn claim_lease_and_sent_lifecycle() {
        let l = MemoryLedger::new();
        assert_eq!(l.claim("e", 100, 200, 999).await, Ok(Claim::Claimed));
        assert_eq!(l.claim("e", 150, 250, 999).await, Ok(Claim::Leased));
        // The lease expired (a crashed invocation): claimable again.
        assert_eq!(l.claim("e", 201, 300, 999).await, Ok(Claim::Claimed));
        l.mark_sent(&[SentMark {
            event_id: "e".into(),
            fbtrace_id: None,
            sent_at: 210,
            expires_at: 999,
        }])
        .await
        .unwrap();
        assert_eq!(l.claim("e", 500, 600, 999).await, Ok(Claim::AlreadySent));
        // Releasing never drops a sent mark.
        l.release(&["e".into()]).await.unwrap();
        assert_eq!(l.claim("e", 500, 600, 999).await, Ok(Claim::AlreadySent));
        assert_eq!(l.claim("f", 1, 2, 9).await, Ok(Claim::Claimed));
        l.release(&["f".into()]).await.unwrap();
        assert_eq!(l.claim("f", 1, 2, 9).await, Ok(Claim::Claimed));
    }
}
