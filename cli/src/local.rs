//! The local pipeline: the ingest routes (`GET`/`POST /webhook`, `POST /events`) on a loopback port, an
//! in-process FIFO queue with deduplication, in-memory click store and ledger, and the
//! dispatcher, sending to the Graph API when a token is configured and otherwise to a dry-run
//! sink that prints each request as `{"dataset_id": ..., "body": ...}`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use wacapi_shared::capi::EventsRequest;
use wacapi_shared::dispatch::{DispatchSettings, Dispatcher, InboundRecord};
use wacapi_shared::graph::{AccessTokens, GraphClient, GraphError, GraphSender, GraphSuccess};
use wacapi_shared::ingest::{Ingest, MAX_BODY_BYTES, Reply, attributes};
use wacapi_shared::metrics::Metrics;
use wacapi_shared::queue::{MessageSink, OutboundMessage, QueueError};
use wacapi_shared::rules::{Account, Config};
use wacapi_shared::secrets::{CachedSecret, StaticSecret};
use wacapi_shared::signature::SIGNATURE_HEADER;
use wacapi_shared::store::MemoryStore;

/// Records per local dispatch batch: SQS FIFO hands over at most 10, but locally a larger batch
/// means fewer Graph requests under load.
const LOCAL_BATCH: usize = 100;

/// How failed records come back (SQS would wait out the visibility timeout).
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Where events go.
pub enum GraphMode {
    /// Print each request; send nothing.
    DryRun,
    /// Count requests and events; print and send nothing (load tests).
    Count,
    /// Send to the Graph API at `base_url` with one token for every account.
    Live {
        /// The access token.
        token: SecretString,
        /// Meta's Graph API, or another endpoint.
        base_url: String,
    },
}

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
    /// Where events go.
    pub graph: GraphMode,
}

/// Counters and latencies of a run.
#[derive(Default)]
pub struct Stats {
    /// Records waiting or being dispatched.
    pub pending: AtomicUsize,
    /// Signals accepted by the queue (after dedup).
    pub queued: AtomicUsize,
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
    /// Accepted → dispatched latency of each record, microseconds.
    pub latencies_us: Mutex<Vec<u64>>,
    /// Dedup hits.
    pub dedup_hits: AtomicU64,
    idle: Notify,
}

impl Stats {
    /// Waits until nothing is pending.
    pub async fn wait_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The `q` quantile of the latencies in milliseconds.
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        let mut l = self.latencies_us.lock().ok()?.clone();
        if l.is_empty() {
            return None;
        }
        l.sort_unstable();
        let i = ((l.len() as f64 - 1.0) * q).round() as usize;
        Some(l[i.min(l.len() - 1)] as f64 / 1000.0)
    }

    /// A one-line summary.
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
        let latency = match (self.latency_ms(0.5), self.latency_ms(0.99)) {
            (Some(p50), Some(p99)) => format!("accepted→sent p50 {p50:.2} ms, p99 {p99:.2} ms"),
            _ => "no latency samples".to_owned(),
        };
        format!(
            "{} signal(s) queued, {} event(s) in {} request(s); skipped: {skipped}; duplicates: {}; dead-lettered: {}; quarantined: {}; retried: {}; {latency}",
            self.queued.load(Ordering::SeqCst),
            self.events.load(Ordering::SeqCst),
            self.requests.load(Ordering::SeqCst),
            self.dedup_hits.load(Ordering::SeqCst),
            self.dead_lettered.load(Ordering::SeqCst),
            self.quarantined.load(Ordering::SeqCst),
            self.retried.load(Ordering::SeqCst),
        )
    }
}

struct Queued {
    message: OutboundMessage,
    id: String,
    accepted_at: Instant,
}

/// The in-process FIFO queue: deduplicates like SQS (for the whole run), counts pending work.
struct LocalQueue {
    tx: mpsc::UnboundedSender<Queued>,
    seen: Mutex<HashSet<String>>,
    stats: Arc<Stats>,
    next_id: AtomicU64,
}

impl MessageSink for LocalQueue {
    async fn send_all(&self, messages: Vec<OutboundMessage>) -> Result<(), QueueError> {
        let now = Instant::now();
        let mut seen = self
            .seen
            .lock()
            .map_err(|_| QueueError::Transport("queue lock poisoned".into()))?;
        for message in messages {
            if !seen.insert(message.dedup_id.clone()) {
                continue;
            }
            self.stats.pending.fetch_add(1, Ordering::SeqCst);
            self.stats.queued.fetch_add(1, Ordering::SeqCst);
            let id = format!("local-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
            self.tx
                .send(Queued {
                    message,
                    id,
                    accepted_at: now,
                })
                .map_err(|_| QueueError::Transport("the dispatcher has stopped".into()))?;
        }
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

/// The dry-run Graph API: prints each request on stdout (unless only counting).
struct DryRun {
    counter: AtomicU64,
    print: bool,
}

impl GraphSender for DryRun {
    async fn send(
        &self,
        _version: &str,
        account: &Account,
        request: &EventsRequest,
    ) -> Result<GraphSuccess, GraphError> {
        if self.print {
            let line = json!({"dataset_id": account.dataset_id, "body": request});
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        Ok(GraphSuccess {
            events_received: Some(request.data.len() as u64),
            messages: Vec::new(),
            fbtrace_id: Some(format!("dry-run-{n}")),
        })
    }
}

/// Either Graph sender.
enum AnyGraph {
    DryRun(DryRun),
    Live(GraphClient<StaticSecret>),
}

impl GraphSender for AnyGraph {
    async fn send(
        &self,
        version: &str,
        account: &Account,
        request: &EventsRequest,
    ) -> Result<GraphSuccess, GraphError> {
        match self {
            Self::DryRun(d) => d.send(version, account, request).await,
            Self::Live(g) => g.send(version, account, request).await,
        }
    }
}

type LocalIngest = Ingest<StaticSecret, Arc<LocalQueue>, LocalDeadLetters>;

struct App {
    ingest: LocalIngest,
}

/// A running local pipeline.
pub struct LocalPipeline {
    /// The address the ingest routes listen on.
    pub addr: SocketAddr,
    /// Live counters.
    pub stats: Arc<Stats>,
}

/// Starts the pipeline on the current runtime.
pub async fn start(options: LocalOptions) -> Result<LocalPipeline, String> {
    let stats = Arc::new(Stats::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let queue = Arc::new(LocalQueue {
        tx,
        seen: Mutex::new(HashSet::new()),
        stats: Arc::clone(&stats),
        next_id: AtomicU64::new(0),
    });
    let secrets = json!({"app_secret": options.app_secret, "verify_token": options.verify_token});
    let event_keys = json!({ "keys": [options.events_key] });
    let ingest = Ingest::new(
        CachedSecret::new(
            StaticSecret(SecretString::from(secrets.to_string())),
            Duration::from_secs(3600),
            Duration::from_secs(30),
        ),
        Arc::clone(&queue),
        LocalDeadLetters {
            quarantined: Some(Arc::clone(&stats)),
        },
    )
    .with_event_keys(CachedSecret::new(
        StaticSecret(SecretString::from(event_keys.to_string())),
        Duration::from_secs(3600),
        Duration::from_secs(30),
    ));
    let graph = match options.graph {
        GraphMode::DryRun | GraphMode::Count => AnyGraph::DryRun(DryRun {
            counter: AtomicU64::new(0),
            print: matches!(options.graph, GraphMode::DryRun),
        }),
        GraphMode::Live { token, base_url } => {
            // One token for every account: the default and each name the accounts use.
            let mut names: Vec<String> = vec!["default".into()];
            names.extend(
                options
                    .config
                    .accounts
                    .values()
                    .filter_map(|a| a.token.clone()),
            );
            let tokens: serde_json::Map<String, serde_json::Value> = names
                .into_iter()
                .map(|n| (n, json!(secrecy::ExposeSecret::expose_secret(&token))))
                .collect();
            let doc = SecretString::from(json!({ "access_tokens": tokens }).to_string());
            let client = GraphClient::new(
                base_url,
                Duration::from_secs(10),
                CachedSecret::<AccessTokens, _>::new(
                    StaticSecret(doc),
                    Duration::from_secs(3600),
                    Duration::from_secs(30),
                ),
            )
            .map_err(|e| e.to_string())?;
            AnyGraph::Live(client)
        }
    };
    let dispatcher = Dispatcher::new(
        options.config,
        MemoryStore::new(),
        graph,
        LocalDeadLetters { quarantined: None },
        DispatchSettings::default(),
    );
    tokio::spawn(dispatch_loop(
        dispatcher,
        rx,
        queue.tx.clone(),
        Arc::clone(&stats),
        options.now,
    ));

    let app = Arc::new(App { ingest });
    let router = Router::new()
        .route("/webhook", get(handshake).post(receive))
        .route("/events", axum::routing::post(receive_events))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES + 1))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{}: {e}", options.port))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            let _ = writeln!(std::io::stderr(), "wacapi: server stopped: {e}");
        }
    });
    Ok(LocalPipeline { addr, stats })
}

async fn handshake(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let mut metrics = Metrics::new("wacapi", "local");
    into_response(app.ingest.handshake(query.as_deref(), &mut metrics).await)
}

async fn receive(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut metrics = Metrics::new("wacapi", "local");
    let signatures: Vec<&[u8]> = headers
        .get_all(SIGNATURE_HEADER)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    into_response(app.ingest.receive(&signatures, &body, &mut metrics).await)
}

async fn receive_events(State(app): State<Arc<App>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut metrics = Metrics::new("wacapi", "local");
    let header = |name: &str| headers.get(name).map(|v| v.as_bytes());
    into_response(
        app.ingest
            .receive_events(
                header(wacapi_shared::business::TIMESTAMP_HEADER),
                header(wacapi_shared::business::SIGNATURE_HEADER),
                &body,
                crate::replay::clock(),
                &mut metrics,
            )
            .await,
    )
}

fn into_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, reply.content_type)],
        reply.body,
    )
        .into_response()
}

async fn dispatch_loop(
    dispatcher: Dispatcher<MemoryStore, AnyGraph, LocalDeadLetters>,
    mut rx: mpsc::UnboundedReceiver<Queued>,
    requeue: mpsc::UnboundedSender<Queued>,
    stats: Arc<Stats>,
    fixed_now: Option<i64>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < LOCAL_BATCH {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        let records: Vec<InboundRecord> = batch
            .iter()
            .map(|q| InboundRecord {
                message_id: q.id.clone(),
                group_id: Some(q.message.group_id.clone()),
                body: q.message.body.clone(),
                attributes: q.message.attributes.iter().cloned().collect(),
            })
            .collect();
        let now = fixed_now.unwrap_or_else(crate::replay::clock);
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
            .dead_lettered
            .fetch_add(report.records.dead_lettered, Ordering::SeqCst);
        if let Ok(mut skipped) = stats.skipped.lock() {
            for (reason, n) in &report.skipped {
                *skipped.entry(reason).or_default() += n;
            }
        }
        let failed: HashSet<&str> = report.failed.iter().map(String::as_str).collect();
        let done = Instant::now();
        let mut latencies = Vec::new();
        for q in batch {
            if failed.contains(q.id.as_str()) {
                stats.retried.fetch_add(1, Ordering::SeqCst);
                let requeue = requeue.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RETRY_DELAY).await;
                    let _ = requeue.send(q);
                });
            } else {
                latencies.push((done - q.accepted_at).as_micros() as u64);
                stats.pending.fetch_sub(1, Ordering::SeqCst);
            }
        }
        if let Ok(mut l) = stats.latencies_us.lock() {
            l.extend(latencies);
        }
        stats.idle.notify_waiters();
    }
}
