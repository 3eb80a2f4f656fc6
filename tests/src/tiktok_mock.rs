//! A loopback TikTok Events API for tests: `POST /open_api/v1.3/event/track/` that holds every
//! request to TikTok's documented contract, refuses what TikTok refuses (HTTP 200 with `code`
//! 40002, 40104 or 40105, as TikTok answers), records it, and otherwise answers as scripted:
//! `code` 0, TikTok's error codes, or an HTTP error.
//!
//! The rules are written from TikTok's documents, not from wacapi's code; each cites its source:
//! - [A] TikTok API for Business, Events API 2.0, "Report App, Web, Offline, or CRM Events"
//!   (doc 1771101303285761): fields, per-source scopes, the `lead` object, currencies, limits.
//! - [B] TikTok Ads Manager help, "How to Adopt TikTok's Updated Standard Events", May 2025.
//! - [C] "About supported standard events", May 2025; [D] "Supported events for offline event
//!   sets", May 2025; [H] "About reserved events", Sep 2025.
//! - [I] TikTok's Business API SDK, `tiktok_code.py` (return codes).
//!
//! Besides refusals, the mock records violations: anything wacapi must never send even where
//! TikTok would take it (a renamed or sunsetting event name, clear personal data, an event id
//! repeated in one request). Tests assert there are none.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

/// The access token the mock accepts.
pub const MOCK_TIKTOK_TOKEN: &str = "tiktok-test-token-0123";

/// One scripted answer: an HTTP status and TikTok's answer object.
#[derive(Debug, Clone)]
pub struct TikTokReply {
    /// HTTP status.
    pub status: u16,
    /// The answer body.
    pub body: Value,
}

impl TikTokReply {
    /// HTTP 200 with TikTok's error `code` and `message`.
    pub fn code(code: i64, message: &str) -> Self {
        Self {
            status: 200,
            body: json!({"code": code, "message": message, "request_id": format!("mock-{code}"), "data": {}}),
        }
    }
}

/// A request the mock received.
#[derive(Debug, Clone)]
pub struct TikTokReceived {
    /// The `Access-Token` header.
    pub token: String,
    /// The body.
    pub body: Value,
    /// The `code` answered (0: taken).
    pub code: i64,
}

#[derive(Default)]
struct Inner {
    script: Mutex<VecDeque<TikTokReply>>,
    /// Requests with an event whose `event` is this name are answered 40002.
    refuse_event: Mutex<Option<String>>,
    received: Mutex<Vec<TikTokReceived>>,
    violations: Mutex<Vec<String>>,
    counter: AtomicUsize,
}

/// A running mock.
#[derive(Clone)]
pub struct MockTikTok {
    /// Its base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    inner: Arc<Inner>,
}

impl MockTikTok {
    /// Starts a mock on a free loopback port, on the current tokio runtime.
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/open_api/v1.3/event/track/", post(track))
            .with_state(Arc::clone(&inner));
        let url = crate::serve_loopback(app).await;
        Self { url, inner }
    }

    /// Answers the next requests with these replies, in order (then `code` 0).
    pub fn script(&self, replies: impl IntoIterator<Item = TikTokReply>) {
        self.inner.script.lock().expect("lock").extend(replies);
    }

    /// Any request carrying an event named `event` is refused with 40002 (invalid parameter).
    pub fn refuse_event(&self, event: &str) {
        *self.inner.refuse_event.lock().expect("lock") = Some(event.to_owned());
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<TikTokReceived> {
        self.inner.received.lock().expect("lock").clone()
    }

    /// The events of every request answered `code` 0, in order.
    pub fn accepted_events(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.code == 0)
            .flat_map(|r| r.body["data"].as_array().cloned().unwrap_or_default())
            .collect()
    }

    /// Contract violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        self.inner.violations.lock().expect("lock").clone()
    }
}

async fn track(
    State(inner): State<Arc<Inner>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let mut findings = Findings::default();
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            findings.refusals.push(format!("body is not JSON: {e}"));
            Value::Null
        }
    };
    let token = headers
        .get("access-token")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // [A] header `Access-Token`: Required. [I]: 40104 empty access token, 40105 invalid.
    let token_code = match token.as_str() {
        "" => Some((40104, "Access token is empty")),
        MOCK_TIKTOK_TOKEN => None,
        _ => Some((40105, "The access token is invalid or has been revoked.")),
    };
    if headers.contains_key("authorization") {
        findings
            .violations
            .push("an Authorization header (TikTok takes Access-Token)".into());
    }
    let content_type = headers
        .get("content-type")
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned);
    check_body(&body, content_type.as_deref(), &mut findings);
    let refused_by_test = inner
        .refuse_event
        .lock()
        .expect("lock")
        .clone()
        .is_some_and(|name| {
            body["data"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["event"] == name.as_str())
        });
    {
        let mut violations = inner.violations.lock().expect("lock");
        if let Some((_, message)) = token_code {
            violations.push(format!("access token refused: {message}"));
        }
        violations.extend(findings.refusals.iter().map(|r| format!("refused: {r}")));
        violations.extend(findings.violations);
    }
    let reply = if let Some((code, message)) = token_code {
        TikTokReply::code(code, message)
    } else if let Some(first) = findings.refusals.first() {
        // [A] Response: errors are HTTP 200 with a non-zero `code`; [I] 40002 parameter error.
        TikTokReply::code(40002, &format!("Invalid parameter: {first}"))
    } else {
        match inner.script.lock().expect("lock").pop_front() {
            Some(reply) => reply,
            None if refused_by_test => TikTokReply::code(40002, "Invalid value for event"),
            None => {
                let n = inner.counter.fetch_add(1, Ordering::SeqCst);
                TikTokReply {
                    status: 200,
                    body: json!({"code": 0, "message": "OK", "request_id": format!("mock-ok-{n}"), "data": {}}),
                }
            }
        }
    };
    let code = if reply.status == 200 {
        reply.body["code"].as_i64().unwrap_or(-1)
    } else {
        -1
    };
    inner
        .received
        .lock()
        .expect("lock")
        .push(TikTokReceived { token, body, code });
    (
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        reply.body.to_string(),
    )
}

fn is_sha256(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// [B]: `SubmitForm` became `Lead` and `CompletePayment` became `Purchase` on May 1 2025 (the
/// old names still work, converted by TikTok); `ClickButton` and `PlaceAnOrder` are
/// soft-deprecated until their 2027 sunset. TikTok takes them; wacapi must not send them.
const LEGACY: &[&str] = &[
    "SubmitForm",
    "CompletePayment",
    "ClickButton",
    "PlaceAnOrder",
];
/// [D] (May 2025): the standard events an offline event set takes.
const OFFLINE: &[&str] = &[
    "Purchase",
    "Contact",
    "Subscribe",
    "Lead",
    "AddPaymentInfo",
    "AddToCart",
    "AddToWishlist",
    "CompleteRegistration",
    "Download",
    "InitiateCheckout",
    "Search",
    "ViewContent",
];
/// [H] (Sep 2025): names reserved by TikTok, which no custom event may take.
const RESERVED: &[&str] = &[
    "AddBilling",
    "Browse",
    "Checkout",
    "ClickForm",
    "ClickInDownloadPage",
    "ClickToDownload",
    "Consult",
    "ConsultByPhone",
    "CompletePayment",
    "Registration",
    "StartCheckout",
    "ViewConsultationPage",
    "ViewDownloadPage",
    "ViewForm",
];
/// [A] `properties.currency`: "List of currencies currently supported".
const CURRENCIES: &[&str] = &[
    "AED", "ARS", "AUD", "BDT", "BHD", "BIF", "BOB", "BRL", "CAD", "CHF", "CLP", "CNY", "COP",
    "CRC", "CZK", "DKK", "DZD", "EGP", "EUR", "GBP", "GTQ", "HKD", "HNL", "HUF", "IDR", "ILS",
    "INR", "ISK", "JPY", "KES", "KHR", "KRW", "KWD", "KZT", "MAD", "MOP", "MXN", "MYR", "NGN",
    "NIO", "NOK", "NZD", "OMR", "PEN", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RUB", "SAR",
    "SEK", "SGD", "THB", "TRY", "TWD", "UAH", "USD", "VES", "VND", "ZAR",
];

/// What a request got wrong: refusals (TikTok answers 40002) and violations (TikTok would take
/// it, wacapi must not send it).
#[derive(Default)]
struct Findings {
    refusals: Vec<String>,
    violations: Vec<String>,
}

/// [A] `user`: which keys each `event_source` takes. email and phone everywhere; `external_id`
/// "For web and CRM events only"; `ttclid`, `ttp` "For web events only"; `ip`, `user_agent`,
/// `locale` "For web and app events only"; the device ids for app events.
fn user_keys(source: &str) -> &'static [&'static str] {
    match source {
        "offline" => &["email", "phone"],
        "crm" => &["email", "phone", "external_id"],
        "web" => &[
            "email",
            "phone",
            "external_id",
            "ttclid",
            "ttp",
            "ip",
            "user_agent",
            "locale",
        ],
        _ => &[
            "email",
            "phone",
            "ip",
            "user_agent",
            "locale",
            "idfa",
            "idfv",
            "gaid",
            "att_status",
        ],
    }
}

fn check_body(body: &Value, content_type: Option<&str>, f: &mut Findings) {
    // [A] header: "Content-Type ... Allowed format: application/json".
    if !content_type.is_some_and(|c| c.starts_with("application/json")) {
        f.refusals.push(format!("Content-Type {content_type:?}"));
    }
    let Some(top) = body.as_object() else {
        f.refusals.push("the body is not a JSON object".into());
        return;
    };
    for key in top.keys() {
        if ![
            "event_source",
            "event_source_id",
            "data",
            "test_event_code",
            "partner_name",
        ]
        .contains(&key.as_str())
        {
            f.refusals.push(format!("unknown top-level field {key}"));
        }
    }
    // [A] `event_source`: Required, one of web, app, offline, crm.
    let source = body["event_source"].as_str().unwrap_or_default();
    if !["web", "app", "offline", "crm"].contains(&source) {
        f.refusals
            .push(format!("event_source {}", body["event_source"]));
    }
    // [A] `event_source_id`: Required.
    if body["event_source_id"].as_str().is_none_or(str::is_empty) {
        f.refusals.push("no event_source_id".into());
    }
    // [A] `data`: Required; "up to 1,000 events in one request ... the entire request will be
    // rejected".
    let Some(data) = body["data"].as_array() else {
        f.refusals.push("no data array".into());
        return;
    };
    if data.is_empty() || data.len() > 1000 {
        f.refusals
            .push(format!("{} events in one request", data.len()));
    }
    let text = body.to_string();
    if text.contains('@') || text.contains("\"+") {
        f.violations
            .push("an email or a phone number in clear".into());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut ids = HashSet::new();
    for (i, e) in data.iter().enumerate() {
        check_event(i, e, source, now, f);
        let id = e["event_id"].as_str().unwrap_or_default();
        if id.is_empty() || !ids.insert(id.to_owned()) {
            f.violations.push(format!(
                "data[{i}].event_id {id:?} empty or repeated in one request"
            ));
        }
    }
}

fn check_event(i: usize, e: &Value, source: &str, now: i64, f: &mut Findings) {
    let Some(event) = e.as_object() else {
        f.refusals.push(format!("data[{i}] is not an object"));
        return;
    };
    for key in event.keys() {
        if ![
            "event",
            "event_time",
            "event_id",
            "user",
            "properties",
            "page",
            "app",
            "ad",
            "limited_data_use",
            "lead",
        ]
        .contains(&key.as_str())
        {
            f.refusals.push(format!("data[{i}]: unknown field {key}"));
        }
    }
    // [A] `event`: Required. "For offline events, it can only be a Standard Event. For CRM
    // events, it can only be a Custom Event." (Its own CRM examples send standard names, so the
    // mock refuses only names no custom event may take: [H] reserved names.)
    let name = e["event"].as_str().unwrap_or_default();
    if name.is_empty() {
        f.refusals.push(format!("data[{i}]: no event"));
    }
    match source {
        "offline" if !OFFLINE.contains(&name) && !LEGACY.contains(&name) => f.refusals.push(
            format!("data[{i}]: {name:?} is not a standard event of offline event sets"),
        ),
        "crm" if RESERVED.contains(&name) => f.refusals.push(format!(
            "data[{i}]: {name:?} is reserved, no custom event name"
        )),
        "crm"
            if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') || name.len() > 50 =>
        {
            f.refusals
                .push(format!("data[{i}]: custom event name {name:?}"))
        }
        _ => {}
    }
    if LEGACY.contains(&name) {
        f.violations.push(format!(
            "data[{i}]: {name:?} was renamed or is sunsetting (How to Adopt TikTok's Updated Standard Events, May 2025)"
        ));
    }
    // [A] `event_time`: Required, "Unix timestamp measured in seconds".
    match e["event_time"].as_i64() {
        Some(t) if t <= now + 60 && t < 100_000_000_000 => {}
        other => f
            .refusals
            .push(format!("data[{i}]: event_time {other:?} not unix seconds")),
    }
    // [A] `lead`: "Required for CRM events"; `lead_id` "Required for CRM events"; only
    // `lead_id` and `lead_event_source`; "should only be used when reporting CRM Events".
    match (source, e.get("lead")) {
        ("crm", Some(lead)) => {
            if lead["lead_id"]
                .as_str()
                .is_none_or(|id| id.trim().is_empty())
            {
                f.refusals.push(format!("data[{i}]: lead.lead_id missing"));
            }
            for key in lead.as_object().into_iter().flat_map(|l| l.keys()) {
                if key != "lead_id" && key != "lead_event_source" {
                    f.refusals
                        .push(format!("data[{i}]: unknown lead field {key}"));
                }
            }
        }
        ("crm", None) => f
            .refusals
            .push(format!("data[{i}]: a CRM event without lead.lead_id")),
        (_, Some(_)) => f
            .violations
            .push(format!("data[{i}]: lead on a {source} event")),
        _ => {}
    }
    // [A] `page` "Required for web events"; `app` "Required for app events".
    if source == "web" && e["page"]["url"].as_str().is_none() {
        f.refusals
            .push(format!("data[{i}]: a web event without page.url"));
    }
    if source == "app" && e["app"]["app_id"].as_str().is_none() {
        f.refusals
            .push(format!("data[{i}]: an app event without app.app_id"));
    }
    check_user(i, e.get("user"), source, f);
    if let Some(p) = e.get("properties") {
        check_properties(i, p, source, f);
    }
}

fn check_user(i: usize, user: Option<&Value>, source: &str, f: &mut Findings) {
    let Some(user) = user else {
        if source != "crm" {
            f.violations.push(format!("data[{i}]: no user to match"));
        }
        return;
    };
    let Some(user) = user.as_object() else {
        f.refusals.push(format!("data[{i}]: user is not an object"));
        return;
    };
    if user.is_empty() {
        f.violations
            .push(format!("data[{i}]: a user without any key"));
    }
    for (key, value) in user {
        if !user_keys(source).contains(&key.as_str()) {
            f.refusals.push(format!(
                "data[{i}]: user.{key} is not taken by {source} events"
            ));
            continue;
        }
        // [A] email, phone, external_id: "SHA-256 hashing is required".
        if ["email", "phone", "external_id"].contains(&key.as_str()) {
            let hashed = match value {
                Value::Array(items) => !items.is_empty() && items.iter().all(is_sha256),
                other => is_sha256(other),
            };
            if !hashed {
                f.refusals
                    .push(format!("data[{i}]: user.{key} is not a SHA-256"));
            }
        }
    }
}

fn check_properties(i: usize, p: &Value, source: &str, f: &mut Findings) {
    let Some(props) = p.as_object() else {
        f.refusals
            .push(format!("data[{i}]: properties is not an object"));
        return;
    };
    for key in props.keys() {
        let known = [
            "value",
            "currency",
            "content_type",
            "content_ids",
            "contents",
            "num_items",
            "search_string",
            "description",
            "order_id",
            "shop_id",
        ]
        .contains(&key.as_str());
        // [A] `customer_type`: "Only for app and web events".
        let web_app = key == "customer_type" && (source == "web" || source == "app");
        if !known && !web_app {
            f.refusals
                .push(format!("data[{i}]: unknown properties field {key}"));
        }
    }
    // [A] `currency`: ISO 4217, from the list of currencies currently supported.
    if let Some(currency) = p.get("currency")
        && !currency.as_str().is_some_and(|c| CURRENCIES.contains(&c))
    {
        f.refusals
            .push(format!("data[{i}]: currency {currency} is not supported"));
    }
    // [A] `value`: a float, "should not contain any currency symbols ... or commas".
    if p.get("value").is_some_and(|v| !v.is_number()) {
        f.refusals.push(format!("data[{i}]: value is not a number"));
    }
    // [A] `content_type`: product or product_group.
    if let Some(t) = p.get("content_type")
        && !matches!(t.as_str(), Some("product" | "product_group"))
    {
        f.refusals.push(format!("data[{i}]: content_type {t}"));
    }
    // [A] `contents[]`: price, content_id, content_category, content_name, brand (quantity in
    // every example).
    if let Some(contents) = p.get("contents") {
        let Some(items) = contents.as_array() else {
            f.refusals
                .push(format!("data[{i}]: contents is not a list"));
            return;
        };
        for item in items {
            let Some(item) = item.as_object() else {
                f.refusals
                    .push(format!("data[{i}]: a contents item is not an object"));
                continue;
            };
            for (key, value) in item {
                let ok = match key.as_str() {
                    "price" | "quantity" => value.is_number(),
                    "content_id" | "content_category" | "content_name" | "brand" => {
                        value.is_string()
                    }
                    _ => false,
                };
                if !ok {
                    f.refusals
                        .push(format!("data[{i}]: contents[].{key} = {value}"));
                }
            }
        }
    }
}
