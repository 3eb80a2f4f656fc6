//! Test harness shared by wacapi's integration tests: fixtures, signing, API Gateway events, and
//! a moto server on loopback for real AWS SDK calls.
//!
//! The moto server is the one named by `WACAPI_TEST_MOTO_URL` (the README's test command starts
//! one for the whole run); otherwise each test binary starts its own on a free loopback port,
//! which exits when the test process does.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use base64::Engine;
use serde_json::{Value, json};

pub mod edge;
pub mod graph_mock;
pub mod insights_mock;
pub mod runtime_api;
pub mod stack;
pub mod terraform_schema;
pub mod tiktok_mock;

pub const APP_SECRET: &str = "test-app-secret-0123";
pub const VERIFY_TOKEN: &str = "test-verify-token";

/// Serves `app` on a free loopback port, on the current tokio runtime; returns its base URL
/// (`http://127.0.0.1:PORT`). The loopback mocks of Meta's and TikTok's APIs start this way.
pub async fn serve_loopback(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    url
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The sample webhook bodies shipped in `examples/webhooks/`, by file name, sorted.
pub fn sample_webhooks() -> Vec<(String, Vec<u8>)> {
    json_files("examples/webhooks")
}

/// One sample webhook body by name, without its order prefix (`order` → `02-order.json`).
pub fn sample(name: &str) -> Vec<u8> {
    sample_webhooks()
        .into_iter()
        .find(|(stem, _)| {
            stem == name || stem.split_once('-').is_some_and(|(_, rest)| rest == name)
        })
        .map(|(_, body)| body)
        .unwrap_or_else(|| panic!("no sample webhook named {name}"))
}

/// The `.json` files of a repository folder, by file stem, sorted.
pub fn json_files(folder: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join(folder);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{folder}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).expect("readable fixture"),
            )
        })
        .collect();
    out.sort();
    out
}

/// The bodies of `tests/fixtures/shapes/`: WhatsApp shapes real senders and relays write.
pub fn shape_fixtures() -> Vec<(String, Vec<u8>)> {
    json_files("tests/fixtures/shapes")
}

/// The bodies of `tests/fixtures/channels/`: Messenger and Instagram shapes beside the samples
/// (standby, `{field, value}` changes, echoes, reads, link referrals, unsent messages...).
pub fn channel_fixtures() -> Vec<(String, Vec<u8>)> {
    json_files("tests/fixtures/channels")
}

/// The Messenger and Instagram sample bodies of `examples/webhooks/{messenger,instagram}/`, named
/// `messenger-01-get-started-from-ad` and so on, in conversation order per channel.
pub fn channel_samples() -> Vec<(String, Vec<u8>)> {
    ["messenger", "instagram"]
        .into_iter()
        .flat_map(|channel| {
            json_files(&format!("examples/webhooks/{channel}"))
                .into_iter()
                .map(move |(name, body)| (format!("{channel}-{name}"), body))
        })
        .collect()
}

/// A test fixture from `tests/fixtures/`.
pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures").join(name))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The `X-Hub-Signature-256` value for `body` with the test app secret.
pub fn sign(body: &[u8]) -> String {
    wacapi_shared::signature::sign(APP_SECRET.as_bytes(), body)
}

/// The webhook secret document used by tests.
pub fn secret_document() -> String {
    json!({"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}).to_string()
}

/// A webhook with `messages` text messages from distinct users, spread over `entries` entries
/// of `changes` changes each; each message text is `text_len` characters.
pub fn bulk_webhook(messages: usize, entries: usize, changes: usize, text_len: usize) -> Vec<u8> {
    let per_change = messages.div_ceil(entries * changes);
    let mut n = 0;
    let text = "x".repeat(text_len);
    let entry: Vec<Value> = (0..entries)
        .map(|e| {
            let changes: Vec<Value> = (0..changes)
                .map(|_| {
                    let mut contacts = Vec::new();
                    let mut msgs = Vec::new();
                    for _ in 0..per_change {
                        if n == messages {
                            break;
                        }
                        let phone = format!("1555{:07}", n);
                        contacts.push(json!({"profile": {"name": "Test User"}, "wa_id": phone}));
                        msgs.push(json!({
                            "from": phone,
                            "id": format!("wamid.bulk{n:06}"),
                            "timestamp": (1_750_095_000 + n).to_string(),
                            "type": "text",
                            "text": {"body": text},
                        }));
                        n += 1;
                    }
                    json!({"field": "messages", "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                        "contacts": contacts,
                        "messages": msgs,
                    }})
                })
                .collect();
            json!({"id": format!("10229012934039{e}"), "changes": changes})
        })
        .collect();
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": entry})).unwrap()
}

/// An API Gateway HTTP API (payload v2) request, converted the way the Lambda runtime does.
pub fn apigw_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    base64_encoded: bool,
) -> lambda_http::Request {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .collect();
    let body = body.map(|b| {
        if base64_encoded {
            base64::engine::general_purpose::STANDARD.encode(b)
        } else {
            String::from_utf8(b.to_vec()).expect("utf-8 body unless base64")
        }
    });
    let event = json!({
        "version": "2.0",
        "routeKey": format!("{method} {path}"),
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api",
            "domainName": "api.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "api",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "127.0.0.1", "userAgent": "facebookexternalua"},
            "requestId": "req-1",
            "routeKey": format!("{method} {path}"),
            "stage": "$default",
            "time": "21/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_000_000_000u64
        },
        "body": body,
        "isBase64Encoded": base64_encoded,
    });
    lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway v2 event")
}

/// A signed `POST /webhook` API Gateway request.
pub fn signed_post(body: &[u8]) -> lambda_http::Request {
    let sig = sign(body);
    apigw_request(
        "POST",
        "/webhook",
        "",
        &[
            ("X-Hub-Signature-256", &sig),
            ("content-type", "application/json"),
        ],
        Some(body),
        false,
    )
}

// ---------------------------------------------------------------------------------------------
// moto

static MOTO: OnceLock<String> = OnceLock::new();
static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// The moto server's endpoint URL, starting one when the environment names none.
pub fn moto_url() -> &'static str {
    MOTO.get_or_init(|| match std::env::var("WACAPI_TEST_MOTO_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => start_moto(),
    })
}

#[allow(clippy::zombie_processes)]
fn start_moto() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    // A watcher shell ends moto when this test process ends, so no server outlives the run.
    let script = r#"python3 -m moto.server -H 127.0.0.1 -p "$1" >/dev/null 2>&1 & m=$!
while kill -0 "$2" 2>/dev/null && kill -0 "$m" 2>/dev/null; do sleep 0.5; done
kill "$m" 2>/dev/null"#;
    Command::new("sh")
        .args([
            "-c",
            script,
            "sh",
            &port.to_string(),
            &std::process::id().to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 -m moto.server can start (pip install 'moto[server]')");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return url;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("moto server did not start on port {port}");
}

/// A webhook in which `users` users each send one text message carrying an ad click
/// (`clid-00`, `clid-01`, ...): one `ViewContent` each under the example rules.
pub fn ad_clicks(users: usize, now: i64) -> Vec<u8> {
    let messages: Vec<Value> = (0..users)
        .map(|i| {
            json!({"from": format!("1555000{i:04}"), "id": format!("wamid.click{i:04}"),
                   "timestamp": (now - 100 + i as i64).to_string(), "type": "text", "text": {"body": "hi"},
                   "referral": {"source_id": "ad", "source_type": "ad", "ctwa_clid": format!("clid-{i:02}")}})
        })
        .collect();
    serde_json::to_vec(
        &json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"phone_number_id": "1"}, "messages": messages}}]}]}),
    )
    .unwrap()
}

/// A webhook in which users `first_user..first_user + users` each send an ad-click message, then
/// press the example rules' `confirm-order` button: two signals (and events) per user. `tag`
/// keeps phones, message ids and click ids apart between calls.
pub fn clicks_then_buttons(tag: u32, first_user: usize, users: usize, now: i64) -> Vec<u8> {
    let mut messages = Vec::new();
    for u in first_user..first_user + users {
        let phone = format!("1{tag:05}{u:07}");
        messages.push(json!({"from": phone, "id": format!("wamid.t{tag}.{u}.1"),
            "timestamp": (now - 120).to_string(), "type": "text", "text": {"body": "hi"},
            "referral": {"source_id": "ad-1", "source_type": "ad", "ctwa_clid": format!("clid-{tag}-{u}")}}));
        messages.push(json!({"from": phone, "id": format!("wamid.t{tag}.{u}.2"),
            "timestamp": (now - 60).to_string(), "type": "interactive",
            "interactive": {"type": "button_reply", "button_reply": {"id": "confirm-order", "title": "OK"}}}));
    }
    serde_json::to_vec(
        &json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
        "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"phone_number_id": "1"}, "messages": messages}}]}]}),
    )
    .unwrap()
}

/// CPU time of the calling thread: the first field of `/proc/thread-self/schedstat` is the
/// nanoseconds it has run on a CPU (benchmarks count the dispatcher's thread only).
pub fn thread_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("Linux schedstat");
    let ns: u64 = stat
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .expect("schedstat run time");
    Duration::from_nanos(ns)
}

/// An AWS configuration pointing every client at moto.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_url())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await
}

/// A name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::SeqCst)
    )
}

/// The module's queues, as `infra/queues.tf` declares them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleQueue {
    /// `aws_sqs_queue.signals`.
    Signals,
    /// `aws_sqs_queue.dead_letters`.
    DeadLetters,
}

impl ModuleQueue {
    fn resource(self) -> &'static str {
        match self {
            Self::Signals => "signals",
            Self::DeadLetters => "dead_letters",
        }
    }
}

/// The `CreateQueue` attributes of a module queue, read from `infra/queues.tf` with the module's
/// variables at their defaults (`infra/variables.tf`): one source of truth, so the local SQS
/// refuses what the deployed queue refuses (its maximum message size above all). The redrive
/// policy and tags are left out: tests drive redelivery themselves.
pub fn module_queue_attributes(queue: ModuleQueue) -> Vec<(QueueAttributeName, String)> {
    use hcl::eval::{Context, Evaluate};
    let infra = repo_root().join("infra");
    let read = |file: &str| -> hcl::Body {
        hcl::from_str(&std::fs::read_to_string(infra.join(file)).expect("infra file"))
            .expect("valid HCL")
    };
    let mut vars = hcl::Map::new();
    for block in read("variables.tf").blocks() {
        if let (Some(name), Some(default)) = (
            block.labels().first(),
            block.body().attributes().find(|a| a.key() == "default"),
        ) && let Ok(value) = default.expr().evaluate(&Context::new())
        {
            vars.insert(name.as_str().to_owned(), value);
        }
    }
    let mut ctx = Context::new();
    ctx.declare_var("var", hcl::Value::Object(vars));
    ctx.declare_var(
        "local",
        hcl::Value::Object(hcl::Map::from_iter([(
            "tags".to_owned(),
            hcl::Value::Object(hcl::Map::new()),
        )])),
    );
    let queues = read("queues.tf");
    let block = queues
        .blocks()
        .find(|b| {
            b.identifier() == "resource"
                && b.labels()
                    .iter()
                    .map(|l| l.as_str())
                    .eq(["aws_sqs_queue", queue.resource()])
        })
        .unwrap_or_else(|| panic!("aws_sqs_queue.{} in infra/queues.tf", queue.resource()));
    // What the AWS provider sends when the HCL leaves an attribute out (its `aws_sqs_queue`
    // docs: "max_message_size ... The default for this attribute is 262144 (256 KiB)",
    // "visibility_timeout_seconds ... default 30", "message_retention_seconds ... default
    // 345600"): a queue without `max_message_size` refuses what the code sends above 256 KiB.
    let mut out = vec![
        (QueueAttributeName::MaximumMessageSize, "262144".to_owned()),
        (QueueAttributeName::VisibilityTimeout, "30".to_owned()),
        (
            QueueAttributeName::MessageRetentionPeriod,
            "345600".to_owned(),
        ),
    ];
    for attribute in block.body().attributes() {
        let name = match attribute.key() {
            "fifo_queue" => QueueAttributeName::FifoQueue,
            "content_based_deduplication" => QueueAttributeName::ContentBasedDeduplication,
            "deduplication_scope" => QueueAttributeName::DeduplicationScope,
            "fifo_throughput_limit" => QueueAttributeName::FifoThroughputLimit,
            "visibility_timeout_seconds" => QueueAttributeName::VisibilityTimeout,
            "message_retention_seconds" => QueueAttributeName::MessageRetentionPeriod,
            "max_message_size" => QueueAttributeName::MaximumMessageSize,
            "sqs_managed_sse_enabled" => QueueAttributeName::SqsManagedSseEnabled,
            "delay_seconds" => QueueAttributeName::DelaySeconds,
            "receive_wait_time_seconds" => QueueAttributeName::ReceiveMessageWaitTimeSeconds,
            // Named, created or handled elsewhere.
            "name" | "tags" | "redrive_policy" => continue,
            other => panic!("infra/queues.tf sets {other}: map it to its SQS attribute here"),
        };
        let value = match attribute.expr().evaluate(&ctx) {
            Ok(hcl::Value::Bool(b)) => b.to_string(),
            Ok(hcl::Value::Number(n)) => n.to_string(),
            Ok(hcl::Value::String(s)) => s,
            other => panic!("{}: {other:?}", attribute.key()),
        };
        out.retain(|(n, _)| *n != name);
        out.push((name, value));
    }
    out
}

/// Creates a module queue under a fresh name, with the attributes `infra/queues.tf` gives it
/// ([`module_queue_attributes`]), and returns its URL.
pub async fn create_module_queue(client: &aws_sdk_sqs::Client, queue: ModuleQueue) -> String {
    let prefix = match queue {
        ModuleQueue::Signals => "signals",
        ModuleQueue::DeadLetters => "dead-letters",
    };
    let mut request = client
        .create_queue()
        .queue_name(format!("{}.fifo", unique(prefix)));
    for (name, value) in module_queue_attributes(queue) {
        request = request.attributes(name, value);
    }
    request
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_owned()
}

/// Receives (and deletes) every visible message, in delivery order.
pub async fn drain_queue(
    client: &aws_sdk_sqs::Client,
    url: &str,
) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    loop {
        let received = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        let messages = received.messages().to_vec();
        if messages.is_empty() {
            return out;
        }
        for m in &messages {
            client
                .delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        out.extend(messages);
    }
}

/// A system attribute of a received message.
pub fn system_attribute(
    m: &aws_sdk_sqs::types::Message,
    name: MessageSystemAttributeName,
) -> String {
    m.attributes()
        .and_then(|a| a.get(&name))
        .cloned()
        .unwrap_or_default()
}

/// A string message attribute of a received message.
pub fn message_attribute(m: &aws_sdk_sqs::types::Message, name: &str) -> Option<String> {
    m.message_attributes()
        .and_then(|a| a.get(name))
        .and_then(|v| v.string_value())
        .map(str::to_owned)
}
