//! `wacapi replay`: webhook files through the same pipeline the dispatcher runs, with in-memory
//! stores and no network. Requests go to stdout as JSON lines (or, with `--report`, the
//! conversion report of what they would send); a summary goes to stderr.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use wacapi_shared::channels::split;
use wacapi_shared::conversion::clicks::MemoryClickStore;
use wacapi_shared::conversion::mapping::{Outcome, SkipReason, skip_fact};
use wacapi_shared::conversion::pipeline::{Processor, batch_requests};
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::meta::versions;
use wacapi_shared::report::tally;

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

async fn replay(
    config: &Config,
    now: i64,
    files: &[PathBuf],
    report: Option<&ReportArgs>,
) -> Result<(), String> {
    let clicks = MemoryClickStore::new();
    let processor = Processor::new(config, &clicks);
    let mut sent_ids = HashSet::new();
    let mut events = Vec::new();
    let mut skipped: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut signals = 0;
    let mut quarantined = 0;
    let mut dropped_fields = 0;
    let mut dropped_custom = 0;
    let mut facts = Vec::new();
    for file in files {
        let body = crate::read(file)?;
        let split = match split(&body) {
            Ok(split) => split,
            Err(err) => {
                // The error names a position and a kind, never a value from the file.
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
            signals += 1;
            let (outcomes, click) = processor
                .process_with_click(signal, now)
                .await
                .map_err(|e| e.to_string())?;
            for outcome in outcomes {
                match outcome {
                    Outcome::Event(mapped) => {
                        dropped_fields += mapped.dropped_user_data.len();
                        dropped_custom += mapped.dropped_custom_data;
                        if sent_ids.insert(mapped.event.event_id().to_owned()) {
                            facts.push(mapped.fact());
                            events.push(*mapped);
                        } else {
                            *skipped.entry(SkipReason::Duplicate.label()).or_default() += 1;
                        }
                    }
                    Outcome::Skipped { reason, rule } => {
                        facts.push(skip_fact(
                            config,
                            signal,
                            click.as_ref(),
                            rule.as_deref(),
                            reason,
                        ));
                        *skipped.entry(reason.label()).or_default() += 1;
                    }
                }
            }
        }
    }
    let event_count = events.len();
    let requests = batch_requests(events);
    match report {
        Some(args) => crate::report::print(&args.render_reading_spend(&tally(facts)).await?)?,
        None => {
            for request in &requests {
                crate::out(&request.line().to_string())?;
            }
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
        "wacapi replay: {} file(s), {signals} signal(s), {event_count} event(s) in {} request(s); skipped: {skipped_text}; quarantined: {quarantined}; user data fields dropped: {dropped_fields}; custom data values dropped: {dropped_custom}",
        files.len(),
        requests.len(),
    );
    Ok(())
}
