//! The dispatcher's durable state as one port, shaped for round trips: per SQS batch the
//! dispatcher reads every click it needs in one call ([`DispatchStore::clicks`]), writes the
//! clicks it learned and claims every event it will send in one conditional call
//! ([`DispatchStore::commit`]), and marks the accepted events sent in one call
//! ([`DispatchStore::mark_sent`]). Each store call costs the invocation a round trip and about
//! 150 µs of CPU in the AWS SDK, so calls per batch, not per record, set the dispatcher's CPU per
//! event.
//!
//! [`MemoryStore`] serves the CLI and unit tests; [`crate::dynamo::DynamoStore`] is the deployed
//! adapter.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Mutex, MutexGuard};

use crate::clicks::{Click, ClickStore, StoreError, user_key};
use crate::ledger::{Claim, ClaimRequest, SentMark};
use crate::signal::UserRef;

/// A click to keep under one hashed user key (see [`crate::clicks::user_key`]), unless the key
/// already holds a newer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickWrite {
    /// The hashed user key.
    pub key: String,
    /// The click.
    pub click: Click,
}

/// Clicks and the sent-ledger, touched in bulk.
pub trait DispatchStore: Send + Sync {
    /// The clicks stored under `keys` (hashed user keys; absent keys are left out).
    fn clicks(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Click>, StoreError>> + Send;

    /// Writes `clicks` (newest wins per key) and claims `claims` at `now`, returning one
    /// [`Claim`] per claim request, in order. An error means nothing can be assumed claimed;
    /// whatever was written is idempotent to write again.
    fn commit(
        &self,
        clicks: &[ClickWrite],
        claims: &[ClaimRequest],
        now: i64,
    ) -> impl Future<Output = Result<Vec<Claim>, StoreError>> + Send;

    /// Marks events sent.
    fn mark_sent(&self, marks: &[SentMark]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Drops pending claims (never a sent mark), so a retry can claim at once.
    fn release(&self, event_ids: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: DispatchStore> DispatchStore for &T {
    fn clicks(
        &self,
        keys: &[String],
    ) -> impl Future<Output = Result<HashMap<String, Click>, StoreError>> + Send {
        (**self).clicks(keys)
    }

    fn commit(
        &self,
        clicks: &[ClickWrite],
        claims: &[ClaimRequest],
        now: i64,
    ) -> impl Future<Output = Result<Vec<Claim>, StoreError>> + Send {
        (**self).commit(clicks, claims, now)
    }

    fn mark_sent(&self, marks: &[SentMark]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_sent(marks)
    }

    fn release(&self, event_ids: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(event_ids)
    }
}

/// One batch's view of the clicks: a [`ClickStore`] over the clicks read up front, which keeps
/// the clicks recorded during the batch in memory (later signals of the batch see them) and
/// hands them over for [`DispatchStore::commit`]. A key that was not read up front is read on
/// demand, so a missed prefetch costs a round trip, never a wrong attribution.
#[derive(Debug)]
pub struct BatchClicks<'s, S> {
    store: &'s S,
    state: Mutex<BatchState>,
}

#[derive(Debug, Default)]
struct BatchState {
    /// What the store holds, per key read (`None`: nothing).
    stored: HashMap<String, Option<Click>>,
    /// Clicks recorded in this batch, newest per key, in key order (deterministic commits).
    written: BTreeMap<String, Click>,
    /// Why reads cannot be made (the up-front read failed): later misses fail fast.
    unavailable: Option<StoreError>,
    /// Reads made on demand.
    misses: usize,
}

fn newer<'a>(a: Option<&'a Click>, b: Option<&'a Click>) -> Option<&'a Click> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.supersedes(a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

impl<'s, S: DispatchStore> BatchClicks<'s, S> {
    /// A view over `store` that already knows `keys` (read with `read`'s result).
    pub fn new(
        store: &'s S,
        keys: &[String],
        read: Result<HashMap<String, Click>, StoreError>,
    ) -> Self {
        let mut state = BatchState::default();
        match read {
            Ok(mut found) => {
                for key in keys {
                    let click = found.remove(key);
                    state.stored.insert(key.clone(), click);
                }
            }
            Err(err) => state.unavailable = Some(err),
        }
        Self {
            store,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, BatchState>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError("batch click view lock poisoned".into()))
    }

    /// The clicks recorded during the batch, newest per key.
    pub fn take_writes(&self) -> Vec<ClickWrite> {
        self.lock()
            .map(|mut s| {
                std::mem::take(&mut s.written)
                    .into_iter()
                    .map(|(key, click)| ClickWrite { key, click })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Reads made on demand because a key was not read up front.
    pub fn misses(&self) -> usize {
        self.lock().map(|s| s.misses).unwrap_or(0)
    }

    async fn stored(&self, key: &str) -> Result<Option<Click>, StoreError> {
        {
            let mut state = self.lock()?;
            if let Some(known) = state.stored.get(key) {
                return Ok(known.clone());
            }
            if let Some(err) = &state.unavailable {
                return Err(err.clone());
            }
            state.misses += 1;
        }
        let mut found = self.store.clicks(&[key.to_owned()]).await?;
        let click = found.remove(key);
        self.lock()?.stored.insert(key.to_owned(), click.clone());
        Ok(click)
    }
}

impl<S: DispatchStore> ClickStore for BatchClicks<'_, S> {
    async fn record(&self, waba_id: &str, user: &UserRef, click: &Click) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        for key in user.keys() {
            let key = user_key(waba_id, key);
            let stored = state.stored.get(&key).and_then(Option::as_ref);
            let written = state.written.get(&key);
            // A write of a click older than the known one would be refused by the store anyway.
            if newer(newer(stored, written), Some(click)) == Some(click) {
                state.written.insert(key, click.clone());
            }
        }
        Ok(())
    }

    async fn latest(&self, waba_id: &str, user: &UserRef) -> Result<Option<Click>, StoreError> {
        let mut newest: Option<Click> = None;
        for key in user.keys() {
            let key = user_key(waba_id, key);
            let stored = self.stored(&key).await?;
            let state = self.lock()?;
            if let Some(c) = newer(stored.as_ref(), state.written.get(&key))
                && newest.as_ref().is_none_or(|n| n.clicked_at < c.clicked_at)
            {
                newest = Some(c.clone());
            }
        }
        Ok(newest)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Pending { lease_until: i64 },
    Sent,
}

#[derive(Debug, Default)]
struct Tables {
    clicks: HashMap<String, Click>,
    ledger: HashMap<String, Entry>,
}

/// An in-memory store (the CLI and tests), with the same claim semantics as DynamoDB's.
#[derive(Debug, Default)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    calls: Mutex<usize>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Store calls made so far (tests check round trips per batch).
    pub fn calls(&self) -> usize {
        self.calls.lock().map(|c| *c).unwrap_or(0)
    }

    /// Every stored click key (tests check that no clear identity is used as a key).
    pub fn click_keys(&self) -> Vec<String> {
        self.tables
            .lock()
            .map(|t| t.clicks.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn lock(&self) -> Result<MutexGuard<'_, Tables>, StoreError> {
        if let Ok(mut calls) = self.calls.lock() {
            *calls += 1;
        }
        self.tables
            .lock()
            .map_err(|_| StoreError("store lock poisoned".into()))
    }
}

impl DispatchStore for MemoryStore {
    async fn clicks(&self, keys: &[String]) -> Result<HashMap<String, Click>, StoreError> {
        let tables = self.lock()?;
        Ok(keys
            .iter()
            .filter_map(|k| tables.clicks.get(k).map(|c| (k.clone(), c.clone())))
            .collect())
    }

    async fn commit(
        &self,
        clicks: &[ClickWrite],
        claims: &[ClaimRequest],
        now: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut tables = self.lock()?;
        for write in clicks {
            let superseded = tables
                .clicks
                .get(&write.key)
                .is_none_or(|c| write.click.supersedes(c));
            if superseded {
                tables.clicks.insert(write.key.clone(), write.click.clone());
            }
        }
        Ok(claims
            .iter()
            .map(|c| match tables.ledger.get(&c.event_id) {
                Some(Entry::Sent) => Claim::AlreadySent,
                Some(Entry::Pending { lease_until }) if *lease_until >= now => Claim::Leased,
                _ => {
                    tables.ledger.insert(
                        c.event_id.clone(),
                        Entry::Pending {
                            lease_until: c.lease_until,
                        },
                    );
                    Claim::Claimed
                }
            })
            .collect())
    }

    async fn mark_sent(&self, marks: &[SentMark]) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        for mark in marks {
            tables.ledger.insert(mark.event_id.clone(), Entry::Sent);
        }
        Ok(())
    }

    async fn release(&self, event_ids: &[String]) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        for id in event_ids {
            if matches!(tables.ledger.get(id), Some(Entry::Pending { .. })) {
                tables.ledger.remove(id);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(id: &str, lease_until: i64) -> ClaimRequest {
        ClaimRequest {
            event_id: id.into(),
            lease_until,
            expires_at: 999,
        }
    }

    fn click(id: &str, at: i64) -> ClickWrite {
        ClickWrite {
            key: "k".into(),
            click: Click {
                ctwa_clid: id.into(),
                ad_id: None,
                clicked_at: at,
            },
        }
    }

    #[tokio::test]
    async fn claim_lease_and_sent_lifecycle() {
        let s = MemoryStore::new();
        assert_eq!(
            s.commit(&[], &[claim("e", 200)], 100).await,
            Ok(vec![Claim::Claimed])
        );
        assert_eq!(
            s.commit(&[], &[claim("e", 250)], 150).await,
            Ok(vec![Claim::Leased])
        );
        // The lease expired (a crashed invocation): claimable again.
        assert_eq!(
            s.commit(&[], &[claim("e", 300), claim("f", 300)], 201)
                .await,
            Ok(vec![Claim::Claimed, Claim::Claimed])
        );
        let mark = SentMark {
            event_id: "e".into(),
            fbtrace_id: None,
            sent_at: 210,
            expires_at: 999,
        };
        s.mark_sent(&[mark]).await.unwrap();
        assert_eq!(
            s.commit(&[], &[claim("e", 600)], 500).await,
            Ok(vec![Claim::AlreadySent])
        );
        // Releasing never drops a sent mark, and frees a pending claim at once.
        s.release(&["e".into(), "f".into()]).await.unwrap();
        assert_eq!(
            s.commit(&[], &[claim("e", 600), claim("f", 600)], 250)
                .await,
            Ok(vec![Claim::AlreadySent, Claim::Claimed])
        );
        assert_eq!(s.calls(), 7);
    }

    #[tokio::test]
    async fn the_newest_click_wins() {
        let s = MemoryStore::new();
        s.commit(&[click("new", 200)], &[], 0).await.unwrap();
        s.commit(&[click("late-old", 100)], &[], 0).await.unwrap();
        let stored = s.clicks(&["k".into(), "absent".into()]).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored["k"].ctwa_clid, "new");
        s.commit(&[click("newer", 300)], &[], 0).await.unwrap();
        assert_eq!(
            s.clicks(&["k".into()]).await.unwrap()["k"].ctwa_clid,
            "newer"
        );
    }
}
