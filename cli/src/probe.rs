//! `wacapi probe`: measurements against a running `wacapi serve` (any build, so a change can be
//! measured before and after), over loopback only.
//!
//! - `idle-flood`: one client keeps reopening idle connections (it sends nothing) as fast as
//!   the server closes them, while a few legitimate clients post signed webhooks, each on a new
//!   connection; prints how many were answered 200 within 3 s, and their latencies.
//! - `flood`: posts signed webhooks of unique signals as fast as they are answered; prints how
//!   many were answered 200 or 503, and the server's resident memory (with `--pid`) before and
//!   after.
//!
//! Every loop is bounded in count and time, and targets the URL given, which must be loopback.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What a legitimate request must meet to count as served.
const SERVED_WITHIN: Duration = Duration::from_secs(3);

/// A legitimate request still unanswered after this long counts as not answered.
const GIVE_UP_AFTER: Duration = Duration::from_secs(15);

/// `wacapi probe`'s modes.
#[derive(clap::Subcommand)]
pub enum Probe {
    /// Idle connections reopened as fast as they are closed, beside legitimate signed POSTs.
    IdleFlood {
        /// The server (loopback), e.g. http://127.0.0.1:8080.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Idle connections the flood keeps open.
        #[arg(long, default_value_t = 1_200)]
        idle: usize,
        /// Legitimate clients, each posting one webhook after another.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// How long the flood lasts.
        #[arg(long, default_value_t = 30)]
        seconds: u64,
        /// The app secret the legitimate webhooks are signed with.
        #[arg(long, env = "WACAPI_APP_SECRET", hide_env_values = true)]
        app_secret: String,
    },
    /// Unique signals as fast as they are answered; 200s, 503s and the server's memory.
    Flood {
        /// The server (loopback), e.g. http://127.0.0.1:8080.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Signals to post in all.
        #[arg(long, default_value_t = 100_000)]
        signals: u64,
        /// Signals per webhook.
        #[arg(long, default_value_t = 100)]
        per_webhook: u64,
        /// The server's process id, to read its resident memory (VmRSS).
        #[arg(long)]
        pid: Option<u32>,
        /// The app secret the webhooks are signed with.
        #[arg(long, env = "WACAPI_APP_SECRET", hide_env_values = true)]
        app_secret: String,
    },
}

/// Runs a probe and prints its findings.
pub fn run(probe: Probe) -> Result<(), String> {
    crate::runtime()?.block_on(async move {
        match probe {
            Probe::IdleFlood {
                url,
                idle,
                clients,
                seconds,
                app_secret,
            } => {
                idle_flood(
                    loopback(&url)?,
                    idle,
                    clients,
                    Duration::from_secs(seconds),
                    app_secret,
                )
                .await
            }
            Probe::Flood {
                url,
                signals,
                per_webhook,
                pid,
                app_secret,
            } => {
                flood(
                    loopback(&url)?,
                    signals,
                    per_webhook.max(1),
                    pid,
                    app_secret,
                )
                .await
            }
        }
    })
}

/// The socket address of a loopback URL; anything else is refused.
fn loopback(url: &str) -> Result<SocketAddr, String> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let authority = rest.split('/').next().unwrap_or(rest);
    let addr: SocketAddr = authority
        .parse()
        .map_err(|_| format!("{url}: give http://127.0.0.1:PORT"))?;
    if addr.ip().is_loopback() {
        Ok(addr)
    } else {
        Err(format!("{url}: the probe only targets loopback addresses"))
    }
}

/// A webhook of `n` text messages with ids unique to `tag`, from users `first`, `first + 1`...
/// (each with their own ad click, as a real flood of new conversations would be).
fn webhook(tag: &str, first: u64, n: u64, now: i64) -> Vec<u8> {
    let messages: Vec<_> = (0..n)
        .map(|i| {
            json!({"from": format!("1555{:07}", (first + i) % 10_000_000), "id": format!("wamid.probe.{tag}.{i}"),
                   "timestamp": now.to_string(), "type": "text", "text": {"body": "hi"},
                   "referral": {"source_id": "ad", "source_type": "ad", "ctwa_clid": format!("clid-{tag}-{i}")}})
        })
        .collect();
    serde_json::to_vec(
        &json!({"object": "whatsapp_business_account", "entry": [{"id": "1",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
        "metadata": {"phone_number_id": "1"}, "messages": messages}}]}]}),
    )
    .unwrap_or_default()
}

/// One signed `POST /webhook` on a new connection; the answer's status (0: none).
async fn post(addr: SocketAddr, body: &[u8], secret: &str) -> u16 {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let head = format!(
            "POST /webhook HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nX-Hub-Signature-256: {}\r\nContent-Length: {}\r\n\r\n",
            wacapi_shared::signature::sign(secret.as_bytes(), body),
            body.len()
        );
        stream.write_all(head.as_bytes()).await.ok()?;
        stream.write_all(body).await.ok()?;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer)
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
    };
    tokio::time::timeout(GIVE_UP_AFTER, exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// One idle connection, reopened as soon as the server closes it, until `stop`.
async fn idle_connection(addr: SocketAddr, stop: Arc<AtomicBool>, opened: Arc<AtomicU64>) {
    while !stop.load(Ordering::Relaxed) {
        let connect = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr));
        let Ok(Ok(mut stream)) = connect.await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let mut byte = [0u8; 1];
        // Sends nothing; waits for the server to close (or the flood to end).
        tokio::select! {
            _ = stream.read(&mut byte) => {}
            _ = async { while !stop.load(Ordering::Relaxed) { tokio::time::sleep(Duration::from_millis(100)).await } } => {}
        }
    }
}

async fn idle_flood(
    addr: SocketAddr,
    idle: usize,
    clients: usize,
    length: Duration,
    secret: String,
) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..idle {
        flood.spawn(idle_connection(
            addr,
            Arc::clone(&stop),
            Arc::clone(&opened),
        ));
    }
    // Let the flood fill the server before the first legitimate request.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let started = Instant::now();
    let now = wacapi_shared::clock::now();
    let mut legit = tokio::task::JoinSet::new();
    for c in 0..clients {
        let secret = secret.clone();
        legit.spawn(async move {
            let mut outcomes = Vec::new();
            let mut n = 0u64;
            while started.elapsed() < length {
                let body = webhook(
                    &format!("flood-{now}-{c}-{n}"),
                    c as u64 * 1_000_000 + n,
                    1,
                    now,
                );
                let sent = Instant::now();
                let status = post(addr, &body, &secret).await;
                outcomes.push((status, sent.elapsed()));
                n += 1;
            }
            outcomes
        });
    }
    let mut outcomes = Vec::new();
    while let Some(done) = legit.join_next().await {
        outcomes.extend(done.map_err(|e| e.to_string())?);
    }
    stop.store(true, Ordering::Relaxed);
    while flood.join_next().await.is_some() {}
    print_idle_flood(&outcomes, idle, opened.load(Ordering::Relaxed), length)
}

fn print_idle_flood(
    outcomes: &[(u16, Duration)],
    idle: usize,
    opened: u64,
    length: Duration,
) -> Result<(), String> {
    let sent = outcomes.len();
    let served = outcomes
        .iter()
        .filter(|(s, t)| *s == 200 && *t <= SERVED_WITHIN)
        .count();
    let answered = outcomes.iter().filter(|(s, _)| *s == 200).count();
    let mut ok: Vec<Duration> = outcomes
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, t)| *t)
        .collect();
    ok.sort_unstable();
    let q = |p: f64| {
        ok.get(((ok.len().saturating_sub(1)) as f64 * p).round() as usize)
            .map_or("n/a".to_owned(), |d| {
                format!("{:.0} ms", d.as_secs_f64() * 1e3)
            })
    };
    let percent = if sent == 0 {
        0.0
    } else {
        served as f64 * 100.0 / sent as f64
    };
    crate::out(&format!(
        "idle-flood: {idle} idle connections reopened {opened} times in {} s; legitimate POSTs: {sent} sent, {served} answered 200 within 3 s ({percent:.1} %), {answered} answered 200 at all; latency of the 200s p50 {} p95 {} max {}",
        length.as_secs(),
        q(0.5),
        q(0.95),
        q(1.0)
    ))
}

/// The resident memory of a process, in MiB.
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

async fn flood(
    addr: SocketAddr,
    signals: u64,
    per_webhook: u64,
    pid: Option<u32>,
    secret: String,
) -> Result<(), String> {
    let rss = || {
        pid.and_then(rss_mib)
            .map_or("n/a".into(), |m| format!("{m:.1} MiB"))
    };
    let before = rss();
    let now = wacapi_shared::clock::now();
    let (mut ok, mut full, mut other) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    let webhooks = signals.div_ceil(per_webhook);
    for w in 0..webhooks {
        let n = per_webhook.min(signals - w * per_webhook);
        let body = webhook(&format!("{now}-{w}"), w * per_webhook, n, now);
        match post(addr, &body, &secret).await {
            200 => ok += n,
            503 => full += n,
            _ => other += n,
        }
    }
    let elapsed = started.elapsed();
    let during = rss();
    // What the server keeps once it has dispatched what it could.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "flood: {signals} signals in {webhooks} webhooks in {:.1} s: {ok} answered 200, {full} answered 503, {other} otherwise; server RSS before {before}, at the end {during}, 5 s later {}",
        elapsed.as_secs_f64(),
        rss()
    )
    .map_err(|e| e.to_string())
}
