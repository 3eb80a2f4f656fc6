//! The TikTok Events API client for `POST {base}/open_api/v1.3/event/track/`, and the
//! classification of TikTok's return codes that decides retries.
//!
//! The access token travels only in the `Access-Token` header. TikTok answers HTTP 200 with a
//! `code` (0 is success) and a `message` and `request_id`; errors become a
//! [`DeliveryError`] with TikTok's verdict on them ([`classify`]), so retries, isolation and
//! dead-letter moves are the dispatcher's one code path. Codes: TikTok's Business API SDK,
//! `tiktok_code.py` (`NumericErrorCodes`), the public copy of TikTok's return-code table:
//! 20001 partial success; 40001 no permission; 40002 and the other 4xxxx invalid parameters
//! (40061 batch size, 40062 personal data not hashed); 40100 too many requests; 40102–40105
//! access token expired, empty or invalid; 40700 validation service error; 41000 blocked;
//! 5xxxx TikTok-side errors; 60001 maintenance. TikTok deduplicates on the event set,
//! `event_id` and `event` ("Report App, Web, Offline, or CRM Events", `event_id`), so sending
//! a request again after a partial or unknown outcome cannot count an event twice.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::delivery::error::truncate;
use crate::delivery::{Answer, DeliveryError, ErrorClass, Outbound, Target, Verdict};
use crate::model::Destination;
use crate::secrets::{CachedSecret, SecretError, SecretSource};

/// TikTok's API for Business.
pub const DEFAULT_BASE_URL: &str = "https://business-api.tiktok.com";

/// The Events API 2.0 path.
pub const TRACK_PATH: &str = "/open_api/v1.3/event/track/";

/// The header carrying the access token.
pub const ACCESS_TOKEN_HEADER: &str = "Access-Token";

/// The token used by event sets that name none.
pub const DEFAULT_TOKEN_NAME: &str = "default";

/// TikTok's part of the tokens secret document: `{"tiktok_access_tokens": {"default": "...",
/// "<name>": "..."}}` beside Meta's keys (each destination reads its own keys).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TikTokTokens {
    /// Events API access tokens by name (`tiktok = { token = "<name>" }`).
    #[serde(default)]
    pub tiktok_access_tokens: BTreeMap<String, SecretString>,
}

impl crate::secrets::SecretDocument for TikTokTokens {
    fn validate(&self) -> Result<(), String> {
        match self
            .tiktok_access_tokens
            .iter()
            .find(|(_, token)| token.expose_secret().trim().is_empty())
        {
            Some((name, _)) => Err(format!("tiktok_access_tokens.{name} is empty")),
            None => Ok(()),
        }
    }
}

/// The dead-letter attributes of TikTok's refusals.
pub mod attributes {
    /// TikTok's return code of a refused event.
    pub const CODE: &str = "wacapi_tiktok_code";
    /// TikTok's message.
    pub const MESSAGE: &str = "wacapi_tiktok_message";
    /// TikTok's request id.
    pub const REQUEST_ID: &str = "wacapi_tiktok_request_id";
}

/// What to do about TikTok's `code` (or the HTTP status when there is none).
pub fn classify(code: Option<i64>, status: Option<u16>) -> ErrorClass {
    match code {
        Some(40100) => ErrorClass::Throttled,
        Some(41000) => ErrorClass::Blocked,
        Some(40102..=40105) => ErrorClass::Auth,
        Some(40001) => ErrorClass::Permission,
        // A validation service error, not a verdict on the events (retried by integrators).
        Some(40700) => ErrorClass::Transient,
        Some(40000..=49999) => ErrorClass::InvalidEvent,
        // Partial success names no events: the whole request again is safe (TikTok dedups).
        Some(20001) => ErrorClass::Transient,
        Some(50000..=59999 | 60001) => ErrorClass::Transient,
        _ => match status {
            Some(429) => ErrorClass::Throttled,
            Some(401 | 403) => ErrorClass::Auth,
            Some(500..=599) => ErrorClass::Transient,
            _ => ErrorClass::Other,
        },
    }
}

/// `err` (an answer of TikTok's, or a local failure) with TikTok's verdict, dead-letter reason
/// and attributes.
pub fn classified(err: DeliveryError) -> DeliveryError {
    let attributes = [
        (attributes::CODE, err.code.map(|c| c.to_string())),
        (attributes::MESSAGE, Some(truncate(&err.message, 512))),
        (attributes::REQUEST_ID, err.trace_id.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    DeliveryError {
        destination: Destination::TikTok,
        verdict: Box::new(Verdict {
            class: classify(err.code, err.status),
            refusal: "tiktok_invalid_event",
            attributes,
        }),
        ..err
    }
}

/// A failure raised here rather than answered: `class_code` is the TikTok code it stands for
/// (a missing token stands for an invalid one, 40105).
fn local(message: String, class_code: Option<i64>, transport: bool) -> DeliveryError {
    classified(DeliveryError::local(
        Destination::TikTok,
        message,
        class_code,
        transport,
    ))
}

/// Something that delivers TikTok track requests.
pub trait TikTokSender: Send + Sync {
    /// Posts `events` to `target` (an [`crate::tiktok::event_set::EventSet`]) with the access
    /// token it names.
    fn send(
        &self,
        target: &Target,
        events: &[&Outbound],
    ) -> impl Future<Output = Result<Answer, DeliveryError>> + Send;
}

/// No TikTok delivery configured: every request is refused as an authentication problem, so
/// the events are kept (retried, then dead-lettered by the queue) and the auth alarm fires.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTikTok;

impl TikTokSender for NoTikTok {
    async fn send(&self, _target: &Target, _events: &[&Outbound]) -> Result<Answer, DeliveryError> {
        Err(local(
            "no TikTok client is configured: add tiktok_access_tokens to the tokens secret".into(),
            Some(40105),
            false,
        ))
    }
}

/// The real Events API over HTTPS (rustls).
#[derive(Debug)]
pub struct TikTokClient<S> {
    http: reqwest::Client,
    base_url: String,
    tokens: CachedSecret<TikTokTokens, S>,
}

impl<S: SecretSource> TikTokClient<S> {
    /// A client for `base_url` (TikTok's, or a loopback mock) with a per-request timeout.
    pub fn new(
        base_url: impl Into<String>,
        timeout: Duration,
        tokens: CachedSecret<TikTokTokens, S>,
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

impl<S: SecretSource> TikTokSender for TikTokClient<S> {
    async fn send(&self, target: &Target, events: &[&Outbound]) -> Result<Answer, DeliveryError> {
        let tokens = self.tokens.get().await.map_err(|e| match e {
            SecretError::Fetch(_) => local(e.to_string(), None, true),
            _ => local(e.to_string(), Some(40105), false),
        })?;
        let name = target.token().unwrap_or(DEFAULT_TOKEN_NAME);
        let token = tokens.tiktok_access_tokens.get(name).ok_or_else(|| {
            local(
                format!("the tokens secret has no tiktok_access_tokens entry named {name:?}"),
                Some(40105),
                false,
            )
        })?;
        let body = target
            .body(events)
            .map_err(|e| local(format!("serialise: {e}"), None, false))?;
        let response = self
            .http
            .post(format!("{}{}", self.base_url, target.path()))
            .header(ACCESS_TOKEN_HEADER, token.expose_secret())
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
                    maybe_processed: !e.is_connect(),
                    ..local(format!("request {what}: {}", e.without_url()), None, true)
                }
            })?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| DeliveryError {
            maybe_processed: true,
            status: Some(status),
            ..local(
                format!("reading the response: {}", e.without_url()),
                None,
                true,
            )
        })?;
        read_answer(status, &bytes).map(|request_id| Answer {
            // TikTok's code 0 takes the whole request.
            received: Some(events.len() as u64),
            trace_id: request_id,
            version_warning: None,
        })
    }
}

#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    request_id: Option<String>,
}

/// Reads TikTok's answer: `code` 0 is success (its `request_id` returned), whatever the HTTP
/// status says otherwise.
pub fn read_answer(status: u16, body: &[u8]) -> Result<Option<String>, DeliveryError> {
    let answer = serde_json::from_slice::<Reply>(body).ok();
    match answer {
        Some(Reply {
            code: Some(0),
            request_id,
            ..
        }) if (200..300).contains(&status) => Ok(request_id),
        Some(Reply {
            code,
            message,
            request_id,
        }) => Err(classified(DeliveryError {
            status: Some(status),
            code,
            message: message.unwrap_or_else(|| format!("HTTP {status}")),
            trace_id: request_id,
            maybe_processed: status >= 500,
            ..DeliveryError::default()
        })),
        None => Err(classified(DeliveryError {
            status: Some(status),
            message: format!("HTTP {status} without a TikTok answer object"),
            maybe_processed: status >= 500,
            ..DeliveryError::default()
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiktok_codes_decide_retries() {
        let class = |body: &str| read_answer(200, body.as_bytes()).unwrap_err().class();
        assert_eq!(
            read_answer(
                200,
                br#"{"code":0,"message":"OK","request_id":"r1","data":{}}"#
            ),
            Ok(Some("r1".into()))
        );
        assert_eq!(
            class(r#"{"code":40100,"message":"Too many requests"}"#),
            ErrorClass::Throttled
        );
        assert_eq!(
            class(r#"{"code":40105,"message":"Access token is incorrect"}"#),
            ErrorClass::Auth
        );
        assert_eq!(
            class(r#"{"code":40104,"message":"empty"}"#),
            ErrorClass::Auth
        );
        assert_eq!(
            class(r#"{"code":40001,"message":"No permission"}"#),
            ErrorClass::Permission
        );
        assert_eq!(
            class(r#"{"code":40002,"message":"Invalid event"}"#),
            ErrorClass::InvalidEvent
        );
        assert_eq!(
            class(r#"{"code":50000,"message":"System error"}"#),
            ErrorClass::Transient
        );
        assert_eq!(
            read_answer(503, b"<html>").unwrap_err().class(),
            ErrorClass::Transient
        );
        for (code, want) in [
            (20001, ErrorClass::Transient),
            (40061, ErrorClass::InvalidEvent),
            (40062, ErrorClass::InvalidEvent),
            (40700, ErrorClass::Transient),
            (41000, ErrorClass::Blocked),
            (60001, ErrorClass::Transient),
        ] {
            assert_eq!(
                class(&format!(r#"{{"code":{code},"message":"m"}}"#)),
                want,
                "{code}"
            );
        }
        let err = read_answer(
            200,
            br#"{"code":40002,"message":"event_time invalid","request_id":"r2"}"#,
        )
        .unwrap_err();
        assert_eq!(err.refusal_reason(), "tiktok_invalid_event");
        assert_eq!(err.trace_id.as_deref(), Some("r2"));
        assert!(!err.maybe_processed);
    }
}
