//! Boots each real release binary against a loopback Lambda Runtime API, with the environment
//! variables exactly as `infra/lambda.tf` sets them (names read from the Terraform, values
//! pointing at moto and the Graph mock), and drives one invocation each: a signed webhook through
//! ingest, then the SQS batch it produced through dispatch to the Graph mock. Prints init time
//! and peak RSS of each binary (`tests/benches/lambda_footprint.rs` measures them properly).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use serde_json::json;
use wacapi_tests::runtime_api::{
    boot, boot_logged, events_event, function_values, invoke, sqs_event_json, start_runtime,
    webhook_event,
};
use wacapi_tests::sample;
use wacapi_tests::stack::{EVENTS_KEY, Stack, StackOptions, freshen, unix_now};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_binaries_boot_with_the_terraform_environment_and_deliver() {
    let stack = Stack::new(StackOptions::default()).await;
    let values = function_values(&stack);

    // 1. webhook-ingest: one API Gateway v2 event with a signed sample.
    let (rt, api) = start_runtime().await;
    let ingest = boot("webhook-ingest", "ingest", &api, &values);
    let body = freshen(&sample("text-from-ctwa-ad"), unix_now());
    let event = webhook_event(&body);
    let (response, _) = invoke(&rt, "ingest-1", event).await;
    let init_ingest = rt.first_poll.lock().unwrap().unwrap() - ingest.spawned;
    assert_eq!(response["statusCode"], 200, "{response}");
    let rss_ingest = ingest.peak_rss_kb();
    drop(ingest);

    // 2. capi-dispatch: the SQS batch the ingest produced.
    let messages = stack.receive().await;
    assert_eq!(messages.len(), 1);
    let event = sqs_event_json(&messages);
    let (rt, api) = start_runtime().await;
    let dispatch = boot("capi-dispatch", "dispatch", &api, &values);
    let (response, _) = invoke(&rt, "dispatch-1", event).await;
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

/// At every level the module accepts (`infra/variables.tf`), the booted binaries' logs hold none
/// of the personal data the invocations carried: phone numbers, names, emails, message text,
/// Flow fields, clear `user_data` posted to `/events`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_hold_no_personal_data_at_any_level() {
    let dir = std::env::temp_dir().join(format!("wacapi-logs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let personal = [
        "16505551234",
        "6505551234",
        "Sheena",
        "sheena",
        "Nelson",
        "Menlo",
        "succulents, what are the prices",
        "94025",
        "crm-8812-secret-external",
        "Ana Souza",
        "ana.souza",
        "650 555 1234",
        "want to buy the 3-pack",
    ];
    let rfc3339 =
        regex::Regex::new(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
            .unwrap();
    for level in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] {
        let stack = Stack::new(StackOptions::default()).await;
        let values = function_values(&stack);
        let log = dir.join(format!("{level}.log"));
        let _ = std::fs::remove_file(&log);

        let (rt, api) = start_runtime().await;
        let ingest = boot_logged("webhook-ingest", "ingest", &api, &values, level, Some(&log));
        let now = unix_now();
        for (i, name) in ["text-from-ctwa-ad", "flow-lead-form"].iter().enumerate() {
            let body = freshen(&sample(name), now);
            let (response, _) = invoke(&rt, &format!("in-{i}"), webhook_event(&body)).await;
            assert_eq!(response["statusCode"], 200, "{level}: {response}");
        }
        // A Messenger text with a name, an email and a phone number in it.
        let messenger = wacapi_tests::channel_samples()
            .into_iter()
            .find(|(n, _)| n == "messenger-03-text")
            .unwrap()
            .1;
        let (response, _) = invoke(&rt, "in-m", webhook_event(&freshen(&messenger, now))).await;
        assert_eq!(response["statusCode"], 200, "{level}: {response}");
        let events = serde_json::to_vec(&json!({"events": [{
            "event_name": "QualifiedLead", "idempotency_key": "lead-logs",
            "user": {"wa_id": "+1 (650) 555-1234"}, "waba_id": "102290129340398",
            "user_data": {"em": "Sheena.Nelson@Example.com", "fn": "Sheena", "ln": "Nelson",
                          "ct": "Menlo Park", "external_id": "crm-8812-secret-external"}}]}))
        .unwrap();
        let (response, _) = invoke(&rt, "in-events", events_event(&events, EVENTS_KEY)).await;
        assert_eq!(response["statusCode"], 200, "{level}: {response}");
        drop(ingest);

        let mut messages = Vec::new();
        for _ in 0..5 {
            messages.extend(stack.receive().await);
        }
        assert_eq!(messages.len(), 4, "{level}");
        let (rt, api) = start_runtime().await;
        let dispatch = boot_logged(
            "capi-dispatch",
            "dispatch",
            &api,
            &values,
            level,
            Some(&log),
        );
        let (response, _) = invoke(&rt, "out-1", sqs_event_json(&messages)).await;
        assert_eq!(response, json!({"batchItemFailures": []}), "{level}");
        drop(dispatch);
        assert!(
            stack.graph.accepted_events().len() >= 2,
            "{level}: events were sent"
        );

        let text = std::fs::read_to_string(&log).unwrap();
        for pii in personal {
            assert!(
                !text.contains(pii),
                "{level}: the logs hold {pii:?}:\n{}",
                text.lines()
                    .filter(|l| l.contains(pii))
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        if level == "DEBUG" || level == "TRACE" {
            assert!(
                text.contains("signal enqueued"),
                "{level}: own debug logs are kept"
            );
        }
        // What Lambda's log-level filtering keeps at this level: the metrics of both functions
        // (EMF documents), whatever the level.
        let app = wacapi_tests::runtime_api::application_log_level(level);
        let kept: Vec<&str> = text
            .lines()
            .filter(|l| wacapi_tests::runtime_api::lambda_keeps(l, app))
            .collect();
        for service in ["webhook-ingest", "capi-dispatch"] {
            assert!(
                kept.iter()
                    .any(|l| l.contains("\"_aws\"")
                        && l.contains(&format!("\"Service\":\"{service}\""))),
                "{level}: Lambda would drop {service}'s metrics"
            );
        }
        // Every log line (not an EMF document) has a level and an RFC 3339 timestamp.
        for line in text.lines().filter(|l| !l.contains("\"_aws\"")) {
            let Ok(json) = serde_json::from_str::<serde_json::Value>(line) else {
                panic!("{level}: a log line that is not JSON: {line}");
            };
            assert!(json["level"].is_string(), "{level}: no level: {line}");
            assert!(
                json["timestamp"]
                    .as_str()
                    .is_some_and(|t| rfc3339.is_match(t)),
                "{level}: no RFC 3339 timestamp: {line}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `scripts/package` records what the binaries are (`dist/build.json`, from their ELF headers),
/// and the module refuses to deploy zips of another architecture than `var.architecture`.
#[test]
fn the_package_records_its_architecture_and_the_module_holds_it_to_var_architecture() {
    use hcl::eval::{Context, Evaluate};
    let script =
        std::fs::read_to_string(wacapi_tests::repo_root().join("scripts/package")).unwrap();
    let start = script.find("> dist/build.json <<'PY'\n").unwrap();
    let body = &script[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    let python = &body[..body.find("\nPY\n").unwrap()];
    let binaries = ["webhook-ingest", "capi-dispatch"].map(|b| {
        wacapi_tests::runtime_api::release_binary(b)
            .to_string_lossy()
            .into_owned()
    });
    let out = std::process::Command::new("python3")
        .args(["-", &binaries[0], &binaries[1], "native"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(python.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    let build: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let here = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(build["architecture"], here);
    // Not an ELF binary (a macOS build, a script): refused with a reason.
    let out = std::process::Command::new("python3")
        .args(["-", "/bin/sh", "Cargo.toml", "native"])
        .current_dir(wacapi_tests::repo_root())
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(python.as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an ELF binary"));

    // The module: each function's precondition passes only when build.json says
    // var.architecture.
    let lambda: hcl::Body = hcl::from_str(
        &std::fs::read_to_string(wacapi_tests::repo_root().join("infra/lambda.tf")).unwrap(),
    )
    .unwrap();
    for name in ["ingest", "dispatch"] {
        let function = lambda
            .blocks()
            .find(|b| {
                b.labels()
                    .iter()
                    .map(|l| l.as_str())
                    .eq(["aws_lambda_function", name])
            })
            .unwrap();
        let conditions: Vec<hcl::Expression> = function
            .body()
            .blocks()
            .filter(|b| b.identifier() == "lifecycle")
            .flat_map(|b| b.body().blocks())
            .filter(|b| b.identifier() == "precondition")
            .filter_map(|p| p.body().attributes().find(|a| a.key() == "condition"))
            .map(|a| a.expr().clone())
            .filter(|e| {
                hcl::format::to_string(e)
                    .unwrap_or_default()
                    .contains("local.build")
            })
            .collect();
        assert_eq!(conditions.len(), 1, "{name}: one architecture precondition");
        let holds = |built: Option<&str>, wanted: &str| {
            let mut ctx = Context::new();
            ctx.declare_var(
                "local",
                hcl::Value::Object(hcl::Map::from_iter([(
                    "build".to_owned(),
                    built.map_or(hcl::Value::Null, |b| {
                        hcl::Value::Object(hcl::Map::from_iter([(
                            "architecture".to_owned(),
                            hcl::Value::from(b),
                        )]))
                    }),
                )])),
            );
            ctx.declare_var(
                "var",
                hcl::Value::Object(hcl::Map::from_iter([(
                    "architecture".to_owned(),
                    hcl::Value::from(wanted),
                )])),
            );
            // `try` is Terraform's: a missing build.json fails the condition.
            let text = hcl::format::to_string(&conditions[0]).unwrap();
            let text = text.replace(
                "try(local.build.architecture, null)",
                "local.build.architecture",
            );
            let expr: hcl::Expression = hcl::from_str::<hcl::Body>(&format!("c = {text}"))
                .unwrap()
                .attributes()
                .next()
                .unwrap()
                .expr()
                .clone();
            expr.evaluate(&ctx).ok() == Some(hcl::Value::Bool(true))
        };
        assert!(holds(Some("x86_64"), "x86_64"), "{name}");
        assert!(holds(Some("arm64"), "arm64"), "{name}");
        assert!(!holds(Some("arm64"), "x86_64"), "{name}");
        assert!(!holds(Some("x86_64"), "arm64"), "{name}");
        assert!(!holds(None, "x86_64"), "{name}: no build.json");
    }
}
