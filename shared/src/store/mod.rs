//! The dispatcher's durable state: where the dedup decision (may this event be sent?) and the
//! attribution clicks are kept, as one port shaped for round trips. Per SQS batch the
//! dispatcher reads every click it needs in one call ([`DispatchStore::clicks`]), writes the
//! clicks it learned and claims every event it will send in one conditional call
//! ([`DispatchStore::commit`]), and marks the accepted events sent in one call
//! ([`DispatchStore::mark_sent`]). Each store call costs the invocation a round trip and about
//! 150 µs of CPU in the AWS SDK, so calls per batch, not per record, set the dispatcher's CPU per
//! event.
//!
//! This folder holds the port and what every store shares:
//!
//! - this file: the port ([`DispatchStore`]) and what it writes ([`ClickWrite`],
//!   [`MAX_MARK_WRITE`]);
//! - [`ledger`]: the sent-ledger's rules (claims, leases, sent marks) and their types;
//! - `batch`: [`BatchClicks`], one batch's view of the clicks over any store;
//! - `memory`: [`MemoryStore`], the in-memory store of the CLI and the tests;
//! - [`contract`]: the checks every store passes (memory here, DynamoDB on moto in
//!   `wacapi-tests`, SQLite in the CLI).
//!
//! The other stores are adapters beside their technology: [`crate::aws::dynamo::DynamoStore`]
//! (deployed) and the CLI's SQLite database (`serve --data-dir`).

mod batch;
pub mod contract;
pub mod ledger;
mod memory;

use std::collections::HashMap;
use std::future::Future;

use crate::conversion::clicks::{Click, StoreError};
use crate::report::{FactKey, Tally};

pub use batch::BatchClicks;
pub use ledger::{Claim, ClaimRequest, SentMark};
pub use memory::MemoryStore;

/// A click to keep under one hashed key (a user's identity, see
/// [`crate::conversion::clicks::user_key`], or a click id), unless the key already holds a
/// newer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickWrite {
    /// The hashed key the click is kept under.
    pub key: String,
    /// The click to keep there.
    pub click: Click,
}

/// The most items one [`DispatchStore::mark_sent`] call should hold (marks plus aggregates):
/// what one DynamoDB transaction takes, so marks and the counts of their events commit together.
pub const MAX_MARK_WRITE: usize = 100;

/// The store of clicks and of the sent-ledger, touched in bulk: one read, one commit and one
/// mark per batch. Every implementation keeps the rules [`contract`] checks: claims answer as
/// [`ledger`] says, the newest click wins per key, and report counts are added with the marks
/// of their events.
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

    /// Marks events sent and adds the batch's report tallies ([`crate::report`]), in one call:
    /// a sent event is counted when, and only when, it is marked.
    fn mark_sent(
        &self,
        marks: &[SentMark],
        report: &[(FactKey, Tally)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

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

    fn mark_sent(
        &self,
        marks: &[SentMark],
        report: &[(FactKey, Tally)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_sent(marks, report)
    }

    fn release(&self, event_ids: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(event_ids)
    }
}

impl<T: DispatchStore> DispatchStore for std::sync::Arc<T> {
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

    fn mark_sent(
        &self,
        marks: &[SentMark],
        report: &[(FactKey, Tally)],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark_sent(marks, report)
    }

    fn release(&self, event_ids: &[String]) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).release(event_ids)
    }
}
