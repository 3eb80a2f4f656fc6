//! The send step: one request per target (a Meta dataset, a TikTok event set) with retries
//! chosen by the destination's verdict on each error (transient and throttling errors back off
//! inside the invocation's time, invalid events split the request to isolate them, refusals of
//! the whole target dead-letter it at once), and the reading of what came back: metrics, logs,
//! sent marks, released claims and each record's fate.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::time::{Duration, Instant};

use super::metric_names as m;
use super::record::{DeadLetter, RecordResult, State};
use super::{DispatchReport, Dispatcher, ledger_expiry};
use crate::conversion::pipeline::group_by_target;
use crate::delivery::{
    Answer, Deliver, DeliveryError, ErrorClass, Outbound, Profile, Receipt, Target,
};
use crate::metrics::{Metrics, Unit};
use crate::queue::MessageSink;
use crate::report::Fact;
use crate::store::DispatchStore;
use crate::store::ledger::SentMark;

/// The dead-letter attribute naming the refused event's id (every destination's).
pub const EVENT_ID_ATTRIBUTE: &str = "wacapi_event_id";

#[derive(Debug)]
pub(super) enum EventResult {
    Sent(Option<String>),
    Invalid(DeliveryError),
    Failed(DeliveryError),
    /// The destination answered 2xx but counted another number of events than were sent: which
    /// ones it kept is unknown, so the events are neither marked sent nor retried automatically.
    Unconfirmed(Unconfirmed),
}

#[derive(Debug, Clone)]
pub(super) struct Unconfirmed {
    pub(super) received: Option<u64>,
    pub(super) sent: usize,
    pub(super) trace_id: Option<String>,
}

/// What sending one request (with its retries and splits) came to.
#[derive(Debug)]
pub(super) struct SendLog {
    pub(super) profile: &'static Profile,
    pub(super) results: Vec<(usize, Outbound, EventResult)>,
    pub(super) requests: usize,
    pub(super) sizes: Vec<usize>,
    pub(super) errors: Vec<DeliveryError>,
    /// 2xx answers that did not count every event.
    pub(super) mismatches: usize,
    /// Events of requests whose fate is unknown (5xx, no answer): each is sent again, now or on
    /// redelivery, and may reach the destination twice.
    pub(super) ambiguous: usize,
    /// Answers carrying a version warning, and the first one's text.
    pub(super) version_warnings: usize,
    pub(super) version_warning: Option<String>,
}

impl SendLog {
    fn new(profile: &'static Profile) -> Self {
        Self {
            profile,
            results: Vec::new(),
            requests: 0,
            sizes: Vec::new(),
            errors: Vec::new(),
            mismatches: 0,
            ambiguous: 0,
            version_warnings: 0,
            version_warning: None,
        }
    }

    /// Notes the version warning of one answer.
    fn warned(&mut self, warning: Option<&str>) {
        if let Some(text) = warning {
            self.version_warnings += 1;
            self.version_warning.get_or_insert_with(|| text.to_owned());
        }
    }

    /// Every event of the request came to `result`.
    fn all(&mut self, events: Vec<(usize, Outbound)>, result: impl Fn() -> EventResult) {
        self.results
            .extend(events.into_iter().map(|(owner, e)| (owner, e, result())));
    }

    /// Adds what sending one half of a split request came to.
    fn merge(&mut self, sub: SendLog) {
        self.requests += sub.requests;
        self.sizes.extend(sub.sizes);
        self.errors.extend(sub.errors);
        self.mismatches += sub.mismatches;
        self.ambiguous += sub.ambiguous;
        self.version_warnings += sub.version_warnings;
        if self.version_warning.is_none() {
            self.version_warning = sub.version_warning;
        }
        self.results.extend(sub.results);
    }
}

/// What to do after a failed attempt.
enum Step {
    /// Isolate the invalid events: send each half on its own.
    Split,
    /// Refused for good: dead-letter the events.
    Refused,
    /// Wait this long and try again.
    Retry(Duration),
    /// Keep the events for the queue's redelivery.
    GiveUp,
}

type SendFuture<'a> = Pin<Box<dyn Future<Output = SendLog> + Send + 'a>>;

impl<S: DispatchStore, X: Deliver, D: MessageSink> Dispatcher<S, X, D> {
    /// Sends one request, retrying and splitting as the destination's verdict says.
    pub(super) fn send_with_retry<'a>(
        &'a self,
        target: &'a Target,
        events: Vec<(usize, Outbound)>,
        deadline: Instant,
    ) -> SendFuture<'a> {
        Box::pin(async move {
            let mut log = SendLog::new(self.destinations.profile(target.destination()));
            let mut attempt = 0;
            loop {
                attempt += 1;
                let err = match self.attempt(target, &events, &mut log).await {
                    Ok(answer) => match answer.receipt(events.len()) {
                        Receipt::All => {
                            log.all(events, || EventResult::Sent(answer.trace_id.clone()));
                            return log;
                        }
                        // Nothing was kept, so sending again cannot duplicate: retry.
                        Receipt::None => nothing_received(target, events.len(), answer),
                        Receipt::Partial(received) => {
                            log.mismatches += 1;
                            let unconfirmed = Unconfirmed {
                                received,
                                sent: events.len(),
                                trace_id: answer.trace_id,
                            };
                            log.all(events, || EventResult::Unconfirmed(unconfirmed.clone()));
                            return log;
                        }
                    },
                    Err(err) => err,
                };
                log.errors.push(err.clone());
                if err.maybe_processed {
                    log.ambiguous += events.len();
                }
                match self.next_step(&err, attempt, events.len(), deadline) {
                    Step::Split => {
                        let mut left = events;
                        let right = left.split_off(left.len() / 2);
                        for half in [left, right] {
                            log.merge(self.send_with_retry(target, half, deadline).await);
                        }
                        return log;
                    }
                    Step::Refused => {
                        log.all(events, || EventResult::Invalid(err.clone()));
                        return log;
                    }
                    Step::Retry(delay) => {
                        tracing::info!(attempt, destination = %err.destination, code = ?err.code, delay_ms = delay.as_millis() as u64, "destination busy; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    Step::GiveUp => {
                        log.all(events, || EventResult::Failed(err.clone()));
                        return log;
                    }
                }
            }
        })
    }

    /// Posts the request once and notes it (its size, its version warning).
    async fn attempt(
        &self,
        target: &Target,
        events: &[(usize, Outbound)],
        log: &mut SendLog,
    ) -> Result<Answer, DeliveryError> {
        log.requests += 1;
        log.sizes.push(events.len());
        let refs: Vec<&Outbound> = events.iter().map(|(_, e)| e).collect();
        let answer = self.destinations.deliver(target, &refs).await;
        log.warned(match &answer {
            Ok(answer) => answer.version_warning.as_deref(),
            Err(err) => err.version_warning.as_deref(),
        });
        answer
    }

    /// What the destination's verdict on `err` makes of the request: split it, dead-letter it,
    /// retry it (while a retry can finish before the deadline), or keep it for redelivery.
    fn next_step(
        &self,
        err: &DeliveryError,
        attempt: u32,
        events: usize,
        deadline: Instant,
    ) -> Step {
        let class = err.class();
        if class == ErrorClass::DeprecatedVersion {
            tracing::error!(
                graph_api_version = %self.config.graph_api_version,
                destination = %err.destination,
                code = ?err.code,
                trace_id = ?err.trace_id,
                newest_known = crate::meta::versions::NEWEST.version,
                "the destination refuses the configured API version as deprecated: events are kept for redrive; set graph_api_version to a current version (wacapi check-config names one)"
            );
        }
        match class {
            ErrorClass::InvalidEvent if events > 1 => Step::Split,
            ErrorClass::InvalidEvent | ErrorClass::DatasetRefused => Step::Refused,
            c if c.retryable() && attempt < self.settings.max_attempts => {
                let delay = self.backoff(attempt, c);
                let needed = delay + self.settings.request_timeout + self.settings.safety_margin;
                if Instant::now() + needed < deadline {
                    Step::Retry(delay)
                } else {
                    Step::GiveUp
                }
            }
            _ => Step::GiveUp,
        }
    }

    /// Exponential backoff with full jitter; throttling and blocks back off longer.
    pub(super) fn backoff(&self, attempt: u32, class: ErrorClass) -> Duration {
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

/// A 2xx answer that received none of the events: safe to send again.
fn nothing_received(target: &Target, sent: usize, answer: Answer) -> DeliveryError {
    DeliveryError {
        destination: target.destination(),
        status: Some(200),
        message: format!("{} received 0 of {sent} events", target.destination()),
        is_transient: true,
        trace_id: answer.trace_id,
        ..DeliveryError::default()
    }
}

/// Events of one request, each with the index of its record.
pub(super) type Request = (Target, Vec<(usize, Outbound)>);

/// The claimed events, grouped per target (a Meta dataset, a TikTok event set) in first-seen
/// order into requests of at most 1,000, each event with the index of its record; and each
/// event's report fact by event id, counted once the event is sent.
pub(super) fn requests(results: &mut [RecordResult]) -> (Vec<Request>, HashMap<String, Fact>) {
    let mut claimed = Vec::new();
    let mut facts = HashMap::new();
    for (i, result) in results.iter_mut().enumerate() {
        for mapped in std::mem::take(&mut result.claimed) {
            match mapped.target() {
                Some(target) => {
                    facts.insert(mapped.event.event_id().to_owned(), mapped.fact());
                    claimed.push((target, (i, mapped.event)));
                }
                // Mapping builds an event only for a destination the account has.
                None => result.state = State::Failed("an event without a destination".into()),
            }
        }
    }
    (group_by_target(claimed), facts)
}

/// What the batch's send logs come to: the sent marks to write (each with its event's report
/// fact), the claims to release, and the records bound for the dead-letter queue or failed.
#[derive(Debug, Default)]
pub(super) struct Settled {
    pub(super) marks: Vec<(SentMark, Option<Fact>)>,
    invalid: BTreeMap<usize, DeadLetter>,
    failed: HashMap<usize, DeliveryError>,
}

/// Reads the send logs: counts and metrics ([`count_log`]), each event's outcome
/// ([`Settled::event`]), and each record's fate ([`Settled::apply`]): failed (retried), or
/// bound for the dead-letter queue when the destination refused its event for good or did not
/// confirm it. Returns the sent marks to write, each with the report fact of its event.
pub(super) fn record_sends(
    logs: Vec<SendLog>,
    now: i64,
    results: &mut [RecordResult],
    facts: &mut HashMap<String, Fact>,
    release: &mut Vec<String>,
    report: &mut DispatchReport,
    metrics: &mut Metrics,
) -> Vec<(SentMark, Option<Fact>)> {
    let mut settled = Settled::default();
    let send_time = crate::clock::now().max(now);
    for mut log in logs {
        count_log(&log, report, metrics);
        for (owner, event, outcome) in std::mem::take(&mut log.results) {
            settled.event(
                log.profile,
                owner,
                event,
                outcome,
                send_time,
                facts,
                release,
                report,
                metrics,
            );
        }
    }
    settled.apply(results)
}

/// Counts one log's requests, sizes, ambiguous resends, receipt mismatches, version warnings
/// and errors, and logs the errors (Logs Insights reads `"{api} error"` lines:
/// infra/queries.tf).
fn count_log(log: &SendLog, report: &mut DispatchReport, metrics: &mut Metrics) {
    let profile = log.profile;
    report.graph_requests += log.requests;
    metrics.count(profile.requests, log.requests as u64);
    report.ambiguous_resends += log.ambiguous;
    metrics.count(m::AMBIGUOUS_RESENDS, log.ambiguous as u64);
    if log.mismatches > 0 {
        if let Some(name) = profile.receipt_mismatches {
            metrics.count(name, log.mismatches as u64);
        }
        tracing::error!(
            requests = log.mismatches,
            "{}'s answer did not count every event sent: the records go to the dead-letter queue unconfirmed",
            profile.api
        );
    }
    for size in &log.sizes {
        metrics.observe(m::EVENTS_PER_REQUEST, Unit::Count, *size as f64);
    }
    if let Some(name) = profile.version_warnings {
        metrics.count(name, log.version_warnings as u64);
        report.graph_version_warnings += log.version_warnings;
        if report.graph_version_warning.is_none() {
            report.graph_version_warning = log.version_warning.clone();
        }
    }
    for err in &log.errors {
        let class = err.class();
        metrics.count_by(profile.errors, "Code", err.code_label(), 1);
        tracing::warn!(code = ?err.code, subcode = ?err.subcode, status = ?err.status, trace_id = ?err.trace_id, class = ?class, "{} error", profile.api);
        // A deprecated version counts here too: like a bad token, nothing is sent until a
        // person acts, and this alarm says so (next_step logged the version).
        if class.needs_operator() {
            metrics.count(profile.needs_operator, 1);
        }
        if class.is_auth() {
            tracing::error!(code = ?err.code, subcode = ?err.subcode, trace_id = ?err.trace_id, "{} refused the access token: events are kept for redrive", profile.api);
        }
    }
}

impl Settled {
    /// Notes one event's outcome: a sent mark (counted), or a claim released with its record
    /// bound for the dead-letter queue or failed.
    #[allow(clippy::too_many_arguments)]
    fn event(
        &mut self,
        profile: &Profile,
        owner: usize,
        event: Outbound,
        outcome: EventResult,
        send_time: i64,
        facts: &mut HashMap<String, Fact>,
        release: &mut Vec<String>,
        report: &mut DispatchReport,
        metrics: &mut Metrics,
    ) {
        let letter = match outcome {
            EventResult::Sent(trace_id) => {
                let fact = facts.remove(event.event_id());
                count_sent(metrics, &event, fact.as_ref());
                metrics.observe(
                    m::EVENT_AGE_AT_SEND,
                    Unit::Seconds,
                    // Saturating: the event time came from a queue message.
                    send_time.saturating_sub(event.event_time()) as f64,
                );
                report.events_sent += 1;
                let mark = SentMark {
                    event_id: event.event_id().to_owned(),
                    fbtrace_id: trace_id,
                    sent_at: send_time,
                    expires_at: ledger_expiry(event.event_time()),
                };
                self.marks.push((mark, fact));
                return;
            }
            EventResult::Invalid(err) => refused_letter(&event, &err),
            EventResult::Unconfirmed(unconfirmed) => {
                unconfirmed_letter(profile, &event, &unconfirmed)
            }
            EventResult::Failed(err) => {
                release.push(event.event_id().to_owned());
                self.failed.entry(owner).or_insert(err);
                return;
            }
        };
        release.push(event.event_id().to_owned());
        self.invalid.entry(owner).or_insert(letter);
    }

    /// Each record's fate: failed when one of its events failed, else bound for the
    /// dead-letter queue when one was refused or unconfirmed.
    fn apply(self, results: &mut [RecordResult]) -> Vec<(SentMark, Option<Fact>)> {
        for (owner, err) in self.failed {
            results[owner].state = State::Failed(format!("{}: {err}", err.destination));
        }
        for (owner, letter) in self.invalid {
            if !results[owner].is_failed() {
                results[owner].state = State::ToDeadLetter(letter);
            }
        }
        self.marks
    }
}

/// The dead-letter move of a record whose event the destination refused for good: its reason
/// and attributes, as the destination named them, and the event's id.
pub(super) fn refused_letter(event: &Outbound, err: &DeliveryError) -> DeadLetter {
    let mut extra = err.verdict.attributes.clone();
    extra.push((EVENT_ID_ATTRIBUTE, event.event_id().to_owned()));
    DeadLetter {
        reason: err.refusal_reason(),
        detail: err.message.clone(),
        extra,
    }
}

/// The dead-letter move of a record whose event the destination may or may not have kept.
pub(super) fn unconfirmed_letter(
    profile: &Profile,
    event: &Outbound,
    unconfirmed: &Unconfirmed,
) -> DeadLetter {
    let received = unconfirmed
        .received
        .map_or_else(|| "none".to_owned(), |n| n.to_string());
    let [received_name, sent_name, trace_name] = profile.receipt_attributes;
    DeadLetter {
        reason: profile.receipt_mismatch_reason,
        detail: format!(
            "{} answered 2xx with events_received {received} for {} events: which were kept is unknown; check Events Manager for the event id before a redrive, which sends it again",
            event.destination(),
            unconfirmed.sent
        ),
        extra: [
            (received_name, Some(received)),
            (sent_name, Some(unconfirmed.sent.to_string())),
            (trace_name, unconfirmed.trace_id.clone()),
            (EVENT_ID_ATTRIBUTE, Some(event.event_id().to_owned())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect(),
    }
}

/// Counts a sent event: by channel and destination always; with detailed metrics also by event
/// name and rule, and its match keys (coverage: `MatchKeyEvents` over `EventsSent` under the
/// same `[EventName, Destination]`). The breakdowns multiply metric series, which CloudWatch
/// bills each (`metrics::catalogue`): the conversion report has them at no such cost.
fn count_sent(metrics: &mut Metrics, event: &Outbound, fact: Option<&Fact>) {
    let channel = (crate::metrics::CHANNEL, event.channel().as_str());
    let destination = (crate::metrics::DESTINATION, event.destination().as_str());
    if !metrics.detailed() {
        metrics.count_by_each(m::EVENTS_SENT, &[channel, destination], 1);
        return;
    }
    let name = ("EventName", event.event_name().as_str());
    let rule = ("Rule", fact.map_or("", |f| f.key.rule.as_str()));
    metrics.count_by_each(m::EVENTS_SENT, &[name, channel, destination, rule], 1);
    metrics.count_by_all(m::EVENTS_SENT, &[name, destination], 1);
    for key in event.match_keys() {
        metrics.count_by(m::MATCH_KEY_EVENTS, "Key", key, 1);
        metrics.count_by_all(m::MATCH_KEY_EVENTS, &[name, destination, ("Key", key)], 1);
    }
}
