//! The local pipeline's queue port and its in-memory adapter: what SQS FIFO does for the
//! deployed functions, on one machine. Messages wait in acceptance order; a group with a
//! message in flight or waiting to be retried hands out nothing else (FIFO order per user);
//! a deduplication id seen in the last five minutes is dropped (SQS's window). The durable
//! adapter is [`crate::durable::Database`].

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard};

use wacapi_shared::queue::{MAX_MESSAGE_BYTES, OutboundMessage, QueueError};

/// SQS FIFO's deduplication window, in microseconds.
pub const DEDUP_WINDOW_US: i64 = 5 * 60 * 1_000_000;

/// A message handed out for dispatch.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The backlog's id of the message.
    pub id: u64,
    /// The message.
    pub message: OutboundMessage,
    /// When it was accepted (unix microseconds).
    pub accepted_us: i64,
}

/// Where accepted signals wait for the dispatcher.
pub trait Backlog: Send + Sync + 'static {
    /// Appends the messages whose deduplication id was not seen within [`DEDUP_WINDOW_US`];
    /// returns how many were new. When it returns, they are kept (durably, for a durable
    /// backlog). A message larger than a queue message is refused, as SQS refuses it; new
    /// messages beyond the backlog's bound ([`check_bound`]) are refused whole with
    /// [`QueueError::Full`], and none of their ids is remembered, so the retry is taken.
    fn push(&self, messages: Vec<OutboundMessage>, now_us: i64) -> Result<usize, QueueError>;
    /// Up to `max` messages ready at `now_us`, in order, none of a group that has a message in
    /// flight or waiting; they are in flight until finished or retried.
    fn take(&self, max: usize, now_us: i64) -> Result<Vec<Queued>, QueueError>;
    /// Messages done with (sent, skipped, dead-lettered): removed.
    fn finish(&self, ids: &[u64]) -> Result<(), QueueError>;
    /// Messages to hand out again from `visible_us` (unix microseconds) on.
    fn retry(&self, ids: &[u64], visible_us: i64) -> Result<(), QueueError>;
    /// Messages waiting or in flight.
    fn pending(&self) -> usize;
    /// Clears what finished messages left behind (the durable backlog empties its
    /// write-ahead log, so a dispatched signal's text leaves the disk); called when the
    /// dispatcher is idle and when it stops.
    fn settle(&self) -> Result<(), QueueError> {
        Ok(())
    }
}

/// Signals a backlog holds at most by default (`serve --max-backlog`): what an outage of
/// Meta's API can pile up before webhooks are answered 503 (Meta retries them later).
pub const DEFAULT_MAX_BACKLOG: usize = 50_000;

/// Whether `new` more signals fit beside `pending` under `max`. A backlog that holds nothing
/// takes any one webhook, however many signals it carries, so none is refused for ever.
pub fn check_bound(pending: usize, new: usize, max: usize) -> Result<(), QueueError> {
    if new == 0 || pending == 0 || pending + new <= max {
        Ok(())
    } else {
        Err(QueueError::Full(format!(
            "the backlog holds {pending} signal(s), {new} more would pass its bound of {max}"
        )))
    }
}

/// Refuses messages SQS would refuse, so `serve` answers what the Lambda answers.
pub fn check_sizes(messages: &[OutboundMessage]) -> Result<(), QueueError> {
    match messages.iter().find(|m| m.size() > MAX_MESSAGE_BYTES) {
        Some(m) => Err(QueueError::TooLarge { bytes: m.size() }),
        None => Ok(()),
    }
}

#[derive(Debug)]
struct Entry {
    message: OutboundMessage,
    accepted_us: i64,
    visible_us: i64,
    in_flight: bool,
}

/// Deduplication ids remembered at most: under a sustained flood the window shortens rather
/// than memory growing (at most 100 bytes each, see [`DedupWindow`]; the ledger still sends
/// each event once).
const MAX_DEDUP_IDS: usize = 500_000;

/// The deduplication ids seen within [`DEDUP_WINDOW_US`]: 16 bytes of each id's digest
/// ([`key16`](wacapi_shared::values::hashing::key16)) in a set, and the same with its expiry
/// in a ring, oldest first. An id is in the ring once: it is remembered again only after it
/// left. 17 bytes a set slot and 24 a ring slot, both grown by doubling: 40 to 90 bytes per id.
#[derive(Debug, Default)]
struct DedupWindow {
    ids: HashSet<[u8; 16]>,
    ring: VecDeque<(i64, [u8; 16])>,
}

impl DedupWindow {
    /// Forgets the ids whose window ended by `now_us`, and the oldest beyond `max`.
    fn expire(&mut self, now_us: i64, max: usize) {
        while self
            .ring
            .front()
            .is_some_and(|(until, _)| *until <= now_us || self.ids.len() > max)
        {
            if let Some((_, key)) = self.ring.pop_front() {
                self.ids.remove(&key);
            }
        }
    }

    /// Whether `key` was remembered and has not expired (after [`Self::expire`]).
    fn contains(&self, key: &[u8; 16]) -> bool {
        self.ids.contains(key)
    }

    /// Remembers `key` until `until_us` (it is not remembered already).
    fn remember(&mut self, key: [u8; 16], until_us: i64) {
        if self.ids.insert(key) {
            self.ring.push_back((until_us, key));
        }
    }

    /// The heap bytes the window holds: its set's slots and control bytes, and its ring.
    #[cfg(test)]
    fn bytes(&self) -> usize {
        let slots = match self.ids.capacity() {
            0 => 0,
            // hashbrown keeps 1/8 of its slots free.
            c => (c * 8 / 7).next_power_of_two(),
        };
        slots * (std::mem::size_of::<[u8; 16]>() + 1)
            + self.ring.capacity() * std::mem::size_of::<(i64, [u8; 16])>()
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: BTreeMap<u64, Entry>,
    next_id: u64,
    seen: DedupWindow,
}

/// The in-memory backlog: lost with the process (`serve --data-dir` keeps it on disk).
#[derive(Debug)]
pub struct MemoryBacklog {
    inner: Mutex<Inner>,
    max: usize,
}

impl Default for MemoryBacklog {
    fn default() -> Self {
        Self::with_bound(DEFAULT_MAX_BACKLOG)
    }
}

impl MemoryBacklog {
    /// An empty backlog holding at most `max` signals (see [`check_bound`]).
    pub fn with_bound(max: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            max,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, QueueError> {
        self.inner
            .lock()
            .map_err(|_| QueueError::Transport("backlog lock poisoned".into()))
    }
}

impl Backlog for MemoryBacklog {
    fn push(&self, messages: Vec<OutboundMessage>, now_us: i64) -> Result<usize, QueueError> {
        check_sizes(&messages)?;
        let mut inner = self.lock()?;
        inner.seen.expire(now_us, MAX_DEDUP_IDS);
        // Copies within the batch count once, as they would one after the other.
        let mut batch: HashSet<[u8; 16]> = HashSet::with_capacity(messages.len());
        let mut fresh = Vec::with_capacity(messages.len());
        for message in messages {
            let key = wacapi_shared::values::hashing::key16(&message.dedup_id);
            if !inner.seen.contains(&key) && batch.insert(key) {
                fresh.push((key, message));
            }
        }
        check_bound(inner.entries.len(), fresh.len(), self.max)?;
        let added = fresh.len();
        for (key, message) in fresh {
            inner.seen.remember(key, now_us + DEDUP_WINDOW_US);
            let id = inner.next_id;
            inner.next_id += 1;
            inner.entries.insert(
                id,
                Entry {
                    message,
                    accepted_us: now_us,
                    visible_us: now_us,
                    in_flight: false,
                },
            );
        }
        Ok(added)
    }

    fn take(&self, max: usize, now_us: i64) -> Result<Vec<Queued>, QueueError> {
        let mut inner = self.lock()?;
        let mut blocked: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for (id, entry) in inner.entries.iter_mut() {
            if out.len() >= max {
                break;
            }
            if blocked.contains(&entry.message.group_id) {
                continue;
            }
            if entry.in_flight || entry.visible_us > now_us {
                blocked.insert(entry.message.group_id.clone());
                continue;
            }
            entry.in_flight = true;
            out.push(Queued {
                id: *id,
                message: entry.message.clone(),
                accepted_us: entry.accepted_us,
            });
        }
        Ok(out)
    }

    fn finish(&self, ids: &[u64]) -> Result<(), QueueError> {
        let mut inner = self.lock()?;
        for id in ids {
            inner.entries.remove(id);
        }
        Ok(())
    }

    fn retry(&self, ids: &[u64], visible_us: i64) -> Result<(), QueueError> {
        let mut inner = self.lock()?;
        for id in ids {
            if let Some(entry) = inner.entries.get_mut(id) {
                entry.in_flight = false;
                entry.visible_us = visible_us;
            }
        }
        Ok(())
    }

    fn pending(&self) -> usize {
        self.inner.lock().map(|i| i.entries.len()).unwrap_or(0)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn message(group: &str, dedup: &str) -> OutboundMessage {
        OutboundMessage::new(format!("{group}/{dedup}"), group.into(), dedup.into())
    }

    /// The behaviour every backlog shares (the durable one runs it too).
    pub(crate) fn fifo_dedup_and_retry(backlog: &dyn Backlog) {
        let batch = vec![message("a", "1"), message("b", "2"), message("a", "3")];
        assert_eq!(backlog.push(batch, 1_000).unwrap(), 3);
        // Inside the dedup window the same id is dropped; after it, it is new again.
        assert_eq!(backlog.push(vec![message("a", "1")], 2_000).unwrap(), 0);
        let first = backlog.take(10, 2_000).unwrap();
        let bodies: Vec<&str> = first.iter().map(|q| q.message.body.as_str()).collect();
        assert_eq!(bodies, ["a/1", "b/2", "a/3"]);
        assert!(backlog.take(10, 2_000).unwrap().is_empty(), "all in flight");
        // a/1 fails: a/3 waits behind it although it was handed out too.
        backlog.retry(&[first[0].id, first[2].id], 3_000).unwrap();
        backlog.finish(&[first[1].id]).unwrap();
        assert!(
            backlog.take(10, 2_500).unwrap().is_empty(),
            "not visible yet"
        );
        let again = backlog.take(1, 3_000).unwrap();
        assert_eq!(again[0].message.body, "a/1");
        assert!(
            backlog.take(10, 3_000).unwrap().is_empty(),
            "a/3 waits for a/1"
        );
        backlog.finish(&[again[0].id]).unwrap();
        let last = backlog.take(10, 3_000).unwrap();
        assert_eq!(last[0].message.body, "a/3");
        assert_eq!(last[0].accepted_us, 1_000);
        assert_eq!(backlog.pending(), 1);
        backlog.finish(&[last[0].id]).unwrap();
        assert_eq!(backlog.pending(), 0);
        assert_eq!(
            backlog
                .push(vec![message("a", "1")], 1_000 + DEDUP_WINDOW_US + 1)
                .unwrap(),
            1
        );
        let huge = OutboundMessage::new("x".repeat(MAX_MESSAGE_BYTES + 1), "g".into(), "h".into());
        assert!(matches!(
            backlog.push(vec![huge], 0),
            Err(QueueError::TooLarge { .. })
        ));
    }

    #[test]
    fn memory_backlog_is_fifo_per_group_deduplicates_and_retries() {
        fifo_dedup_and_retry(&MemoryBacklog::default());
    }

    /// The bound every backlog keeps, for a backlog bounded at 3.
    pub(crate) fn bounded_at_three(backlog: &dyn Backlog) {
        let full = |r: Result<usize, QueueError>| matches!(r, Err(QueueError::Full(_)));
        let push = |ids: &[&str]| backlog.push(ids.iter().map(|i| message("g", i)).collect(), 1);
        assert_eq!(push(&["a", "b"]).unwrap(), 2);
        assert!(full(push(&["c", "d"])), "2 + 2 > 3: refused whole");
        assert_eq!(backlog.pending(), 2);
        assert_eq!(push(&["a", "b"]).unwrap(), 0, "copies are still taken");
        assert_eq!(push(&["c", "c", "a"]).unwrap(), 1, "c counts once");
        assert!(full(push(&["d"])), "at the bound");
        assert!(full(push(&["e", "e"])));
        let taken = backlog.take(10, 1).unwrap();
        backlog
            .finish(&taken.iter().map(|q| q.id).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(backlog.pending(), 0);
        // A refused id was not remembered; an empty backlog takes any one batch.
        assert_eq!(push(&["d", "e", "f", "g", "h"]).unwrap(), 5);
        assert!(full(push(&["i"])));
    }

    #[test]
    fn a_remembered_deduplication_id_takes_at_most_100_bytes() {
        // Counts around each doubling of the set and the ring (the worst fill), up to the most
        // the window keeps.
        for n in [1_000, 100_000, 262_145, 300_000, 458_753, MAX_DEDUP_IDS] {
            let mut window = DedupWindow::default();
            for i in 0..n as u64 {
                let mut key = [0u8; 16];
                key[..8].copy_from_slice(&i.to_le_bytes());
                window.remember(key, DEDUP_WINDOW_US);
            }
            let per_id = window.bytes() as f64 / n as f64;
            assert!(per_id <= 100.0, "{n} ids: {per_id:.1} bytes each");
        }
    }

    #[test]
    fn the_window_forgets_in_order_and_keeps_at_most_its_maximum() {
        let mut window = DedupWindow::default();
        let key = |i: u8| [i; 16];
        for i in 0..5 {
            window.remember(key(i), 10 + i64::from(i));
        }
        window.remember(key(0), 99);
        window.expire(11, 10);
        assert!(!window.contains(&key(0)) && !window.contains(&key(1)));
        assert!(window.contains(&key(2)));
        window.expire(0, 2);
        assert!(!window.contains(&key(2)) && window.contains(&key(3)) && window.contains(&key(4)));
        assert_eq!(window.ring.len(), 2);
    }

    #[test]
    fn memory_backlog_refuses_what_passes_its_bound() {
        bounded_at_three(&MemoryBacklog::with_bound(3));
    }

    #[test]
    fn the_bound_takes_any_batch_into_an_empty_backlog_and_copies_always() {
        assert!(check_bound(0, 1_000_000, 3).is_ok());
        assert!(check_bound(5, 0, 3).is_ok());
        assert!(check_bound(2, 1, 3).is_ok());
        assert!(check_bound(3, 1, 3).is_err());
        assert!(check_bound(1, 3, 3).is_err());
    }
}
