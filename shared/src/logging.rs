//! The log subscriber of every wacapi binary, with one rule: no level lets personal data into
//! a log.
//!
//! wacapi's own code logs ids, hashes, counts and reasons only, at every level. Libraries are
//! another matter: at `TRACE` the Lambda runtime logs each raw invocation (webhook bodies with
//! phone numbers, names and message text; `/events` bodies with clear `user_data`), and the AWS
//! SDK and HTTP stacks log request and response bodies at `DEBUG`/`TRACE`. So the requested
//! level applies to wacapi's own targets, and every other target is capped at
//! [`LIBRARY_LEVEL_CAP`] whatever is asked, which no setting can lift.
//!
//! The level comes from `WACAPI_LOG_LEVEL`, not from Lambda's own `AWS_LAMBDA_LOG_LEVEL`: with
//! JSON logs, Lambda's log-level filtering gives every line without a valid `level` the level
//! INFO and drops it below the function's application level (AWS Lambda Developer Guide,
//! "Log-level filtering"). The EMF documents the alarms and the dashboard read have no `level`,
//! so the module keeps Lambda's application level at INFO or more verbose, and wacapi's own
//! verbosity is this variable. JSON lines carry an RFC 3339 `timestamp`, which Lambda needs to
//! keep a line's own time.

use std::str::FromStr;

use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The most a library target may log.
pub const LIBRARY_LEVEL_CAP: LevelFilter = LevelFilter::INFO;

/// wacapi's own crates: the level asked for applies to these.
pub const OWN_TARGETS: &[&str] = &["wacapi_shared", "webhook_ingest", "capi_dispatch", "wacapi"];

/// The filter for a requested level: that level for wacapi's targets, at most
/// [`LIBRARY_LEVEL_CAP`] for any other.
pub fn filter(level: LevelFilter) -> Targets {
    let mut targets = Targets::new().with_default(level.min(LIBRARY_LEVEL_CAP));
    for target in OWN_TARGETS {
        targets = targets.with_target(*target, level);
    }
    targets
}

/// A level name as Lambda's logging controls (`AWS_LAMBDA_LOG_LEVEL`) or `RUST_LOG` write it
/// (`TRACE`, `debug`, `Info`, ...); anything else is `default`.
pub fn level(name: Option<&str>, default: LevelFilter) -> LevelFilter {
    match name.map(str::trim) {
        // Lambda's levels include FATAL, which tracing has not: the nearest is ERROR.
        Some(n) if n.eq_ignore_ascii_case("fatal") => LevelFilter::ERROR,
        Some(n) => LevelFilter::from_str(n).unwrap_or(default),
        None => default,
    }
}

/// The variable that sets wacapi's own log level in Lambda (the module's `log_level`).
pub const LOG_LEVEL_VAR: &str = crate::config::env::LOG_LEVEL;

/// The level of a Lambda function's own logs: `WACAPI_LOG_LEVEL`, else Lambda's
/// `AWS_LAMBDA_LOG_LEVEL` (a function deployed without the variable), else INFO.
pub fn lambda_level(lookup: impl Fn(&str) -> Option<String>) -> LevelFilter {
    let asked = lookup(LOG_LEVEL_VAR).or_else(|| lookup("AWS_LAMBDA_LOG_LEVEL"));
    level(asked.as_deref(), LevelFilter::INFO)
}

/// Installs the subscriber of a Lambda function: level by [`lambda_level`], JSON lines with a
/// timestamp when `AWS_LAMBDA_LOG_FORMAT=JSON`, to stdout (CloudWatch Logs).
pub fn init_lambda() {
    let level = lambda_level(|name| std::env::var(name).ok());
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stdout);
    let registry = tracing_subscriber::registry().with(filter(level));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = if json {
        registry.with(fmt.json()).try_init()
    } else {
        registry.with(fmt).try_init()
    };
}

/// Installs the subscriber of the CLI: level from `RUST_LOG` (WARN when unset), to stderr, so
/// stdout keeps only the command's own output.
pub fn init_cli() {
    let level = level(std::env::var("RUST_LOG").ok().as_deref(), LevelFilter::WARN);
    let _ = tracing_subscriber::registry()
        .with(filter(level))
        .with(
            tracing_subscriber::fmt::layer()
                .with_target(false)
                .with_writer(std::io::stderr),
        )
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    #[test]
    fn libraries_never_log_below_info_whatever_is_asked() {
        for asked in [
            LevelFilter::TRACE,
            LevelFilter::DEBUG,
            LevelFilter::INFO,
            LevelFilter::WARN,
        ] {
            let f = filter(asked);
            assert!(!f.would_enable("lambda_runtime::runtime", &Level::TRACE));
            assert!(!f.would_enable("aws_smithy_runtime", &Level::DEBUG));
            assert!(!f.would_enable("hyper_util::client", &Level::TRACE));
            assert_eq!(
                f.would_enable("wacapi_shared::ingest", &Level::DEBUG),
                asked >= LevelFilter::DEBUG
            );
        }
    }

    #[test]
    fn levels_are_read_as_lambda_writes_them() {
        assert_eq!(level(Some("TRACE"), LevelFilter::INFO), LevelFilter::TRACE);
        assert_eq!(
            level(Some(" debug "), LevelFilter::INFO),
            LevelFilter::DEBUG
        );
        assert_eq!(level(Some("loud"), LevelFilter::INFO), LevelFilter::INFO);
        assert_eq!(level(Some("FATAL"), LevelFilter::INFO), LevelFilter::ERROR);
        assert_eq!(level(None, LevelFilter::WARN), LevelFilter::WARN);
    }

    #[test]
    fn wacapi_s_own_variable_wins_over_lambda_s() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            lambda_level(env(&[
                ("WACAPI_LOG_LEVEL", "ERROR"),
                ("AWS_LAMBDA_LOG_LEVEL", "INFO")
            ])),
            LevelFilter::ERROR
        );
        assert_eq!(
            lambda_level(env(&[("AWS_LAMBDA_LOG_LEVEL", "DEBUG")])),
            LevelFilter::DEBUG
        );
        assert_eq!(lambda_level(env(&[])), LevelFilter::INFO);
    }
}
