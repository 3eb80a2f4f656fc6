//! A loopback Lambda Runtime API (`/runtime/invocation/next`, `/response`, `/error`) and a
//! launcher for the real release binaries with the environment `infra/lambda.tf` sets: the boot
//! test and the footprint benchmark share them.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::stack::Stack;
use crate::{moto_url, repo_root};

/// The loopback Runtime API: hands out queued events, collects responses and errors.
#[derive(Default)]
pub struct Runtime {
    pub events: Mutex<VecDeque<(String, Value)>>,
    pub responses: Mutex<BTreeMap<String, Value>>,
    pub errors: Mutex<Vec<String>>,
    pub first_poll: Mutex<Option<Instant>>,
    /// When each invocation was handed out and answered.
    pub timings: Mutex<BTreeMap<String, (Instant, Option<Instant>)>>,
    pub changed: Notify,
}

async fn next(State(rt): State<Arc<Runtime>>) -> Response {
    rt.first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    loop {
        let notified = rt.changed.notified();
        if let Some((id, event)) = rt.events.lock().unwrap().pop_front() {
            rt.timings
                .lock()
                .unwrap()
                .insert(id.clone(), (Instant::now(), None));
            let deadline = (std::time::SystemTime::now() + Duration::from_secs(30))
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let mut headers = HeaderMap::new();
            let h = |v: String| HeaderValue::from_str(&v).unwrap();
            headers.insert("lambda-runtime-aws-request-id", h(id));
            headers.insert("lambda-runtime-deadline-ms", h(deadline.to_string()));
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                h("arn:aws:lambda:us-east-1:123456789012:function:wacapi".into()),
            );
            headers.insert("lambda-runtime-trace-id", h("Root=1-0-0".into()));
            return (StatusCode::OK, headers, event.to_string()).into_response();
        }
        notified.await;
    }
}

async fn respond(
    State(rt): State<Arc<Runtime>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    if let Some(t) = rt.timings.lock().unwrap().get_mut(&id) {
        t.1 = Some(Instant::now());
    }
    let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    rt.responses.lock().unwrap().insert(id, value);
    rt.changed.notify_waiters();
    StatusCode::ACCEPTED
}

async fn error(State(rt): State<Arc<Runtime>>, body: Bytes) -> StatusCode {
    rt.errors
        .lock()
        .unwrap()
        .push(String::from_utf8_lossy(&body).into_owned());
    rt.changed.notify_waiters();
    StatusCode::ACCEPTED
}

pub async fn start_runtime() -> (Arc<Runtime>, String) {
    let rt = Arc::new(Runtime::default());
    let app = Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(respond),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(error))
        .with_state(Arc::clone(&rt));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (rt, addr)
}

/// The release binary, built if missing.
pub fn release_binary(name: &str) -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"));
    let path = target.join("release").join(name);
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--release", "-p", name])
            .current_dir(repo_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "release build of {name}");
    }
    path
}

/// The environment variable names Terraform sets on a function, in `infra/lambda.tf`.
pub fn terraform_env(function: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("infra/lambda.tf")).unwrap();
    let body: hcl::Body = hcl::from_str(&text).unwrap();
    let f = body
        .blocks()
        .find(|b| {
            b.identifier() == "resource"
                && b.labels().iter().map(|l| l.as_str()).collect::<Vec<_>>()
                    == ["aws_lambda_function", function]
        })
        .unwrap();
    let env = f
        .body()
        .blocks()
        .find(|b| b.identifier() == "environment")
        .unwrap();
    let vars = env
        .body()
        .attributes()
        .find(|a| a.key() == "variables")
        .unwrap();
    match vars.expr() {
        hcl::Expression::Object(o) => o
            .keys()
            .map(|k| k.to_string().trim_matches('"').to_owned())
            .collect(),
        other => panic!("variables is {other:?}"),
    }
}

/// A release binary running against the loopback Runtime API.
pub struct Booted {
    pub child: Child,
    pub spawned: Instant,
}

impl Booted {
    /// CPU time used so far by all its threads (`/proc/PID/task/*/schedstat`, nanoseconds).
    pub fn cpu_time(&self) -> Duration {
        let tasks = format!("/proc/{}/task", self.child.id());
        let ns: u64 = std::fs::read_dir(tasks)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(ns)
    }

    /// Peak resident set size so far (`VmHWM`), in kB.
    pub fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Booted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `binary` with the environment Terraform gives `function` (values from `values`).
pub fn boot(
    binary: &str,
    function: &str,
    runtime_api: &str,
    values: &BTreeMap<&str, String>,
) -> Booted {
    boot_logged(binary, function, runtime_api, values, "INFO", None)
}

/// Lambda's application log level for the module's `log_level` (`infra/lambda.tf`,
/// `local.application_log_level`): never above INFO, so the EMF metrics pass.
pub fn application_log_level(level: &str) -> &str {
    if level == "TRACE" || level == "DEBUG" {
        level
    } else {
        "INFO"
    }
}

/// Whether Lambda's log-level filtering keeps a line at application level `app` (Lambda
/// Developer Guide › Log-level filtering): a JSON line's level is its `level` when valid, else
/// INFO ("If the "level" value field is invalid or missing, Lambda assigns the log output the
/// level INFO"); a line is kept at its level or above.
pub fn lambda_keeps(line: &str, app: &str) -> bool {
    const ORDER: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let rank = |l: &str| ORDER.iter().position(|o| o.eq_ignore_ascii_case(l));
    let level = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v["level"].as_str().and_then(rank))
        .unwrap_or(2);
    rank(app).is_some_and(|app| level >= app)
}

/// [`boot`] at the module's `log_level` (`WACAPI_LOG_LEVEL`, and Lambda's application level as
/// the module derives it), stdout and stderr appended to `log`.
pub fn boot_logged(
    binary: &str,
    function: &str,
    runtime_api: &str,
    values: &BTreeMap<&str, String>,
    level: &str,
    log: Option<&std::path::Path>,
) -> Booted {
    let output = || match log {
        Some(path) => std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(Stdio::from)
            .expect("log file"),
        None => Stdio::null(),
    };
    let mut cmd = Command::new(release_binary(binary));
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("wacapi-{binary}"))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", application_log_level(level))
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", moto_url())
        .stdin(Stdio::null())
        .stdout(output())
        .stderr(output());
    for name in terraform_env(function) {
        if name == wacapi_shared::config::env::LOG_LEVEL {
            cmd.env(&name, level);
            continue;
        }
        let value = values.get(name.as_str()).unwrap_or_else(|| {
            panic!("Terraform sets {name} on {function}: give the test a value")
        });
        cmd.env(&name, value);
    }
    Booted {
        spawned: Instant::now(),
        child: cmd.spawn().expect("binary starts"),
    }
}

/// Queues `event` and waits for the function's answer; returns it with the time from hand-out
/// to answer.
pub async fn invoke(rt: &Runtime, id: &str, event: Value) -> (Value, Duration) {
    rt.events.lock().unwrap().push_back((id.to_owned(), event));
    rt.changed.notify_waiters();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let notified = rt.changed.notified();
        if let Some(v) = rt.responses.lock().unwrap().get(id) {
            let took = match rt.timings.lock().unwrap().get(id) {
                Some((out, Some(back))) => *back - *out,
                _ => Duration::ZERO,
            };
            return (v.clone(), took);
        }
        let errors = rt.errors.lock().unwrap().clone();
        assert!(
            errors.is_empty(),
            "the function reported errors: {errors:?}"
        );
        assert!(Instant::now() < deadline, "no response to {id}");
        let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
    }
}

/// The values Terraform would resolve for both functions, pointing at the stack's moto
/// resources, its Graph mock and the example rules.
pub fn function_values(stack: &Stack) -> BTreeMap<&'static str, String> {
    let rules_file = repo_root().join("examples/wacapi.toml");
    [
        ("WACAPI_SIGNAL_QUEUE_URL", stack.signal_url.clone()),
        ("WACAPI_DEAD_LETTER_QUEUE_URL", stack.dlq_url.clone()),
        (
            "WACAPI_WEBHOOK_SECRET_ARN",
            stack.webhook_secret_arn.clone(),
        ),
        ("WACAPI_EVENTS_SECRET_ARN", stack.events_secret_arn.clone()),
        ("WACAPI_SECRET_TTL_SECONDS", "300".into()),
        ("WACAPI_METRICS_NAMESPACE", "wacapi".into()),
        ("WACAPI_TABLE_NAME", stack.table.clone()),
        (
            "WACAPI_GRAPH_TOKEN_SECRET_ARN",
            stack.token_secret_arn.clone(),
        ),
        (
            "WACAPI_CONFIG_FILE",
            rules_file.to_string_lossy().into_owned(),
        ),
        ("WACAPI_GRAPH_BASE_URL", stack.graph.url.clone()),
        ("WACAPI_TIKTOK_BASE_URL", stack.tiktok.url.clone()),
        ("WACAPI_GRAPH_TIMEOUT_SECONDS", "5".into()),
        ("WACAPI_DETAILED_METRICS", "false".into()),
    ]
    .into()
}

/// The API Gateway (HTTP API, payload 2.0) event of a signed webhook POST.
pub fn webhook_event(body: &[u8]) -> Value {
    json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"x-hub-signature-256": crate::sign(body), "content-type": "application/json"},
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example",
            "domainPrefix": "api", "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "facebookexternalua"}, "requestId": "r1",
            "routeKey": "POST /webhook", "stage": "$default", "time": "21/Nov/2026:10:00:00 +0000",
            "timeEpoch": 0},
        "body": String::from_utf8_lossy(body), "isBase64Encoded": false
    })
}

/// The API Gateway (HTTP API, payload 2.0) event of a signed `POST /events`.
pub fn events_event(body: &[u8], key: &str) -> Value {
    let now = crate::stack::unix_now();
    json!({
        "version": "2.0", "routeKey": "POST /events", "rawPath": "/events", "rawQueryString": "",
        "headers": {"x-wacapi-timestamp": now.to_string(),
                    "x-wacapi-signature": wacapi_shared::business::sign(key.as_bytes(), now, body),
                    "content-type": "application/json"},
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example",
            "domainPrefix": "api", "http": {"method": "POST", "path": "/events", "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "crm"}, "requestId": "r2",
            "routeKey": "POST /events", "stage": "$default", "time": "21/Nov/2026:10:00:00 +0000",
            "timeEpoch": 0},
        "body": String::from_utf8_lossy(body), "isBase64Encoded": false
    })
}

/// The SQS event (as the event source mapping sends it) of received messages.
pub fn sqs_event_json(messages: &[aws_sdk_sqs::types::Message]) -> Value {
    let event = crate::stack::sqs_event(messages, Duration::from_secs(30));
    json!({"Records": serde_json::to_value(&event.payload).unwrap()["Records"]})
}
