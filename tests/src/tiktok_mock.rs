//! A loopback TikTok Events API for tests: `POST /open_api/v1.3/event/track/` that checks
//! every request against TikTok's contract as wacapi reads it (the `Access-Token` header, the
//! body's shape, ≤ 1,000 events, `event_time` in seconds, every `user` value a lowercase
//! SHA-256, no clear personal data anywhere), records it, and answers as scripted: `code` 0,
//! TikTok's error codes, or an HTTP error.

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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
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
    let mut violations = Vec::new();
    let body: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            violations.push(format!("body is not JSON: {e}"));
            Value::Null
        }
    };
    let token = headers
        .get("access-token")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if token != MOCK_TIKTOK_TOKEN {
        violations.push("missing or wrong Access-Token header".into());
    }
    if headers.contains_key("authorization") {
        violations.push("an Authorization header (TikTok takes Access-Token)".into());
    }
    check_body(&body, &mut violations);
    if !violations.is_empty() {
        inner.violations.lock().expect("lock").extend(violations);
    }
    let refused = inner
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
    let reply = match inner.script.lock().expect("lock").pop_front() {
        Some(reply) => reply,
        None if refused => TikTokReply::code(40002, "Invalid value for event"),
        None => {
            let n = inner.counter.fetch_add(1, Ordering::SeqCst);
            TikTokReply {
                status: 200,
                body: json!({"code": 0, "message": "OK", "request_id": format!("mock-ok-{n}"), "data": {}}),
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

fn check_body(body: &Value, v: &mut Vec<String>) {
    if !matches!(body["event_source"].as_str(), Some("crm" | "offline")) {
        v.push(format!("event_source {}", body["event_source"]));
    }
    if body["event_source_id"].as_str().is_none_or(str::is_empty) {
        v.push("no event_source_id".into());
    }
    let Some(data) = body["data"].as_array() else {
        v.push("no data array".into());
        return;
    };
    if data.is_empty() || data.len() > 1000 {
        v.push(format!("{} events in one request", data.len()));
    }
    let text = body.to_string();
    if text.contains('@') || text.contains("+1") {
        v.push("an email or a phone number in clear".into());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut ids = HashSet::new();
    for e in data {
        let name = e["event"].as_str().unwrap_or_default();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            v.push(format!("event name {name:?}"));
        }
        match e["event_time"].as_i64() {
            Some(t) if t <= now + 60 && t > now - 28 * 86_400 => {}
            other => v.push(format!(
                "event_time {other:?} not unix seconds of the last 28 days"
            )),
        }
        let id = e["event_id"].as_str().unwrap_or_default();
        if id.is_empty() || !ids.insert(id.to_owned()) {
            v.push(format!("event_id {id:?} empty or repeated in one request"));
        }
        let Some(user) = e["user"].as_object() else {
            v.push("no user".into());
            continue;
        };
        if user.is_empty() {
            v.push("a user without any key".into());
        }
        for (key, value) in user {
            if !["phone", "email", "external_id"].contains(&key.as_str()) {
                v.push(format!("unexpected user key {key}"));
            } else if !is_sha256(value) {
                v.push(format!("user.{key} is not a lowercase SHA-256"));
            }
        }
        if let Some(p) = e.get("properties") {
            if let Some(currency) = p.get("currency")
                && !currency
                    .as_str()
                    .is_some_and(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()))
            {
                v.push(format!("currency {currency}"));
            }
            if p.get("value").is_some_and(|value| !value.is_number()) {
                v.push("value is not a number".into());
            }
        }
        for meta_only in [
            "user_data",
            "action_source",
            "messaging_channel",
            "custom_data",
        ] {
            if e.get(meta_only).is_some() {
                v.push(format!("Meta's {meta_only} in a TikTok event"));
            }
        }
    }
}
