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
//!    subcode and message; token and permission errors keep the records (reported failed, so SQS
//!    retries and finally dead-letters them) and raise an alarm metric.
//! 5. Accepted events are marked sent in one call; failed ones are released for the retry.
//!
//! Every record ends as exactly one of: sent, duplicate (already sent), skipped (with reasons),
//! dead-lettered (with a reason), or failed (redelivered by SQS).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::future::join_all;

use crate::channels::split;
use crate::channels::whatsapp::signal_from_item;
use crate::conversion::hashing::sha256_hex;
use crate::conversion::mapping::{MappedEvent, Outcome, SkipReason};
use crate::conversion::pipeline::{Processor, click_lookups};
use crate::conversion::rules::{Account, Config};
use crate::ingest::attributes;
use crate::ledger::{Claim, ClaimRequest, SentMark};
use crate::meta::capi::{Event, EventsRequest, MAX_EVENT_AGE_SECONDS, MAX_EVENTS_PER_REQUEST};
use crate::meta::graph::{ErrorClass, GraphError, GraphSender, Receipt};
use crate::metrics::{Metrics, Unit};
use crate::queue::{MessageSink, OutboundMessage};
use crate::redact::safe_json_error;
use crate::signal::{SIGNAL_VERSION, Signal};
use crate::store::{BatchClicks, DispatchStore};

/// Metric names of the dispatcher (the contract with `infra/`).
pub mod metric_names {
    /// Queue records received.
    pub const RECORDS_RECEIVED: &str = "RecordsReceived";
    /// Records reported failed (SQS redelivers them).
    pub const RECORDS_FAILED: &str = "RecordsFailed";
    /// Events Meta accepted; dimension `EventName`.
    pub const EVENTS_SENT: &str = "EventsSent";
    /// Events not sent; dimension `Reason`.
    pub const EVENTS_SKIPPED: &str = "EventsSkipped";
    /// Events already sent (durable or in-batch dedup).
    pub const DEDUP_HITS: &str = "DedupHits";
    /// Graph requests made.
    pub const GRAPH_REQUESTS: &str = "GraphRequests";
    /// Graph errors; dimension `Code`.
    pub const GRAPH_ERRORS: &str = "GraphErrors";
    /// Token and permission errors (an alarm).
    pub const GRAPH_AUTH_ERRORS: &str = "GraphAuthErrors";
    /// Events per Graph request (a distribution).
    pub const EVENTS_PER_REQUEST: &str = "EventsPerRequest";
    /// Seconds between an event and its acceptance by Meta (a distribution).
    pub const EVENT_AGE_AT_SEND: &str = "EventAgeAtSend";
    /// Records moved to the dead-letter queue; dimension `Reason`.
    pub const DLQ_MOVES: &str = "DeadLetterMoves";
    /// Sent marks that could not be written (a duplicate becomes possible): an alarm.
    pub const LEDGER_WRITE_FAILURES: &str = "LedgerWriteFailures";
    /// Flow fields left out of `user_data` because they could not be normalised.
    pub const USER_DATA_DROPPED: &str = "UserDataFieldsDropped";
    /// Events sent again after Meta answered 5xx or did not answer once they were sent: Meta may
    /// have processed the first send (it does not deduplicate), so each may be a duplicate.
    pub const AMBIGUOUS_RESENDS: &str = "AmbiguousResends";
    /// `custom_data` values left out because they read as an email address or a phone number.
    pub const CUSTOM_DATA_DROPPED: &str = "CustomDataValuesDropped";
    /// Graph requests answered 2xx with an `events_received` other than the events sent; their
    /// records go to the dead-letter queue (`graph_receipt_mismatch`): an alarm.
    pub const GRAPH_RECEIPT_MISMATCHES: &str = "GraphReceiptMismatches";

    /// Every name above.
    pub const ALL: &[&str] = &[
        RECORDS_RECEIVED,
        RECORDS_FAILED,
        EVENTS_SENT,
        EVENTS_SKIPPED,
        DEDUP_HITS,
        GRAPH_REQUESTS,
        GRAPH_ERRORS,
        GRAPH_AUTH_ERRORS,
        EVENTS_PER_REQUEST,
        EVENT_AGE_AT_SEND,
        DLQ_MOVES,
        LEDGER_WRITE_FAILURES,
        USER_DATA_DROPPED,
        CUSTOM_DATA_DROPPED,
        GRAPH_RECEIPT_MISMATCHES,
        AMBIGUOUS_RESENDS,
    ];
}
use metric_names as m;

/// Dead-letter attributes the dispatcher adds beside [`attributes`].
pub mod graph_attributes {
    /// Meta's error code.
    pub const CODE: &str = "wacapi_graph_code";
    /// Meta's error subcode.
    pub const SUBCODE: &str = "wacapi_graph_subcode";
    /// Meta's message.
    pub const MESSAGE: &str = "wacapi_graph_message";
    /// Meta's trace id.
    pub const FBTRACE_ID: &str = "wacapi_fbtrace_id";
    /// The refused event's id.
    pub const EVENT_ID: &str = "wacapi_event_id";
    /// `events_received` of a 2xx answer that did not count every event (`none` when absent).
    pub const EVENTS_RECEIVED: &str = "wacapi_graph_events_received";
    /// The number of events in that request.
    pub const EVENTS_SENT: &str = "wacapi_graph_events_sent";
}

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
}

/// The dispatcher's ports and configuration.
#[derive(Debug)]
pub struct Dispatcher<S, G, D> {
    config: Config,
    store: S,
    graph: G,
    dead_letters: D,
    settings: DispatchSettings,
}

/// Why a record behind a failed one of its FIFO group is failed too.
const BLOCKED: &str = "an earlier record of its group failed";

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
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
struct RecordResult {
    state: State,
    /// Events mapped from the record, not yet claimed.
    mapped: Vec<MappedEvent>,
    /// Events this invocation claimed and may send.
    claimed: Vec<MappedEvent>,
    skips: Vec<SkipReason>,
    dedup_hits: usize,
    /// Records of this batch whose copy of one of this record's events is the one sent.
    shadows: Vec<usize>,
    dropped_user_data: usize,
    dropped_custom_data: usize,
}

impl RecordResult {
    fn new() -> Self {
        Self {
            state: State::Open,
            mapped: Vec::new(),
            claimed: Vec::new(),
            skips: Vec::new(),
            dedup_hits: 0,
            shadows: Vec::new(),
            dropped_user_data: 0,
            dropped_custom_data: 0,
        }
    }

    fn failed(why: impl Into<String>) -> Self {
        Self {
            state: State::Failed(why.into()),
            ..Self::new()
        }
    }

    fn dead_letter(letter: DeadLetter) -> Self {
        Self {
            state: State::ToDeadLetter(letter),
            ..Self::new()
        }
    }

    fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed(_))
    }

    /// Open, duplicate or skipped, from what the record holds.
    fn settle(&mut self) {
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

#[derive(Debug)]
enum EventResult {
    Sent(Option<String>),
    Invalid(GraphError),
    Failed(GraphError),
    /// Meta answered 2xx but counted another number of events than were sent: which ones it
    /// kept is unknown, so the events are neither marked sent nor retried automatically.
    Unconfirmed(Unconfirmed),
}

#[derive(Debug, Clone)]
struct Unconfirmed {
    received: Option<u64>,
    sent: usize,
    fbtrace_id: Option<String>,
}

#[derive(Debug, Default)]
struct SendLog {
    results: Vec<(usize, Event, EventResult)>,
    requests: usize,
    sizes: Vec<usize>,
    errors: Vec<GraphError>,
    /// 2xx answers that did not count every event.
    mismatches: usize,
    /// Events of requests whose fate is unknown (5xx, no answer): each is sent again, now or on
    /// redelivery, and may reach Meta twice.
    ambiguous: usize,
}

/// A dead-letter move: reason, detail, and extra attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeadLetter {
    reason: &'static str,
    detail: String,
    extra: Vec<(&'static str, String)>,
}

/// Spreads failures: to the later records of a failed record's FIFO group, and to the records
/// whose event was a copy of one that was not sent.
fn settle_failures(groups: &[&str], results: &mut [RecordResult]) {
    hold_back_groups(groups, results);
    fail_shadows(results);
}

/// FIFO: a failed record fails the later records of its group.
fn hold_back_groups(groups: &[&str], results: &mut [RecordResult]) {
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
fn fail_shadows(results: &mut [RecordResult]) {
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

impl<S: DispatchStore, G: GraphSender, D: MessageSink> Dispatcher<S, G, D> {
    /// Wires the dispatcher.
    pub fn new(
        config: Config,
        store: S,
        graph: G,
        dead_letters: D,
        settings: DispatchSettings,
    ) -> Self {
        Self {
            config,
            store,
            graph,
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

        // 1. Decode, then read every click the batch will look up in one call.
        let decoded: Vec<Result<Vec<Signal>, DeadLetter>> = records.iter().map(decode).collect();
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
        let clicks = BatchClicks::new(&self.store, &keys, read);

        // 2. Attribute and map, records in order; a record behind a failed one of its group is
        //    held back for redelivery.
        let processor = Processor::new(&self.config, &clicks);
        let mut first_copy: HashMap<String, usize> = HashMap::new();
        let mut failed_groups: HashSet<&str> = HashSet::new();
        let mut results: Vec<RecordResult> = Vec::with_capacity(records.len());
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

        // 3. Claim every event and write the clicks learned, in one call.
        let writes = clicks.take_writes();
        let claims: Vec<ClaimRequest> = results
            .iter()
            .flat_map(|r| r.mapped.iter())
            .map(|m| ClaimRequest {
                event_id: m.event.event_id.clone(),
                lease_until,
                expires_at: ledger_expiry(m.event.event_time),
            })
            .collect();
        if !writes.is_empty() || !claims.is_empty() {
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
                    for result in &mut results {
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
                    for result in &mut results {
                        if !matches!(result.state, State::ToDeadLetter(_) | State::Failed(_)) {
                            result.mapped.clear();
                            result.state = State::Failed(format!("store: {why}"));
                        }
                    }
                }
            }
        }
        for result in &mut results {
            result.settle();
        }
        settle_failures(&groups, &mut results);
        let mut release: Vec<String> = Vec::new();
        for result in results.iter_mut().filter(|r| r.is_failed()) {
            release.extend(
                std::mem::take(&mut result.claimed)
                    .into_iter()
                    .map(|m| m.event.event_id),
            );
        }

        // 4. Requests per destination, at most 1,000 events each.
        let mut destinations: Vec<(Account, Vec<(usize, Event)>)> = Vec::new();
        for (i, result) in results.iter_mut().enumerate() {
            for mapped in std::mem::take(&mut result.claimed) {
                match destinations.iter_mut().find(|(a, _)| *a == mapped.account) {
                    Some((_, events)) => events.push((i, mapped.event)),
                    None => destinations.push((mapped.account, vec![(i, mapped.event)])),
                }
            }
        }
        let mut requests: Vec<(Account, Vec<(usize, Event)>)> = Vec::new();
        for (account, events) in destinations {
            let mut events = events.into_iter().peekable();
            while events.peek().is_some() {
                let chunk: Vec<_> = events.by_ref().take(MAX_EVENTS_PER_REQUEST).collect();
                requests.push((account.clone(), chunk));
            }
        }

        // 5. Send, with retries by error class.
        let logs = join_all(
            requests
                .iter()
                .map(|(account, events)| self.send_with_retry(account, events.clone(), deadline)),
        )
        .await;

        // 6. Mark sent, release the rest, route invalid events' records to the DLQ.
        let mut report = DispatchReport::default();
        let mut marks = Vec::new();
        let mut invalid: BTreeMap<usize, DeadLetter> = BTreeMap::new();
        let mut graph_failed: HashMap<usize, GraphError> = HashMap::new();
        let send_time = unix_now().max(now);
        for log in logs {
            report.graph_requests += log.requests;
            metrics.count(m::GRAPH_REQUESTS, log.requests as u64);
            report.ambiguous_resends += log.ambiguous;
            metrics.count(m::AMBIGUOUS_RESENDS, log.ambiguous as u64);
            if log.mismatches > 0 {
                metrics.count(m::GRAPH_RECEIPT_MISMATCHES, log.mismatches as u64);
                tracing::error!(
                    requests = log.mismatches,
                    "Meta's answer did not count every event sent: the records go to the dead-letter queue unconfirmed"
                );
            }
            for size in log.sizes {
                metrics.observe(m::EVENTS_PER_REQUEST, Unit::Count, size as f64);
            }
            for err in &log.errors {
                metrics.count_by(m::GRAPH_ERRORS, "Code", err.code_label(), 1);
                // Logs Insights reads code and subcode from here (infra/queries.tf).
                tracing::warn!(code = ?err.code, subcode = ?err.subcode, status = ?err.status, fbtrace_id = ?err.fbtrace_id, class = ?err.class(), "Graph API error");
                if err.class().is_auth() {
                    metrics.count(m::GRAPH_AUTH_ERRORS, 1);
                    tracing::error!(code = ?err.code, subcode = ?err.subcode, fbtrace_id = ?err.fbtrace_id, "Graph API refused the access token: events are kept for redrive");
                }
            }
            for (owner, event, outcome) in log.results {
                match outcome {
                    EventResult::Sent(fbtrace_id) => {
                        metrics.count_by(m::EVENTS_SENT, "EventName", event.event_name.as_str(), 1);
                        metrics.observe(
                            m::EVENT_AGE_AT_SEND,
                            Unit::Seconds,
                            (send_time - event.event_time) as f64,
                        );
                        report.events_sent += 1;
                        marks.push(SentMark {
                            event_id: event.event_id.clone(),
                            fbtrace_id,
                            sent_at: send_time,
                            expires_at: ledger_expiry(event.event_time),
                        });
                    }
                    EventResult::Invalid(err) => {
                        release.push(event.event_id.clone());
                        invalid
                            .entry(owner)
                            .or_insert_with(|| refused_letter(&event, &err));
                    }
                    EventResult::Unconfirmed(unconfirmed) => {
                        release.push(event.event_id.clone());
                        invalid
                            .entry(owner)
                            .or_insert_with(|| unconfirmed_letter(&event, &unconfirmed));
                    }
                    EventResult::Failed(err) => {
                        release.push(event.event_id.clone());
                        graph_failed.entry(owner).or_insert(err);
                    }
                }
            }
        }
        if !marks.is_empty()
            && let Err(err) = self.store.mark_sent(&marks).await
        {
            // The events did reach Meta; failing the records would resend them. Alarm instead.
            metrics.count(m::LEDGER_WRITE_FAILURES, marks.len() as u64);
            tracing::error!(error = %err, events = marks.len(), "sent marks not written: a redelivery could resend these events");
        }
        if !release.is_empty()
            && let Err(err) = self.store.release(&release).await
        {
            tracing::warn!(error = %err, "claims not released; they expire with their lease");
        }
        for (owner, err) in graph_failed {
            results[owner].state = State::Failed(format!("graph: {err}"));
        }
        for (owner, letter) in invalid {
            if !results[owner].is_failed() {
                results[owner].state = State::ToDeadLetter(letter);
            }
        }
        settle_failures(&groups, &mut results);

        // 7. Dead-letter moves, for records no earlier failure holds back.
        for (i, result) in results.iter_mut().enumerate() {
            if let State::ToDeadLetter(letter) = &result.state {
                result.state = match self.dead_letter(&records[i], letter.clone()).await {
                    Ok(reason) => State::DeadLettered(reason),
                    Err(why) => State::Failed(why),
                };
            }
        }
        settle_failures(&groups, &mut results);

        // 8. Tally and metrics.
        for (i, result) in results.iter().enumerate() {
            for skip in &result.skips {
                *report.skipped.entry(skip.label()).or_default() += 1;
                metrics.count_by(m::EVENTS_SKIPPED, "Reason", skip.label(), 1);
            }
            report.dedup_hits += result.dedup_hits;
            metrics.count(m::DEDUP_HITS, result.dedup_hits as u64);
            metrics.count(m::USER_DATA_DROPPED, result.dropped_user_data as u64);
            metrics.count(m::CUSTOM_DATA_DROPPED, result.dropped_custom_data as u64);
            match &result.state {
                // Step 7 left no record bound for the queue; one would be retried, not lost.
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
        report
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
        for signal in signals {
            let outcomes = match processor.process(signal, now).await {
                Ok(outcomes) => outcomes,
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
                        "no account is configured for WABA {}: add it and redrive",
                        signal.waba_id
                    ),
                    extra: vec![(attributes::WABA_ID, signal.waba_id.clone())],
                });
            }
            for outcome in outcomes {
                match outcome {
                    Outcome::Skipped { reason, .. } => result.skips.push(reason),
                    Outcome::Event(mapped) => {
                        result.dropped_user_data += mapped.dropped_user_data.len();
                        result.dropped_custom_data += mapped.dropped_custom_data;
                        match first_copy.get(&mapped.event.event_id) {
                            Some(&owner) => {
                                result.dedup_hits += 1;
                                if owner != index {
                                    result.shadows.push(owner);
                                }
                            }
                            None => {
                                first_copy.insert(mapped.event.event_id.clone(), index);
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
        .with_attribute(attributes::DETAIL, truncate(&letter.detail, 512));
        for name in [attributes::ENCODING, attributes::WABA_ID] {
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

    /// Sends one request, retrying and splitting as Meta's error code says.
    fn send_with_retry<'a>(
        &'a self,
        account: &'a Account,
        events: Vec<(usize, Event)>,
        deadline: Instant,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = SendLog> + Send + 'a>> {
        Box::pin(async move {
            let mut log = SendLog::default();
            let request = EventsRequest {
                data: events.iter().map(|(_, e)| e.clone()).collect(),
                test_event_code: account.test_event_code.clone(),
                partner_agent: account.partner_agent.clone(),
            };
            let mut attempt = 0;
            loop {
                attempt += 1;
                log.requests += 1;
                log.sizes.push(request.data.len());
                let err = match self
                    .graph
                    .send(&self.config.graph_api_version, account, &request)
                    .await
                {
                    Ok(success) => match success.receipt(events.len()) {
                        Receipt::All => {
                            log.results.extend(events.into_iter().map(|(owner, e)| {
                                (owner, e, EventResult::Sent(success.fbtrace_id.clone()))
                            }));
                            return log;
                        }
                        // Nothing was kept, so sending again cannot duplicate: retry.
                        Receipt::None => GraphError {
                            status: Some(200),
                            message: format!("Meta received 0 of {} events", events.len()),
                            is_transient: true,
                            fbtrace_id: success.fbtrace_id,
                            ..GraphError::default()
                        },
                        Receipt::Partial(received) => {
                            log.mismatches += 1;
                            let unconfirmed = Unconfirmed {
                                received,
                                sent: events.len(),
                                fbtrace_id: success.fbtrace_id,
                            };
                            log.results.extend(events.into_iter().map(|(o, e)| {
                                (o, e, EventResult::Unconfirmed(unconfirmed.clone()))
                            }));
                            return log;
                        }
                    },
                    Err(err) => err,
                };
                log.errors.push(err.clone());
                if err.maybe_processed {
                    log.ambiguous += events.len();
                }
                let class = err.class();
                match class {
                    ErrorClass::InvalidEvent if events.len() > 1 => {
                        let mut left = events;
                        let right = left.split_off(left.len() / 2);
                        for half in [left, right] {
                            let sub = self.send_with_retry(account, half, deadline).await;
                            log.requests += sub.requests;
                            log.sizes.extend(sub.sizes);
                            log.errors.extend(sub.errors);
                            log.mismatches += sub.mismatches;
                            log.ambiguous += sub.ambiguous;
                            log.results.extend(sub.results);
                        }
                        return log;
                    }
                    ErrorClass::InvalidEvent | ErrorClass::DatasetRefused => {
                        log.results.extend(
                            events
                                .into_iter()
                                .map(|(o, e)| (o, e, EventResult::Invalid(err.clone()))),
                        );
                        return log;
                    }
                    c if c.retryable() && attempt < self.settings.max_attempts => {
                        let delay = self.backoff(attempt, c);
                        let needed =
                            delay + self.settings.request_timeout + self.settings.safety_margin;
                        if Instant::now() + needed < deadline {
                            tracing::info!(attempt, code = ?err.code, delay_ms = delay.as_millis() as u64, "Graph API busy; retrying");
                            tokio::time::sleep(delay).await;
                            continue;
                        }
                    }
                    _ => {}
                }
                log.results.extend(
                    events
                        .into_iter()
                        .map(|(o, e)| (o, e, EventResult::Failed(err.clone()))),
                );
                return log;
            }
        })
    }

    /// Exponential backoff with full jitter; throttling and blocks back off longer.
    fn backoff(&self, attempt: u32, class: ErrorClass) -> Duration {
        let factor = match class {
            ErrorClass::Throttled => 4,
            ErrorClass::Blocked => 8,
            _ => 1,
        };
        let ceiling = self
            .settings
            .backoff_base
            .saturating_mul(factor << (attempt.saturating_sub(1)).min(16))
            .min(self.settings.backoff_max);
        let jitter = RandomState::new().hash_one((attempt, Instant::now())) % 1000;
        // Half fixed, half random: never zero, never synchronised across invocations.
        ceiling / 2 + ceiling.mul_f64(jitter as f64 / 2000.0)
    }
}

/// The dead-letter move of a record whose event Meta refused for good.
fn refused_letter(event: &Event, err: &GraphError) -> DeadLetter {
    DeadLetter {
        reason: err.refusal_reason(),
        detail: err.message.clone(),
        extra: [
            (graph_attributes::CODE, err.code.map(|c| c.to_string())),
            (
                graph_attributes::SUBCODE,
                err.subcode.map(|c| c.to_string()),
            ),
            (graph_attributes::MESSAGE, Some(truncate(&err.message, 512))),
            (graph_attributes::FBTRACE_ID, err.fbtrace_id.clone()),
            (graph_attributes::EVENT_ID, Some(event.event_id.clone())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect(),
    }
}

/// The dead-letter move of a record whose event Meta may or may not have kept.
fn unconfirmed_letter(event: &Event, unconfirmed: &Unconfirmed) -> DeadLetter {
    let received = unconfirmed
        .received
        .map_or_else(|| "none".to_owned(), |n| n.to_string());
    DeadLetter {
        reason: "graph_receipt_mismatch",
        detail: format!(
            "Meta answered 2xx with events_received {received} for {} events: which were kept is unknown; check Events Manager for the event id before a redrive, which sends it again",
            unconfirmed.sent
        ),
        extra: [
            (graph_attributes::EVENTS_RECEIVED, Some(received)),
            (
                graph_attributes::EVENTS_SENT,
                Some(unconfirmed.sent.to_string()),
            ),
            (graph_attributes::FBTRACE_ID, unconfirmed.fbtrace_id.clone()),
            (graph_attributes::EVENT_ID, Some(event.event_id.clone())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect(),
    }
}

/// Ledger records outlive Meta's 7-day window by a day: an older duplicate is refused as
/// `too_old` anyway, so the record is no longer needed.
fn ledger_expiry(event_time: i64) -> i64 {
    event_time + MAX_EVENT_AGE_SECONDS + 86_400
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Reads a record: a signal, or a quarantined webhook body or item redriven from the DLQ.
fn decode(record: &InboundRecord) -> Result<Vec<Signal>, DeadLetter> {
    let kind = record.attributes.get(attributes::KIND).map(String::as_str);
    let raw = || -> Result<String, DeadLetter> {
        match record
            .attributes
            .get(attributes::ENCODING)
            .map(String::as_str)
        {
            Some("base64") => base64::engine::general_purpose::STANDARD
                .decode(&record.body)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or(DeadLetter {
                    reason: "not_an_envelope",
                    detail: "redriven body is not UTF-8 JSON".into(),
                    extra: vec![],
                }),
            _ => Ok(record.body.clone()),
        }
    };
    match kind {
        Some(crate::ingest::DIGEST_KIND) => Err(DeadLetter {
            reason: "digest_only",
            detail: "only a digest of this part was kept (it was too large for a queue message): there is nothing to process".into(),
            extra: vec![],
        }),
        Some("webhook_body") => {
            let body = raw()?;
            let split = split(body.as_bytes()).map_err(|e| DeadLetter {
                reason: "not_an_envelope",
                detail: e.to_string(),
                extra: vec![],
            })?;
            if let Some(rejected) = split.rejected.first() {
                return Err(DeadLetter {
                    reason: rejected.reason.label(),
                    detail: rejected.reason.to_string(),
                    extra: vec![],
                });
            }
            Ok(split.signals)
        }
        Some("webhook_item") => {
            let waba = record
                .attributes
                .get(attributes::WABA_ID)
                .cloned()
                .unwrap_or_default();
            signal_from_item(&waba, &raw()?)
                .map(|s| vec![s])
                .map_err(|e| DeadLetter {
                    reason: e.label(),
                    detail: e.to_string(),
                    extra: vec![],
                })
        }
        _ => {
            let signal: Signal = serde_json::from_str(&record.body).map_err(|e| DeadLetter {
                reason: "undecodable_signal",
                detail: safe_json_error(&e),
                extra: vec![],
            })?;
            if signal.v != SIGNAL_VERSION {
                return Err(DeadLetter {
                    reason: "unsupported_signal_version",
                    detail: format!("signal version {} is not {SIGNAL_VERSION}", signal.v),
                    extra: vec![],
                });
            }
            Ok(vec![signal])
        }
    }
}
