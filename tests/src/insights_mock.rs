//! A loopback Ads Insights API for tests: `GET /{version}/act_{id}/insights` that holds every
//! request to what Meta documents and refuses what Meta refuses, answers the day rows of its
//! fixture that fall in the requested `time_range`, a page at a time with `paging.next`, and
//! on request throttles or refuses the token.
//!
//! From Meta's documents (Ads Insights API, Apr 27, 2026; Ad Account Insights reference;
//! Marketing API Rate Limiting, May 5, 2026; Ads Insights API Error Codes, May 21, 2026;
//! Graph API error handling): `level` is `ad`, `adset`, `campaign` or `account`;
//! `time_increment` 1–90, `monthly` or `all_days`; `time_range` a JSON object of `since` and
//! `until` days, `since` not after `until`, else code 100; a field outside the insights fields
//! is code 100; a bad or missing token code 190 (`OAuthException`); a token without `ads_read`
//! code 200; throttling code 80000 (Ads Insights business use case) with an
//! `X-Business-Use-Case-Usage` header carrying `estimated_time_to_regain_access`; `spend` is a
//! decimal string; `paging.cursors` and `paging.next` (absent on the last page).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

/// The token the mock accepts.
pub const MOCK_ADS_TOKEN: &str = "EAAG-ads-read-token";

/// Fields the Insights API takes that a wacapi request may name (a subset of the reference's).
const KNOWN_FIELDS: &[&str] = &[
    "account_currency",
    "account_id",
    "account_name",
    "ad_id",
    "ad_name",
    "adset_id",
    "adset_name",
    "campaign_id",
    "campaign_name",
    "clicks",
    "date_start",
    "date_stop",
    "impressions",
    "spend",
];

/// What the next requests are answered, before the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scripted {
    /// Code 80000 (Ads Insights rate limit) with a regain estimate of 0 minutes.
    Throttle,
    /// Code 190, invalid token.
    BadToken,
    /// Code 200, missing `ads_read`.
    NoPermission,
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct InsightsRequest {
    /// The path (`/v27.0/act_1/insights`).
    pub path: String,
    /// The query, decoded.
    pub query: BTreeMap<String, String>,
    /// The status answered.
    pub status: u16,
}

#[derive(Default)]
struct Inner {
    rows: BTreeMap<String, Vec<Value>>,
    page_size: usize,
    script: Mutex<VecDeque<Scripted>>,
    received: Mutex<Vec<InsightsRequest>>,
    violations: Mutex<Vec<String>>,
    url: Mutex<String>,
    counter: AtomicUsize,
}

/// A running mock.
#[derive(Clone)]
pub struct MockInsights {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    inner: Arc<Inner>,
}

impl MockInsights {
    /// Starts a mock serving `rows` (ad account `act_<id>` → its day rows, as Meta writes them)
    /// in pages of `page_size`.
    pub async fn start(rows: BTreeMap<String, Vec<Value>>, page_size: usize) -> Self {
        let inner = Arc::new(Inner {
            rows,
            page_size: page_size.max(1),
            ..Inner::default()
        });
        let app = Router::new()
            .route("/{version}/{account}/insights", get(insights))
            .with_state(Arc::clone(&inner));
        let url = crate::serve_loopback(app).await;
        *inner.url.lock().expect("lock") = url.clone();
        Self { url, inner }
    }

    /// Answers the next requests with these, in order (then the data).
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.inner.script.lock().expect("lock").extend(answers);
    }

    /// Every request received.
    pub fn received(&self) -> Vec<InsightsRequest> {
        self.inner.received.lock().expect("lock").clone()
    }

    /// Contract violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().expect("lock").clone()
    }
}

fn error(status: StatusCode, code: i64, kind: &str, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        json!({"error": {"message": message, "type": kind, "code": code,
                         "fbtrace_id": "mock-insights"}})
        .to_string(),
    )
        .into_response()
}

async fn insights(
    State(inner): State<Arc<Inner>>,
    Path((version, account)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let query: BTreeMap<String, String> = form_urlencoded_pairs(raw.as_deref().unwrap_or(""));
    let response = answer(&inner, &version, &account, &query, &headers);
    inner.received.lock().expect("lock").push(InsightsRequest {
        path: format!("/{version}/{account}/insights"),
        query,
        status: response.status().as_u16(),
    });
    response
}

fn answer(
    inner: &Inner,
    version: &str,
    account: &str,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
) -> Response {
    let bad = |message: &str| {
        inner
            .violations
            .lock()
            .expect("lock")
            .push(message.to_owned());
        error(StatusCode::BAD_REQUEST, 100, "OAuthException", message)
    };
    if query.contains_key("access_token") {
        inner
            .violations
            .lock()
            .expect("lock")
            .push("access_token in the URL (it belongs in the Authorization header)".into());
    }
    let token = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    if token != Some(MOCK_ADS_TOKEN) {
        return error(
            StatusCode::BAD_REQUEST,
            190,
            "OAuthException",
            "Invalid OAuth access token - Cannot parse access token",
        );
    }
    if let Some(scripted) = inner.script.lock().expect("lock").pop_front() {
        return match scripted {
            Scripted::Throttle => {
                let mut response = error(
                    StatusCode::BAD_REQUEST,
                    80000,
                    "OAuthException",
                    "There have been too many calls from this ad-account. Wait a bit and try again.",
                );
                let usage = json!({ account.trim_start_matches("act_"): [{"type": "ads_insights",
                    "call_count": 100, "total_cputime": 30, "total_time": 40,
                    "estimated_time_to_regain_access": 0}]});
                if let Ok(v) = HeaderValue::from_str(&usage.to_string()) {
                    response
                        .headers_mut()
                        .insert("x-business-use-case-usage", v);
                }
                response
            }
            Scripted::BadToken => error(
                StatusCode::BAD_REQUEST,
                190,
                "OAuthException",
                "Error validating access token: Session has expired",
            ),
            Scripted::NoPermission => error(
                StatusCode::FORBIDDEN,
                200,
                "OAuthException",
                "(#200) Ad account owner has NOT grant ads_management or ads_read permission",
            ),
        };
    }
    if !version.starts_with('v') {
        return bad("the path has no Graph API version");
    }
    let Some(rows) = inner.rows.get(account) else {
        return bad("unknown ad account (act_<id>)");
    };
    if !matches!(
        query.get("level").map(String::as_str),
        Some("ad" | "adset" | "campaign" | "account")
    ) {
        return bad("level must be ad, adset, campaign or account");
    }
    let increment_ok = match query.get("time_increment").map(String::as_str) {
        Some("monthly" | "all_days") => true,
        Some(n) => n.parse::<u32>().is_ok_and(|n| (1..=90).contains(&n)),
        None => false,
    };
    if !increment_ok || query.get("time_increment").map(String::as_str) != Some("1") {
        return bad("time_increment must be 1 (a row per day)");
    }
    let range: Option<Value> = query
        .get("time_range")
        .and_then(|r| serde_json::from_str(r).ok());
    let (Some(since), Some(until)) = (
        range.as_ref().and_then(|r| r["since"].as_str()),
        range.as_ref().and_then(|r| r["until"].as_str()),
    ) else {
        return bad("time_range must be {\"since\": day, \"until\": day}");
    };
    if wacapi_shared::report::day_start(since).is_none()
        || wacapi_shared::report::day_start(until).is_none()
        || since > until
    {
        return bad("time_range days invalid or since after until");
    }
    let fields = query.get("fields").cloned().unwrap_or_default();
    for f in fields.split(',') {
        if !KNOWN_FIELDS.contains(&f) {
            return bad(&format!("{f} is not valid for fields param"));
        }
    }
    for required in ["ad_id", "spend", "date_start", "account_currency"] {
        if !fields.split(',').any(|f| f == required) {
            inner
                .violations
                .lock()
                .expect("lock")
                .push(format!("fields leaves out {required}"));
        }
    }
    let in_range: Vec<&Value> = rows
        .iter()
        .filter(|r| {
            let day = r["date_start"].as_str().unwrap_or_default();
            day >= since && day <= until
        })
        .collect();
    let start: usize = query
        .get("after")
        .and_then(|a| a.strip_prefix("cursor-"))
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    let end = (start + inner.page_size).min(in_range.len());
    let page: Vec<Value> = in_range[start.min(end)..end]
        .iter()
        .map(|r| {
            let mut r = (*r).clone();
            r["date_stop"] = r["date_start"].clone();
            r
        })
        .collect();
    inner.counter.fetch_add(1, Ordering::SeqCst);
    let mut paging =
        json!({"cursors": {"before": format!("cursor-{start}"), "after": format!("cursor-{end}")}});
    if end < in_range.len() {
        let mut next: Vec<(String, String)> = query
            .iter()
            .filter(|(k, _)| k.as_str() != "after")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        next.push(("after".into(), format!("cursor-{end}")));
        // Meta's next links carry the token when the request did; this one carries one to be
        // dropped, so a client that follows it as given would be caught above.
        next.push(("access_token".into(), "token-in-the-next-link".into()));
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(next)
            .finish();
        let base = inner.url.lock().expect("lock").clone();
        paging["next"] = json!(format!("{base}/{version}/{account}/insights?{query}"));
    }
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        json!({"data": page, "paging": paging}).to_string(),
    )
        .into_response()
}

fn form_urlencoded_pairs(raw: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(raw.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
