//! The sent-ledger's types under the path the dispatcher and the store adapters import. They
//! live with the store port that keeps the ledger, in [`crate::store::ledger`], which states the
//! dedup rules.

pub use crate::store::ledger::{Claim, ClaimRequest, SentMark};
