//! `wacapi`: the pipeline on one machine, with embedded defaults and no AWS account.
//!
//! - `wacapi demo`: the whole local pipeline on sample webhooks: signed, posted over HTTP,
//!   queued, dispatched, and the Graph requests printed.
//! - `wacapi serve`: the same pipeline as a long-running local server (`GET`/`POST /webhook`).
//! - `wacapi send-event`: signs business events and posts them to `/events`.
//! - `wacapi replay`: webhook bodies → signals → clicks → rules → hashing → dedup → batches, printed
//!   as the Graph requests that would be sent (no network).
//! - `wacapi hash KEY VALUE`: one value normalised and hashed as Meta requires.
//! - `wacapi sign --secret S FILE`: the `X-Hub-Signature-256` Meta would send for a body.
//! - `wacapi probe`: measures a running `serve` (idle-connection floods, signal floods).
//! - `wacapi check-config FILE`: validates a configuration and explains every error; warns of a
//!   Graph API version expiring within 90 days and refuses an expired one.

mod backlog;
mod delivery;
mod durable;
mod http;
mod load;
mod local;
mod probe;
mod replay;
mod report;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::model::Destination;
use wacapi_shared::values::hashing::{UserDataKey, is_sha256_hex, normalize, sha256_hex};

#[derive(Parser)]
#[command(
    name = "wacapi",
    version,
    about = "WhatsApp Business conversations → Meta Conversions API events"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the local pipeline sends events.
#[derive(clap::Args)]
struct GraphArgs {
    /// A Graph API access token: events are really sent. Without one they are printed.
    #[arg(long, env = "WACAPI_GRAPH_TOKEN", hide_env_values = true)]
    graph_token: Option<String>,
    /// The Graph API base URL (with a token).
    #[arg(long, env = "WACAPI_GRAPH_BASE_URL", default_value = wacapi_shared::meta::graph::DEFAULT_BASE_URL)]
    graph_base_url: String,
    /// A TikTok Events API access token: TikTok events are really sent. Without one they are
    /// printed.
    #[arg(long, env = "WACAPI_TIKTOK_TOKEN", hide_env_values = true)]
    tiktok_token: Option<String>,
    /// The TikTok API for Business base URL (with a token).
    #[arg(long, env = "WACAPI_TIKTOK_BASE_URL", default_value = wacapi_shared::tiktok::client::DEFAULT_BASE_URL)]
    tiktok_base_url: String,
}

impl GraphArgs {
    /// The destinations sent to for real: those whose token is given.
    fn live(self) -> BTreeMap<Destination, delivery::Live> {
        [
            (Destination::Meta, self.graph_token, self.graph_base_url),
            (Destination::TikTok, self.tiktok_token, self.tiktok_base_url),
        ]
        .into_iter()
        .filter_map(|(destination, token, base_url)| {
            let token = secrecy::SecretString::from(token?);
            Some((destination, delivery::Live { token, base_url }))
        })
        .collect()
    }
}

/// The local app secret the demo signs with. Public (it is in the README): `serve` uses it
/// only with `--demo-secrets`.
const DEMO_APP_SECRET: &str = "wacapi-local-app-secret";

/// The local business events key (public, as [`DEMO_APP_SECRET`]; `send-event`'s default).
const DEMO_EVENTS_KEY: &str = "wacapi-local-events-key";

/// The local verify token of the subscription handshake (public, as [`DEMO_APP_SECRET`]).
const DEMO_VERIFY_TOKEN: &str = "wacapi-local-verify-token";

/// The rules and the clock every pipeline command takes.
#[derive(clap::Args)]
struct PipelineArgs {
    /// Configuration file (TOML); the built-in defaults when omitted.
    #[arg(long)]
    config: Option<PathBuf>,
    /// "Now" in unix seconds, for Meta's 7-day window (default: the clock).
    #[arg(long)]
    now: Option<i64>,
}

/// `wacapi serve`'s options.
#[derive(clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// The loopback port.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The Meta app secret webhooks are signed with (required unless --demo-secrets).
    #[arg(long, env = "WACAPI_APP_SECRET", hide_env_values = true)]
    app_secret: Option<String>,
    /// The verify token of the subscription handshake (required unless --demo-secrets).
    #[arg(long, env = "WACAPI_VERIFY_TOKEN", hide_env_values = true)]
    verify_token: Option<String>,
    /// The key `POST /events` requests are signed with (required unless --demo-secrets).
    #[arg(long, env = "WACAPI_EVENTS_KEY", hide_env_values = true)]
    events_key: Option<String>,
    /// Use the README's public demo values for whichever of the app secret, events key and
    /// verify token is not set. Anyone who read the README can then sign webhooks and events:
    /// for trying `serve` out only (a warning says so on every start).
    #[arg(long)]
    demo_secrets: bool,
    /// Keep the queue, clicks and sent-ledger in this directory (SQLite), so a crash or a
    /// restart loses nothing acknowledged; without it they live in memory.
    #[arg(long, env = "WACAPI_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// On SIGTERM or Ctrl-C, how long to keep dispatching what was accepted before exiting.
    #[arg(long, default_value_t = 30)]
    drain_seconds: u64,
    /// Signals accepted and not yet dispatched, at most (in memory, or rows with --data-dir).
    /// At the bound, POST /webhook and /events answer 503 with Retry-After (Meta retries
    /// later) rather than accept what could not be kept.
    #[arg(long, env = "WACAPI_MAX_BACKLOG", default_value_t = backlog::DEFAULT_MAX_BACKLOG)]
    max_backlog: usize,
    /// With --data-dir: below this many MiB free on its filesystem, POST /webhook and /events
    /// answer 503 with Retry-After (0: no floor).
    #[arg(long, env = "WACAPI_MIN_FREE_MB", default_value_t = durable::DEFAULT_MIN_FREE_MB)]
    min_free_mb: u64,
    #[command(flatten)]
    graph: GraphArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the whole local pipeline on webhook files: each is signed, posted to the ingest
    /// route over HTTP, queued, dispatched, and the Graph requests are printed.
    Demo {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Webhook bodies, posted in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        graph: GraphArgs,
    },
    /// Serves the ingest routes on loopback and dispatches what arrives, until Ctrl-C.
    Serve(ServeArgs),
    /// Signs business events and posts them to a deployment's or `wacapi serve`'s /events.
    SendEvent {
        /// The events URL (`terraform output -raw events_url`, or http://127.0.0.1:8080/events).
        #[arg(long, default_value = "http://127.0.0.1:8080/events")]
        url: String,
        /// The signing key.
        #[arg(long, env = "WACAPI_EVENTS_KEY", hide_env_values = true, default_value = DEMO_EVENTS_KEY)]
        key: String,
        /// A JSON file: {"events": [...]} or one event object.
        file: PathBuf,
    },
    /// Replays webhook bodies through the whole pipeline and prints the Graph requests (or,
    /// with --report, the conversion report of what it would send).
    Replay {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// Print the conversion report instead of the requests.
        #[arg(long)]
        report: bool,
        #[command(flatten)]
        report_args: report::ReportArgs,
        /// Webhook bodies, processed in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Prints the conversion report: events sent per ad, event and currency (and skips by
    /// reason, and match-key coverage), from a deployment's table or a running `wacapi serve`.
    Report {
        /// The deployment's DynamoDB table (`terraform output -raw table_name`); AWS credentials
        /// and region as usual, AWS_ENDPOINT_URL to point elsewhere.
        #[arg(long, conflicts_with = "url", required_unless_present = "url")]
        table: Option<String>,
        /// A running `wacapi serve` (http://127.0.0.1:8080).
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        args: report::ReportArgs,
    },
    /// Load-tests the local pipeline: signed webhooks at each rate for a bounded time, checking
    /// zero loss and zero duplicates; prints a markdown table.
    LoadTest {
        /// Target webhooks per second, one step each.
        #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,4000")]
        rates: Vec<u64>,
        /// Seconds per step.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Run the durable pipeline on this (new) directory.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Measures a running `wacapi serve` on loopback: idle-connection floods beside
    /// legitimate webhooks, and floods of signals (answers and memory).
    #[command(subcommand)]
    Probe(probe::Probe),
    /// Prints the normalised value and its SHA-256, tab-separated.
    Hash {
        /// em, ph, fn, ln, ct, st, zp, country, db, ge or external_id.
        key: String,
        /// The value to normalise and hash.
        value: String,
    },
    /// Prints the X-Hub-Signature-256 header value for a body.
    Sign {
        /// The Meta app secret.
        #[arg(long, env = "WACAPI_APP_SECRET", hide_env_values = true)]
        secret: String,
        /// The body file.
        file: PathBuf,
    },
    /// Validates a configuration file and explains every error.
    CheckConfig {
        /// The configuration file (TOML).
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    wacapi_shared::logging::init_cli();
    let result = match cli.command {
        Command::Demo {
            pipeline,
            files,
            graph,
        } => demo(
            pipeline.config.as_deref(),
            pipeline.now,
            &files,
            graph.live(),
        ),
        Command::SendEvent { url, key, file } => send_event(&url, &key, &file),
        Command::Serve(args) => serve(args),
        Command::Replay {
            pipeline,
            report,
            report_args,
            files,
        } => replay::run(
            pipeline.config.as_deref(),
            pipeline.now,
            &files,
            report.then_some(&report_args),
        ),
        Command::Report { table, url, args } => {
            let source = match (table, url) {
                (Some(table), _) => Ok(report::Source::Table(table)),
                (None, Some(url)) => Ok(report::Source::Serve(url)),
                // clap requires one of them.
                (None, None) => Err("give --table or --url".to_owned()),
            };
            source.and_then(|source| report::run(source, &args))
        }
        Command::LoadTest {
            rates,
            seconds,
            data_dir,
        } => load::run(&rates, seconds, data_dir),
        Command::Probe(p) => probe::run(p),
        Command::Hash { key, value } => hash(&key, &value),
        Command::Sign { secret, file } => sign(&secret, &file),
        Command::CheckConfig { file } => check_config(&file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            let _ = writeln!(std::io::stderr(), "wacapi: {message}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

fn demo(
    config: Option<&std::path::Path>,
    now: Option<i64>,
    files: &[PathBuf],
    live: BTreeMap<Destination, delivery::Live>,
) -> Result<(), String> {
    let config = replay::load_config(config)?;
    let bodies = files
        .iter()
        .map(|f| read(f).map(|b| (f, b)))
        .collect::<Result<Vec<_>, _>>()?;
    runtime()?.block_on(async move {
        let pipeline = local::start(local::LocalOptions {
            config,
            now,
            port: 0,
            app_secret: DEMO_APP_SECRET.to_owned(),
            verify_token: DEMO_VERIFY_TOKEN.to_owned(),
            events_key: DEMO_EVENTS_KEY.to_owned(),
            dry_run: delivery::DryRunMode::Print,
            live,
            data_dir: None,
            limits: durable::Limits::default(),
        })
        .await?;
        let url = format!("http://{}/webhook", pipeline.addr);
        let client = reqwest::Client::new();
        let mut refused = 0;
        for (file, body) in &bodies {
            let signature = wacapi_shared::signature::sign(DEMO_APP_SECRET.as_bytes(), body);
            let response = client
                .post(&url)
                .header(wacapi_shared::signature::SIGNATURE_HEADER, signature)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            if response.status() != 200 {
                refused += 1;
                let _ = writeln!(
                    std::io::stderr(),
                    "{}: HTTP {}",
                    file.display(),
                    response.status()
                );
            }
        }
        tokio::time::timeout(std::time::Duration::from_secs(60), pipeline.wait_idle())
            .await
            .map_err(|_| "the dispatcher did not finish within 60 s".to_owned())?;
        let _ = writeln!(
            std::io::stderr(),
            "wacapi demo: {} webhook(s) signed and posted to {url} ({} refused); {}",
            bodies.len(),
            refused,
            pipeline.stats.summary()
        );
        Ok(())
    })
}

fn send_event(url: &str, key: &str, file: &std::path::Path) -> Result<(), String> {
    let raw = read(file)?;
    let value: serde_json::Value =
        serde_json::from_slice(&raw).map_err(|e| format!("{}: not JSON: {e}", file.display()))?;
    // One event object is wrapped; {"events": [...]} is sent as written.
    let body = if value.get("events").is_some() {
        raw
    } else {
        serde_json::to_vec(&serde_json::json!({ "events": [value] })).map_err(|e| e.to_string())?
    };
    let timestamp = wacapi_shared::clock::now();
    let signature = wacapi_shared::business::sign(key.as_bytes(), timestamp, &body);
    runtime()?.block_on(async move {
        let response = reqwest::Client::new()
            .post(url)
            .header(
                wacapi_shared::business::TIMESTAMP_HEADER,
                timestamp.to_string(),
            )
            .header(wacapi_shared::business::SIGNATURE_HEADER, signature)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        out(&text)?;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("HTTP {status}"))
        }
    })
}

/// The secrets `serve` runs with: the operator's, or with `--demo-secrets` the README's public
/// demo values for those not set (`demo` lists which). Refused when one is missing without
/// `--demo-secrets`, empty, or shorter than
/// [`MIN_SIGNING_KEY_CHARS`](wacapi_shared::secrets::MIN_SIGNING_KEY_CHARS).
struct ServeSecrets {
    app_secret: String,
    verify_token: String,
    events_key: String,
    demo: Vec<&'static str>,
}

impl ServeSecrets {
    fn resolve(args: &mut ServeArgs) -> Result<Self, String> {
        use secrecy::SecretString;
        use wacapi_shared::secrets::check_signing_key;
        let mut demo = Vec::new();
        let mut missing = Vec::new();
        let mut take = |value: Option<String>, name: &'static str, demo_value: &str| {
            value.unwrap_or_else(|| {
                if args.demo_secrets {
                    demo.push(name);
                } else {
                    missing.push(name);
                }
                demo_value.to_owned()
            })
        };
        let app_secret = take(
            args.app_secret.take(),
            "WACAPI_APP_SECRET (--app-secret)",
            DEMO_APP_SECRET,
        );
        let events_key = take(
            args.events_key.take(),
            "WACAPI_EVENTS_KEY (--events-key)",
            DEMO_EVENTS_KEY,
        );
        let verify_token = take(
            args.verify_token.take(),
            "WACAPI_VERIFY_TOKEN (--verify-token)",
            DEMO_VERIFY_TOKEN,
        );
        if !missing.is_empty() {
            return Err(format!(
                "refusing to start: {} not set. Set your own, or pass --demo-secrets to use the \
                 README's public demo values (anyone who read the README can then sign webhooks \
                 and events)",
                missing.join(", ")
            ));
        }
        let check = |what: &str, value: &str| {
            check_signing_key(what, &SecretString::from(value.to_owned()))
        };
        check("WACAPI_APP_SECRET (--app-secret)", &app_secret)
            .and_then(|()| check("WACAPI_EVENTS_KEY (--events-key)", &events_key))
            .and_then(|()| {
                if verify_token.trim().is_empty() {
                    Err("WACAPI_VERIFY_TOKEN (--verify-token) is empty".to_owned())
                } else {
                    Ok(())
                }
            })
            .map_err(|e| format!("refusing to start: {e}"))?;
        Ok(Self {
            app_secret,
            verify_token,
            events_key,
            demo,
        })
    }
}

fn serve(mut args: ServeArgs) -> Result<(), String> {
    let secrets = ServeSecrets::resolve(&mut args)?;
    if !secrets.demo.is_empty() {
        tracing::warn!(
            "--demo-secrets: {} use the README's public demo values; anyone who read the README can sign webhooks and events for this server",
            secrets.demo.join(", ")
        );
    }
    let drain = std::time::Duration::from_secs(args.drain_seconds);
    let options = local::LocalOptions {
        config: replay::load_config(args.pipeline.config.as_deref())?,
        now: args.pipeline.now,
        port: args.port,
        app_secret: secrets.app_secret,
        verify_token: secrets.verify_token,
        events_key: secrets.events_key,
        dry_run: delivery::DryRunMode::Print,
        live: args.graph.live(),
        data_dir: args.data_dir,
        limits: durable::Limits {
            max_backlog: args.max_backlog,
            min_free_bytes: args.min_free_mb.saturating_mul(1024 * 1024),
        },
    };
    runtime()?.block_on(async move {
        // Docker, systemd and `kill` send SIGTERM, a terminal SIGINT: both drain.
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(|e| format!("signal: {e}"))?;
        let durable = options.data_dir.is_some();
        let pipeline = local::start(options).await?;
        let _ = writeln!(
            std::io::stderr(),
            "wacapi serve: webhooks on http://{}/webhook ({}; SIGTERM or Ctrl-C drains and stops)",
            pipeline.addr,
            if durable {
                "durable"
            } else {
                "in memory: a crash loses what is not yet dispatched"
            }
        );
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| format!("signal: {e}"))?,
            _ = terminate.recv() => {}
        }
        let stats = std::sync::Arc::clone(&pipeline.stats);
        let stopped = pipeline.stop(drain).await;
        let _ = writeln!(std::io::stderr(), "wacapi serve: {}", stats.summary());
        if stopped.left > 0 {
            let fate = if stopped.durable {
                "kept for the next start"
            } else {
                "lost (run with --data-dir to keep them)"
            };
            let _ = writeln!(
                std::io::stderr(),
                "wacapi serve: {} accepted signal(s) not dispatched within {} s: {fate}",
                stopped.left,
                drain.as_secs()
            );
        }
        Ok(())
    })
}

fn hash(key: &str, value: &str) -> Result<(), String> {
    let key: UserDataKey = key.parse().map_err(|e| format!("{e}"))?;
    let normalized = normalize(key, value).map_err(|e| format!("cannot hash: {e}"))?;
    let digest = if is_sha256_hex(&normalized) {
        normalized.clone()
    } else {
        sha256_hex(normalized.as_bytes())
    };
    out(&format!("{normalized}\t{digest}"))
}

fn sign(secret: &str, file: &std::path::Path) -> Result<(), String> {
    let body = read(file)?;
    out(&wacapi_shared::signature::sign(secret.as_bytes(), &body))
}

fn check_config(file: &std::path::Path) -> Result<(), String> {
    let text = String::from_utf8(read(file)?)
        .map_err(|_| format!("{}: not UTF-8 text", file.display()))?;
    let config = Config::from_toml(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    for warning in &config.warnings {
        let _ = writeln!(std::io::stderr(), "{}: warning: {warning}", file.display());
    }
    // A version past its expiry is an error here, as it is at the dispatcher's cold start.
    replay::check_version(&config, &file.display().to_string())?;
    out(&format!(
        "{}: ok ({} account(s), {} rule(s), Graph API {}, attribution window {} day(s))",
        file.display(),
        config.accounts.len(),
        config.rules.len(),
        config.graph_api_version,
        config.attribution_window_seconds / 86_400
    ))
}

/// Reads a file, with its name in the error.
pub(crate) fn read(path: &std::path::Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Writes one line to stdout.
pub(crate) fn out(line: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").map_err(|e| format!("stdout: {e}"))
}
