//! A record's way through a batch: its state, what it holds, and how a failure spreads (to
//! the later records of its FIFO group, and to records whose event was a copy of one not sent).

use std::collections::HashSet;

use crate::conversion::mapping::{MappedEvent, SkipReason};
use crate::model::Channel;

/// Why a record behind a failed one of its FIFO group is failed too.
pub(super) const BLOCKED: &str = "an earlier record of its group failed";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum State {
    Open,
    Skipped,
    Duplicate,
    /// Bound for the dead-letter queue (moved at the end of the batch).
    ToDeadLetter(DeadLetter),
    /// Moved to the dead-letter queue, with this reason.
    DeadLettered(&'static str),
    Failed(String),
}

#[derive(Debug)]
pub(super) struct RecordResult {
    pub(super) state: State,
    /// Events mapped from the record, not yet claimed.
    pub(super) mapped: Vec<MappedEvent>,
    /// Events this invocation claimed and may send.
    pub(super) claimed: Vec<MappedEvent>,
    pub(super) skips: Vec<SkipReason>,
    pub(super) dedup_hits: usize,
    /// Records of this batch whose copy of one of this record's events is the one sent.
    pub(super) shadows: Vec<usize>,
    pub(super) dropped_user_data: usize,
    pub(super) dropped_custom_data: usize,
    /// The channel of the record's signals (WhatsApp for records that never decoded).
    pub(super) channel: Channel,
    /// The report facts of the record's skips (counted unless the record fails).
    pub(super) facts: Vec<crate::report::Fact>,
}

impl RecordResult {
    pub(super) fn new() -> Self {
        Self {
            state: State::Open,
            mapped: Vec::new(),
            claimed: Vec::new(),
            skips: Vec::new(),
            dedup_hits: 0,
            shadows: Vec::new(),
            dropped_user_data: 0,
            dropped_custom_data: 0,
            channel: Channel::Whatsapp,
            facts: Vec::new(),
        }
    }

    pub(super) fn failed(why: impl Into<String>) -> Self {
        Self {
            state: State::Failed(why.into()),
            ..Self::new()
        }
    }

    pub(super) fn dead_letter(letter: DeadLetter) -> Self {
        Self {
            state: State::ToDeadLetter(letter),
            ..Self::new()
        }
    }

    pub(super) fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Open, duplicate or skipped, from what the record holds.
    pub(super) fn settle(&mut self) {
        if matches!(self.state, State::Open | State::Duplicate | State::Skipped) {
            self.state = if !self.claimed.is_empty() || !self.mapped.is_empty() {
                State::Open
            } else if self.dedup_hits > 0 {
                State::Duplicate
            } else {
                State::Skipped
            };
        }
    }
}

/// A dead-letter move: reason, detail, and extra attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DeadLetter {
    pub(super) reason: &'static str,
    pub(super) detail: String,
    pub(super) extra: Vec<(&'static str, String)>,
}

/// Spreads failures: to the later records of a failed record's FIFO group, and to the records
/// whose event was a copy of one that was not sent.
pub(super) fn settle_failures(groups: &[&str], results: &mut [RecordResult]) {
    hold_back_groups(groups, results);
    fail_shadows(results);
}

/// FIFO: a failed record fails the later records of its group.
pub(super) fn hold_back_groups(groups: &[&str], results: &mut [RecordResult]) {
    let mut failed = HashSet::new();
    for (i, result) in results.iter_mut().enumerate() {
        if failed.contains(groups[i]) {
            if !result.is_failed() {
                result.state = State::Failed(BLOCKED.into());
            }
        } else if result.is_failed() {
            failed.insert(groups[i]);
        }
    }
}

/// A record whose event was sent through another record's copy fails when that copy's record
/// did not send it (failed, or bound for the dead-letter queue), so its redelivery sends the
/// event (or finds it sent).
pub(super) fn fail_shadows(results: &mut [RecordResult]) {
    let unsent = |r: &RecordResult| {
        matches!(
            r.state,
            State::Failed(_) | State::ToDeadLetter(_) | State::DeadLettered(_)
        )
    };
    loop {
        let failed: Vec<usize> = (0..results.len())
            .filter(|&i| !results[i].is_failed())
            .filter(|&i| results[i].shadows.iter().any(|&o| unsent(&results[o])))
            .collect();
        if failed.is_empty() {
            return;
        }
        for i in failed {
            results[i].state = State::Failed("the batch's first copy of its event failed".into());
        }
    }
}
