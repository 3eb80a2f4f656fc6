//! Boots each real release binary against a loopback Lambda Runtime API (`/runtime/invocation/
//! next`, `/response`, `/error`), with the environment variables exactly as `infra/lambda.tf`
//! sets them (names read from the Terraform, values pointing at moto and the Graph mock), and
//! drives one invocation each: a signed webhook through ingest, then the SQS batch it produced
//! through dispatch to the Graph mock. Prints init time and peak RSS of each binary.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

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
use wacapi_tests::stack::{Stack, StackOptions, freshen, unix_now};
use wacapi_tests::{moto_url, repo_root, sample, sign};

/// The loopback Runtime API: hands out queued events, collects responses and errors.
#[derive(Default)]
struct Runtime {
    events: Mutex<VecDeque<(String, Value)>>,
    responses: Mutex<BTreeMap<String, Value>>,
    errors: Mutex<Vec<String>>,
    first_poll: Mutex<Option<Instant>>,
    changed: Notify,
}

async fn next(State(rt): State<Arc<Runtime>>) -> Response {
    rt.first_poll
        .lock()
        .unwrap()
        .get_or_insert_with(Instant::now);
    loop {
        let notified = rt.changed.notified();
        if let Some((id, event)) = rt.events.lock().unwrap().pop_front() {
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

async fn start_runtime() -> (Arc<Runtime>, String) {
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
fn release_binary(name: &str) -> PathBuf {
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
fn terraform_env(function: &str) -> Vec<String> {
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

struct Booted {
    child: Child,
    spawned: Instant,
}

impl Booted {
    fn peak_rss_kb(&self) -> u64 {
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

fn boot(
    binary: &str,
    function: &str,
    runtime_api: &str,
    values: &BTreeMap<&str, String>,
) -> Booted {
    let mut cmd = Command::new(release_binary(binary));
    cmd.env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", format!("wacapi-{binary}"))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_ENDPOINT_URL", moto_url())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for name in terraform_env(function) {
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

async fn invoke(rt: &Runtime, id: &str, event: Value) -> Value {
    rt.events.lock().unwrap().push_back((id.to_owned(), event));
    rt.changed.notify_waiters();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let notified = rt.changed.notified();
        if let Some(v) = rt.responses.lock().unwrap().get(id) {
            return v.clone();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_binaries_boot_with_the_terraform_environment_and_deliver() {
    let stack = Stack::new(StackOptions::default()).await;
    let rules_file = repo_root().join("examples/wacapi.toml");
    // The values Terraform would resolve, here pointing at moto, the mock and the example rules.
    let values: BTreeMap<&str, String> = [
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
        ("WACAPI_GRAPH_TIMEOUT_SECONDS", "5".into()),
    ]
    .into();

    // 1. webhook-ingest: one API Gateway v2 event with a signed sample.
    let (rt, api) = start_runtime().await;
    let ingest = boot("webhook-ingest", "ingest", &api, &values);
    let body = freshen(&sample("text-from-ctwa-ad"), unix_now());
    let event = json!({
        "version": "2.0", "routeKey": "POST /webhook", "rawPath": "/webhook", "rawQueryString": "",
        "headers": {"x-hub-signature-256": sign(&body), "content-type": "application/json"},
        "requestContext": {"accountId": "123456789012", "apiId": "api", "domainName": "api.example",
            "domainPrefix": "api", "http": {"method": "POST", "path": "/webhook", "protocol": "HTTP/1.1",
            "sourceIp": "127.0.0.1", "userAgent": "facebookexternalua"}, "requestId": "r1",
            "routeKey": "POST /webhook", "stage": "$default", "time": "21/Nov/2026:10:00:00 +0000",
            "timeEpoch": 0},
        "body": String::from_utf8(body).unwrap(), "isBase64Encoded": false
    });
    let response = invoke(&rt, "ingest-1", event).await;
    let init_ingest = rt.first_poll.lock().unwrap().unwrap() - ingest.spawned;
    assert_eq!(response["statusCode"], 200, "{response}");
    let rss_ingest = ingest.peak_rss_kb();
    drop(ingest);

    // 2. capi-dispatch: the SQS batch the ingest produced.
    let messages = stack.receive().await;
    assert_eq!(messages.len(), 1);
    let sqs_event = wacapi_tests::stack::sqs_event(&messages, Duration::from_secs(30));
    let event = json!({"Records": serde_json::to_value(&sqs_event.payload).unwrap()["Records"]});
    let (rt, api) = start_runtime().await;
    let dispatch = boot("capi-dispatch", "dispatch", &api, &values);
    let response = invoke(&rt, "dispatch-1", event).await;
    let init_dispatch = rt.first_poll.lock().unwrap().unwrap() - dispatch.spawned;
    assert_eq!(response, json!({"batchItemFailures": []}));
    let rss_dispatch = dispatch.peak_rss_kb();
    drop(dispatch);

    let events = stack.graph.accepted_events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event_name"], "ViewContent");
    assert!(
        stack.graph.violations().is_empty(),
        "{:?}",
        stack.graph.violations()
    );
    println!(
        "webhook-ingest: init {:.1} ms, peak RSS {} kB; capi-dispatch: init {:.1} ms, peak RSS {} kB",
        init_ingest.as_secs_f64() * 1e3,
        rss_ingest,
        init_dispatch.as_secs_f64() * 1e3,
        rss_dispatch
    );
}
