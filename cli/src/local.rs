//! The local pipeline: the ingest routes (`GET`/`POST /webhook`, `POST /events`) on a loopback
//! port ([`crate::http`]: timeouts and a connection cap), a FIFO backlog with SQS's
//! deduplication window, a click store and sent-ledger, and the dispatcher, sending to the Graph
//! API (and TikTok's Events API) when a token is configured and otherwise to a dry-run sink
//! that prints each request as `{"dataset_id": ..., "body": ...}` (TikTok's as
//! `{"destination": "tiktok", "event_source_id": ..., "body": ...}`).
//!
//! In memory by default (a crash loses what was accepted and not yet dispatched); with a data
//! directory, backlog, clicks and ledger live in SQLite ([`crate::durable`]) and a restart picks
//! up where the crash left off. [`LocalPipeline::stop`] stops accepting, drains what was
//! accepted (within a time limit) and says what is left.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::{Notify, watch};
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::dispatch::{DispatchSettings, Dispatcher, InboundRecord};
use wacapi_shared::ingest::{Ingest, Route, attributes};
use wacapi_shared::metrics::Metrics;
use wacapi_shared::model::Destination;
use wacapi_shared::queue::{MessageSink, OutboundMessage, QueueError};
use wacapi_shared::report::{FactKey, Tally};
use wacapi_shared::secrets::{CachedSecret, StaticSecret};
use wacapi_shared::store::{DispatchStore, MemoryStore};

use crate::backlog::{Backlog, MemoryBacklog, Queued};
use crate::delivery::{DryRunMode, Live, LocalDestinations};
use crate::durable::{Database, Limits};

/// Records per local dispatch batch: SQS FIFO hands over at most 10, but locally a larger batch
/// means fewer Graph requests under load.
const LOCAL_BATCH: usize = 100;

/// How long a failed record waits before it is handed out again (SQS would wait out the
/// visibility timeout).
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Latency samples kept (a uniform reservoir): memory stays bounded however long `serve` runs.
const LATENCY_SAMPLES: usize = 100_000;

/// Options of the local pipeline.
pub struct LocalOptions {
    /// Rules and accounts.
    pub config: Config,
    /// A fixed "now" (unix seconds) for the 7-day window, or the clock.
    pub now: Option<i64>,
    /// The loopback port (0: any free one).
    pub port: u16,
    /// The app secret webhooks are signed with.
    pub app_secret: String,
    /// The verify token of the handshake.
    pub verify_token: String,
    /// The key `POST /events` requests are signed with.
    pub events_key: String,
    /// What a dry run does with the requests of destinations not sent to for real.
    pub dry_run: DryRunMode,
    /// The destinations sent to for real, each with its token and API.
    pub live: BTreeMap<Destination, Live>,
    /// Keep backlog, clicks and ledger in this directory (SQLite) instead of memory.
    pub data_dir: Option<PathBuf>,
    /// The backlog's bound (both modes) and the data directory's free-space floor.
    pub limits: Limits,
}

/// A uniform sample of accepted→sent latencies (microseconds).
#[derive(Default)]
struct Reservoir {
    samples: Vec<u64>,
    seen: u64,
    rng: u64,
}

impl Reservoir {
    fn add(&mut self, value: u64) {
        self.seen += 1;
        if self.samples.len() < LATENCY_SAMPLES {
            self.samples.push(value);
            return;
        }
        // xorshift64: enough randomness to keep the sample uniform.
        self.rng ^= self.rng << 13 | 1;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let slot = self.rng % self.seen;
        if let Some(s) = self.samples.get_mut(slot as usize) {
            *s = value;
        }
    }
}

/// Counters and latencies of a run.
#[derive(Default)]
pub struct Stats {
    /// Signals accepted by the backlog (after its deduplication).
    pub queued: AtomicUsize,
    /// Signals the backlog dropped as copies seen within SQS's 5-minute window.
    pub queue_duplicates: AtomicUsize,
    /// Graph requests sent (or printed).
    pub requests: AtomicUsize,
    /// Events sent (or printed).
    pub events: AtomicUsize,
    /// Records dead-lettered by the dispatcher.
    pub dead_lettered: AtomicUsize,
    /// Bodies or items quarantined by the ingest.
    pub quarantined: AtomicUsize,
    /// Records retried.
    pub retried: AtomicUsize,
    /// Skips by reason.
    pub skipped: Mutex<BTreeMap<&'static str, usize>>,
    /// Events the ledger found already sent (duplicates suppressed).
    pub dedup_hits: AtomicU64,
    /// Events sent again after Meta answered 5xx or did not answer (possible duplicates).
    pub ambiguous_resends: AtomicU64,
    latencies: Mutex<Reservoir>,
}

impl Stats {
    fn record_latencies(&self, values: impl IntoIterator<Item = u64>) {
        if let Ok(mut r) = self.latencies.lock() {
            for v in values {
                r.add(v);
            }
        }
    }

    /// The latency samples gathered since the last call, sorted (microseconds); the next window
    /// starts empty.
    pub fn take_latencies(&self) -> Vec<u64> {
        let mut samples = self
            .latencies
            .lock()
            .map(|mut r| std::mem::take(&mut *r).samples)
            .unwrap_or_default();
        samples.sort_unstable();
        samples
    }

    /// The `q` quantile of sorted samples, in milliseconds.
    pub fn quantile_ms(sorted: &[u64], q: f64) -> Option<f64> {
        let i = ((sorted.len().checked_sub(1)?) as f64 * q).round() as usize;
        sorted.get(i).map(|us| *us as f64 / 1000.0)
    }

    /// A one-line summary (its latencies are those since the last [`Stats::take_latencies`]).
    pub fn summary(&self) -> String {
        let skipped = self.skipped.lock().map(|s| s.clone()).unwrap_or_default();
        let skipped = if skipped.is_empty() {
            "none".to_owned()
        } else {
            skipped
                .iter()
                .map(|(r, n)| format!("{r}={n}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let latencies = self.take_latencies();
        let latency = match (
            Self::quantile_ms(&latencies, 0.5),
            Self::quantile_ms(&latencies, 0.99),
        ) {
            (Some(p50), Some(p99)) => format!("accepted→sent p50 {p50:.2} ms, p99 {p99:.2} ms"),
            _ => "no latency samples".to_owned(),
        };
        let queue_dups = self.queue_duplicates.load(Ordering::SeqCst);
        let ledger_dups = self.dedup_hits.load(Ordering::SeqCst);
        format!(
            "{} signal(s) queued, {} event(s) in {} request(s); skipped: {skipped}; duplicates suppressed: {} (queue {queue_dups}, ledger {ledger_dups}); ambiguous resends: {}; dead-lettered: {}; quarantined: {}; retried: {}; {latency}",
            self.queued.load(Ordering::SeqCst),
            self.events.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
            queue_dups as u64 + ledger_dups,
            self.ambiguous_resends.load(Ordering::SeqCst),
            self.dead_lettered.load(Ordering::SeqCst),
            self.quarantined.load(Ordering::SeqCst),
            self.retried.load(Ordering::SeqCst),
        )
    }
}

/// Microseconds since the epoch.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The ingest's signal queue: the backlog, waking the dispatcher.
struct QueueSink {
    backlog: Arc<dyn Backlog>,
    stats: Arc<Stats>,
    wake: Arc<Notify>,
}

impl MessageSink for QueueSink {
    async fn send_all(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        let n = messages.len();
        let added = self.backlog.push(messages, now_us())?;
        self.stats.queued.fetch_add(added, Ordering::SeqCst);
        self.stats
            .queue_duplicates
            .fetch_add(n - added, Ordering::SeqCst);
        self.wake.notify_one();
        Ok(())
    }
}

/// The local dead-letter queue: says what was moved and why (never the body: it may hold
/// personal data). The ingest's copy counts what it quarantines; the dispatcher's moves are
/// counted from its reports.
struct LocalDeadLetters {
    quarantined: Option<Arc<Stats>>,
}

impl MessageSink for LocalDeadLetters {
    async fn send_all(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        if let Some(stats) = &self.quarantined {
            stats
                .quarantined
                .fetch_add(messages.len(), Ordering::SeqCst);
        }
        for m in &messages {
            let attr = |name: &str| {
                m.attributes
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .unwrap_or("")
            };
            let _ = writeln!(
                std::io::stderr(),
                "dead-lettered: reason={} detail={}",
                attr(attributes::REASON),
                attr(attributes::DETAIL)
            );
        }
        Ok(())
    }
}

type LocalIngest = Ingest<StaticSecret, Arc<QueueSink>, LocalDeadLetters>;

struct App {
    ingest: LocalIngest,
    report: ReportReader,
}

/// What [`LocalPipeline::stop`] left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Signals accepted and not dispatched when the drain time ran out.
    pub left: usize,
    /// Whether they are kept (a data directory) or lost (memory).
    pub durable: bool,
}

/// A running local pipeline.
pub struct LocalPipeline {
    /// The address the ingest routes listen on.
    pub addr: SocketAddr,
    /// Live counters.
    pub stats: Arc<Stats>,
    backlog: Arc<dyn Backlog>,
    durable: bool,
    stop_server: watch::Sender<bool>,
    stop_dispatch: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
    dispatch: tokio::task::JoinHandle<()>,
}

impl LocalPipeline {
    /// Waits until nothing accepted is waiting or in flight.
    pub async fn wait_idle(&self) {
        while self.backlog.pending() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops accepting (requests in progress finish), dispatches what was accepted for at most
    /// `drain`, then stops the dispatcher.
    pub async fn stop(self, drain: Duration) -> Stopped {
        let Self {
            backlog,
            durable,
            stop_server,
            stop_dispatch,
            server,
            dispatch,
            ..
        } = self;
        let _ = stop_server.send(true);
        let _ = server.await;
        let idle = async {
            while backlog.pending() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(drain, idle).await;
        let _ = stop_dispatch.send(true);
        let _ = dispatch.await;
        if let Err(err) = backlog.settle() {
            tracing::warn!(error = %err, "the backlog could not be settled at stop");
        }
        Stopped {
            left: backlog.pending(),
            durable,
        }
    }
}

/// Starts the pipeline on the current runtime.
pub async fn start(mut options: LocalOptions) -> Result<LocalPipeline, String> {
    let click_ttl = options.config.attribution_window_seconds;
    let destinations = LocalDestinations::new(
        &options.config,
        options.dry_run,
        std::mem::take(&mut options.live),
    )?;
    match options.data_dir.clone() {
        Some(dir) => {
            let (db, recovered) = Database::open(&dir, click_ttl, options.limits)?;
            let db = Arc::new(db);
            if recovered.pending > 0 || recovered.released_claims > 0 {
                let _ = writeln!(
                    std::io::stderr(),
                    "wacapi: {} signal(s) from an earlier run in {} resume; {} unfinished claim(s) released",
                    recovered.pending,
                    dir.display(),
                    recovered.released_claims
                );
            }
            let backlog: Arc<dyn Backlog> = db.clone();
            let reader = Arc::clone(&db);
            let report: ReportReader = Arc::new(move || reader.report());
            launch(options, backlog, db, report, destinations, true).await
        }
        None => {
            let backlog: Arc<dyn Backlog> =
                Arc::new(MemoryBacklog::with_bound(options.limits.max_backlog));
            let store = Arc::new(MemoryStore::with_click_ttl(click_ttl));
            let reader = Arc::clone(&store);
            let report: ReportReader = Arc::new(move || Ok(reader.report()));
            launch(options, backlog, store, report, destinations, false).await
        }
    }
}

/// Reads the store's report aggregates (`GET /report`).
type ReportReader = Arc<dyn Fn() -> Result<Vec<(FactKey, Tally)>, String> + Send + Sync>;

async fn launch<S: DispatchStore + 'static>(
    options: LocalOptions,
    backlog: Arc<dyn Backlog>,
    store: S,
    report: ReportReader,
    destinations: LocalDestinations,
    durable: bool,
) -> Result<LocalPipeline, String> {
    let stats = Arc::new(Stats::default());
    let wake = Arc::new(Notify::new());
    let queue = Arc::new(QueueSink {
        backlog: Arc::clone(&backlog),
        stats: Arc::clone(&stats),
        wake: Arc::clone(&wake),
    });
    let secrets = json!({"app_secret": options.app_secret, "verify_token": options.verify_token});
    let event_keys = json!({ "keys": [options.events_key] });
    let ingest = Ingest::new(
        CachedSecret::new(
            StaticSecret(SecretString::from(secrets.to_string())),
            Duration::from_secs(3600),
            Duration::from_secs(30),
        ),
        queue,
        LocalDeadLetters {
            quarantined: Some(Arc::clone(&stats)),
        },
    )
    .with_event_keys(CachedSecret::new(
        StaticSecret(SecretString::from(event_keys.to_string())),
        Duration::from_secs(3600),
        Duration::from_secs(30),
    ));
    let dispatcher = Dispatcher::new(
        options.config,
        store,
        destinations,
        LocalDeadLetters { quarantined: None },
        DispatchSettings::default(),
    );
    let (stop_dispatch, dispatch_stopped) = watch::channel(false);
    let dispatch = tokio::spawn(dispatch_loop(
        dispatcher,
        Arc::clone(&backlog),
        Arc::clone(&stats),
        wake,
        dispatch_stopped,
        options.now,
    ));

    let app = Arc::new(App { ingest, report });
    let router = Router::new()
        .route("/report", get(report_route))
        .fallback(edge)
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", options.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let (stop_server, server_stopped) = watch::channel(false);
    let server = tokio::spawn(crate::http::serve(listener, router, server_stopped));
    Ok(LocalPipeline {
        addr,
        stats,
        backlog,
        durable,
        stop_server,
        stop_dispatch,
        server,
        dispatch,
    })
}

/// Whether a `Host` (or absolute-form authority) names this machine: `localhost`, an address
/// of 127.0.0.0/8 or `[::1]`, with or without a port. A page on another site that rebinds its
/// own name to 127.0.0.1 still sends its own name here, so it is refused.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6] or [v6]:port
        match rest.split_once(']') {
            Some((v6, port)) if port.is_empty() || port.strip_prefix(':').is_some_and(is_port) => {
                return v6
                    .parse::<std::net::Ipv6Addr>()
                    .is_ok_and(|a| a.is_loopback());
            }
            _ => return false,
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if is_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback())
}

/// A port after a host's colon: 1 to 5 digits.
fn is_port(text: &str) -> bool {
    (1..=5).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())
}

/// `GET /report`: the conversion report of what this server sent, filtered and rendered as the
/// query says (`since`, `until`, `ad`, `event`, `format` = json (default), csv or table,
/// `show` = rows, skips or coverage). `serve` listens on loopback only, and answers only a
/// request that names a loopback host ([`is_loopback_host`]; 403 otherwise), so the report never
/// leaves the machine, not even through a browser tricked by DNS rebinding.
async fn report_route(
    State(app): State<Arc<App>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = match (hosts.next(), hosts.next()) {
        (Some(h), None) => h.to_str().ok().filter(|h| is_loopback_host(h)),
        _ => None,
    };
    // An absolute-form request names its host in the request line, which then wins over Host.
    let authority_ok = uri.authority().is_none_or(|a| is_loopback_host(a.as_str()));
    if host.is_none() || !authority_ok {
        return (
            StatusCode::FORBIDDEN,
            "GET /report answers only requests to a loopback host (localhost, 127.0.0.1, [::1])\n",
        )
            .into_response();
    }
    let args = crate::report::ReportArgs::from_query(&query);
    let rendered = (app.report)().and_then(|aggregates| args.render(&aggregates));
    match rendered {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, args.content_type())],
            text,
        )
            .into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response(),
    }
}

/// Every request but `/report`: the shared edge's routes ([`Route`], [`Ingest::handle`]), the
/// body read only up to its route's limit (413 before any byte of a larger declared body).
async fn edge(
    State(app): State<Arc<App>>,
    method: Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let route = Route::of(&method, uri.path());
    let body = match route {
        Route::Webhook | Route::Events => {
            match crate::http::read_body(&headers, body, route.max_body()).await {
                Ok(b) => b,
                Err(refused) => return refused,
            }
        }
        Route::Handshake | Route::NotFound | Route::MethodNotAllowed => Default::default(),
    };
    let mut metrics = Metrics::new("wacapi", "local");
    let reply = app
        .ingest
        .handle(
            route,
            uri.query(),
            &headers,
            &body,
            wacapi_shared::clock::now(),
            &mut metrics,
        )
        .await;
    reply.into_http::<Body>().into_response()
}

/// Hands batches from the backlog to the dispatcher until told to stop: finished records leave
/// the backlog, failed ones come back after [`RETRY_DELAY`].
async fn dispatch_loop<S: DispatchStore>(
    dispatcher: Dispatcher<S, LocalDestinations, LocalDeadLetters>,
    backlog: Arc<dyn Backlog>,
    stats: Arc<Stats>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    fixed_now: Option<i64>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let batch = match backlog.take(LOCAL_BATCH, now_us()) {
            Ok(batch) => batch,
            Err(err) => {
                tracing::error!(error = %err, "the local backlog could not be read; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
        };
        if batch.is_empty() {
            if let Err(err) = backlog.settle() {
                tracing::warn!(error = %err, "the backlog could not be settled; retrying");
            }
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        dispatch_batch(&dispatcher, &*backlog, &stats, batch, fixed_now).await;
    }
}

async fn dispatch_batch<S: DispatchStore>(
    dispatcher: &Dispatcher<S, LocalDestinations, LocalDeadLetters>,
    backlog: &dyn Backlog,
    stats: &Stats,
    batch: Vec<Queued>,
    fixed_now: Option<i64>,
) {
    let records: Vec<InboundRecord> = batch
        .iter()
        .map(|q| InboundRecord {
            message_id: q.id.to_string(),
            group_id: Some(q.message.group_id.clone()),
            body: q.message.body.clone(),
            attributes: q.message.attributes.iter().cloned().collect(),
        })
        .collect();
    let now = fixed_now.unwrap_or_else(wacapi_shared::clock::now);
    let mut metrics = Metrics::new("wacapi", "local");
    let report = dispatcher
        .dispatch(
            &records,
            now,
            Instant::now() + Duration::from_secs(60),
            &mut metrics,
        )
        .await;
    stats
        .requests
        .fetch_add(report.graph_requests, Ordering::SeqCst);
    stats.events.fetch_add(report.events_sent, Ordering::SeqCst);
    stats
        .dedup_hits
        .fetch_add(report.dedup_hits as u64, Ordering::SeqCst);
    stats
        .ambiguous_resends
        .fetch_add(report.ambiguous_resends as u64, Ordering::SeqCst);
    stats
        .dead_lettered
        .fetch_add(report.records.dead_lettered, Ordering::SeqCst);
    if let Ok(mut skipped) = stats.skipped.lock() {
        for (reason, n) in &report.skipped {
            *skipped.entry(reason).or_default() += n;
        }
    }
    let failed: HashSet<&str> = report.failed.iter().map(String::as_str).collect();
    let (retry, done): (Vec<&Queued>, Vec<&Queued>) = batch
        .iter()
        .partition(|q| failed.contains(q.id.to_string().as_str()));
    let finished_at = now_us();
    stats.record_latencies(
        done.iter()
            .map(|q| (finished_at - q.accepted_us).max(0) as u64),
    );
    stats.retried.fetch_add(retry.len(), Ordering::SeqCst);
    let done: Vec<u64> = done.iter().map(|q| q.id).collect();
    let retry: Vec<u64> = retry.iter().map(|q| q.id).collect();
    if let Err(err) = backlog.finish(&done) {
        // They will be dispatched again; the ledger finds them sent.
        tracing::error!(error = %err, "finished records could not be removed from the backlog");
    }
    if let Err(err) = backlog.retry(&retry, now_us() + RETRY_DELAY.as_micros() as i64) {
        tracing::error!(error = %err, "failed records could not be scheduled again");
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn only_loopback_names_and_addresses_are_loopback_hosts() {
        for host in [
            "localhost",
            "LocalHost:8080",
            "127.0.0.1",
            "127.0.0.1:8080",
            "127.255.0.9:1",
            "[::1]",
            "[::1]:8080",
            "[0:0:0:0:0:0:0:1]:80",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:8080",
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "evil.localhost",
            "128.0.0.1",
            "0.0.0.0:8080",
            "10.0.0.1",
            "127.1",
            "[::2]",
            "[::1]evil",
            "[::1]:",
            "127.0.0.1:",
            "127.0.0.1:80:80",
            "127.0.0.1:123456",
            "::1",
            "[::ffff:8.8.8.8]",
            "localhost:http",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
