//! The dispatcher, independent of its edge: a batch of queue records in, the records to retry
//! out. The Lambda (`functions/capi-dispatch`) and `wacapi serve` both run it.
//!
//! Per batch, in four store and Graph round trips however many records it holds:
//! 1. Each record is decoded (a signal; or a quarantined webhook body or item redriven from the
//!    dead-letter queue). Every click the batch will look up is read in one call.
//! 2. Records are attributed and mapped in order against that view (clicks recorded by earlier
//!    records of the batch are seen by later ones); a record behind a failed one of its FIFO
//!    group is held back.
//! 3. The clicks learned are written and every event is *claimed* in the ledger, in one
//!    conditional call; an event already sent is a duplicate, one leased elsewhere fails its
//!    record for a later retry.
//! 4. Claimed events are grouped per destination into requests of at most 1,000 and sent with
//!    retries chosen by Meta's error code: transient and throttling errors back off with jitter
//!    inside the invocation's remaining time; code 100 splits the request to isolate the invalid
//!    events, delivers the rest, and dead-letters each invalid event's record with Meta's code,
//!    subcode and message; token and permission errors, and a deprecated Graph API version
//!    (code 2635), keep the records (reported failed, so SQS retries and finally dead-letters
//!    them) and raise an alarm metric. Meta's version warning header on any answer is counted
//!    and logged once per batch with the configured version.
//! 5. Accepted events are marked sent in one call; failed ones are released for the retry.
//!
//! Every record ends as exactly one of: sent, duplicate (already sent), skipped (with reasons),
//! dead-lettered (with a reason), or failed (redelivered by SQS).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::conversion::mapping::{Outcome, SkipReason, skip_fact};
use crate::conversion::pipeline::{Processor, click_lookups};
use crate::conversion::rules::Config;
use crate::delivery::{Deliver, Outbound, Target};
use crate::ingest::attributes;
use crate::meta::capi::MAX_EVENT_AGE_SECONDS;
use crate::metrics::Metrics;
use crate::queue::{MessageSink, OutboundMessage};
use crate::signal::Signal;
use crate::store::ledger::{Claim, ClaimRequest};
use crate::store::{BatchClicks, ClickWrite, DispatchStore};
use crate::values::hashing::sha256_hex;

/// Metric names of the dispatcher (the contract with `infra/`); each destination names its
/// requests' own ([`crate::delivery::Profile`]), and [`all`](metric_names::all) lists both.
pub mod metric_names {
    /// Queue records received.
    pub const RECORDS_RECEIVED: &str = "RecordsReceived";
    /// Records reported failed (SQS redelivers them).
    pub const RECORDS_FAILED: &str = "RecordsFailed";
    /// Events a destination accepted; dimensions `EventName`, `Channel`, `Destination` and
    /// `Rule`.
    pub const EVENTS_SENT: &str = "EventsSent";
    /// Events not sent; dimensions `Reason` and `Channel`.
    pub const EVENTS_SKIPPED: &str = "EventsSkipped";
    /// Events already sent (durable or in-batch dedup).
    pub const DEDUP_HITS: &str = "DedupHits";
    /// Events per request (a distribution).
    pub const EVENTS_PER_REQUEST: &str = "EventsPerRequest";
    /// Seconds between an event and its acceptance by its destination (a distribution).
    pub const EVENT_AGE_AT_SEND: &str = "EventAgeAtSend";
    /// Records moved to the dead-letter queue; dimension `Reason`.
    pub const DLQ_MOVES: &str = "DeadLetterMoves";
    /// Sent marks that could not be written (a duplicate becomes possible): an alarm.
    pub const LEDGER_WRITE_FAILURES: &str = "LedgerWriteFailures";
    /// Flow fields left out of `user_data` because they could not be normalised.
    pub const USER_DATA_DROPPED: &str = "UserDataFieldsDropped";
    /// Events sent again after their destination answered 5xx or did not answer once they were
    /// sent: it may have processed the first send (Meta does not deduplicate), so each may be
    /// a duplicate.
    pub const AMBIGUOUS_RESENDS: &str = "AmbiguousResends";
    /// `custom_data` values left out because they read as an email address or a phone number.
    pub const CUSTOM_DATA_DROPPED: &str = "CustomDataValuesDropped";
    /// Sent events carrying a match key; dimension `Key` (`ph`, `em`, `ctwa_clid`, ...):
    /// divided by `EventsSent`, the match-key coverage Events Manager's match quality follows.
    pub const MATCH_KEY_EVENTS: &str = "MatchKeyEvents";

    /// The dispatcher's own names above.
    pub const OWN: &[&str] = &[
        RECORDS_RECEIVED,
        RECORDS_FAILED,
        EVENTS_SENT,
        EVENTS_SKIPPED,
        DEDUP_HITS,
        EVENTS_PER_REQUEST,
        EVENT_AGE_AT_SEND,
        DLQ_MOVES,
        LEDGER_WRITE_FAILURES,
        USER_DATA_DROPPED,
        CUSTOM_DATA_DROPPED,
        AMBIGUOUS_RESENDS,
        MATCH_KEY_EVENTS,
    ];

    /// Every metric name the dispatch function publishes: its own and every destination's.
    pub fn all() -> Vec<&'static str> {
        let mut names = OWN.to_vec();
        for profile in crate::destinations::PROFILES {
            names.extend(profile.metric_names());
        }
        names
    }

    /// The metrics that page someone: `infra/monitoring.tf` has an alarm on each
    /// (tests/tests/infra_contract.rs checks it).
    pub fn alarmed() -> Vec<&'static str> {
        let mut names = vec![LEDGER_WRITE_FAILURES];
        for profile in crate::destinations::PROFILES {
            names.extend(profile.alarmed());
        }
        names
    }

    /// The dispatch metrics also published per [`crate::metrics::DESTINATION`].
    pub const BY_DESTINATION: &[&str] = &[EVENTS_SENT];
    /// The dispatch metrics also published per [`crate::metrics::CHANNEL`].
    pub const BY_CHANNEL: &[&str] = &[EVENTS_SENT, EVENTS_SKIPPED];
}
use metric_names as m;

mod decode;
mod mark;
mod record;
mod send;

use decode::decode;
use mark::{MarkWrite, mark_writes};
use record::{BLOCKED, DeadLetter, RecordResult, State, settle_failures};
pub use send::EVENT_ID_ATTRIBUTE;
use send::{SendLog, record_sends, requests};

/// One queue record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboundRecord {
    /// The queue's message id (reported back when the record fails).
    pub message_id: String,
    /// The FIFO message group.
    pub group_id: Option<String>,
    /// The body.
    pub body: String,
    /// String message attributes (set on dead-lettered items that were redriven).
    pub attributes: HashMap<String, String>,
}

/// Retry and lease tuning.
#[derive(Debug, Clone)]
pub struct DispatchSettings {
    /// Attempts per Graph request for retryable errors.
    pub max_attempts: u32,
    /// First backoff delay (doubled per attempt, before jitter).
    pub backoff_base: Duration,
    /// The longest single backoff delay.
    pub backoff_max: Duration,
    /// The Graph client's timeout: a retry starts only if it can finish before the deadline.
    pub request_timeout: Duration,
    /// Time kept free before the deadline to write marks and answer.
    pub safety_margin: Duration,
    /// A claim's lease outlives the invocation by this much.
    pub lease_margin: Duration,
}

impl Default for DispatchSettings {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(8),
            request_timeout: Duration::from_secs(10),
            safety_margin: Duration::from_secs(2),
            lease_margin: Duration::from_secs(60),
        }
    }
}

/// How each record ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordTally {
    /// At least one event accepted by Meta.
    pub sent: usize,
    /// Every event was already sent.
    pub duplicate: usize,
    /// No event to send (reasons in [`DispatchReport::skipped`]).
    pub skipped: usize,
    /// Moved to the dead-letter queue.
    pub dead_lettered: usize,
    /// Reported failed, for redelivery.
    pub failed: usize,
}

/// What a batch came to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DispatchReport {
    /// Message ids to report as batch item failures.
    pub failed: Vec<String>,
    /// Record outcomes.
    pub records: RecordTally,
    /// Events accepted by Meta.
    pub events_sent: usize,
    /// Events skipped, by reason.
    pub skipped: BTreeMap<&'static str, usize>,
    /// Dedup hits.
    pub dedup_hits: usize,
    /// Graph requests made (retries and splits included).
    pub graph_requests: usize,
    /// Events that will be sent again (now or on redelivery) after Meta answered 5xx or did not
    /// answer: Meta may have processed them, so each may become a duplicate.
    pub ambiguous_resends: usize,
    /// Graph answers carrying Meta's `X-Ad-Api-Version-Warning` header.
    pub graph_version_warnings: usize,
    /// The first such header's text (Meta's free text, capped).
    pub graph_version_warning: Option<String>,
}

/// The dispatcher's ports and configuration: the store, the destinations (one [`Deliver`]:
/// [`crate::destinations::Destinations`] in production) and the dead-letter queue.
#[derive(Debug)]
pub struct Dispatcher<S, X, D> {
    config: Config,
    store: S,
    destinations: X,
    dead_letters: D,
    settings: DispatchSettings,
}

impl<S: DispatchStore, X: Deliver, D: MessageSink> Dispatcher<S, X, D> {
    /// Wires the dispatcher.
    pub fn new(
        config: Config,
        store: S,
        destinations: X,
        dead_letters: D,
        settings: DispatchSettings,
    ) -> Self {
        Self {
            config,
            store,
            destinations,
            dead_letters,
            settings,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Dispatches one batch. `now` is unix seconds; `deadline` is when the invocation ends.
    ///
    /// The steps, each a function of its own: `decode` every record, `Self::read_clicks`
    /// in one call, `Self::map_records` in order, `Self::claim` every event (and write the
    /// clicks learned) in one call, `Self::send` per destination, `record_sends` and
    /// `Self::mark` the outcome, `Self::move_dead_letters`, and `tally` the report.
    pub async fn dispatch(
        &self,
        records: &[InboundRecord],
        now: i64,
        deadline: Instant,
        metrics: &mut Metrics,
    ) -> DispatchReport {
        metrics.count(m::RECORDS_RECEIVED, records.len() as u64);
        let remaining = deadline.saturating_duration_since(Instant::now());
        let lease_until = now + (remaining + self.settings.lease_margin).as_secs() as i64;
        let groups: Vec<&str> = records
            .iter()
            .map(|r| r.group_id.as_deref().unwrap_or(&r.message_id))
            .collect();

        let decoded: Vec<Result<Vec<Signal>, DeadLetter>> = records.iter().map(decode).collect();
        let clicks = self.read_clicks(&decoded).await;
        let mut results = self.map_records(decoded, &groups, &clicks, now).await;
        self.claim(&mut results, clicks.take_writes(), lease_until, now)
            .await;
        for result in &mut results {
            result.settle();
        }
        settle_failures(&groups, &mut results);
        let mut release: Vec<String> = Vec::new();
        for result in results.iter_mut().filter(|r| r.is_failed()) {
            release.extend(
                std::mem::take(&mut result.claimed)
                    .into_iter()
                    .map(|m| m.event.event_id().to_owned()),
            );
        }

        let (requests, mut sent_facts) = requests(&mut results);
        let logs = self.send(requests, deadline).await;
        let mut report = DispatchReport::default();
        let sent = record_sends(
            logs,
            now,
            &mut results,
            &mut sent_facts,
            &mut release,
            &mut report,
            metrics,
        );
        if let Some(warning) = &report.graph_version_warning {
            // Once per batch, not per answer: the operator needs the version and Meta's words,
            // and the metric counts the answers.
            tracing::warn!(
                graph_api_version = %self.config.graph_api_version,
                warning = %warning,
                answers = report.graph_version_warnings,
                "Meta warns about the configured Graph API version: set graph_api_version to a current version (wacapi check-config names one)"
            );
        }
        // Skips of records that will be retried are counted when the retry settles them.
        let skips = results
            .iter()
            .filter(|r| !r.is_failed())
            .flat_map(|r| r.facts.iter().cloned())
            .collect();
        self.mark(mark_writes(sent, skips), &release, metrics).await;
        settle_failures(&groups, &mut results);
        self.move_dead_letters(records, &mut results).await;
        settle_failures(&groups, &mut results);
        tally(records, &results, &mut report, metrics);
        report
    }

    /// Reads every click the batch will look up, in one call; a failed read fails only the
    /// records that need a click (the view reads missed keys on demand, or fails them).
    async fn read_clicks(&self, decoded: &[Result<Vec<Signal>, DeadLetter>]) -> BatchClicks<'_, S> {
        let mut keys = Vec::new();
        let mut seen = HashSet::new();
        for signal in decoded.iter().flatten().flatten() {
            for key in click_lookups(&self.config, signal) {
                if seen.insert(key.clone()) {
                    keys.push(key);
                }
            }
        }
        let read = if keys.is_empty() {
            Ok(HashMap::new())
        } else {
            self.store.clicks(&keys).await
        };
        if let Err(err) = &read {
            tracing::warn!(error = %err, keys = keys.len(), "click read failed; records that need a click will be retried");
        }
        BatchClicks::new(&self.store, &keys, read)
    }

    /// Attributes and maps the records in order against the batch's clicks (clicks recorded by
    /// earlier records are seen by later ones); a record behind a failed one of its FIFO group
    /// is held back for redelivery.
    async fn map_records(
        &self,
        decoded: Vec<Result<Vec<Signal>, DeadLetter>>,
        groups: &[&str],
        clicks: &BatchClicks<'_, S>,
        now: i64,
    ) -> Vec<RecordResult> {
        let processor = Processor::new(&self.config, clicks);
        let mut first_copy: HashMap<String, usize> = HashMap::new();
        let mut failed_groups: HashSet<&str> = HashSet::new();
        let mut results: Vec<RecordResult> = Vec::with_capacity(decoded.len());
        for (i, decoded) in decoded.into_iter().enumerate() {
            let result = if failed_groups.contains(groups[i]) {
                RecordResult::failed(BLOCKED)
            } else {
                match decoded {
                    Err(letter) => RecordResult::dead_letter(letter),
                    Ok(signals) => {
                        self.map_record(i, &signals, &processor, now, &mut first_copy)
                            .await
                    }
                }
            };
            if result.is_failed() {
                failed_groups.insert(groups[i]);
            }
            results.push(result);
        }
        if clicks.misses() > 0 {
            tracing::warn!(
                misses = clicks.misses(),
                "clicks read one by one: the batch read missed them"
            );
        }
        results
    }

    /// Claims every mapped event and writes the clicks learned, in one call: a claimed event
    /// may be sent, one already sent is a dedup hit, one leased elsewhere fails its record; a
    /// failed call fails every record that had not failed already.
    async fn claim(
        &self,
        results: &mut [RecordResult],
        writes: Vec<ClickWrite>,
        lease_until: i64,
        now: i64,
    ) {
        let claims: Vec<ClaimRequest> = results
            .iter()
            .flat_map(|r| r.mapped.iter())
            .map(|m| ClaimRequest {
                event_id: m.event.event_id().to_owned(),
                lease_until,
                expires_at: ledger_expiry(m.event.event_time()),
            })
            .collect();
        if writes.is_empty() && claims.is_empty() {
            return;
        }
        let committed = match self.store.commit(&writes, &claims, now).await {
            Ok(answers) if answers.len() == claims.len() => Ok(answers),
            Ok(answers) => Err(format!(
                "store answered {} claims for {}",
                answers.len(),
                claims.len()
            )),
            Err(err) => Err(err.to_string()),
        };
        match committed {
            Ok(answers) => {
                let mut answers = answers.into_iter();
                for result in results.iter_mut() {
                    let mut leased = false;
                    for mapped in std::mem::take(&mut result.mapped) {
                        match answers.next() {
                            Some(Claim::Claimed) => result.claimed.push(mapped),
                            Some(Claim::AlreadySent) => result.dedup_hits += 1,
                            Some(Claim::Leased) | None => leased = true,
                        }
                    }
                    if leased {
                        result.state =
                            State::Failed("an event is leased by another invocation".into());
                    }
                }
            }
            Err(why) => {
                tracing::warn!(error = %why, "claims and clicks not written; the batch's records will be retried");
                for result in results.iter_mut() {
                    if !matches!(result.state, State::ToDeadLetter(_) | State::Failed(_)) {
                        result.mapped.clear();
                        result.state = State::Failed(format!("store: {why}"));
                    }
                }
            }
        }
    }

    /// Sends every request at once, each with retries by its platform's error code.
    async fn send(
        &self,
        requests: Vec<(Target, Vec<(usize, Outbound)>)>,
        deadline: Instant,
    ) -> Vec<SendLog> {
        join_all(requests.into_iter().map(|(target, events)| async move {
            self.send_with_retry(&target, events, deadline).await
        }))
        .await
    }

    /// Marks the accepted events sent, each write with the report tallies of the events it
    /// marks (one call for a usual batch), and releases the claims of the rest in one call.
    async fn mark(&self, writes: Vec<MarkWrite>, release: &[String], metrics: &mut Metrics) {
        for write in writes {
            if let Err(err) = self.store.mark_sent(&write.marks, &write.tallies).await {
                // The events did reach Meta; failing the records would resend them. Alarm
                // instead (their report counts are missing too: the alarm says so).
                let events = write.marks.len();
                metrics.count(m::LEDGER_WRITE_FAILURES, events as u64);
                tracing::error!(error = %err, events, "sent marks not written: a redelivery could resend these events");
            }
        }
        if !release.is_empty()
            && let Err(err) = self.store.release(release).await
        {
            tracing::warn!(error = %err, "claims not released; they expire with their lease");
        }
    }

    /// Moves the records bound for the dead-letter queue, for those no earlier failure holds
    /// back; a move that fails fails its record.
    async fn move_dead_letters(&self, records: &[InboundRecord], results: &mut [RecordResult]) {
        for (i, result) in results.iter_mut().enumerate() {
            if let State::ToDeadLetter(letter) = &result.state {
                result.state = match self.dead_letter(&records[i], letter.clone()).await {
                    Ok(reason) => State::DeadLettered(reason),
                    Err(why) => State::Failed(why),
                };
            }
        }
    }

    /// Attributes and maps one record's signals (clicks come from the batch's view); events
    /// already mapped by an earlier record of the batch are counted as duplicates.
    async fn map_record(
        &self,
        index: usize,
        signals: &[Signal],
        processor: &Processor<'_, &BatchClicks<'_, S>>,
        now: i64,
        first_copy: &mut HashMap<String, usize>,
    ) -> RecordResult {
        let mut result = RecordResult::new();
        if let Some(first) = signals.first() {
            result.channel = first.channel;
        }
        for signal in signals {
            let (outcomes, click) = match processor.process_with_click(signal, now).await {
                Ok(found) => found,
                Err(err) => return RecordResult::failed(format!("click store: {err}")),
            };
            if outcomes.iter().any(|o| {
                matches!(
                    o,
                    Outcome::Skipped {
                        reason: SkipReason::UnknownAccount,
                        ..
                    }
                )
            }) {
                return RecordResult::dead_letter(DeadLetter {
                    reason: "unknown_account",
                    detail: format!(
                        "no {} account is configured for {} {}: add it and redrive",
                        signal.channel,
                        signal.channel.account_noun(),
                        signal.account_id
                    ),
                    extra: vec![(attributes::ACCOUNT_ID, signal.account_id.clone())],
                });
            }
            for outcome in outcomes {
                match outcome {
                    Outcome::Skipped { reason, rule } => {
                        result.skips.push(reason);
                        result.facts.push(skip_fact(
                            &self.config,
                            signal,
                            click.as_ref(),
                            rule.as_deref(),
                            reason,
                        ));
                    }
                    Outcome::Event(mapped) => {
                        result.dropped_user_data += mapped.dropped_user_data.len();
                        result.dropped_custom_data += mapped.dropped_custom_data;
                        match first_copy.get(mapped.event.event_id()) {
                            Some(&owner) => {
                                result.dedup_hits += 1;
                                if owner != index {
                                    result.shadows.push(owner);
                                }
                            }
                            None => {
                                first_copy.insert(mapped.event.event_id().to_owned(), index);
                                result.mapped.push(*mapped);
                            }
                        }
                    }
                }
            }
        }
        result.settle();
        result
    }

    /// Moves a record to the dead-letter queue, body unchanged, reason as attributes.
    async fn dead_letter(
        &self,
        record: &InboundRecord,
        letter: DeadLetter,
    ) -> Result<&'static str, String> {
        let group = record
            .group_id
            .clone()
            .unwrap_or_else(|| sha256_hex(record.message_id.as_bytes()));
        let kind = record
            .attributes
            .get(attributes::KIND)
            .cloned()
            .unwrap_or_else(|| "signal".to_owned());
        let mut message = OutboundMessage::new(
            record.body.clone(),
            group,
            sha256_hex(format!("{}\u{1f}{}", record.message_id, letter.reason).as_bytes()),
        )
        .with_attribute(attributes::KIND, kind)
        .with_attribute(attributes::REASON, letter.reason)
        .with_attribute(
            attributes::DETAIL,
            crate::delivery::error::truncate(&letter.detail, 512),
        );
        for name in [
            attributes::ENCODING,
            attributes::ACCOUNT_ID,
            attributes::WABA_ID,
            attributes::ITEM_KIND,
        ] {
            if let Some(v) = record.attributes.get(name) {
                message = message.with_attribute(name, v.clone());
            }
        }
        for (name, value) in letter.extra {
            if !message.attributes.iter().any(|(n, _)| n == name) {
                message = message.with_attribute(name, value);
            }
        }
        self.dead_letters
            .send_all(vec![message])
            .await
            .map_err(|e| format!("dead-letter queue: {e}"))?;
        tracing::warn!(message_id = %record.message_id, reason = letter.reason, "record moved to the dead-letter queue");
        Ok(letter.reason)
    }
}

/// Counts every record's end into the report and the metrics: sent, duplicate, skipped (with
/// reasons), dead-lettered (with its reason), or failed (its message id reported to SQS).
fn tally(
    records: &[InboundRecord],
    results: &[RecordResult],
    report: &mut DispatchReport,
    metrics: &mut Metrics,
) {
    for (i, result) in results.iter().enumerate() {
        for skip in &result.skips {
            *report.skipped.entry(skip.label()).or_default() += 1;
            metrics.count_by_each(
                m::EVENTS_SKIPPED,
                &[
                    ("Reason", skip.label()),
                    (crate::metrics::CHANNEL, result.channel.as_str()),
                ],
                1,
            );
        }
        report.dedup_hits += result.dedup_hits;
        metrics.count(m::DEDUP_HITS, result.dedup_hits as u64);
        metrics.count(m::USER_DATA_DROPPED, result.dropped_user_data as u64);
        metrics.count(m::CUSTOM_DATA_DROPPED, result.dropped_custom_data as u64);
        match &result.state {
            // The dead-letter step left no record bound for the queue; one would be retried,
            // not lost.
            State::Failed(_) | State::ToDeadLetter(_) => {
                let why = match &result.state {
                    State::Failed(why) => why.as_str(),
                    _ => "not moved to the dead-letter queue",
                };
                report.records.failed += 1;
                report.failed.push(records[i].message_id.clone());
                tracing::warn!(message_id = %records[i].message_id, reason = %why, "record failed; SQS will redeliver it");
            }
            State::DeadLettered(reason) => {
                report.records.dead_lettered += 1;
                metrics.count_by(m::DLQ_MOVES, "Reason", *reason, 1);
            }
            // Open at the end: every claimed event was accepted.
            State::Open => report.records.sent += 1,
            State::Duplicate => report.records.duplicate += 1,
            State::Skipped => report.records.skipped += 1,
        }
    }
    metrics.count(m::RECORDS_FAILED, report.records.failed as u64);
    tracing::info!(
        records = records.len(),
        sent = report.records.sent,
        duplicate = report.records.duplicate,
        skipped = report.records.skipped,
        dead_lettered = report.records.dead_lettered,
        failed = report.records.failed,
        events_sent = report.events_sent,
        graph_requests = report.graph_requests,
        "batch dispatched"
    );
}

/// Ledger records outlive Meta's 7-day window by a day: an older duplicate is refused as
/// `too_old` anyway, so the record is no longer needed.
fn ledger_expiry(event_time: i64) -> i64 {
    // Saturating: an event time is read from a queue message and may be any i64.
    event_time.saturating_add(MAX_EVENT_AGE_SECONDS + 86_400)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::conversion::mapping::MappedEvent;
    use crate::conversion::rules::Account;
    use crate::delivery::{Answer, Conversion, DeliveryError, Profile};
    use crate::destinations::AccountDestinations;
    use crate::meta::dataset::Dataset;
    use crate::model::{Channel, Destination, EventName};
    use crate::store::MemoryStore;
    use crate::store::ledger::SentMark;

    fn account(dataset: &str) -> Account {
        Account {
            channel: Channel::Whatsapp,
            account_id: "1".into(),
            destinations: AccountDestinations {
                meta: Arc::new(Dataset {
                    dataset_id: dataset.into(),
                    token: None,
                    test_event_code: None,
                    partner_agent: None,
                    graph_api_version: "v27.0".into(),
                }),
                tiktok: None,
            },
        }
    }

    fn mapped(account: &Arc<Account>, id: usize) -> MappedEvent {
        let scope = format!("message:{id}");
        let hashed = Default::default();
        let conversion = Conversion {
            name: EventName::ViewContent,
            time: 1,
            scope_key: &scope,
            channel: Channel::Whatsapp,
            account_id: "1",
            user_id: "clid",
            hashed: &hashed,
            phone_e164: None,
            custom_data: None,
            automatic: false,
            renamed: None,
            lead_id: None,
        };
        MappedEvent {
            rule: "r".into(),
            account: Arc::clone(account),
            event: account
                .destinations
                .build(Destination::Meta, &conversion)
                .unwrap(),
            ad_id: None,
            dropped_user_data: Vec::new(),
            dropped_custom_data: 0,
        }
    }

    fn dispatcher() -> Dispatcher<MemoryStore, Nowhere, crate::queue::MemoryQueue> {
        Dispatcher::new(
            Config::default_config().unwrap(),
            MemoryStore::new(),
            Nowhere,
            crate::queue::MemoryQueue::new(),
            DispatchSettings::default(),
        )
    }

    struct Nowhere;

    impl Deliver for Nowhere {
        async fn deliver(&self, _: &Target, _: &[&Outbound]) -> Result<Answer, DeliveryError> {
            Err(DeliveryError::default())
        }

        fn profile(&self, destination: Destination) -> &'static Profile {
            crate::destinations::profile(destination)
        }
    }

    #[test]
    fn requests_are_per_target_and_at_most_1000_events() {
        let (one, two) = (Arc::new(account("1")), Arc::new(account("2")));
        let mut results: Vec<RecordResult> = (0..3).map(|_| RecordResult::new()).collect();
        results[0].claimed = (0..1500).map(|i| mapped(&one, i)).collect();
        results[1].claimed = vec![mapped(&two, 2000)];
        results[2].claimed = vec![mapped(&one, 3000)];
        let (r, facts) = requests(&mut results);
        assert_eq!(facts.len(), 1502, "one fact per event");
        let shape: Vec<(&str, usize)> = r.iter().map(|(t, e)| (t.id(), e.len())).collect();
        assert_eq!(shape, [("1", 1000), ("1", 501), ("2", 1)]);
        assert_eq!(
            r[1].1.last().unwrap().0,
            2,
            "events keep their record's index"
        );
        assert!(results.iter().all(|r| r.claimed.is_empty()));
    }

    #[tokio::test]
    async fn the_claim_step_sorts_sent_leased_and_new_events() {
        let d = dispatcher();
        let one = Arc::new(account("1"));
        let mut first = vec![RecordResult::new()];
        first[0].mapped = vec![mapped(&one, 1), mapped(&one, 2)];
        d.claim(&mut first, Vec::new(), 500, 100).await;
        assert_eq!(first[0].claimed.len(), 2);
        let mark = SentMark {
            event_id: first[0].claimed[0].event.event_id().to_owned(),
            fbtrace_id: None,
            sent_at: 100,
            expires_at: 10_000,
        };
        let writes = vec![MarkWrite {
            marks: vec![mark],
            tallies: Vec::new(),
        }];
        d.mark(writes, &[], &mut Metrics::new("t", "t")).await;
        // Event 1 is sent, event 2 still leased by the first claim.
        let mut again = vec![RecordResult::new()];
        again[0].mapped = vec![mapped(&one, 1), mapped(&one, 2)];
        d.claim(&mut again, Vec::new(), 500, 200).await;
        assert_eq!(again[0].dedup_hits, 1);
        assert!(again[0].is_failed(), "a leased event fails its record");
    }

    #[test]
    fn a_ledger_expiry_saturates_at_the_end_of_time() {
        assert_eq!(ledger_expiry(i64::MAX), i64::MAX);
        assert_eq!(ledger_expiry(i64::MAX - 10), i64::MAX);
        assert_eq!(ledger_expiry(0), MAX_EVENT_AGE_SECONDS + 86_400);
    }

    #[test]
    fn the_decode_step_refuses_what_it_cannot_read() {
        let record = |body: &str, kind: Option<&str>| InboundRecord {
            message_id: "m".into(),
            group_id: None,
            body: body.into(),
            attributes: kind
                .map(|k| HashMap::from([(attributes::KIND.to_owned(), k.to_owned())]))
                .unwrap_or_default(),
        };
        let reason = |r: &InboundRecord| decode(r).err().map(|l| l.reason);
        assert_eq!(reason(&record("{", None)), Some("undecodable_signal"));
        assert_eq!(
            reason(&record(
                r#"{"sha256":"x"}"#,
                Some(crate::ingest::DIGEST_KIND)
            )),
            Some("digest_only")
        );
        assert_eq!(
            reason(&record(
                r#"{"object":"x","entry":[]}"#,
                Some("webhook_body")
            )),
            Some("wrong_object")
        );
    }
}
