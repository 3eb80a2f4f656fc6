//! CloudWatch Embedded Metric Format (EMF): counters gathered during one invocation, written as
//! JSON lines that CloudWatch Logs turns into metrics. No API call, no extra latency.
//!
//! Every metric carries the `Service` dimension; some add one more (`Reason`, `EventName`, ...),
//! and those are published under `[Service]` alone as well, so alarms can use the total.
//! The names below are the contract with `infra/` (alarms, dashboard), checked by tests;
//! [`catalogue`] lists every metric with the dimension sets it is published under, by default
//! and with detailed metrics, which is what CloudWatch bills.
//!
//! A counter of zero is never published: CloudWatch bills a custom metric for each hour it is
//! published, so metrics of rare outcomes (errors, refusals) cost nothing in the hours nothing
//! goes wrong, and the alarms on them read missing data as "not breaching".

pub mod catalogue;

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{Map, Value, json};

/// The default CloudWatch namespace.
pub const DEFAULT_NAMESPACE: &str = "wacapi";

/// The dimension naming a signal's or event's channel (`whatsapp`, `messenger`, `instagram`).
pub const CHANNEL: &str = "Channel";

/// The dimension naming the platform an event went to (`meta`, `tiktok`).
pub const DESTINATION: &str = "Destination";

/// Metric names: the only names the code emits.
pub mod names {
    /// Webhook POSTs received (before any check).
    pub const WEBHOOKS_RECEIVED: &str = "WebhooksReceived";
    /// Webhook POSTs refused for their signature; dimension `Reason`.
    pub const SIGNATURE_FAILURES: &str = "SignatureFailures";
    /// Webhook POSTs refused for their size.
    pub const BODIES_TOO_LARGE: &str = "BodiesTooLarge";
    /// Signals accepted by the signal queue; dimension `Channel`.
    pub const SIGNALS_ENQUEUED: &str = "SignalsEnqueued";
    /// `statuses[]` items seen and ignored.
    pub const STATUSES_IGNORED: &str = "StatusesIgnored";
    /// Change-level `errors[]` items Meta reported.
    pub const WEBHOOK_ERRORS: &str = "WebhookErrors";
    /// Webhook parts left out on purpose (fields wacapi does not process, echoes, receipts
    /// and other item kinds that are no conversion): see `Split::ignored_changes`; ingest logs
    /// them by kind.
    pub const CHANGES_IGNORED: &str = "ChangesIgnored";
    /// Signed bodies or items kept on the dead-letter queue; dimension `Reason`.
    pub const BODIES_QUARANTINED: &str = "BodiesQuarantined";
    /// Signed unparseable bodies too large to quarantine, answered 500 so Meta keeps them.
    pub const QUARANTINE_TOO_LARGE: &str = "QuarantineTooLarge";
    /// Queue sends that failed (the webhook is answered 500 and retried by Meta).
    pub const ENQUEUE_FAILURES: &str = "EnqueueFailures";
    /// Secrets that could not be loaded.
    pub const SECRET_ERRORS: &str = "SecretErrors";
    /// Subscription handshakes; dimension `Outcome`.
    pub const HANDSHAKES: &str = "Handshakes";
    /// Flow form fields left out of signals (nested too deep, or a `response_json` that holds
    /// no JSON object); the Flow completion itself is kept.
    pub const FLOW_FIELDS_DROPPED: &str = "FlowFieldsDropped";
    /// Parts of webhook items left out because they could not be read at all (a string with a
    /// lone surrogate escape, a number out of range, a repeated key); the item itself is kept.
    pub const UNREADABLE_PARTS: &str = "UnreadableParts";

    /// `POST /events` requests received.
    pub const BUSINESS_REQUESTS: &str = "BusinessRequests";
    /// `POST /events` requests refused for their signature; dimension `Reason`.
    pub const BUSINESS_AUTH_FAILURES: &str = "BusinessAuthFailures";
    /// Business events refused by validation; dimension `Reason`.
    pub const BUSINESS_EVENTS_REJECTED: &str = "BusinessEventsRejected";
    /// Business events queued.
    pub const BUSINESS_EVENTS_QUEUED: &str = "BusinessEventsQueued";

    /// Every name above, for contract tests.
    pub const INGEST: &[&str] = &[
        BUSINESS_REQUESTS,
        BUSINESS_AUTH_FAILURES,
        BUSINESS_EVENTS_REJECTED,
        BUSINESS_EVENTS_QUEUED,
        WEBHOOKS_RECEIVED,
        SIGNATURE_FAILURES,
        BODIES_TOO_LARGE,
        SIGNALS_ENQUEUED,
        STATUSES_IGNORED,
        WEBHOOK_ERRORS,
        CHANGES_IGNORED,
        BODIES_QUARANTINED,
        QUARANTINE_TOO_LARGE,
        ENQUEUE_FAILURES,
        SECRET_ERRORS,
        HANDSHAKES,
        FLOW_FIELDS_DROPPED,
        UNREADABLE_PARTS,
    ];
    /// The ingest metrics also published per [`super::CHANNEL`].
    pub const BY_CHANNEL: &[&str] = &[SIGNALS_ENQUEUED];
}

/// CloudWatch units used here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    /// A count of things (CloudWatch's `Count`).
    Count,
    /// A duration in seconds (CloudWatch's `Seconds`).
    Seconds,
    /// A duration in milliseconds (CloudWatch's `Milliseconds`).
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Seconds => "Seconds",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// The extra dimensions of a metric (besides `Service`): each published as its own dimension
/// set beside `[Service]` alone, or (`combined`) all together as one set and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct DimensionKey {
    combined: bool,
    dimensions: Vec<(&'static str, String)>,
}

impl DimensionKey {
    fn each(dimensions: Vec<(&'static str, String)>) -> Self {
        Self {
            combined: false,
            dimensions,
        }
    }
}

/// Metrics of one invocation, flushed as EMF documents.
#[derive(Debug, Clone)]
pub struct Metrics {
    namespace: String,
    service: &'static str,
    detailed: bool,
    values: BTreeMap<DimensionKey, BTreeMap<&'static str, (Unit, Vec<f64>)>>,
}

impl Metrics {
    /// Empty metrics for `service` under `namespace`, without the detailed breakdowns.
    pub fn new(namespace: impl Into<String>, service: &'static str) -> Self {
        Self {
            namespace: namespace.into(),
            service,
            detailed: false,
            values: BTreeMap::new(),
        }
    }

    /// The same metrics, with (or without) the breakdowns the catalogue marks detailed (by event
    /// name, rule and match key): each of their values is a metric CloudWatch bills, so they are
    /// opt-in (the module's `detailed_metrics`); the conversion report has them anyway.
    pub fn with_detail(mut self, detailed: bool) -> Self {
        self.detailed = detailed;
        self
    }

    /// Whether the detailed breakdowns are published.
    pub fn detailed(&self) -> bool {
        self.detailed
    }

    /// Adds `n` to a counter.
    pub fn count(&mut self, name: &'static str, n: u64) {
        self.add(
            DimensionKey::each(Vec::new()),
            name,
            Unit::Count,
            n as f64,
            true,
        );
    }

    /// Adds `n` to a counter under one extra dimension.
    pub fn count_by(
        &mut self,
        name: &'static str,
        dimension: &'static str,
        value: impl Into<String>,
        n: u64,
    ) {
        self.add(
            DimensionKey::each(vec![(dimension, value.into())]),
            name,
            Unit::Count,
            n as f64,
            true,
        );
    }

    /// Adds `n` to a counter under several extra dimensions, each published as its own
    /// dimension set (`[Service, EventName]`, `[Service, Channel]`, ...) and under `[Service]`.
    pub fn count_by_each(
        &mut self,
        name: &'static str,
        dimensions: &[(&'static str, &str)],
        n: u64,
    ) {
        let key = dimensions
            .iter()
            .map(|(d, v)| (*d, (*v).to_owned()))
            .collect();
        self.add(DimensionKey::each(key), name, Unit::Count, n as f64, true);
    }

    /// Adds `n` to a counter published only under `[Service, ...dimensions]` together: a
    /// breakdown (a share per event name and key, say) that the totals above already count, so
    /// [`Self::total`] leaves it out.
    pub fn count_by_all(
        &mut self,
        name: &'static str,
        dimensions: &[(&'static str, &str)],
        n: u64,
    ) {
        let key = DimensionKey {
            combined: true,
            dimensions: dimensions
                .iter()
                .map(|(d, v)| (*d, (*v).to_owned()))
                .collect(),
        };
        self.add(key, name, Unit::Count, n as f64, true);
    }

    /// The counter's value under exactly these combined dimensions ([`Self::count_by_all`]).
    pub fn total_by_all(&self, name: &str, dimensions: &[(&str, &str)]) -> f64 {
        self.values
            .iter()
            .filter(|(k, _)| {
                k.combined
                    && k.dimensions.len() == dimensions.len()
                    && k.dimensions
                        .iter()
                        .zip(dimensions)
                        .all(|((d, v), (d2, v2))| d == d2 && v == v2)
            })
            .filter_map(|(_, m)| m.get(name))
            .flat_map(|(_, v)| v.iter())
            .sum()
    }

    /// Records one observation of a distribution (each is kept; CloudWatch aggregates).
    pub fn observe(&mut self, name: &'static str, unit: Unit, value: f64) {
        self.add(DimensionKey::each(Vec::new()), name, unit, value, false);
    }

    fn add(&mut self, key: DimensionKey, name: &'static str, unit: Unit, value: f64, sum: bool) {
        if sum && value == 0.0 {
            return;
        }
        let entry = self
            .values
            .entry(key)
            .or_default()
            .entry(name)
            .or_insert((unit, Vec::new()));
        match (sum, entry.1.first_mut()) {
            (true, Some(total)) => *total += value,
            _ => entry.1.push(value),
        }
    }

    /// The counter's total across dimensions (tests and the CLI summary).
    pub fn total(&self, name: &str) -> f64 {
        self.values
            .iter()
            .filter(|(k, _)| !k.combined)
            .filter_map(|(_, m)| m.get(name))
            .flat_map(|(_, v)| v.iter())
            .sum()
    }

    /// The counter's total for one dimension value.
    pub fn total_by(&self, name: &str, dimension: &str, value: &str) -> f64 {
        self.values
            .iter()
            .filter(|(k, _)| !k.combined)
            .filter(|(k, _)| {
                k.dimensions
                    .iter()
                    .any(|(d, v)| *d == dimension && v == value)
            })
            .filter_map(|(_, m)| m.get(name))
            .flat_map(|(_, v)| v.iter())
            .sum()
    }

    /// Merges another invocation's metrics into this one.
    pub fn merge(&mut self, other: Metrics) {
        self.detailed |= other.detailed;
        for (key, metrics) in other.values {
            for (name, (unit, values)) in metrics {
                for v in values {
                    self.add(key.clone(), name, unit, v, unit == Unit::Count);
                }
            }
        }
    }

    /// The EMF documents (one per dimension set), clearing the metrics.
    pub fn take_documents(&mut self, timestamp_ms: u64) -> Vec<Value> {
        let values = std::mem::take(&mut self.values);
        values
            .into_iter()
            .map(|(key, metrics)| {
                let mut dimension_sets = Vec::new();
                let mut doc = Map::new();
                doc.insert("Service".into(), json!(self.service));
                for (name, value) in &key.dimensions {
                    if !key.combined {
                        dimension_sets.push(json!(["Service", name]));
                    }
                    doc.insert((*name).into(), json!(value));
                }
                if key.combined {
                    let mut set = vec!["Service"];
                    set.extend(key.dimensions.iter().map(|(name, _)| *name));
                    dimension_sets.push(json!(set));
                } else {
                    // Also under [Service] alone: alarms cannot sum across a dimension.
                    dimension_sets.push(json!(["Service"]));
                }
                let definitions: Vec<Value> = metrics
                    .iter()
                    .map(|(name, (unit, _))| json!({"Name": name, "Unit": unit.as_str()}))
                    .collect();
                for (name, (_, values)) in metrics {
                    let value = match values.as_slice() {
                        [one] => json!(one),
                        many => json!(many),
                    };
                    doc.insert(name.into(), value);
                }
                doc.insert(
                    "_aws".into(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": self.namespace,
                            "Dimensions": dimension_sets,
                            "Metrics": definitions,
                        }],
                    }),
                );
                Value::Object(doc)
            })
            .collect()
    }

    /// Writes the EMF documents as JSON lines to `out` (stdout in Lambda), clearing the metrics.
    pub fn flush_to(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let now_ms = crate::clock::now_millis();
        for doc in self.take_documents(now_ms) {
            serde_json::to_writer(&mut *out, &doc)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_combined_breakdown_is_one_dimension_set_and_not_in_the_totals() {
        let mut m = Metrics::new("wacapi", "capi-dispatch");
        m.count_by("EventsSent", "EventName", "Purchase", 2);
        m.count_by_all(
            "EventsSent",
            &[("EventName", "Purchase"), ("Destination", "meta")],
            2,
        );
        m.count_by_all(
            "EventsSent",
            &[("EventName", "Purchase"), ("Destination", "meta")],
            1,
        );
        assert_eq!(m.total("EventsSent"), 2.0);
        assert_eq!(m.total_by("EventsSent", "Destination", "meta"), 0.0);
        assert_eq!(
            m.total_by_all(
                "EventsSent",
                &[("EventName", "Purchase"), ("Destination", "meta")]
            ),
            3.0
        );
        let docs = m.take_documents(1);
        let combined = docs
            .iter()
            .find(|d| d.get("Destination").is_some())
            .expect("a combined document");
        assert_eq!(combined["EventsSent"], json!(3.0));
        assert_eq!(
            combined["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service", "EventName", "Destination"]])
        );
    }

    #[test]
    fn zero_counters_are_never_published() {
        let mut m = Metrics::new("wacapi", "capi-dispatch");
        m.count("RecordsFailed", 0);
        m.count_by("DeadLetterMoves", "Reason", "x", 0);
        m.count_by_each("EventsSkipped", &[("Reason", "no_rule")], 0);
        m.count_by_all("MatchKeyEvents", &[("Key", "ph")], 0);
        assert!(m.take_documents(1).is_empty());
        m.observe("EventAgeAtSend", Unit::Seconds, 0.0);
        assert_eq!(m.take_documents(1).len(), 1, "an observation of 0 is data");
    }

    #[test]
    fn emf_documents_group_by_dimension() {
        let mut m = Metrics::new("wacapi", "webhook-ingest");
        m.count(names::WEBHOOKS_RECEIVED, 1);
        m.count(names::WEBHOOKS_RECEIVED, 2);
        m.count_by(names::SIGNATURE_FAILURES, "Reason", "mismatch", 1);
        m.observe("EventAge", Unit::Seconds, 3.0);
        m.observe("EventAge", Unit::Seconds, 5.0);
        assert_eq!(m.total(names::WEBHOOKS_RECEIVED), 3.0);
        assert_eq!(
            m.total_by(names::SIGNATURE_FAILURES, "Reason", "mismatch"),
            1.0
        );
        let docs = m.take_documents(1_750_000_000_000);
        assert_eq!(docs.len(), 2);
        let plain = &docs[0];
        assert_eq!(plain["WebhooksReceived"], json!(3.0));
        assert_eq!(plain["EventAge"], json!([3.0, 5.0]));
        assert_eq!(plain["Service"], json!("webhook-ingest"));
        assert_eq!(
            plain["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service"]])
        );
        let by_reason = &docs[1];
        assert_eq!(by_reason["Reason"], json!("mismatch"));
        assert_eq!(
            by_reason["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service", "Reason"], ["Service"]])
        );
        assert!(m.take_documents(0).is_empty());
    }
}
