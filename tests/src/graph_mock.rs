//! A loopback Graph API for tests: `POST /{version}/{dataset_id}/events` that checks every
//! request against Meta's contract (auth header, shape, hashing, ≤ 1,000 events, no raw personal
//! data), records it, and answers as scripted: success, Meta error objects, or a hang.
//!
//! Versions follow Meta's documents, from the mock's own copy of the dates ([`VERSIONS`], not
//! wacapi's table): a call to a version past its Marketing API expiry is auto-upgraded and
//! answered with `X-Ad-Api-Version-Warning` (or, with [`MockGraph::refuse_deprecated`], refused
//! with code 2635, as before auto-upgrade and on affected endpoints); a call within a version's
//! last 90 days carries the "will be deprecated" form of the header, as observed live.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

/// The access token the mock accepts.
pub const MOCK_TOKEN: &str = "EAAG-test-token";

/// A calendar day: (year, month, day).
pub type Day = (i64, i64, i64);

/// Marketing API versions as Meta's "Marketing API version history" lists them
/// (developers.facebook.com/documentation/ads-commerce/marketing-api/marketing-api-changelog/versions,
/// newest copy, read 2026-12-03): (version, expiration date as year, month, day), newest first;
/// `None` is Meta's "TBD". Copied from Meta's page, not from wacapi, so the mock disagrees with
/// the code when the code is wrong.
pub const VERSIONS: &[(&str, Option<Day>)] = &[
    ("v27.0", None),
    ("v26.0", None),
    ("v25.0", Some((2027, 2, 23))),
    ("v24.0", Some((2026, 11, 10))),
    ("v23.0", Some((2026, 6, 9))),
    ("v22.0", Some((2026, 2, 19))),
];

/// The header of an auto-upgraded call (Marketing API Versioning FAQ, "Can I check if any
/// specific API call has been auto-upgraded?").
pub const VERSION_WARNING_HEADER: &str = "x-ad-api-version-warning";

/// Days from 1970-01-01 to a civil date (Hinnant's days_from_civil; the mock's own copy).
fn days_from_civil((y, m, d): Day) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What Meta does with a call to `version` on day `today` (days since 1970-01-01): the version
/// warning text it adds, and whether the version is past its expiry.
fn version_answer(version: &str, today: i64) -> (Option<String>, bool) {
    let number = |v: &str| -> Option<(u32, u32)> {
        let (major, minor) = v.strip_prefix('v')?.split_once('.')?;
        Some((major.parse().ok()?, minor.parse().ok()?))
    };
    let Some(wanted) = number(version) else {
        return (None, false);
    };
    let expired = |expiry: Option<Day>| expiry.is_some_and(|e| today >= days_from_civil(e));
    // "The upgrade will apply on any deprecated version to the next available version."
    let next = VERSIONS
        .iter()
        .rev()
        .find(|(v, e)| number(v) > Some(wanted) && !expired(*e))
        .map_or(VERSIONS[0].0, |(v, _)| v);
    match VERSIONS.iter().find(|(v, _)| number(v) == Some(wanted)) {
        Some((_, expiry)) if expired(*expiry) => (
            Some(format!(
                "The call has been auto-upgraded to {next} as {version} has been deprecated"
            )),
            true,
        ),
        Some((_, Some(e))) if today + 90 >= days_from_civil(*e) => (
            Some(format!(
                "The call has been auto-upgraded to {next} as {version} will be deprecated."
            )),
            false,
        ),
        Some(_) => (None, false),
        // Older than every row: long expired. Newer: not released yet, as far as the copy knows.
        None if VERSIONS.last().and_then(|(v, _)| number(v)) > Some(wanted) => (
            Some(format!(
                "The call has been auto-upgraded to {next} as {version} has been deprecated"
            )),
            true,
        ),
        None => (None, false),
    }
}

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Reply {
    /// This status and JSON body.
    Status(u16, Value),
    /// No answer for this long (longer than the client's timeout: a hang), then a 504.
    Hang(Duration),
}

impl Reply {
    /// A Meta error object with `code` (and `subcode`) under HTTP `status`.
    pub fn error(status: u16, code: i64, subcode: Option<i64>) -> Self {
        Self::error_with_message(status, code, subcode, &format!("mock error {code}"))
    }

    /// A Meta error object with this message.
    pub fn error_with_message(status: u16, code: i64, subcode: Option<i64>, message: &str) -> Self {
        let mut error = json!({"message": message, "type": "OAuthException",
                               "code": code, "fbtrace_id": "mock-trace-error"});
        if let Some(sub) = subcode {
            error["error_subcode"] = json!(sub);
        }
        Self::Status(status, json!({ "error": error }))
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The Graph API version in the path.
    pub version: String,
    /// The dataset id in the path.
    pub dataset_id: String,
    /// The body.
    pub body: Value,
    /// The status answered.
    pub status: u16,
    /// Whether the mock kept the events (every 200, and the 500s of
    /// [`MockGraph::process_then_fail_every`]).
    pub processed: bool,
    /// The `X-Ad-Api-Version-Warning` answered, if any.
    pub version_warning: Option<String>,
}

#[derive(Default)]
struct Inner {
    script: Mutex<VecDeque<Reply>>,
    poison: Mutex<HashMap<String, Reply>>,
    received: Mutex<Vec<Received>>,
    violations: Mutex<Vec<String>>,
    counter: AtomicUsize,
    /// Every n-th request is processed and then answered 500 (0: never).
    fail_after_processing: AtomicUsize,
    requests: AtomicUsize,
    /// Answer calls to an expired version with code 2635 instead of auto-upgrading them.
    refuse_deprecated: AtomicBool,
    /// "Today" in days since 1970-01-01 for the version calendar (`i64::MIN`: the clock).
    today: AtomicI64,
}

/// A running mock.
#[derive(Clone)]
pub struct MockGraph {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    inner: Arc<Inner>,
}

impl MockGraph {
    /// Starts a mock on a free loopback port, on the current tokio runtime.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner {
            today: AtomicI64::new(i64::MIN),
            ..Inner::default()
        });
        let app = Router::new()
            .route("/{version}/{dataset}/events", post(events))
            .with_state(Arc::clone(&inner));
        let url = crate::serve_loopback(app).await;
        Self { url, inner }
    }

    /// Answers the next requests with these replies, in order (then 200s).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.inner.script.lock().expect("lock").extend(replies);
    }

    /// Any request carrying an event with this `ctwa_clid` is refused with code 100 (subcode
    /// 2804003, "too old").
    pub fn poison_click(&self, ctwa_clid: &str) {
        self.poison_click_with(ctwa_clid, Reply::error(400, 100, Some(2_804_003)));
    }

    /// Any request carrying an event with this `ctwa_clid` is answered `reply`.
    pub fn poison_click_with(&self, ctwa_clid: &str, reply: Reply) {
        self.inner
            .poison
            .lock()
            .expect("lock")
            .insert(ctwa_clid.to_owned(), reply);
    }

    /// Every `n`-th request is processed (its events kept) and then answered 500, as when Meta
    /// times out after doing the work.
    pub fn process_then_fail_every(&self, n: usize) {
        self.inner.fail_after_processing.store(n, Ordering::SeqCst);
    }

    /// Calls to a version past its expiry are refused with HTTP 400, code 2635 ("You are calling
    /// a deprecated version of the Ads API"), as before Meta's auto-upgrade (May 2024) and still
    /// on endpoints a newer version affects, or with auto-upgrade turned off in the app.
    pub fn refuse_deprecated(&self) {
        self.inner.refuse_deprecated.store(true, Ordering::SeqCst);
    }

    /// Pins the version calendar's "today" (year, month, day) instead of the clock.
    pub fn set_today(&self, date: Day) {
        self.inner
            .today
            .store(days_from_civil(date), Ordering::SeqCst);
    }

    /// The events of every request the mock kept, in order (duplicates included).
    pub fn processed_events(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.processed)
            .flat_map(|r| r.body["data"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Received> {
        self.inner.received.lock().expect("lock").clone()
    }

    /// The events of every request answered 200, in order.
    pub fn accepted_events(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.status == 200)
            .flat_map(|r| r.body["data"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Contract violations seen (must be empty).
    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().expect("lock").clone()
    }
}

async fn events(
    State(inner): State<Arc<Inner>>,
    Path((version, dataset)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, String) {
    let mut violations = Vec::new();
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            violations.push(format!("body is not JSON: {e}"));
            Value::Null
        }
    };
    check_request(
        &version,
        &dataset,
        query.as_deref(),
        &headers,
        &body,
        &mut violations,
    );
    if !violations.is_empty() {
        inner.violations.lock().expect("lock").extend(violations);
    }
    let scripted = inner.script.lock().expect("lock").pop_front();
    let poisoned = {
        let poison = inner.poison.lock().expect("lock");
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|e| poison.get(e["user_data"]["ctwa_clid"].as_str().unwrap_or_default()))
            .cloned()
    };
    let n = inner.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let every = inner.fail_after_processing.load(Ordering::SeqCst);
    let fail_after_processing = scripted.is_none() && every > 0 && n % every == 0;
    let today = match inner.today.load(Ordering::SeqCst) {
        i64::MIN => now_seconds().div_euclid(86_400),
        pinned => pinned,
    };
    let (version_warning, deprecated) = version_answer(&version, today);
    let refused = deprecated && inner.refuse_deprecated.load(Ordering::SeqCst);
    let (status, answer) = match scripted.or(poisoned) {
        // The version is checked before anything else: a refused call does nothing.
        _ if refused => (
            400,
            json!({"error": {"message": format!(
                "(#2635) You are calling a deprecated version of the Ads API. Please update to the latest version: {}.",
                VERSIONS[0].0),
                "type": "OAuthException", "code": 2635, "fbtrace_id": "mock-trace-deprecated"}}),
        ),
        None if fail_after_processing => (
            500,
            json!({"error": {"message": "An unexpected error has occurred.", "code": 2,
                             "is_transient": true, "fbtrace_id": "mock-after-processing"}}),
        ),
        Some(Reply::Hang(d)) => {
            // By the time this answers, the client has given up: not an accepted request.
            tokio::time::sleep(d).await;
            (504, json!({"error": {"message": "mock hang", "code": 2}}))
        }
        Some(Reply::Status(status, value)) => (status, value),
        None => (200, success(&inner, &body)),
    };
    inner.received.lock().expect("lock").push(Received {
        version,
        dataset_id: dataset,
        body,
        status,
        processed: !refused && (status == 200 || fail_after_processing),
        version_warning: version_warning.clone().filter(|_| !refused),
    });
    let mut answer_headers = HeaderMap::new();
    // On every answer of an auto-upgraded call, success or error.
    if let Some(text) = version_warning.filter(|_| !refused)
        && let Ok(value) = HeaderValue::from_str(&text)
    {
        answer_headers.insert(VERSION_WARNING_HEADER, value);
    }
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        answer_headers,
        answer.to_string(),
    )
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn success(inner: &Inner, body: &Value) -> Value {
    let n = inner.counter.fetch_add(1, Ordering::SeqCst);
    json!({
        "events_received": body["data"].as_array().map_or(0, Vec::len),
        "messages": [],
        "fbtrace_id": format!("mock-trace-{n}"),
    })
}

const EVENT_NAMES: [&str; 14] = [
    "Purchase",
    "LeadSubmitted",
    "InitiateCheckout",
    "AddToCart",
    "ViewContent",
    "OrderCreated",
    "OrderShipped",
    "OrderDelivered",
    "OrderCanceled",
    "OrderReturned",
    "CartAbandoned",
    "QualifiedLead",
    "RatingProvided",
    "ReviewProvided",
];

const HASHED_KEYS: [&str; 11] = [
    "em",
    "ph",
    "fn",
    "ln",
    "ct",
    "st",
    "zp",
    "country",
    "db",
    "ge",
    "external_id",
];

fn check_request(
    version: &str,
    dataset: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Value,
    v: &mut Vec<String>,
) {
    if !version.starts_with('v') || !version[1..].contains('.') {
        v.push(format!("version {version:?} is not vNN.N"));
    }
    if dataset.is_empty() || !dataset.bytes().all(|b| b.is_ascii_digit()) {
        v.push(format!("dataset {dataset:?} is not numeric"));
    }
    if query.is_some_and(|q| q.contains("access_token")) {
        v.push("access token in the URL".into());
    }
    let auth = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if auth != format!("Bearer {MOCK_TOKEN}") {
        v.push("missing or wrong Authorization header".into());
    }
    let Some(data) = body["data"].as_array() else {
        v.push("no data array".into());
        return;
    };
    if data.is_empty() || data.len() > 1000 {
        v.push(format!("{} events in one request", data.len()));
    }
    let text = body.to_string();
    if text.contains('@') {
        v.push("an email in clear".into());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut ids = HashSet::new();
    for e in data {
        let name = e["event_name"].as_str().unwrap_or_default();
        if !EVENT_NAMES.contains(&name) {
            v.push(format!("event name {name:?}"));
        }
        match e["event_time"].as_i64() {
            Some(t) if t <= now + 60 && t > now - 7 * 86_400 => {}
            other => v.push(format!(
                "event_time {other:?} not seconds within the last 7 days"
            )),
        }
        if e["action_source"] != "business_messaging" {
            v.push("action_source".into());
        }
        // Meta's contract per channel (CAPI for Business Messaging onboarding guide, May 2026),
        // written out here rather than borrowed from wacapi's constants so a wrong key fails.
        let raw_keys: &[&str] = match e["messaging_channel"].as_str() {
            Some("whatsapp") => &["whatsapp_business_account_id", "ctwa_clid"],
            Some("messenger") => &["page_id", "page_scoped_user_id"],
            Some("instagram") => &["instagram_business_account_id", "ig_sid"],
            other => {
                v.push(format!("messaging_channel {other:?}"));
                &[]
            }
        };
        let id = e["event_id"].as_str().unwrap_or_default();
        if id.is_empty() || !ids.insert(id.to_owned()) {
            v.push(format!("event_id {id:?} empty or repeated in one request"));
        }
        let Some(ud) = e["user_data"].as_object() else {
            v.push("no user_data".into());
            continue;
        };
        for key in raw_keys {
            if ud
                .get(*key)
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                v.push(format!("no {key}"));
            }
        }
        for (key, value) in ud {
            if raw_keys.contains(&key.as_str()) {
                continue;
            }
            if !HASHED_KEYS.contains(&key.as_str()) {
                v.push(format!("unexpected user_data key {key}"));
                continue;
            }
            let ok = value.as_array().is_some_and(|list| {
                !list.is_empty()
                    && list.iter().all(|h| {
                        h.as_str().is_some_and(|h| {
                            h.len() == 64
                                && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                        })
                    })
            });
            if !ok {
                v.push(format!(
                    "user_data.{key} is not a list of lowercase SHA-256 hex"
                ));
            }
        }
        if name == "Purchase" {
            let cd = &e["custom_data"];
            let currency_ok = cd["currency"]
                .as_str()
                .is_some_and(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()));
            if !cd["value"].is_number() || !currency_ok {
                v.push("Purchase without value and ISO currency".into());
            }
        }
    }
}
