//! The Graph API client for `POST {base}/{version}/{dataset_id}/events`, and the classification
//! of Meta's errors that decides retries.
//!
//! The access token travels only in the `Authorization` header, never in a URL or a log. When
//! the tokens secret carries the app secret, `appsecret_proof` (HMAC-SHA256 of the token) is
//! added. Tokens come from Secrets Manager through [`CachedSecret`].
//!
//! Every answer, success or error, is read for Meta's [`VERSION_WARNING_HEADER`]: Meta sends it
//! when it auto-upgraded a call to a deprecated version (and, observed live, before a version's
//! expiry). The dispatcher counts and logs it, so a version about to stop working is noticed.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::delivery::error::truncate;
use crate::delivery::{Answer, DeliveryError, ErrorClass, Outbound, Target, Verdict};
use crate::model::Destination;
use crate::secrets::{CachedSecret, SecretError, SecretSource};

/// Meta's Graph API.
pub const DEFAULT_BASE_URL: &str = "https://graph.facebook.com";

/// Subcodes of Meta's refusals of business-messaging events, as integrators report them (Meta
/// publishes no list; see docs/meta-reference.md).
///
/// `event_time` more than 7 days old ("Event Timestamp Too Old").
pub const SUBCODE_EVENT_TOO_OLD: i64 = 2_804_003;
/// An event name outside the 14 business-messaging names.
pub const SUBCODE_EVENT_NAME_NOT_ALLOWED: i64 = 2_804_066;
/// A `ctwa_clid` Meta does not know (also sent with a test code for a made-up click).
pub const SUBCODE_INVALID_CTWA_CLID: i64 = 2_804_087;
/// The dataset has no WhatsApp Business Account linked to it.
pub const SUBCODE_NO_WABA_LINKED: i64 = 2_804_132;
/// Meta's message (lower case) when the business is in a region where messaging events are not
/// accepted (EU and Japan pages); no subcode has been reported for it.
const RESTRICTIVE_REGION_MESSAGE: &str = "messaging restrictive region";

/// Meta's error code for a call to a deprecated Marketing API version ("You are calling a
/// deprecated version of the Ads API. Please update to the latest version"): what a deprecated
/// version answers where Meta does not auto-upgrade it (Marketing API Versioning FAQ; blog post
/// of Apr 16, 2024).
pub const CODE_DEPRECATED_VERSION: i64 = 2635;

/// The header Meta adds to a call it auto-upgraded from a deprecated version, e.g. `The call has
/// been auto-upgraded to v26.0 as v25.0 has been deprecated` (Marketing API Versioning FAQ).
pub const VERSION_WARNING_HEADER: &str = "x-ad-api-version-warning";

/// The most characters of [`VERSION_WARNING_HEADER`] kept: it is Meta's free text, carried into
/// a log line, so its length is bounded whatever Meta sends.
pub const MAX_VERSION_WARNING_CHARS: usize = 256;

/// The token used by accounts that name none.
pub const DEFAULT_TOKEN_NAME: &str = "default";

/// Meta's part of the tokens secret document:
/// `{"access_tokens": {"default": "EAAG...", "<name>": "..."}, "app_secret": "..."?}` (other
/// destinations read their own keys of the same document).
#[derive(Debug, Clone, Deserialize)]
pub struct AccessTokens {
    /// System-user access tokens by name (accounts pick one with `token = "<name>"`).
    pub access_tokens: BTreeMap<String, SecretString>,
    /// The Meta app secret; when present, requests carry `appsecret_proof`.
    #[serde(default)]
    pub app_secret: Option<SecretString>,
}

impl crate::secrets::SecretDocument for AccessTokens {
    fn validate(&self) -> Result<(), String> {
        if self.access_tokens.is_empty() {
            return Err("access_tokens is empty".into());
        }
        if let Some((name, _)) = self
            .access_tokens
            .iter()
            .find(|(_, token)| token.expose_secret().trim().is_empty())
        {
            return Err(format!("access_tokens.{name} is empty"));
        }
        match &self.app_secret {
            Some(secret) => crate::secrets::check_signing_key("app_secret", secret),
            None => Ok(()),
        }
    }
}

/// Meta's answer to an accepted request.
#[derive(Debug, Clone, Default, Deserialize)]
struct GraphSuccess {
    /// How many events Meta received.
    #[serde(default)]
    events_received: Option<u64>,
    /// Meta's trace id.
    #[serde(default)]
    fbtrace_id: Option<String>,
}

/// Meta's verdict on an error, per its error-code table (and the business-messaging subcodes
/// integrators report); `kind` is Meta's error type (`OAuthException`, ...).
pub fn verdict(err: &DeliveryError, kind: Option<&str>) -> ErrorClass {
    if err.subcode == Some(SUBCODE_NO_WABA_LINKED) || is_restrictive_region(err) {
        return ErrorClass::DatasetRefused;
    }
    if matches!(
        err.subcode,
        Some(SUBCODE_EVENT_NAME_NOT_ALLOWED | SUBCODE_INVALID_CTWA_CLID)
    ) {
        return ErrorClass::InvalidEvent;
    }
    match err.code {
        Some(1 | 2) => ErrorClass::Transient,
        Some(4 | 17 | 32 | 341 | 613) => ErrorClass::Throttled,
        Some(368) => ErrorClass::Blocked,
        Some(100) => ErrorClass::InvalidEvent,
        Some(190 | 102) => ErrorClass::Auth,
        Some(CODE_DEPRECATED_VERSION) => ErrorClass::DeprecatedVersion,
        Some(3 | 10 | 200..=299) => ErrorClass::Permission,
        None if kind == Some("OAuthException") => ErrorClass::Auth,
        _ => match err.status {
            Some(429) => ErrorClass::Throttled,
            Some(500..=599) => ErrorClass::Transient,
            _ => ErrorClass::Other,
        },
    }
}

/// The dead-letter reason of a permanent refusal ([`ErrorClass::InvalidEvent`] or
/// [`ErrorClass::DatasetRefused`]), by Meta's subcode. README › Operate says what an operator
/// does about each.
pub fn refusal_reason(err: &DeliveryError) -> &'static str {
    if is_restrictive_region(err) {
        return "graph_restricted_region";
    }
    match err.subcode {
        Some(SUBCODE_EVENT_NAME_NOT_ALLOWED) => "graph_event_name_not_allowed",
        Some(SUBCODE_INVALID_CTWA_CLID) => "graph_invalid_ctwa_clid",
        Some(SUBCODE_NO_WABA_LINKED) => "graph_dataset_without_waba",
        Some(SUBCODE_EVENT_TOO_OLD) => "graph_event_too_old",
        _ => "graph_invalid_event",
    }
}

fn is_restrictive_region(err: &DeliveryError) -> bool {
    err.message
        .to_ascii_lowercase()
        .contains(RESTRICTIVE_REGION_MESSAGE)
}

/// `err` (an answer of Meta's, or a local failure; `kind` Meta's error type) with Meta's
/// verdict, dead-letter reason and dead-letter attributes.
pub fn classified(err: DeliveryError, kind: Option<&str>) -> DeliveryError {
    let attributes = [
        (attributes::CODE, err.code.map(|c| c.to_string())),
        (attributes::SUBCODE, err.subcode.map(|c| c.to_string())),
        (attributes::MESSAGE, Some(truncate(&err.message, 512))),
        (attributes::FBTRACE_ID, err.trace_id.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    DeliveryError {
        destination: Destination::Meta,
        verdict: Box::new(Verdict {
            class: verdict(&err, kind),
            refusal: refusal_reason(&err),
            attributes,
        }),
        ..err
    }
}

/// A failure of Meta's delivery raised here rather than answered: `class_code` is the Graph
/// code it stands for (a missing token stands for an invalid one, 190).
pub(crate) fn local(message: String, class_code: Option<i64>, transport: bool) -> DeliveryError {
    classified(
        DeliveryError::local(Destination::Meta, message, class_code, transport),
        None,
    )
}

/// The dead-letter attributes of Meta's refusals and unconfirmed answers.
pub mod attributes {
    /// Meta's error code.
    pub const CODE: &str = "wacapi_graph_code";
    /// Meta's error subcode.
    pub const SUBCODE: &str = "wacapi_graph_subcode";
    /// Meta's message.
    pub const MESSAGE: &str = "wacapi_graph_message";
    /// Meta's trace id.
    pub const FBTRACE_ID: &str = "wacapi_fbtrace_id";
    /// `events_received` of a 2xx answer that did not count every event (`none` when absent).
    pub const EVENTS_RECEIVED: &str = "wacapi_graph_events_received";
    /// The number of events in that request.
    pub const EVENTS_SENT: &str = "wacapi_graph_events_sent";
}

/// Something that delivers Meta's event requests.
pub trait GraphSender: Send + Sync {
    /// Posts `events` to `target` (a [`crate::meta::dataset::Dataset`]: its path names the
    /// Graph API version and the dataset).
    fn send(
        &self,
        target: &Target,
        events: &[&Outbound],
    ) -> impl Future<Output = Result<Answer, DeliveryError>> + Send;
}

/// The real Graph API over HTTPS (rustls).
#[derive(Debug)]
pub struct GraphClient<S> {
    http: reqwest::Client,
    base_url: String,
    tokens: CachedSecret<AccessTokens, S>,
}

impl<S: SecretSource> GraphClient<S> {
    /// A client for `base_url` (Meta's, or a loopback mock) with a per-request timeout.
    pub fn new(
        base_url: impl Into<String>,
        timeout: Duration,
        tokens: CachedSecret<AccessTokens, S>,
    ) -> Result<Self, DeliveryError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("wacapi/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| local(format!("http client: {e}"), None, false))?;
        Ok(Self {
            http,
            base_url: base_url.into().trim_end_matches('/').to_owned(),
            tokens,
        })
    }
}

impl<S: SecretSource> GraphSender for GraphClient<S> {
    async fn send(&self, target: &Target, events: &[&Outbound]) -> Result<Answer, DeliveryError> {
        let tokens = self.tokens.get().await.map_err(|e| match e {
            // Secrets Manager unreachable: worth retrying. A missing or malformed value is a
            // configuration problem that needs a person, like a bad token.
            SecretError::Fetch(_) => local(e.to_string(), None, true),
            _ => local(e.to_string(), Some(190), false),
        })?;
        let name = target.token().unwrap_or(DEFAULT_TOKEN_NAME);
        let token = tokens.access_tokens.get(name).ok_or_else(|| {
            local(
                format!("the tokens secret has no access token named {name:?}"),
                Some(190),
                false,
            )
        })?;
        let mut url = format!("{}{}", self.base_url, target.path());
        if let Some(app_secret) = &tokens.app_secret {
            // Hex only, so it needs no escaping; it proves the token without revealing it.
            url.push_str("?appsecret_proof=");
            url.push_str(&appsecret_proof(
                app_secret.expose_secret(),
                token.expose_secret(),
            ));
        }
        let body = target
            .body(events)
            .map_err(|e| local(format!("serialise: {e}"), None, false))?;
        let response = self
            .http
            .post(&url)
            .bearer_auth(token.expose_secret())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "timed out"
                } else {
                    "failed"
                };
                DeliveryError {
                    // A refused connection sent nothing; anything later may have been processed.
                    maybe_processed: !e.is_connect(),
                    ..local(format!("request {what}: {}", e.without_url()), None, true)
                }
            })?;
        let status = response.status();
        let version_warning = version_warning(response.headers());
        let bytes = response.bytes().await.map_err(|e| DeliveryError {
            maybe_processed: true,
            ..local(
                format!("reading the response: {}", e.without_url()),
                None,
                true,
            )
        })?;
        if status.is_success() {
            let success: GraphSuccess = serde_json::from_slice(&bytes).unwrap_or_default();
            return Ok(Answer {
                received: success.events_received,
                trace_id: success.fbtrace_id,
                version_warning,
            });
        }
        Err(DeliveryError {
            version_warning,
            ..parse_error(status.as_u16(), &bytes)
        })
    }
}

/// Meta's [`VERSION_WARNING_HEADER`], as opaque text: control characters dropped, at most
/// [`MAX_VERSION_WARNING_CHARS`] characters; `None` when absent or blank.
pub fn version_warning(headers: &reqwest::header::HeaderMap) -> Option<Box<str>> {
    let raw = headers.get(VERSION_WARNING_HEADER)?;
    let text: String = String::from_utf8_lossy(raw.as_bytes())
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_VERSION_WARNING_CHARS)
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.into())
}

/// `appsecret_proof`: lowercase hex HMAC-SHA256 of the token with the app secret.
pub fn appsecret_proof(app_secret: &str, token: &str) -> String {
    crate::signature::sign(app_secret.as_bytes(), token.as_bytes())
        .trim_start_matches("sha256=")
        .to_owned()
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    is_transient: Option<bool>,
    #[serde(default)]
    error_user_msg: Option<String>,
    #[serde(default)]
    fbtrace_id: Option<String>,
}

/// Reads Meta's error object from a non-2xx response, classified.
pub fn parse_error(status: u16, body: &[u8]) -> DeliveryError {
    let Ok(ErrorEnvelope { error }) = serde_json::from_slice::<ErrorEnvelope>(body) else {
        return classified(
            DeliveryError {
                status: Some(status),
                message: format!("HTTP {status} without a Graph error object"),
                maybe_processed: status >= 500,
                ..DeliveryError::default()
            },
            None,
        );
    };
    let kind = error.kind;
    classified(
        DeliveryError {
            destination: Destination::Meta,
            status: Some(status),
            code: error.code,
            subcode: error.error_subcode,
            message: match (error.message, error.error_user_msg) {
                (Some(m), Some(u)) => format!("{m} ({u})"),
                (Some(m), None) | (None, Some(m)) => m,
                (None, None) => format!("HTTP {status}"),
            },
            is_transient: error.is_transient.unwrap_or(false),
            trace_id: error.fbtrace_id,
            maybe_processed: status >= 500,
            ..DeliveryError::default()
        },
        kind.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, body: &str) -> DeliveryError {
        parse_error(status, body.as_bytes())
    }

    #[test]
    fn classification_follows_meta_s_table() {
        let code =
            |c: i64| err(400, &format!(r#"{{"error":{{"message":"m","code":{c}}}}}"#)).class();
        for c in [1, 2] {
            assert_eq!(code(c), ErrorClass::Transient);
        }
        for c in [4, 17, 32, 341, 613] {
            assert_eq!(code(c), ErrorClass::Throttled, "{c}");
        }
        assert_eq!(code(368), ErrorClass::Blocked);
        assert_eq!(code(2635), ErrorClass::DeprecatedVersion);
        assert!(ErrorClass::DeprecatedVersion.needs_operator());
        assert!(!ErrorClass::DeprecatedVersion.retryable());
        assert!(!ErrorClass::DeprecatedVersion.is_auth());
        assert_eq!(code(100), ErrorClass::InvalidEvent);
        assert_eq!(code(190), ErrorClass::Auth);
        assert_eq!(code(102), ErrorClass::Auth);
        for c in [3, 10, 200, 250, 299] {
            assert_eq!(code(c), ErrorClass::Permission, "{c}");
        }
        assert_eq!(code(12345), ErrorClass::Other);
        assert_eq!(
            err(400, r#"{"error":{"message":"m","type":"OAuthException"}}"#).class(),
            ErrorClass::Auth
        );
        assert_eq!(
            err(
                400,
                r#"{"error":{"message":"m","code":100,"is_transient":true}}"#
            )
            .class(),
            ErrorClass::Transient
        );
        assert_eq!(err(503, "<html>").class(), ErrorClass::Transient);
        assert_eq!(err(429, "").class(), ErrorClass::Throttled);
        assert_eq!(err(404, "").class(), ErrorClass::Other);
    }

    #[test]
    fn error_objects_are_read_whole() {
        let e = err(
            400,
            r#"{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2804003,"error_user_msg":"Event Timestamp Too Old","fbtrace_id":"AbC"}}"#,
        );
        assert_eq!(e.code, Some(100));
        assert_eq!(e.subcode, Some(2804003));
        assert_eq!(e.trace_id.as_deref(), Some("AbC"));
        assert_eq!(e.refusal_reason(), "graph_event_too_old");
        assert_eq!(e.message, "Invalid parameter (Event Timestamp Too Old)");
        assert_eq!(e.code_label(), "100");
    }

    #[test]
    fn the_version_warning_header_is_read_as_capped_text() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let with = |value: &[u8]| {
            let mut headers = HeaderMap::new();
            headers.insert(
                VERSION_WARNING_HEADER,
                HeaderValue::from_bytes(value).unwrap(),
            );
            version_warning(&headers)
        };
        assert_eq!(version_warning(&HeaderMap::new()), None);
        assert_eq!(with(b"  "), None);
        // The Versioning FAQ's example, nested quotes and all.
        assert_eq!(
            with(b"'X-Ad-Api-Version-Warning: 'The call has been auto-upgraded to v26.0 as v25.0 has been deprecated''").as_deref(),
            Some("'X-Ad-Api-Version-Warning: 'The call has been auto-upgraded to v26.0 as v25.0 has been deprecated''")
        );
        let long = with("é".repeat(1000).as_bytes()).unwrap();
        assert_eq!(long.chars().count(), MAX_VERSION_WARNING_CHARS);
        assert_eq!(with(b"a\tb").as_deref(), Some("ab"));
    }

    #[test]
    fn appsecret_proof_is_hex_hmac_of_the_token() {
        assert_eq!(
            appsecret_proof("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
