//! Runtime settings read from the environment. The names here are the contract with `infra/`:
//! tests fail when Terraform sets a variable no function reads, or misses one a function needs.

use std::time::Duration;

/// Environment variable names.
pub mod env {
    /// URL of the signal FIFO queue.
    pub const SIGNAL_QUEUE_URL: &str = "WACAPI_SIGNAL_QUEUE_URL";
    /// URL of the dead-letter FIFO queue.
    pub const DEAD_LETTER_QUEUE_URL: &str = "WACAPI_DEAD_LETTER_QUEUE_URL";
    /// ARN of the webhook secret (`{"app_secret", "verify_token"}`).
    pub const WEBHOOK_SECRET_ARN: &str = "WACAPI_WEBHOOK_SECRET_ARN";
    /// ARN of the business events keys secret (`{"keys": [...]}`); unset disables `/events`.
    pub const EVENTS_SECRET_ARN: &str = "WACAPI_EVENTS_SECRET_ARN";
    /// Seconds a fetched secret is reused (default 300).
    pub const SECRET_TTL_SECONDS: &str = "WACAPI_SECRET_TTL_SECONDS";
    /// CloudWatch namespace of the EMF metrics (default `wacapi`).
    pub const METRICS_NAMESPACE: &str = "WACAPI_METRICS_NAMESPACE";
    /// wacapi's own log level (the module's `log_level`; `crate::logging`): Lambda's
    /// application log level stays where the EMF metrics pass.
    pub const LOG_LEVEL: &str = "WACAPI_LOG_LEVEL";

    /// Name of the DynamoDB table (clicks and sent-ledger).
    pub const TABLE_NAME: &str = "WACAPI_TABLE_NAME";
    /// ARN of the Graph tokens secret (`{"access_tokens": {...}, "app_secret"?}`).
    pub const GRAPH_TOKEN_SECRET_ARN: &str = "WACAPI_GRAPH_TOKEN_SECRET_ARN";
    /// Path of the rules and accounts file (the built-in defaults when unset).
    pub const CONFIG_FILE: &str = "WACAPI_CONFIG_FILE";
    /// Graph request timeout in seconds (default 10); TikTok's requests use it too.
    pub const GRAPH_TIMEOUT_SECONDS: &str = "WACAPI_GRAPH_TIMEOUT_SECONDS";
    /// `true` publishes the dispatcher's detailed metric breakdowns (by event name, rule and
    /// match key; default `false`: `crate::metrics::catalogue`).
    pub const DETAILED_METRICS: &str = "WACAPI_DETAILED_METRICS";

    /// What the ingest function reads.
    pub const INGEST: &[&str] = &[
        SIGNAL_QUEUE_URL,
        DEAD_LETTER_QUEUE_URL,
        WEBHOOK_SECRET_ARN,
        EVENTS_SECRET_ARN,
        SECRET_TTL_SECONDS,
        METRICS_NAMESPACE,
        LOG_LEVEL,
    ];

    /// What the dispatch function reads (each destination's base URL variable among them:
    /// [`crate::destinations::BASE_URLS`]).
    pub const DISPATCH: &[&str] = &[
        DEAD_LETTER_QUEUE_URL,
        TABLE_NAME,
        GRAPH_TOKEN_SECRET_ARN,
        CONFIG_FILE,
        crate::destinations::BASE_URLS[0].1,
        GRAPH_TIMEOUT_SECONDS,
        crate::destinations::BASE_URLS[1].1,
        SECRET_TTL_SECONDS,
        METRICS_NAMESPACE,
        LOG_LEVEL,
        DETAILED_METRICS,
    ];
}

/// A missing or unusable setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {why}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// What is wrong.
        why: String,
    },
}

/// Settings of the ingest function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestSettings {
    /// Signal queue URL.
    pub signal_queue_url: String,
    /// Dead-letter queue URL.
    pub dead_letter_queue_url: String,
    /// Webhook secret ARN.
    pub webhook_secret_arn: String,
    /// Business events keys secret ARN (`None`: `/events` is disabled).
    pub events_secret_arn: Option<String>,
    /// Secret cache TTL.
    pub secret_ttl: Duration,
    /// Metrics namespace.
    pub metrics_namespace: String,
}

/// Settings of the dispatch function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatchEnv {
    /// Dead-letter queue URL.
    pub dead_letter_queue_url: String,
    /// DynamoDB table.
    pub table_name: String,
    /// Graph tokens secret ARN.
    pub graph_token_secret_arn: String,
    /// Rules and accounts file; `None` = built-in defaults.
    pub config_file: Option<String>,
    /// Each destination's API base URL.
    pub base_urls: crate::destinations::BaseUrls,
    /// Every destination's request timeout.
    pub graph_timeout: Duration,
    /// Secret cache TTL.
    pub secret_ttl: Duration,
    /// Metrics namespace.
    pub metrics_namespace: String,
    /// Whether the detailed metric breakdowns are published.
    pub detailed_metrics: bool,
}

impl DispatchEnv {
    /// Reads the settings through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let graph_timeout = seconds(&lookup, env::GRAPH_TIMEOUT_SECONDS, 10)?;
        if graph_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                name: env::GRAPH_TIMEOUT_SECONDS,
                why: "must be at least 1".into(),
            });
        }
        Ok(Self {
            dead_letter_queue_url: required(&lookup, env::DEAD_LETTER_QUEUE_URL)?,
            table_name: required(&lookup, env::TABLE_NAME)?,
            graph_token_secret_arn: required(&lookup, env::GRAPH_TOKEN_SECRET_ARN)?,
            config_file: lookup(env::CONFIG_FILE).filter(|v| !v.trim().is_empty()),
            base_urls: crate::destinations::BaseUrls::from_lookup(&lookup),
            graph_timeout,
            secret_ttl: seconds(&lookup, env::SECRET_TTL_SECONDS, 300)?,
            metrics_namespace: namespace(&lookup),
            detailed_metrics: match lookup(env::DETAILED_METRICS).as_deref().map(str::trim) {
                None | Some("") | Some("false") => false,
                Some("true") => true,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        name: env::DETAILED_METRICS,
                        why: format!("{other:?} is not true or false"),
                    });
                }
            },
        })
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Loads the rules and accounts: the file when set, else the built-in defaults.
    pub fn load_rules(&self) -> Result<crate::conversion::rules::Config, String> {
        match &self.config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
                crate::conversion::rules::Config::from_toml(&text)
                    .map_err(|e| format!("{path}: {e}"))
            }
            None => crate::conversion::rules::Config::default_config()
                .map_err(|e| format!("built-in configuration: {e}")),
        }
    }
}

/// Forced secret re-reads (after a signature mismatch) happen at most this often.
pub const SECRET_FORCED_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

impl IngestSettings {
    /// Reads the settings through `lookup` (`std::env::var` in production).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Ok(Self {
            signal_queue_url: required(&lookup, env::SIGNAL_QUEUE_URL)?,
            dead_letter_queue_url: required(&lookup, env::DEAD_LETTER_QUEUE_URL)?,
            webhook_secret_arn: required(&lookup, env::WEBHOOK_SECRET_ARN)?,
            events_secret_arn: lookup(env::EVENTS_SECRET_ARN).filter(|v| !v.trim().is_empty()),
            secret_ttl: seconds(&lookup, env::SECRET_TTL_SECONDS, 300)?,
            metrics_namespace: namespace(&lookup),
        })
    }

    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

fn namespace(lookup: &impl Fn(&str) -> Option<String>) -> String {
    lookup(env::METRICS_NAMESPACE)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| crate::metrics::DEFAULT_NAMESPACE.to_owned())
}

pub(crate) fn required(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
) -> Result<String, ConfigError> {
    lookup(name)
        .filter(|v| !v.trim().is_empty())
        .ok_or(ConfigError::Missing(name))
}

pub(crate) fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    match lookup(name).filter(|v| !v.trim().is_empty()) {
        None => Ok(Duration::from_secs(default)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| ConfigError::Invalid {
                name,
                why: e.to_string(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn reads_required_and_defaults() {
        let vars: HashMap<&str, &str> = [
            (env::SIGNAL_QUEUE_URL, "q"),
            (env::DEAD_LETTER_QUEUE_URL, "d"),
            (env::WEBHOOK_SECRET_ARN, "arn"),
        ]
        .into();
        let s = IngestSettings::from_lookup(|k| vars.get(k).map(|v| v.to_string())).expect("ok");
        assert_eq!(s.secret_ttl, Duration::from_secs(300));
        assert_eq!(s.metrics_namespace, "wacapi");

        let err = IngestSettings::from_lookup(|_| None).expect_err("missing");
        assert_eq!(err, ConfigError::Missing(env::SIGNAL_QUEUE_URL));

        let err = IngestSettings::from_lookup(|k| {
            if k == env::SECRET_TTL_SECONDS {
                Some("soon".into())
            } else {
                vars.get(k).map(|v| v.to_string())
            }
        })
        .expect_err("invalid");
        assert!(err.to_string().contains(env::SECRET_TTL_SECONDS));
    }
}
