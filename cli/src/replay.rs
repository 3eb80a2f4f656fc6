//! `wacapi replay`: webhook files through the dispatcher itself, with the in-memory store and
//! the dry run instead of AWS and the network. Requests go to stdout as JSON lines (or, with `--report`, the
//! conversion report of what they would send); a summary goes to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wacapi_shared::channels::split;
use wacapi_shared::conversion::mapping::SkipReason;
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::dispatch::{DispatchSettings, Dispatcher, InboundRecord, metric_names};
use wacapi_shared::ingest::attributes;
use wacapi_shared::meta::versions;
use wacapi_shared::metrics::Metrics;
use wacapi_shared::queue::MemoryQueue;
use wacapi_shared::store::MemoryStore;

use crate::delivery::{DryRun, DryRunMode};
use crate::report::ReportArgs;

/// Loads the configuration file, or the built-in default, and checks its Graph API version
/// ([`check_version`]).
pub(crate) fn load_config(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(path) => {
            let text = String::from_utf8(crate::read(path)?)
                .map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
            let config =
                Config::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            for warning in &config.warnings {
                let _ = writeln!(std::io::stderr(), "{}: warning: {warning}", path.display());
            }
            check_version(&config, &path.display().to_string())?;
            Ok(config)
        }
        None => {
            let config =
                Config::default_config().map_err(|e| format!("built-in configuration: {e}"))?;
            check_version(&config, "built-in configuration")?;
            Ok(config)
        }
    }
}

/// Checks the configured Graph API version against Meta's calendar on today's date, as the
/// dispatch function's cold start does: a warning on stderr when it expires within 90 days, an
/// error naming its expiry and the version to use once it has expired.
///
/// Today is the real clock even under `--now`: that pins Meta's 7-day window for the sample
/// webhooks' June 2025 timestamps, while a version expires on the day requests reach Meta, and
/// the requests printed are the ones a deployment with this file would send today.
pub(crate) fn check_version(config: &Config, source: &str) -> Result<(), String> {
    match versions::check(&config.graph_api_version, versions::Date::today()) {
        Ok(None) => Ok(()),
        Ok(Some(warning)) => {
            let _ = writeln!(std::io::stderr(), "{source}: warning: {warning}");
            Ok(())
        }
        Err(err) => Err(format!("{source}: {err}")),
    }
}

/// Replays `files`: prints the requests, or with `report`, the conversion report of what the
/// requests would send (the same rows `wacapi report` reads from a deployment).
pub(crate) fn run(
    config: Option<&Path>,
    now: Option<i64>,
    files: &[PathBuf],
    report: Option<&ReportArgs>,
) -> Result<(), String> {
    if let Some(args) = report {
        args.check()?;
    }
    let config = load_config(config)?;
    let now = now.unwrap_or_else(wacapi_shared::clock::now);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    runtime.block_on(replay(&config, now, files, report))
}

/// Splits every file as the ingest does (what cannot be read is quarantined and reported by
/// position and kind), then runs the dispatcher over all the signals as one batch, with the
/// in-memory store and the dry run: the requests it would send are printed as it sends them,
/// or, with `report`, the report of what it sent and skipped is rendered from the store.
async fn replay(
    config: &Config,
    now: i64,
    files: &[PathBuf],
    report: Option<&ReportArgs>,
) -> Result<(), String> {
    let (records, quarantined) = read_signals(files)?;
    let mode = match report {
        Some(_) => DryRunMode::Count,
        None => DryRunMode::Print,
    };
    let store = MemoryStore::new();
    let dead_letters = MemoryQueue::new();
    let dispatcher = Dispatcher::new(
        config.clone(),
        &store,
        DryRun::new(mode),
        &dead_letters,
        DispatchSettings::default(),
    );
    let mut metrics = Metrics::new("wacapi", "replay");
    let deadline = Instant::now() + Duration::from_secs(3600);
    let outcome = dispatcher
        .dispatch(&records, now, deadline, &mut metrics)
        .await;
    if let Some(args) = report {
        crate::report::print(&args.render_reading_spend(&store.report()).await?)?;
    }
    let mut skipped = outcome.skipped.clone();
    if outcome.dedup_hits > 0 {
        skipped.insert(SkipReason::Duplicate.label(), outcome.dedup_hits);
    }
    for message in dead_letters.drain() {
        if let Some((_, reason)) = message
            .attributes
            .iter()
            .find(|(n, _)| n == attributes::REASON)
        {
            let _ = writeln!(std::io::stderr(), "dead-lettered: {reason}");
        }
    }
    let skipped_text = if skipped.is_empty() {
        "none".to_owned()
    } else {
        skipped
            .iter()
            .map(|(reason, n)| format!("{reason}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = writeln!(
        std::io::stderr(),
        "wacapi replay: {} file(s), {} signal(s), {} event(s) in {} request(s); skipped: {skipped_text}; quarantined: {quarantined}; user data fields dropped: {}; custom data values dropped: {}",
        files.len(),
        records.len(),
        outcome.events_sent,
        outcome.graph_requests,
        metrics.total(metric_names::USER_DATA_DROPPED),
        metrics.total(metric_names::CUSTOM_DATA_DROPPED),
    );
    Ok(())
}

/// The signals of `files`, in order, as the queue records the dispatcher reads, and how many
/// files or parts were quarantined (each reported on stderr by position and kind, never by a
/// value from the file).
fn read_signals(files: &[PathBuf]) -> Result<(Vec<InboundRecord>, usize), String> {
    let mut records = Vec::new();
    let mut quarantined = 0;
    for file in files {
        let body = crate::read(file)?;
        let split = match split(&body) {
            Ok(split) => split,
            Err(err) => {
                quarantined += 1;
                let _ = writeln!(std::io::stderr(), "{}: quarantined: {err}", file.display());
                continue;
            }
        };
        quarantined += split.rejected.len();
        for rejected in &split.rejected {
            let _ = writeln!(
                std::io::stderr(),
                "{}: item quarantined: {}",
                file.display(),
                rejected.reason
            );
        }
        for signal in &split.signals {
            let body = serde_json::to_string(signal).map_err(|e| e.to_string())?;
            records.push(InboundRecord {
                message_id: format!("replay-{}", records.len()),
                group_id: Some(signal.group_id()),
                body,
                attributes: Default::default(),
            });
        }
    }
    Ok((records, quarantined))
}
