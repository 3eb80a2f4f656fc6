//! Secrets: JSON documents (in Secrets Manager, see [`crate::aws::secrets_manager`]), cached across
//! invocations with a TTL, and re-read early (rate limited) when a caller suspects rotation.
//!
//! Secret values live in [`SecretString`]s, whose `Debug` is redacted; errors describe where a
//! document is wrong, never what it contains.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::Mutex;

/// Why a secret could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    /// Secrets Manager could not be reached or refused the call.
    #[error("secret could not be fetched: {0}")]
    Fetch(String),
    /// The secret exists but has no string value yet (created empty, not set).
    #[error("secret has no value yet: set it with `aws secretsmanager put-secret-value`")]
    Empty,
    /// The value is not the expected JSON document.
    #[error("secret value is not the expected JSON document: {0}")]
    Invalid(String),
    /// The document parses but cannot be used safely (an empty or too short key).
    #[error("secret value is unusable: {0}")]
    Unusable(String),
}

/// Where secret documents come from.
pub trait SecretSource: Send + Sync {
    /// Reads the current secret string.
    fn fetch(&self) -> impl Future<Output = Result<SecretString, SecretError>> + Send;
}

/// A fixed secret document (the CLI and tests).
#[derive(Debug, Clone)]
pub struct StaticSecret(pub SecretString);

impl SecretSource for StaticSecret {
    async fn fetch(&self) -> Result<SecretString, SecretError> {
        Ok(self.0.clone())
    }
}

/// The shortest signing key (an app secret, a business events key) wacapi accepts, in
/// characters: 128 bits of hex. Meta's app secrets are 32 hex characters; a shorter key (and above
/// all an empty one, with which anybody can sign) is refused when the secret is loaded.
pub const MIN_SIGNING_KEY_CHARS: usize = 16;

/// A secret document that can say whether it is usable: loading one that is not fails, so no
/// request is ever accepted under an empty or weak key.
pub trait SecretDocument: DeserializeOwned + Send + Sync {
    /// Why the document cannot be used (naming fields, never values).
    fn validate(&self) -> Result<(), String>;
}

/// Whether `key` is long enough to sign with; the error names `what`.
pub fn check_signing_key(what: &str, key: &SecretString) -> Result<(), String> {
    let len = key.expose_secret().trim().chars().count();
    if len < MIN_SIGNING_KEY_CHARS {
        Err(format!(
            "{what} has {len} characters; at least {MIN_SIGNING_KEY_CHARS} are required"
        ))
    } else {
        Ok(())
    }
}

/// The ingest function's secret document:
/// `{"app_secret": "...", "verify_token": "..."}`.
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSecrets {
    /// The Meta app secret: the HMAC key of `X-Hub-Signature-256`.
    pub app_secret: SecretString,
    /// The token Meta echoes in the subscription handshake.
    pub verify_token: SecretString,
}

impl SecretDocument for WebhookSecrets {
    fn validate(&self) -> Result<(), String> {
        check_signing_key("app_secret", &self.app_secret)?;
        if self.verify_token.expose_secret().trim().is_empty() {
            return Err("verify_token is empty".into());
        }
        Ok(())
    }
}

/// Parses a secret document without ever echoing its content in an error.
pub fn parse_secret<T: DeserializeOwned>(raw: &SecretString) -> Result<T, SecretError> {
    serde_json::from_str(raw.expose_secret()).map_err(|e| {
        let what = e.to_string();
        // serde names missing fields without quoting input; other messages may quote values.
        let detail = if what.starts_with("missing field") {
            what.split(" at line")
                .next()
                .unwrap_or("missing field")
                .to_owned()
        } else {
            format!(
                "{:?} error at line {} column {}",
                e.classify(),
                e.line(),
                e.column()
            )
        };
        SecretError::Invalid(detail)
    })
}

/// A cached, parsed secret document.
pub struct CachedSecret<T, S> {
    source: S,
    ttl: Duration,
    min_forced_interval: Duration,
    state: Mutex<CacheState<T>>,
}

struct CacheState<T> {
    value: Option<Arc<T>>,
    fetched_at: Option<Instant>,
    forced_at: Option<Instant>,
}

impl<T, S> std::fmt::Debug for CachedSecret<T, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedSecret")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl<T: SecretDocument, S: SecretSource> CachedSecret<T, S> {
    /// Caches `source` for `ttl`; forced refreshes at most once per `min_forced_interval`.
    pub fn new(source: S, ttl: Duration, min_forced_interval: Duration) -> Self {
        Self {
            source,
            ttl,
            min_forced_interval,
            state: Mutex::new(CacheState {
                value: None,
                fetched_at: None,
                forced_at: None,
            }),
        }
    }

    /// The cached document, fetched when missing or older than the TTL. When a refetch fails
    /// but an older value exists, the older value is served (and the failure logged).
    pub async fn get(&self) -> Result<Arc<T>, SecretError> {
        let mut state = self.state.lock().await;
        let fresh = state.fetched_at.is_some_and(|t| t.elapsed() < self.ttl);
        if let (true, Some(value)) = (fresh, &state.value) {
            return Ok(Arc::clone(value));
        }
        match self.load().await {
            Ok(value) => {
                state.value = Some(Arc::clone(&value));
                state.fetched_at = Some(Instant::now());
                Ok(value)
            }
            Err(err) => match &state.value {
                Some(stale) => {
                    tracing::warn!(error = %err, "secret refresh failed; serving the cached value");
                    Ok(Arc::clone(stale))
                }
                None => Err(err),
            },
        }
    }

    /// Re-reads the secret now, unless a forced re-read happened within the minimum interval
    /// (then `Ok(None)`): a wrong signature must not let a caller hammer Secrets Manager.
    pub async fn refresh(&self) -> Result<Option<Arc<T>>, SecretError> {
        let mut state = self.state.lock().await;
        if state
            .forced_at
            .is_some_and(|t| t.elapsed() < self.min_forced_interval)
        {
            return Ok(None);
        }
        state.forced_at = Some(Instant::now());
        let value = self.load().await?;
        state.value = Some(Arc::clone(&value));
        state.fetched_at = Some(Instant::now());
        Ok(Some(value))
    }

    async fn load(&self) -> Result<Arc<T>, SecretError> {
        let raw = self.source.fetch().await?;
        let document: T = parse_secret(&raw)?;
        document.validate().map_err(SecretError::Unusable)?;
        Ok(Arc::new(document))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting {
        calls: AtomicUsize,
        docs: Vec<&'static str>,
    }

    impl SecretSource for &Counting {
        async fn fetch(&self) -> Result<SecretString, SecretError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let doc = self.docs.get(n).or(self.docs.last()).copied().unwrap_or("");
            Ok(SecretString::from(doc.to_owned()))
        }
    }

    const A: &str = r#"{"app_secret":"aaaaaaaaaaaaaaaa","verify_token":"t"}"#;
    const B: &str = r#"{"app_secret":"bbbbbbbbbbbbbbbb","verify_token":"t"}"#;

    #[tokio::test]
    async fn caches_within_ttl_and_rate_limits_forced_refresh() {
        let source = Counting {
            calls: AtomicUsize::new(0),
            docs: vec![A, B],
        };
        let cache: CachedSecret<WebhookSecrets, _> =
            CachedSecret::new(&source, Duration::from_secs(300), Duration::from_secs(60));
        let first = cache.get().await.expect("get");
        assert_eq!(first.app_secret.expose_secret(), "aaaaaaaaaaaaaaaa");
        cache.get().await.expect("get");
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);

        let refreshed = cache
            .refresh()
            .await
            .expect("refresh")
            .expect("not limited");
        assert_eq!(refreshed.app_secret.expose_secret(), "bbbbbbbbbbbbbbbb");
        assert!(cache.refresh().await.expect("refresh").is_none());
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
        assert_eq!(
            cache.get().await.expect("get").app_secret.expose_secret(),
            "bbbbbbbbbbbbbbbb"
        );
    }

    #[test]
    fn invalid_documents_never_echo_values() {
        let raw = SecretString::from(r#"{"app_secret": 12345678, "verify_token": "t"}"#.to_owned());
        let err = parse_secret::<WebhookSecrets>(&raw).expect_err("invalid");
        assert!(!err.to_string().contains("12345678"), "{err}");
        let raw = SecretString::from(r#"{"verify_token": "t"}"#.to_owned());
        let err = parse_secret::<WebhookSecrets>(&raw).expect_err("missing");
        assert_eq!(
            err,
            SecretError::Invalid("missing field `app_secret`".to_owned())
        );
    }

    #[tokio::test]
    async fn empty_and_short_keys_fail_closed_when_loaded() {
        for (doc, want) in [
            (
                r#"{"app_secret":"","verify_token":"t"}"#,
                "app_secret has 0 characters",
            ),
            (
                r#"{"app_secret":"   ","verify_token":"t"}"#,
                "app_secret has 0 characters",
            ),
            (
                r#"{"app_secret":"short","verify_token":"t"}"#,
                "app_secret has 5 characters",
            ),
            (
                r#"{"app_secret":"aaaaaaaaaaaaaaaa","verify_token":""}"#,
                "verify_token is empty",
            ),
        ] {
            let source = Counting {
                calls: AtomicUsize::new(0),
                docs: vec![doc],
            };
            let cache: CachedSecret<WebhookSecrets, _> =
                CachedSecret::new(&source, Duration::from_secs(300), Duration::from_secs(60));
            let err = cache.get().await.expect_err(doc);
            assert!(err.to_string().contains(want), "{err}");
            assert!(!err.to_string().contains("short"), "no value in {err}");
        }
    }

    #[test]
    fn debug_output_is_redacted() {
        let raw = SecretString::from(A.to_owned());
        let secrets: WebhookSecrets = parse_secret(&raw).expect("parse");
        let debug = format!("{secrets:?}");
        assert!(!debug.contains("\"a\""), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }
}
