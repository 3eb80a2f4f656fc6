//! The ledger writes of a batch: sent marks together with the report tallies of exactly the
//! events they mark, cut into writes that each fit one store transaction
//! ([`crate::store::MAX_MARK_WRITE`] items).
//!
//! Why together: a redelivery finds a marked event sent and counts nothing, so an event must be
//! counted in the write that marks it. Were a batch's marks in one transaction and its counts in
//! another, a crash between them would lose (or, the other way round, double) counts.

use std::collections::BTreeSet;

use crate::report::{Fact, FactKey, Tally, tally};
use crate::store::MAX_MARK_WRITE;
use crate::store::ledger::SentMark;

/// One store call: marks, and the tallies of their events (and of skips).
#[derive(Debug, Default, PartialEq)]
pub(super) struct MarkWrite {
    /// Events to mark sent.
    pub marks: Vec<SentMark>,
    /// Aggregates to add to.
    pub tallies: Vec<(FactKey, Tally)>,
}

/// Cuts the batch's sent events (each with its fact) and skip facts into writes of at most
/// [`MAX_MARK_WRITE`] items (one per mark, one per distinct aggregate), in order; usually one.
pub(super) fn mark_writes(sent: Vec<(SentMark, Option<Fact>)>, skips: Vec<Fact>) -> Vec<MarkWrite> {
    let mut writes = Vec::new();
    let mut marks = Vec::new();
    let mut facts = Vec::new();
    let mut keys: BTreeSet<FactKey> = BTreeSet::new();
    let items = sent
        .into_iter()
        .map(|(mark, fact)| (Some(mark), fact))
        .chain(skips.into_iter().map(|fact| (None, Some(fact))));
    for (mark, fact) in items {
        let new_key = fact.as_ref().is_some_and(|f| !keys.contains(&f.key));
        let size = marks.len() + keys.len() + usize::from(mark.is_some()) + usize::from(new_key);
        if size > MAX_MARK_WRITE && !(marks.is_empty() && keys.is_empty()) {
            writes.push(MarkWrite {
                marks: std::mem::take(&mut marks),
                tallies: tally(std::mem::take(&mut facts)),
            });
            keys.clear();
        }
        if let Some(fact) = fact {
            keys.insert(fact.key.clone());
            facts.push(fact);
        }
        marks.extend(mark);
    }
    if !(marks.is_empty() && facts.is_empty()) {
        writes.push(MarkWrite {
            marks,
            tallies: tally(facts),
        });
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(i: usize) -> SentMark {
        SentMark {
            event_id: format!("e{i}"),
            fbtrace_id: None,
            sent_at: 1,
            expires_at: 2,
        }
    }

    fn fact(ad: &str) -> Fact {
        Fact {
            key: FactKey {
                day: "2026-12-01".into(),
                outcome: "sent".into(),
                ad_id: ad.into(),
                ..FactKey::default()
            },
            value: Some(1.5),
            keys: vec!["ph"],
        }
    }

    #[test]
    fn a_usual_batch_is_one_write() {
        let sent = (0..10).map(|i| (mark(i), Some(fact("a")))).collect();
        let writes = mark_writes(sent, vec![fact("")]);
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].marks.len(), 10);
        assert_eq!(writes[0].tallies.len(), 2);
        assert_eq!(writes[0].tallies[1].1.count, 10);
        assert_eq!(writes[0].tallies[1].1.value, 15.0);
    }

    #[test]
    fn nothing_to_write_is_no_write() {
        assert!(mark_writes(Vec::new(), Vec::new()).is_empty());
    }

    #[test]
    fn every_write_fits_and_counts_exactly_the_events_it_marks() {
        // 150 events over 120 ads: more than one transaction's worth.
        let sent: Vec<_> = (0..150)
            .map(|i| (mark(i), Some(fact(&format!("ad{}", i % 120)))))
            .collect();
        let writes = mark_writes(sent, (0..30).map(|_| fact("")).collect());
        assert!(writes.len() > 1);
        let mut marked = 0;
        let mut counted = 0;
        for w in &writes {
            assert!(w.marks.len() + w.tallies.len() <= MAX_MARK_WRITE);
            let sent_here: u64 = w
                .tallies
                .iter()
                .filter(|(k, _)| !k.ad_id.is_empty())
                .map(|(_, t)| t.count)
                .sum();
            assert_eq!(
                sent_here,
                w.marks.len() as u64,
                "counts travel with their marks"
            );
            marked += w.marks.len();
            counted += w.tallies.iter().map(|(_, t)| t.count).sum::<u64>();
        }
        assert_eq!(marked, 150);
        assert_eq!(counted, 180);
    }
}
