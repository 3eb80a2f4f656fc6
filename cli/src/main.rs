//! `wacapi`: the pipeline on one machine, with embedded defaults and no AWS account.
//!
//! - `wacapi replay`: webhook bodies → signals → clicks → rules → hashing → dedup → batches, printed
//!   as the Graph requests that would be sent (no network).
//! - `wacapi hash KEY VALUE`: one value normalised and hashed as Meta requires.
//! - `wacapi sign --secret S FILE`: the `X-Hub-Signature-256` Meta would send for a body.
//! - `wacapi check-config FILE`: validates a configuration and explains every error.

mod replay;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wacapi_shared::hashing::{UserDataKey, is_sha256_hex, normalize, sha256_hex};
use wacapi_shared::rules::Config;

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

#[derive(Subcommand)]
enum Command {
    /// Replays webhook bodies through the whole pipeline and prints the Graph requests.
    Replay {
        /// Configuration file (TOML); the built-in defaults when omitted.
        #[arg(long)]
        config: Option<PathBuf>,
        /// "Now" in unix seconds, for Meta's 7-day window (default: the clock).
        #[arg(long)]
        now: Option<i64>,
        /// Webhook bodies, processed in the order given.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
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
    let result = match cli.command {
        Command::Replay { config, now, files } => replay::run(config.as_deref(), now, &files),
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
