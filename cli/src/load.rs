//! `wacapi load-test`: the local pipeline under stepped load. Signed webhooks, each with a unique
//! message id and ad click, are posted over loopback HTTP at each target rate for a bounded time;
//! after each step the run checks that every accepted webhook produced exactly one event (zero
//! loss, zero duplicates) and reports the accepted→sent latency.
//!
//! The generator and the pipeline share this process (and this machine's cores), so the rates
//! are a lower bound of what the pipeline alone sustains.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::Semaphore;
use wacapi_shared::conversion::rules::Config;

use crate::delivery::DryRunMode;
use crate::local::{self, LocalOptions, LocalPipeline};

/// Every webhook carries an ad click, so this one rule yields one event per webhook.
const LOAD_RULES: &str = r#"
[[accounts]]
waba_id = "*"
dataset_id = "1"

[[rules]]
name = "chat-from-ad"
event = "ViewContent"
trigger = { kind = "ad_click" }
dedup = "click"
"#;

const SECRET: &str = "load-test-app-secret";

/// Requests in flight at once.
const CONCURRENCY: usize = 128;

fn body(n: u64, now: i64) -> Vec<u8> {
    let phone = format!("1555{:07}", n % 10_000_000);
    let value = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "1"},
            "contacts": [{"profile": {"name": "Load"}, "wa_id": phone}],
            "messages": [{"from": phone, "id": format!("wamid.load{n:012}"), "timestamp": now.to_string(),
                "type": "text", "text": {"body": "hi"},
                "referral": {"source_id": "ad", "source_type": "ad", "ctwa_clid": format!("clid-{n}")}}]}}]}]});
    serde_json::to_vec(&value).unwrap_or_default()
}

/// This process's resident memory (`VmRSS`), for the table.
fn rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or("n/a".to_owned(), |kb| {
            format!("{:.1} MiB", kb as f64 / 1024.0)
        })
}

/// Runs the steps and prints a markdown table; with `data_dir`, on the durable pipeline.
pub fn run(
    rates: &[u64],
    seconds: u64,
    data_dir: Option<std::path::PathBuf>,
) -> Result<(), String> {
    let config = Config::from_toml(LOAD_RULES).map_err(|e| e.to_string())?;
    crate::runtime()?.block_on(async move {
        let pipeline = start_pipeline(config, data_dir).await?;
        let load = Load::new(&pipeline)?;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "| target webhooks/s | accepted/s | refused | lost | duplicated | accepted→sent p50 | p99 | RSS after |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for &rate in rates {
            let step = load.step(&pipeline, rate, seconds).await?;
            let _ = writeln!(out, "{}", step.row());
            let _ = out.flush();
        }
        Ok(())
    })
}

/// The local pipeline the load runs against: the load rules, Graph calls only counted, durable
/// with `data_dir`.
async fn start_pipeline(
    config: Config,
    data_dir: Option<std::path::PathBuf>,
) -> Result<LocalPipeline, String> {
    local::start(LocalOptions {
        config,
        now: None,
        port: 0,
        app_secret: SECRET.to_owned(),
        verify_token: "load".to_owned(),
        events_key: "load-test-events-key".to_owned(),
        dry_run: DryRunMode::Count,
        live: Default::default(),
        data_dir,
        limits: crate::durable::Limits::default(),
    })
    .await
}

/// The generator: signed webhooks posted to one pipeline, each with the next message number.
struct Load {
    /// The pipeline's webhook route.
    url: String,
    /// One connection pool for every request.
    client: reqwest::Client,
    /// The number of the next webhook (message id and ad click), unique across steps.
    next: AtomicU64,
}

/// What one step measured.
struct Step {
    /// Target webhooks per second.
    rate: u64,
    /// Webhooks answered 200.
    accepted: u64,
    /// Webhooks answered otherwise, or not at all.
    refused: u64,
    /// From the first request to the last answer.
    elapsed: Duration,
    /// Signals the backlog accepted during the step.
    queued: u64,
    /// Events sent during the step.
    events: u64,
    /// The step's accepted→sent latencies, sorted.
    latencies: Vec<u64>,
}

impl Load {
    fn new(pipeline: &LocalPipeline) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(CONCURRENCY)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            url: format!("http://{}/webhook", pipeline.addr),
            client,
            next: AtomicU64::new(0),
        })
    }

    /// One step: `rate` webhooks per second for `seconds`, then the pipeline drained and what
    /// it did counted.
    async fn step(
        &self,
        pipeline: &LocalPipeline,
        rate: u64,
        seconds: u64,
    ) -> Result<Step, String> {
        let stats = &pipeline.stats;
        let events_before = stats.events.load(Ordering::SeqCst) as u64;
        let queued_before = stats.queued.load(Ordering::SeqCst) as u64;
        stats.take_latencies();
        let (accepted, refused, elapsed) = self.post_paced(rate, rate * seconds).await?;
        tokio::time::timeout(Duration::from_secs(60), pipeline.wait_idle())
            .await
            .map_err(|_| "the dispatcher did not drain within 60 s".to_owned())?;
        Ok(Step {
            rate,
            accepted,
            refused,
            elapsed,
            queued: stats.queued.load(Ordering::SeqCst) as u64 - queued_before,
            events: stats.events.load(Ordering::SeqCst) as u64 - events_before,
            latencies: stats.take_latencies(),
        })
    }

    /// Posts `total` webhooks, request i due i / `rate` seconds after the start, at most
    /// [`CONCURRENCY`] in flight; answers how many were accepted and refused, and how long it
    /// took until the last answer.
    async fn post_paced(&self, rate: u64, total: u64) -> Result<(u64, u64, Duration), String> {
        let accepted = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let permits = Arc::new(Semaphore::new(CONCURRENCY));
        let started = Instant::now();
        let now = wacapi_shared::clock::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..total {
            // Pace: request i is due at i / rate seconds after the start.
            let due = started + Duration::from_secs_f64(i as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
            let permit = Arc::clone(&permits)
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let n = self.next.fetch_add(1, Ordering::SeqCst);
            let body = body(n, now);
            let signature = wacapi_shared::signature::sign(SECRET.as_bytes(), &body);
            let (client, url) = (self.client.clone(), self.url.clone());
            let (accepted, refused) = (Arc::clone(&accepted), Arc::clone(&refused));
            tasks.spawn(async move {
                let ok = client
                    .post(&url)
                    .header(wacapi_shared::signature::SIGNATURE_HEADER, signature)
                    .body(body)
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                if ok { &accepted } else { &refused }.fetch_add(1, Ordering::SeqCst);
                drop(permit);
            });
        }
        while tasks.join_next().await.is_some() {}
        let elapsed = started.elapsed();
        Ok((
            accepted.load(Ordering::SeqCst),
            refused.load(Ordering::SeqCst),
            elapsed,
        ))
    }
}

impl Step {
    /// The step's row of the table: accepted webhooks that produced no event are lost, events
    /// beyond the signals queued for accepted webhooks are duplicates; this process's memory
    /// after the step.
    fn row(&self) -> String {
        let lost = self.accepted.saturating_sub(self.events);
        let duplicated = self.events.saturating_sub(self.queued.min(self.accepted));
        let q = |p: f64| {
            local::Stats::quantile_ms(&self.latencies, p)
                .map_or("n/a".to_owned(), |ms| format!("{ms:.2} ms"))
        };
        format!(
            "| {} | {:.0} | {} | {lost} | {duplicated} | {} | {} | {} |",
            self.rate,
            self.accepted as f64 / self.elapsed.as_secs_f64(),
            self.refused,
            q(0.5),
            q(0.99),
            rss()
        )
    }
}
