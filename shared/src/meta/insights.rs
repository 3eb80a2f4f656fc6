//! Spend per ad and day from Meta's Ads Insights API, for the conversion report's cost per
//! event and ROAS: `GET {base}/{version}/act_{id}/insights` with `level=ad`, `time_increment=1`,
//! a `time_range` and the fields naming each ad and its campaign (Ads Insights API, updated Apr
//! 27, 2026; Ad Account Insights reference). Every page is followed (`paging.next`), throttling
//! is waited out within a time limit, and token and permission errors say what to fix.
//!
//! Throttling, as Meta documents it: codes 4 (application), 17 (user; subcode 2446079), 32,
//! 613 (ad account; subcode 1487742) and 80000–80014 (business use case; 80000 is Ads
//! Insights), HTTP 429, and code 2 with subcode 1504043 ("intermittent error, retry") are
//! waited out; `X-Business-Use-Case-Usage`'s `estimated_time_to_regain_access` (minutes) says
//! how long (Marketing API Rate Limiting, May 5, 2026; Ads Insights API Error Codes, May 21,
//! 2026; Insights Limits and Best Practices, May 5, 2026). Code 190 is a token that is invalid
//! or expired; 10, 200–299 and 294 a token without `ads_read` on the account.
//!
//! The token travels only in the `Authorization` header: a `paging.next` link is followed only
//! on the base URL's own origin, and without any `access_token` it may carry. Nothing here logs
//! or returns the token.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;

/// The fields read per ad and day.
pub const FIELDS: &str =
    "ad_id,ad_name,adset_name,campaign_id,campaign_name,spend,account_currency,date_start";

/// Rows per page asked for (Meta's pages may be smaller).
const PAGE_LIMIT: u32 = 500;

/// Pages followed at most (a guard against a `next` link that never ends).
const MAX_PAGES: usize = 10_000;

/// What one ad spent on one day.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendRow {
    /// The ad account (`act_<id>`).
    pub account: String,
    /// The ad.
    pub ad_id: String,
    /// Its name in Ads Manager.
    pub ad_name: String,
    /// Its ad set's name.
    pub adset_name: String,
    /// Its campaign.
    pub campaign_id: String,
    /// The campaign's name.
    pub campaign_name: String,
    /// `YYYY-MM-DD`, in the ad account's time zone.
    pub day: String,
    /// Amount spent, in `currency`.
    pub spend: f64,
    /// The ad account's currency (ISO 4217).
    pub currency: String,
}

/// Why spend could not be read. Messages name the account and what to do, never the token.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InsightsError {
    /// Not `act_` and digits.
    #[error(
        "{0:?} is not an ad account id: write act_ followed by its digits (Ads Manager › account)"
    )]
    BadAccount(String),
    /// No token given.
    #[error("reading spend needs an access token with ads_read in WACAPI_ADS_TOKEN")]
    NoToken,
    /// Code 190: invalid or expired.
    #[error(
        "{account}: Meta refused the ads token (code 190: invalid or expired); put a valid system-user token with ads_read in WACAPI_ADS_TOKEN"
    )]
    Token {
        /// The ad account.
        account: String,
    },
    /// Codes 10, 200–299, 294: the token may not read this account's insights.
    #[error(
        "{account}: the ads token may not read this ad account's insights (code {code}): give its system user ads_read on the account (Business Settings › System users › Assign assets)"
    )]
    Permission {
        /// The ad account.
        account: String,
        /// Meta's code.
        code: i64,
    },
    /// Still throttled when the time limit ran out.
    #[error("{account}: Meta is throttling insights requests (code {code}){}; gave up after {waited_s} s: try again later", .regain_minutes.map(|m| format!(" and says access returns in about {m} min")).unwrap_or_default())]
    Throttled {
        /// The ad account.
        account: String,
        /// Meta's code (or the HTTP status).
        code: i64,
        /// Seconds waited.
        waited_s: u64,
        /// Meta's estimate, when it gave one.
        regain_minutes: Option<u64>,
    },
    /// Any other error answer.
    #[error("{account}: the Insights API answered HTTP {status} (code {code:?}): {message}")]
    Api {
        /// The ad account.
        account: String,
        /// HTTP status.
        status: u16,
        /// Meta's code.
        code: Option<i64>,
        /// Meta's message.
        message: String,
    },
    /// No answer.
    #[error("{account}: the Insights API could not be reached: {0}", .message)]
    Transport {
        /// The ad account.
        account: String,
        /// What failed.
        message: String,
    },
    /// An answer that is not the documented shape.
    #[error("{account}: the Insights API's answer is not the documented shape: {message}")]
    Malformed {
        /// The ad account.
        account: String,
        /// What is wrong.
        message: String,
    },
}

/// How throttling is waited out.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// The longest total wait.
    pub max_wait: Duration,
    /// The first wait (doubled each time, or Meta's estimate when longer).
    pub first_wait: Duration,
}

impl Default for Patience {
    fn default() -> Self {
        Self {
            max_wait: Duration::from_secs(120),
            first_wait: Duration::from_secs(2),
        }
    }
}

/// A reader of the Ads Insights API.
#[derive(Debug)]
pub struct InsightsClient {
    http: reqwest::Client,
    base_url: reqwest::Url,
    version: String,
    token: SecretString,
    patience: Patience,
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error_subcode: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

impl InsightsClient {
    /// A client for Meta's Graph API at `base_url` (or a loopback stand-in), Graph `version`,
    /// with `token` (`ads_read`).
    pub fn new(
        base_url: &str,
        version: &str,
        token: SecretString,
        timeout: Duration,
        patience: Patience,
    ) -> Result<Self, InsightsError> {
        let transport = |message: String| InsightsError::Transport {
            account: String::new(),
            message,
        };
        if token.expose_secret().trim().is_empty() {
            return Err(InsightsError::NoToken);
        }
        let base_url = reqwest::Url::parse(base_url.trim_end_matches('/'))
            .map_err(|e| transport(format!("the Graph base URL: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("wacapi/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| transport(e.to_string()))?;
        Ok(Self {
            http,
            base_url,
            version: version.to_owned(),
            token,
            patience,
        })
    }

    /// Every ad's spend per day from `since` to `until` (inclusive, `YYYY-MM-DD`) in ad account
    /// `account` (`act_<digits>`), all pages.
    pub async fn spend(
        &self,
        account: &str,
        since: &str,
        until: &str,
    ) -> Result<Vec<SpendRow>, InsightsError> {
        let digits = account.strip_prefix("act_").unwrap_or_default();
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InsightsError::BadAccount(account.to_owned()));
        }
        let mut url = self.base_url.clone();
        url.set_path(&format!(
            "{}/{}/{account}/insights",
            self.base_url.path().trim_end_matches('/'),
            self.version
        ));
        url.query_pairs_mut()
            .append_pair("level", "ad")
            .append_pair("time_increment", "1")
            .append_pair(
                "time_range",
                &serde_json::json!({"since": since, "until": until}).to_string(),
            )
            .append_pair("fields", FIELDS)
            .append_pair("limit", &PAGE_LIMIT.to_string());
        let mut rows = Vec::new();
        let mut next = Some(url);
        let mut pages = 0;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(InsightsError::Malformed {
                    account: account.to_owned(),
                    message: format!("more than {MAX_PAGES} pages"),
                });
            }
            let page = self.page(account, url).await?;
            for item in &page.data {
                rows.push(spend_row(account, item)?);
            }
            next = page
                .paging
                .and_then(|p| p.next)
                .map(|link| self.follow(account, &link))
                .transpose()?;
        }
        Ok(rows)
    }

    /// The next page's URL: on the base URL's origin only (the token is not sent elsewhere),
    /// without an `access_token` in its query (the token goes in the header).
    fn follow(&self, account: &str, link: &str) -> Result<reqwest::Url, InsightsError> {
        let mut url = reqwest::Url::parse(link).map_err(|e| InsightsError::Malformed {
            account: account.to_owned(),
            message: format!("paging.next is not a URL ({e})"),
        })?;
        if url.origin() != self.base_url.origin() {
            return Err(InsightsError::Malformed {
                account: account.to_owned(),
                message: "paging.next points at another host than the Graph API".into(),
            });
        }
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "access_token")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut().clear().extend_pairs(kept);
        Ok(url)
    }

    /// One page, throttling waited out within [`Patience::max_wait`].
    async fn page(&self, account: &str, url: reqwest::Url) -> Result<Page, InsightsError> {
        let started = Instant::now();
        let mut wait = self.patience.first_wait;
        loop {
            let response = self
                .http
                .get(url.clone())
                .bearer_auth(self.token.expose_secret())
                .send()
                .await
                .map_err(|e| InsightsError::Transport {
                    account: account.to_owned(),
                    message: e.without_url().to_string(),
                })?;
            let status = response.status().as_u16();
            let regain = regain_minutes(response.headers());
            let body = response
                .bytes()
                .await
                .map_err(|e| InsightsError::Transport {
                    account: account.to_owned(),
                    message: e.without_url().to_string(),
                })?;
            if (200..300).contains(&status) {
                return serde_json::from_slice(&body).map_err(|e| InsightsError::Malformed {
                    account: account.to_owned(),
                    message: crate::redact::safe_json_error(&e),
                });
            }
            let error = serde_json::from_slice::<ErrorEnvelope>(&body)
                .ok()
                .map(|e| e.error);
            let code = error.as_ref().and_then(|e| e.code);
            let subcode = error.as_ref().and_then(|e| e.error_subcode);
            match classify(status, code, subcode) {
                Answer::Token => {
                    return Err(InsightsError::Token {
                        account: account.to_owned(),
                    });
                }
                Answer::Permission(code) => {
                    return Err(InsightsError::Permission {
                        account: account.to_owned(),
                        code,
                    });
                }
                Answer::Wait => {
                    let estimate = regain.map(|m| Duration::from_secs(m.saturating_mul(60)));
                    let pause = estimate.map_or(wait, |e| e.max(wait));
                    let waited = started.elapsed();
                    if waited + pause > self.patience.max_wait {
                        return Err(InsightsError::Throttled {
                            account: account.to_owned(),
                            code: code.unwrap_or(i64::from(status)),
                            waited_s: waited.as_secs(),
                            regain_minutes: regain,
                        });
                    }
                    tracing::info!(account, code = ?code, wait_ms = pause.as_millis() as u64, "Insights API throttled; waiting");
                    tokio::time::sleep(pause).await;
                    wait = wait.saturating_mul(2);
                }
                Answer::Fail => {
                    return Err(InsightsError::Api {
                        account: account.to_owned(),
                        status,
                        code,
                        message: error
                            .and_then(|e| e.message)
                            .unwrap_or_else(|| format!("HTTP {status}")),
                    });
                }
            }
        }
    }
}

/// What an error answer calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Token,
    Permission(i64),
    Wait,
    Fail,
}

fn classify(status: u16, code: Option<i64>, subcode: Option<i64>) -> Answer {
    match (code, subcode) {
        (Some(190), _) => Answer::Token,
        (Some(c @ (10 | 200..=299)), _) => Answer::Permission(c),
        (Some(4 | 17 | 32 | 613 | 80_000..=80_014), _) => Answer::Wait,
        (Some(2), Some(1_504_043)) | (Some(1 | 2), None) => Answer::Wait,
        _ if status == 429 || status >= 500 => Answer::Wait,
        _ => Answer::Fail,
    }
}

/// Meta's estimate of when access returns, in minutes: the largest
/// `estimated_time_to_regain_access` of `X-Business-Use-Case-Usage` (`{"<id>": [{...}]}`).
fn regain_minutes(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let value = headers.get("x-business-use-case-usage")?.to_str().ok()?;
    let usage: Value = serde_json::from_str(value).ok()?;
    usage
        .as_object()?
        .values()
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(|u| u.get("estimated_time_to_regain_access")?.as_u64())
        .max()
        .filter(|m| *m > 0)
}

/// One row of `data[]`: `spend` is a decimal string (numbers are read too).
fn spend_row(account: &str, item: &Value) -> Result<SpendRow, InsightsError> {
    let text = |key: &str| -> String {
        match &item[key] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        }
    };
    let malformed = |message: String| InsightsError::Malformed {
        account: account.to_owned(),
        message,
    };
    let spend = match &item["spend"] {
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        Value::Null => Some(0.0),
        _ => None,
    }
    .filter(|s| s.is_finite() && *s >= 0.0)
    .ok_or_else(|| malformed("a row's spend is not an amount".into()))?;
    let row = SpendRow {
        account: account.to_owned(),
        ad_id: text("ad_id"),
        ad_name: text("ad_name"),
        adset_name: text("adset_name"),
        campaign_id: text("campaign_id"),
        campaign_name: text("campaign_name"),
        day: text("date_start"),
        spend,
        currency: text("account_currency").to_ascii_uppercase(),
    };
    if row.ad_id.is_empty() || crate::report::day_start(&row.day).is_none() {
        return Err(malformed("a row without ad_id or date_start".into()));
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_s_codes_decide_waiting_failing_and_what_to_fix() {
        assert_eq!(classify(400, Some(190), None), Answer::Token);
        assert_eq!(classify(400, Some(200), None), Answer::Permission(200));
        assert_eq!(classify(400, Some(10), None), Answer::Permission(10));
        for code in [4, 17, 32, 613, 80_000, 80_004, 80_014] {
            assert_eq!(classify(400, Some(code), None), Answer::Wait, "{code}");
        }
        assert_eq!(classify(400, Some(2), Some(1_504_043)), Answer::Wait);
        assert_eq!(classify(429, None, None), Answer::Wait);
        assert_eq!(classify(503, None, None), Answer::Wait);
        assert_eq!(classify(400, Some(100), Some(1_504_018)), Answer::Fail);
        assert_eq!(classify(400, Some(80_015), None), Answer::Fail);
    }

    #[test]
    fn rows_read_spend_strings_and_refuse_what_is_no_amount() {
        let row = spend_row(
            "act_1",
            &serde_json::json!({"ad_id": "9", "ad_name": "Spring", "campaign_id": "5",
                "campaign_name": "C", "adset_name": "S", "spend": "12.34",
                "account_currency": "brl", "date_start": "2026-11-30"}),
        )
        .unwrap();
        assert_eq!((row.spend, row.currency.as_str()), (12.34, "BRL"));
        for bad in [
            serde_json::json!({"ad_id": "9", "spend": "x", "date_start": "2026-11-30"}),
            serde_json::json!({"ad_id": "9", "spend": "-1", "date_start": "2026-11-30"}),
            serde_json::json!({"spend": "1", "date_start": "2026-11-30"}),
            serde_json::json!({"ad_id": "9", "spend": "1", "date_start": "30/11/2026"}),
        ] {
            assert!(spend_row("act_1", &bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn regain_time_is_the_largest_estimate() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "x-business-use-case-usage",
            r#"{"123":[{"type":"ads_insights","call_count":100,"estimated_time_to_regain_access":3},{"type":"ads_management","estimated_time_to_regain_access":7}]}"#
                .parse()
                .unwrap(),
        );
        assert_eq!(regain_minutes(&headers), Some(7));
        assert_eq!(regain_minutes(&reqwest::header::HeaderMap::new()), None);
    }

    #[test]
    fn errors_name_the_account_and_never_the_token() {
        let client = InsightsClient::new(
            "http://127.0.0.1:9",
            "v27.0",
            SecretString::from("EAAG-secret-token".to_owned()),
            Duration::from_secs(1),
            Patience::default(),
        )
        .unwrap();
        let link =
            "http://127.0.0.1:9/v27.0/act_1/insights?after=abc&access_token=EAAG-secret-token";
        let url = client.follow("act_1", link).unwrap();
        assert!(!url.as_str().contains("secret"), "{url}");
        assert!(url.as_str().contains("after=abc"));
        assert!(client.follow("act_1", "https://evil.example/x").is_err());
        assert_eq!(
            InsightsClient::new(
                "http://127.0.0.1:9",
                "v27.0",
                SecretString::from(" ".to_owned()),
                Duration::from_secs(1),
                Patience::default()
            )
            .unwrap_err(),
            InsightsError::NoToken
        );
    }
}
