//! The send step: one request per target (a Meta dataset, a TikTok event set) with retries
//! chosen by the platform's error code (transient and throttling errors back off inside the
//! invocation's time, invalid events split the request to isolate them, refusals of the whole
//! dataset dead-letter it at once), and the reading of what came back.

use super::*;
use crate::conversion::pipeline::group_by_target;
use crate::model::Destination;
use crate::report::Fact;

#[derive(Debug)]
pub(super) enum EventResult {
    Sent(Option<String>),
    Invalid(GraphError),
    Failed(GraphError),
    /// Meta answered 2xx but counted another number of events than were sent: which ones it
    /// kept is unknown, so the events are neither marked sent nor retried automatically.
    Unconfirmed(Unconfirmed),
}

#[derive(Debug, Clone)]
pub(super) struct Unconfirmed {
    pub(super) received: Option<u64>,
    pub(super) sent: usize,
    pub(super) fbtrace_id: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct SendLog {
    pub(super) destination: Destination,
    pub(super) results: Vec<(usize, Outbound, EventResult)>,
    pub(super) requests: usize,
    pub(super) sizes: Vec<usize>,
    pub(super) errors: Vec<GraphError>,
    /// 2xx answers that did not count every event.
    pub(super) mismatches: usize,
    /// Events of requests whose fate is unknown (5xx, no answer): each is sent again, now or on
    /// redelivery, and may reach Meta twice.
    pub(super) ambiguous: usize,
    /// Answers carrying Meta's version warning header, and the first one's text.
    pub(super) version_warnings: usize,
    pub(super) version_warning: Option<String>,
}

impl SendLog {
    /// Notes the version warning of one answer.
    fn warned(&mut self, warning: Option<&str>) {
        if let Some(text) = warning {
            self.version_warnings += 1;
            self.version_warning.get_or_insert_with(|| text.to_owned());
        }
    }
}

impl<S: DispatchStore, G: GraphSender, D: MessageSink, T: TikTokSender> Dispatcher<S, G, D, T> {
    /// Posts one request to its platform: Meta's answer counts what it received; TikTok's
    /// `code` 0 takes the whole request.
    async fn deliver(
        &self,
        request: &OutboundRequest,
    ) -> Result<crate::meta::graph::GraphSuccess, GraphError> {
        match request {
            OutboundRequest::Meta(r) => {
                self.graph
                    .send(&self.config.graph_api_version, &r.account, &r.body)
                    .await
            }
            OutboundRequest::TikTok(r) => {
                let success = self.tiktok.send(&r.account, &r.body).await?;
                Ok(crate::meta::graph::GraphSuccess {
                    events_received: Some(r.body.data.len() as u64),
                    fbtrace_id: success.request_id,
                    ..Default::default()
                })
            }
        }
    }

    /// Sends one request, retrying and splitting as the platform's error code says.
    pub(super) fn send_with_retry<'a>(
        &'a self,
        target: &'a Target,
        events: Vec<(usize, Outbound)>,
        deadline: Instant,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = SendLog> + Send + 'a>> {
        Box::pin(async move {
            let mut log = SendLog {
                destination: match target {
                    Target::Meta(_) => Destination::Meta,
                    Target::TikTok(_) => Destination::TikTok,
                },
                ..SendLog::default()
            };
            let request = OutboundRequest::new(
                target.clone(),
                events.iter().map(|(_, e)| e.clone()).collect(),
            );
            let mut attempt = 0;
            loop {
                attempt += 1;
                log.requests += 1;
                log.sizes.push(events.len());
                let answer = self.deliver(&request).await;
                log.warned(match &answer {
                    Ok(success) => success.version_warning.as_deref(),
                    Err(err) => err.version_warning.as_deref(),
                });
                let err = match answer {
                    Ok(success) => match success.receipt(events.len()) {
                        Receipt::All => {
                            log.results.extend(events.into_iter().map(|(owner, e)| {
                                (owner, e, EventResult::Sent(success.fbtrace_id.clone()))
                            }));
                            return log;
                        }
                        // Nothing was kept, so sending again cannot duplicate: retry.
                        Receipt::None => GraphError {
                            destination: log.destination,
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
                if class == ErrorClass::DeprecatedVersion {
                    tracing::error!(
                        graph_api_version = %self.config.graph_api_version,
                        code = ?err.code,
                        fbtrace_id = ?err.fbtrace_id,
                        newest_known = crate::meta::versions::NEWEST.version,
                        "Meta refuses the configured Graph API version as deprecated: events are kept for redrive; set graph_api_version to a current version (wacapi check-config names one)"
                    );
                }
                match class {
                    ErrorClass::InvalidEvent if events.len() > 1 => {
                        let mut left = events;
                        let right = left.split_off(left.len() / 2);
                        for half in [left, right] {
                            let sub = self.send_with_retry(target, half, deadline).await;
                            log.requests += sub.requests;
                            log.sizes.extend(sub.sizes);
                            log.errors.extend(sub.errors);
                            log.mismatches += sub.mismatches;
                            log.ambiguous += sub.ambiguous;
                            log.version_warnings += sub.version_warnings;
                            if log.version_warning.is_none() {
                                log.version_warning = sub.version_warning;
                            }
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
                            tracing::info!(attempt, destination = %err.destination, code = ?err.code, delay_ms = delay.as_millis() as u64, "destination busy; retrying");
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
                // Mapping gives a TikTok event only to an account with a TikTok event set.
                None => result.state = State::Failed("an event without a destination".into()),
            }
        }
    }
    (group_by_target(claimed), facts)
}

/// Reads the send logs: counts and metrics, the sent marks to write, each with the report fact
/// of its event (returned), the claims to release (added to `release`), and each record's
/// fate: failed (retried), or bound for the dead-letter queue when the platform refused its
/// event for good or did not confirm it.
pub(super) fn record_sends(
    logs: Vec<SendLog>,
    now: i64,
    results: &mut [RecordResult],
    facts: &mut HashMap<String, Fact>,
    release: &mut Vec<String>,
    report: &mut DispatchReport,
    metrics: &mut Metrics,
) -> Vec<(SentMark, Option<Fact>)> {
    let mut marks = Vec::new();
    let mut invalid: BTreeMap<usize, DeadLetter> = BTreeMap::new();
    let mut graph_failed: HashMap<usize, GraphError> = HashMap::new();
    let send_time = crate::clock::now().max(now);
    for log in logs {
        let tiktok = log.destination == Destination::TikTok;
        report.graph_requests += log.requests;
        metrics.count(
            if tiktok {
                m::TIKTOK_REQUESTS
            } else {
                m::GRAPH_REQUESTS
            },
            log.requests as u64,
        );
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
        if !tiktok {
            metrics.count(m::GRAPH_VERSION_WARNINGS, log.version_warnings as u64);
            report.graph_version_warnings += log.version_warnings;
            if report.graph_version_warning.is_none() {
                report.graph_version_warning = log.version_warning;
            }
        }
        for err in &log.errors {
            if tiktok {
                metrics.count_by(m::TIKTOK_ERRORS, "Code", err.code_label(), 1);
                tracing::warn!(code = ?err.code, status = ?err.status, request_id = ?err.fbtrace_id, class = ?err.class(), "TikTok Events API error");
                if err.class().is_auth() {
                    metrics.count(m::TIKTOK_AUTH_ERRORS, 1);
                    tracing::error!(code = ?err.code, request_id = ?err.fbtrace_id, "TikTok refused the access token: events are kept for redrive");
                }
                continue;
            }
            metrics.count_by(m::GRAPH_ERRORS, "Code", err.code_label(), 1);
            // Logs Insights reads code and subcode from here (infra/queries.tf).
            tracing::warn!(code = ?err.code, subcode = ?err.subcode, status = ?err.status, fbtrace_id = ?err.fbtrace_id, class = ?err.class(), "Graph API error");
            // A deprecated version counts here too: like a bad token, nothing is sent until a
            // person acts, and this alarm says so (send_with_retry logged the version).
            if err.class().needs_operator() {
                metrics.count(m::GRAPH_AUTH_ERRORS, 1);
            }
            if err.class().is_auth() {
                tracing::error!(code = ?err.code, subcode = ?err.subcode, fbtrace_id = ?err.fbtrace_id, "Graph API refused the access token: events are kept for redrive");
            }
        }
        for (owner, event, outcome) in log.results {
            match outcome {
                EventResult::Sent(fbtrace_id) => {
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
                        fbtrace_id,
                        sent_at: send_time,
                        expires_at: ledger_expiry(event.event_time()),
                    };
                    marks.push((mark, fact));
                }
                EventResult::Invalid(err) => {
                    release.push(event.event_id().to_owned());
                    invalid
                        .entry(owner)
                        .or_insert_with(|| refused_letter(&event, &err));
                }
                EventResult::Unconfirmed(unconfirmed) => {
                    release.push(event.event_id().to_owned());
                    invalid
                        .entry(owner)
                        .or_insert_with(|| unconfirmed_letter(&event, &unconfirmed));
                }
                EventResult::Failed(err) => {
                    release.push(event.event_id().to_owned());
                    graph_failed.entry(owner).or_insert(err);
                }
            }
        }
    }
    for (owner, err) in graph_failed {
        results[owner].state = State::Failed(format!("graph: {err}"));
    }
    for (owner, letter) in invalid {
        if !results[owner].is_failed() {
            results[owner].state = State::ToDeadLetter(letter);
        }
    }
    marks
}

/// The dead-letter move of a record whose event Meta (or TikTok) refused for good.
pub(super) fn refused_letter(event: &Outbound, err: &GraphError) -> DeadLetter {
    if err.destination == Destination::TikTok {
        return DeadLetter {
            reason: err.refusal_reason(),
            detail: err.message.clone(),
            extra: [
                (
                    graph_attributes::TIKTOK_CODE,
                    err.code.map(|c| c.to_string()),
                ),
                (
                    graph_attributes::TIKTOK_MESSAGE,
                    Some(truncate(&err.message, 512)),
                ),
                (graph_attributes::TIKTOK_REQUEST_ID, err.fbtrace_id.clone()),
                (
                    graph_attributes::EVENT_ID,
                    Some(event.event_id().to_owned()),
                ),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect(),
        };
    }
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
            (
                graph_attributes::EVENT_ID,
                Some(event.event_id().to_owned()),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect(),
    }
}

/// The dead-letter move of a record whose event Meta may or may not have kept.
pub(super) fn unconfirmed_letter(event: &Outbound, unconfirmed: &Unconfirmed) -> DeadLetter {
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
            (
                graph_attributes::EVENT_ID,
                Some(event.event_id().to_owned()),
            ),
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
