//! [`MemoryStore`]: the [`DispatchStore`] held in memory (the CLI's `replay`, `demo` and `serve`
//! without a data directory, and tests), with DynamoDB's claim semantics and TTLs and a ledger
//! record in a few dozen bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::conversion::clicks::{Click, StoreError};
use crate::report::{FactKey, Tally};
use crate::store::ledger::{Claim, ClaimRequest, SentMark};
use crate::store::{ClickWrite, DispatchStore};

/// A ledger record in 12 bytes: its times in unix seconds as `u32` (enough until 2106; see
/// [`secs`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Pending { lease_until: u32, expires_at: u32 },
    Sent { expires_at: u32 },
}

impl Entry {
    fn expires_at(self) -> i64 {
        match self {
            Self::Pending { expires_at, .. } | Self::Sent { expires_at } => i64::from(expires_at),
        }
    }
}

/// Unix seconds as a ledger record keeps them: before 1970 is 1970, after 2106 is 2106 (a
/// lease or a TTL that far out is as good as for ever).
fn secs(unix: i64) -> u32 {
    u32::try_from(unix.max(0)).unwrap_or(u32::MAX)
}

/// The ledger's key of an event id: 16 bytes (see
/// [`key16`](crate::values::hashing::key16)), what memory holds per event sent.
fn ledger_key(event_id: &str) -> [u8; 16] {
    crate::values::hashing::key16(event_id)
}

/// A click kept in memory, with when it stops mattering.
#[derive(Debug, Clone)]
struct StoredClick {
    click: Click,
    expires_at: i64,
}

#[derive(Debug, Default)]
struct Tables {
    /// The clicks, by the 32 bytes of their hashed key.
    clicks: HashMap<[u8; 32], StoredClick>,
    /// The ledger, by 16 bytes of the event id's digest ([`ledger_key`]): 29 bytes a slot.
    ledger: HashMap<[u8; 16], Entry>,
    /// The report's aggregates, by their key.
    report: BTreeMap<FactKey, Tally>,
    /// When expired entries were last dropped.
    purged_at: i64,
}

/// Expired entries are dropped at most this often (unix seconds), on a commit.
const PURGE_INTERVAL_SECONDS: i64 = 60;

/// An in-memory store (the CLI and tests), with the same claim semantics as DynamoDB's and its
/// TTLs: a ledger record is dropped after its `expires_at` (a day past Meta's 7-day window),
/// a click `click_ttl_seconds` after it was made, so memory holds what can still matter.
#[derive(Debug)]
pub struct MemoryStore {
    tables: Mutex<Tables>,
    calls: Mutex<usize>,
    click_ttl_seconds: i64,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_click_ttl(28 * 86_400)
    }
}

impl MemoryStore {
    /// An empty store; clicks are kept 28 days (the longest attribution window).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping clicks `click_ttl_seconds` after they were made (the attribution
    /// window).
    pub fn with_click_ttl(click_ttl_seconds: i64) -> Self {
        Self {
            tables: Mutex::new(Tables::default()),
            calls: Mutex::new(0),
            click_ttl_seconds,
        }
    }

    /// How many store calls were made so far (tests check round trips per batch with it).
    pub fn calls(&self) -> usize {
        self.calls.lock().map(|c| *c).unwrap_or(0)
    }

    /// Every stored click key, in hex (tests check that no clear identity is used as a key).
    pub fn click_keys(&self) -> Vec<String> {
        self.tables
            .lock()
            .map(|t| t.clicks.keys().map(hex::encode).collect())
            .unwrap_or_default()
    }

    /// How many clicks and ledger records are held.
    pub fn len(&self) -> (usize, usize) {
        self.tables
            .lock()
            .map(|t| (t.clicks.len(), t.ledger.len()))
            .unwrap_or_default()
    }

    /// Whether nothing at all is held.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// The report's aggregates, as `GET /report` of `serve` shows them.
    pub fn report(&self) -> Vec<(FactKey, Tally)> {
        self.tables
            .lock()
            .map(|t| {
                t.report
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
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

impl Tables {
    fn purge(&mut self, now: i64) {
        if now - self.purged_at < PURGE_INTERVAL_SECONDS {
            return;
        }
        self.purged_at = now;
        self.clicks.retain(|_, c| c.expires_at > now);
        self.ledger.retain(|_, e| e.expires_at() > now);
        self.report.retain(|k, _| k.expires_at() > now);
    }
}

impl DispatchStore for MemoryStore {
    async fn clicks(&self, keys: &[String]) -> Result<HashMap<String, Click>, StoreError> {
        let tables = self.lock()?;
        Ok(keys
            .iter()
            .filter_map(|k| {
                let c = tables.clicks.get(&crate::values::hashing::key32(k))?;
                Some((k.clone(), c.click.clone()))
            })
            .collect())
    }

    async fn commit(
        &self,
        clicks: &[ClickWrite],
        claims: &[ClaimRequest],
        now: i64,
    ) -> Result<Vec<Claim>, StoreError> {
        let mut tables = self.lock()?;
        tables.purge(now);
        for write in clicks {
            let key = crate::values::hashing::key32(&write.key);
            let superseded = tables
                .clicks
                .get(&key)
                .is_none_or(|c| write.click.supersedes(&c.click));
            if superseded {
                tables.clicks.insert(
                    key,
                    StoredClick {
                        click: write.click.clone(),
                        expires_at: write
                            .click
                            .clicked_at
                            .saturating_add(self.click_ttl_seconds),
                    },
                );
            }
        }
        Ok(claims
            .iter()
            .map(|c| {
                let key = ledger_key(&c.event_id);
                match tables.ledger.get(&key) {
                    Some(Entry::Sent { .. }) => Claim::AlreadySent,
                    Some(Entry::Pending { lease_until, .. }) if i64::from(*lease_until) >= now => {
                        Claim::Leased
                    }
                    _ => {
                        tables.ledger.insert(
                            key,
                            Entry::Pending {
                                lease_until: secs(c.lease_until),
                                expires_at: secs(c.expires_at),
                            },
                        );
                        Claim::Claimed
                    }
                }
            })
            .collect())
    }

    async fn mark_sent(
        &self,
        marks: &[SentMark],
        report: &[(FactKey, Tally)],
    ) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        for mark in marks {
            tables.ledger.insert(
                ledger_key(&mark.event_id),
                Entry::Sent {
                    expires_at: secs(mark.expires_at),
                },
            );
        }
        for (key, tally) in report {
            tables.report.entry(key.clone()).or_default().add(tally);
        }
        Ok(())
    }

    async fn release(&self, event_ids: &[String]) -> Result<(), StoreError> {
        let mut tables = self.lock()?;
        for id in event_ids {
            let key = ledger_key(id);
            if matches!(tables.ledger.get(&key), Some(Entry::Pending { .. })) {
                tables.ledger.remove(&key);
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
                ctwa_clid: Some(id.into()),
                ad_id: None,
                clicked_at: at,
                channel: Default::default(),
                destination: Default::default(),
            },
        }
    }

    /// `calls` counts store calls, one per call whatever it holds (the dispatcher's tests count
    /// round trips per batch with it). The claim rules are checked by the store contract
    /// (`shared/tests/store.rs`).
    #[tokio::test]
    async fn every_call_is_counted_once() {
        let s = MemoryStore::new();
        s.clicks(&["k".into(), "j".into()]).await.unwrap();
        s.commit(&[click("c", 100)], &[claim("e", 200), claim("f", 200)], 100)
            .await
            .unwrap();
        s.mark_sent(&[], &[]).await.unwrap();
        s.release(&["e".into(), "f".into()]).await.unwrap();
        assert_eq!(s.calls(), 4);
    }

    #[tokio::test]
    async fn what_can_no_longer_matter_is_dropped() {
        let s = MemoryStore::with_click_ttl(100);
        s.commit(&[click("c", 1_000)], &[claim("e", 1_050)], 1_000)
            .await
            .unwrap();
        let mark = SentMark {
            event_id: "f".into(),
            fbtrace_id: None,
            sent_at: 1_000,
            expires_at: 5_000,
        };
        s.mark_sent(&[mark], &[]).await.unwrap();
        assert_eq!(s.len(), (1, 2));
        // Past the click's TTL and the claim's expiry (999), before the sent mark's.
        s.commit(&[], &[], 2_000).await.unwrap();
        assert_eq!(s.len(), (0, 1));
        s.commit(&[], &[], 6_000).await.unwrap();
        assert!(s.is_empty());
    }

    /// What memory keeps per event in the ledger: its slot (key, record, control byte) in a
    /// table grown by doubling, at most 100 bytes whatever the fill.
    #[tokio::test]
    async fn a_ledger_record_takes_at_most_100_bytes() {
        assert_eq!(std::mem::size_of::<([u8; 16], Entry)>(), 28);
        for n in [1_000usize, 100_000, 229_377, 300_000] {
            let s = MemoryStore::new();
            let marks: Vec<SentMark> = (0..n)
                .map(|i| SentMark {
                    event_id: format!("{i:064x}"),
                    fbtrace_id: None,
                    sent_at: 1,
                    expires_at: 9_999_999_999,
                })
                .collect();
            s.mark_sent(&marks, &[]).await.unwrap();
            let tables = s.tables.lock().unwrap();
            let slots = (tables.ledger.capacity() * 8 / 7).next_power_of_two();
            let per_event =
                (slots * (std::mem::size_of::<([u8; 16], Entry)>() + 1)) as f64 / n as f64;
            assert!(per_event <= 100.0, "{n} events: {per_event:.1} bytes each");
            // Times past 2106 are kept as 2106, never wrapped into the past.
            assert!(
                tables
                    .ledger
                    .values()
                    .all(|e| e.expires_at() == i64::from(u32::MAX))
            );
        }
    }

    #[test]
    fn ledger_times_are_clamped_not_wrapped() {
        assert_eq!(secs(-5), 0);
        assert_eq!(secs(1_750_000_000), 1_750_000_000);
        assert_eq!(secs(i64::MAX), u32::MAX);
    }
}
