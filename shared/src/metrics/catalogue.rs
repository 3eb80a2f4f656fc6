//! The metric catalogue: every metric wacapi publishes, the dimension sets it is published
//! under by default and with detailed metrics, and whether it is published with traffic or only
//! when something needs a look (`catalogue.json`, beside this file). It is the one list the
//! code's EMF, the module's alarms and dashboard, and `bench/cost.py`'s series count are held
//! to.

use std::sync::OnceLock;

use serde::Deserialize;

/// The catalogue's text (also read by `bench/cost.py`).
pub const CATALOGUE_JSON: &str = include_str!("catalogue.json");

/// When a metric is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum When {
    /// On most invocations: billed every hour of the month.
    Traffic,
    /// Only when something needs a look (zero counters are never published).
    Incident,
}

/// One metric.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    /// `webhook-ingest` or `capi-dispatch` (the `Service` dimension).
    pub service: String,
    /// The metric name.
    pub name: String,
    /// When it is published.
    pub when: When,
    /// The dimension sets (beside `Service`) it is published under by default; `[]` is
    /// `[Service]` alone.
    pub sets: Vec<Vec<String>>,
    /// The sets it is published under too with detailed metrics.
    #[serde(default)]
    pub detailed: Vec<Vec<String>>,
}

#[derive(Deserialize)]
struct Catalogue {
    metrics: Vec<Entry>,
}

/// Every metric, in catalogue order.
pub fn entries() -> &'static [Entry] {
    static ENTRIES: OnceLock<Vec<Entry>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        // The catalogue is part of the binary and checked by the tests: a malformed one is a
        // build mistake, not input, so an empty list (no metric allowed) is the safe reading.
        serde_json::from_str::<Catalogue>(CATALOGUE_JSON)
            .map(|c| c.metrics)
            .unwrap_or_default()
    })
}

/// The catalogue entry of `service`'s metric `name`.
pub fn entry(service: &str, name: &str) -> Option<&'static Entry> {
    entries()
        .iter()
        .find(|e| e.service == service && e.name == name)
}

/// Whether `service` publishes `name` under the dimension set `dimensions` (beside `Service`,
/// in any order), with or without detailed metrics.
pub fn allows(service: &str, name: &str, dimensions: &[&str], detailed: bool) -> bool {
    let same = |set: &Vec<String>| {
        set.len() == dimensions.len() && dimensions.iter().all(|d| set.iter().any(|s| s == d))
    };
    entry(service, name)
        .is_some_and(|e| e.sets.iter().any(same) || (detailed && e.detailed.iter().any(same)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_reads_and_names_every_metric_once() {
        let all = entries();
        assert!(all.len() > 30, "{}", all.len());
        let mut seen = std::collections::HashSet::new();
        for e in all {
            assert!(seen.insert((&e.service, &e.name)), "{} twice", e.name);
            assert!(
                e.service == "webhook-ingest" || e.service == "capi-dispatch",
                "{}",
                e.service
            );
        }
        assert!(allows("capi-dispatch", "EventsSent", &["Channel"], false));
        assert!(!allows("capi-dispatch", "EventsSent", &["Rule"], false));
        assert!(allows("capi-dispatch", "EventsSent", &["Rule"], true));
        assert!(allows(
            "capi-dispatch",
            "EventsSent",
            &["Destination", "EventName"],
            true
        ));
        assert!(!allows("capi-dispatch", "MatchKeyEvents", &[], false));
    }

    #[test]
    fn the_catalogue_lists_exactly_the_names_the_code_emits() {
        let listed = |service: &str| -> std::collections::BTreeSet<&str> {
            entries()
                .iter()
                .filter(|e| e.service == service)
                .map(|e| e.name.as_str())
                .collect()
        };
        let ingest: std::collections::BTreeSet<&str> =
            crate::metrics::names::INGEST.iter().copied().collect();
        let dispatch: std::collections::BTreeSet<&str> =
            crate::dispatch::metric_names::all().into_iter().collect();
        assert_eq!(listed("webhook-ingest"), ingest);
        assert_eq!(listed("capi-dispatch"), dispatch);
    }
}
