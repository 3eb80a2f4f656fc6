//! The `wacapi` binary as a user runs it: replay, hash, sign, check-config.

#![allow(clippy::expect_used, clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn wacapi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wacapi"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("wacapi runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8 output")
}

fn sample_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("examples/webhooks"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            p.strip_prefix(repo())
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    files
}

#[test]
fn replay_prints_the_graph_requests_of_the_examples() {
    let files = sample_files();
    let mut args = vec![
        "replay",
        "--config",
        "examples/wacapi.toml",
        "--now",
        "1750100000",
    ];
    args.extend(files.iter().map(String::as_str));
    let out = wacapi(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "one dataset, one request");
    assert_eq!(lines[0]["dataset_id"], "1234567890123456");
    insta::assert_json_snapshot!("replay-example-config", lines);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("7 file(s), 6 signal(s), 6 event(s) in 1 request(s); skipped: none"),
        "{stderr}"
    );
    assert_no_clear_personal_data(&stdout, &stderr);
}

#[test]
fn replay_with_the_built_in_defaults() {
    let files = sample_files();
    let mut args = vec!["replay", "--now", "1750100000"];
    args.extend(files.iter().map(String::as_str));
    let out = wacapi(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let line: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(line["dataset_id"], "0");
    let names: Vec<&str> = line["body"]["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Purchase", "LeadSubmitted"]);
    assert!(
        text(&out.stderr).contains("skipped: no_rule=4"),
        "{}",
        text(&out.stderr)
    );
    assert_no_clear_personal_data(&stdout, &text(&out.stderr));
}

#[test]
fn replay_reports_too_old_without_now() {
    // Without --now the clock is used, and June 2025 samples are far outside the 7-day window.
    let out = wacapi(&[
        "replay",
        "examples/webhooks/01-text-from-ctwa-ad.json",
        "examples/webhooks/02-order.json",
    ]);
    assert!(out.status.success());
    assert!(text(&out.stdout).is_empty());
    assert!(
        text(&out.stderr).contains("too_old=1"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn replay_of_a_missing_file_fails_clearly() {
    let out = wacapi(&["replay", "no/such/file.json"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no/such/file.json"));
}

#[test]
fn replay_quarantines_a_bad_file_by_position_and_kind_and_goes_on() {
    let out = wacapi(&[
        "replay",
        "--now",
        "1750100000",
        "cli/tests/fixtures/bad-config.toml",
        "cli/tests/fixtures/truncated-webhook.json",
        "cli/tests/fixtures/wrong-object.json",
        "examples/webhooks/01-text-from-ctwa-ad.json",
        "examples/webhooks/02-order.json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("bad-config.toml: quarantined: body is not a webhook envelope: Syntax error at line 1 column"),
        "{stderr}"
    );
    assert!(
        stderr.contains("truncated-webhook.json: quarantined: body is not a webhook envelope: Eof error at line 1 column"),
        "{stderr}"
    );
    assert!(
        stderr.contains("wrong-object.json: quarantined: webhook object (a 25-character string) is not whatsapp_business_account"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "5 file(s), 2 signal(s), 1 event(s) in 1 request(s); skipped: no_rule=1; quarantined: 3"
        ),
        "{stderr}"
    );
    // The order after the bad files was still replayed.
    assert!(text(&out.stdout).contains("\"Purchase\""));
    assert_no_clear_personal_data(&text(&out.stdout), &stderr);
}

fn assert_no_clear_personal_data(stdout: &str, stderr: &str) {
    for clear in [
        "16505551234",
        "Sheena",
        "sheena",
        "Nelson",
        "Example.com",
        "example.com",
        "Menlo",
        "US.13491208655302741918",
        "my email",
        "Ana Souza",
        "ana.souza",
        "650 555",
        "3-pack",
        "Lisbon",
        "Book a visit",
        "Spring sale",
        "fbcdn",
    ] {
        assert!(!stdout.contains(clear), "stdout shows {clear}");
        assert!(!stderr.contains(clear), "stderr shows {clear}");
    }
}

#[test]
fn hash_prints_the_normalised_value_and_its_sha256() {
    let cases = [
        (
            "em",
            "John_Smith@gmail.com",
            "john_smith@gmail.com\t62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f",
        ),
        (
            "ph",
            "+1 (650) 555-1212",
            "16505551212\te323ec626319ca94ee8bff2e4c87cf613be6ea19919ed1364124e16807ab3176",
        ),
        (
            "fn",
            "Mary",
            "mary\t6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec",
        ),
    ];
    for (key, value, want) in cases {
        let out = wacapi(&["hash", key, value]);
        assert!(out.status.success());
        assert_eq!(text(&out.stdout), format!("{want}\n"));
    }
}

#[test]
fn hash_refuses_what_it_cannot_normalise() {
    let out = wacapi(&["hash", "em", "not an email"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("cannot hash: em:"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("not an email"),
        "the value is not echoed"
    );
    let out = wacapi(&["hash", "fn", "   "]);
    assert!(!out.status.success());
    let out = wacapi(&["hash", "email", "a@b.co"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("unknown user data key"));
}

#[test]
fn sign_prints_the_header_meta_would_send() {
    let out = wacapi(&[
        "sign",
        "--secret",
        "test-app-secret",
        "examples/webhooks/02-order.json",
    ]);
    assert!(out.status.success());
    let body = std::fs::read(repo().join("examples/webhooks/02-order.json")).unwrap();
    assert_eq!(
        text(&out.stdout).trim(),
        wacapi_shared::signature::sign(b"test-app-secret", &body)
    );
}

#[test]
fn check_config_accepts_the_example_and_explains_errors() {
    let out = wacapi(&["check-config", "examples/wacapi.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok (4 account(s), 12 rule(s)"));
    assert!(
        text(&out.stderr).is_empty(),
        "no warning: {}",
        text(&out.stderr)
    );

    let out = wacapi(&["check-config", "cli/tests/fixtures/bad-config.toml"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for want in [
        "4 configuration error(s)",
        "graph_api_version \"latest\" must look like \"v27.0\"",
        "account \"102290129340398\": dataset_id must be the numeric dataset id",
        "rule \"lead\": event \"Lead\" is not a business-messaging event name; allowed: Purchase, LeadSubmitted",
        "rule \"purchase\": Purchase needs custom_data value and currency",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in {stderr}");
    }
}

/// A file that does not parse: its line by number and text, a secret's value never.
#[test]
fn check_config_shows_the_line_that_does_not_parse_but_never_a_token() {
    let out = wacapi(&[
        "check-config",
        "cli/tests/fixtures/unparseable-token-config.toml",
    ]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("TOML parse error at line 8, column"),
        "{stderr}"
    );
    assert!(stderr.contains("8 | token = <redacted>"), "{stderr}");
    assert!(!stderr.contains("EAAG"), "{stderr}");

    let out = wacapi(&["check-config", "cli/tests/fixtures/unparseable-config.toml"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("TOML parse error at line 6, column"),
        "{stderr}"
    );
    assert!(
        stderr.contains(r#"6 | dataset_id = "1234567890123456" "again""#),
        "{stderr}"
    );
}

/// The example configuration with another `graph_api_version`, in a temporary file.
fn config_with_version(version: &str) -> PathBuf {
    let example = std::fs::read_to_string(repo().join("examples/wacapi.toml")).unwrap();
    let default = format!(
        "graph_api_version = {:?}",
        wacapi_shared::conversion::rules::DEFAULT_GRAPH_API_VERSION
    );
    assert!(example.contains(&default), "the example names the default");
    let path = std::env::temp_dir().join(format!(
        "wacapi-version-{version}-{}.toml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        example.replace(&default, &format!("graph_api_version = {version:?}")),
    )
    .unwrap();
    path
}

/// The version check runs on the real clock (dates relative to it are tested in
/// `shared/src/meta/versions.rs`): v24.0 expired on 2026-11-10 and v21.0 before the table's
/// oldest row, for good; v28.0 is newer than the table until someone adds it.
#[test]
fn an_expired_graph_api_version_is_refused_and_an_unknown_one_warned_about() {
    for (version, want) in [
        ("v24.0", "graph_api_version v24.0 expired on 2026-11-10"),
        ("v21.0", "graph_api_version v21.0 is older than v22.0"),
    ] {
        let path = config_with_version(version);
        let file = path.to_str().unwrap();
        for args in [
            vec!["check-config", file],
            vec![
                "replay",
                "--config",
                file,
                "examples/webhooks/02-order.json",
            ],
            // A pinned clock in June 2025 does not make an expired version current.
            vec![
                "demo",
                "--config",
                file,
                "--now",
                "1750100000",
                "examples/webhooks/02-order.json",
            ],
        ] {
            let out = wacapi(&args);
            let stderr = text(&out.stderr);
            assert!(!out.status.success(), "{args:?}");
            assert!(stderr.contains(want), "{args:?}: {stderr}");
            assert!(
                stderr.contains("set graph_api_version = \"v27.0\""),
                "{args:?} names the version to use: {stderr}"
            );
            assert!(text(&out.stdout).is_empty(), "{args:?}: nothing printed");
        }
        let _ = std::fs::remove_file(&path);
    }

    let path = config_with_version("v28.0");
    let out = wacapi(&["check-config", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("warning: graph_api_version v28.0 is not in wacapi's table"),
        "{}",
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("Graph API v28.0"));
    let _ = std::fs::remove_file(&path);
}

#[test]
fn demo_runs_the_whole_local_pipeline() {
    let files = sample_files();
    let mut args = vec![
        "demo",
        "--config",
        "examples/wacapi.toml",
        "--now",
        "1750100000",
    ];
    args.extend(files.iter().map(String::as_str));
    let out = wacapi(&args);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = text(&out.stdout);
    let mut events: Vec<Value> = Vec::new();
    for line in stdout.lines() {
        let request: Value = serde_json::from_str(line).expect("one request per line");
        assert_eq!(request["dataset_id"], "1234567890123456");
        events.extend(request["body"]["data"].as_array().unwrap().iter().cloned());
    }
    // The same events replay computes, now through HTTP, the queue and the dispatcher.
    let mut replay_args = vec![
        "replay",
        "--config",
        "examples/wacapi.toml",
        "--now",
        "1750100000",
    ];
    replay_args.extend(files.iter().map(String::as_str));
    let replayed: Value = serde_json::from_str(text(&wacapi(&replay_args).stdout).trim()).unwrap();
    assert_eq!(&events, replayed["body"]["data"].as_array().unwrap());
    assert!(
        stderr.contains("7 webhook(s) signed and posted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("(0 refused); 6 signal(s) queued, 6 event(s)"),
        "{stderr}"
    );
    assert_no_clear_personal_data(&stdout, &stderr);
}

/// The Messenger and Instagram samples, per channel in conversation order.
fn channel_sample_files() -> Vec<String> {
    let mut files = Vec::new();
    for channel in ["messenger", "instagram"] {
        let mut these: Vec<String> =
            std::fs::read_dir(repo().join("examples/webhooks").join(channel))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .map(|p| {
                    p.strip_prefix(repo())
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                })
                .collect();
        these.sort();
        files.extend(these);
    }
    files
}

#[test]
fn demo_sends_messenger_and_instagram_conversions_by_channel() {
    let files = channel_sample_files();
    assert_eq!(files.len(), 8);
    let mut args = vec![
        "demo",
        "--config",
        "examples/wacapi.toml",
        "--now",
        "1750100000",
    ];
    args.extend(files.iter().map(String::as_str));
    let out = wacapi(&args);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = text(&out.stdout);
    let requests: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one request per line, today's shape"))
        .collect();
    for request in &requests {
        let keys: Vec<&str> = request
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["body", "dataset_id"]);
        for event in request["body"]["data"].as_array().unwrap() {
            let (dataset, account_key, user_key) = match event["messaging_channel"].as_str() {
                Some("messenger") => ("2345678901234567", "page_id", "page_scoped_user_id"),
                Some("instagram") => (
                    "3456789012345678",
                    "instagram_business_account_id",
                    "ig_sid",
                ),
                other => panic!("channel {other:?}"),
            };
            assert_eq!(request["dataset_id"], dataset);
            let user_data = event["user_data"].as_object().unwrap();
            assert_eq!(user_data.len(), 2, "{user_data:?}");
            assert!(user_data[account_key].is_string() && user_data[user_key].is_string());
            let time = event["event_time"].as_i64().unwrap();
            assert!(
                (1_750_096_000..1_750_100_000).contains(&time),
                "seconds: {time}"
            );
        }
    }
    // Batching into requests, and the order of different users' events, follow the queue's
    // timing; the events, their datasets and each user's order do not.
    let mut sent: Vec<Value> = requests
        .iter()
        .flat_map(|r| {
            r["body"]["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| serde_json::json!({"dataset_id": r["dataset_id"], "event": e}))
        })
        .collect();
    sent.sort_by_key(|s| s["event"]["event_time"].as_i64());
    let named: Vec<(String, String)> = sent
        .iter()
        .map(|s| &s["event"])
        .map(|e| {
            (
                e["messaging_channel"].as_str().unwrap().to_owned(),
                e["event_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let named: Vec<(&str, &str)> = named
        .iter()
        .map(|(c, n)| (c.as_str(), n.as_str()))
        .collect();
    assert_eq!(
        named,
        [
            ("messenger", "ViewContent"),      // Get Started from an ad
            ("messenger", "LeadSubmitted"),    // quick reply BOOK_VISIT
            ("messenger", "InitiateCheckout"), // "I want to buy"
            ("messenger", "ViewContent"),      // an existing thread reopened from an ad
            ("messenger", "OrderCreated"),     // postback ORDER_CONFIRMED
            ("instagram", "ViewContent"),      // a message from an ad
            ("instagram", "LeadSubmitted"),    // quick reply BOOK_VISIT
        ]
    );
    insta::assert_json_snapshot!("demo-messenger-instagram", sent);
    assert!(
        stderr.contains("8 webhook(s) signed and posted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("8 signal(s) queued, 7 event(s) in "),
        "{stderr}"
    );
    assert!(
        stderr.contains("skipped: no_rule=1; duplicates suppressed: 0"),
        "{stderr}"
    );
    assert_no_clear_personal_data(&stdout, &stderr);

    // The same bodies beside WhatsApp's: the WhatsApp request is today's, byte for byte.
    let mut all = sample_files();
    all.extend(files);
    let mut args = vec![
        "replay",
        "--config",
        "examples/wacapi.toml",
        "--now",
        "1750100000",
    ];
    args.extend(all.iter().map(String::as_str));
    let mixed = wacapi(&args);
    assert!(mixed.status.success());
    let mut only_whatsapp = vec![
        "replay",
        "--config",
        "examples/wacapi.toml",
        "--now",
        "1750100000",
    ];
    let whatsapp_files = sample_files();
    only_whatsapp.extend(whatsapp_files.iter().map(String::as_str));
    let whatsapp = text(&wacapi(&only_whatsapp).stdout);
    let whatsapp_line = whatsapp.lines().next().unwrap();
    assert!(
        text(&mixed.stdout).lines().any(|l| l == whatsapp_line),
        "the WhatsApp request is unchanged among the others"
    );
}

#[test]
fn a_tiktok_chat_prints_one_tiktok_line_and_meta_s_lines_stay_as_they_were() {
    let mut files = sample_files();
    let whatsapp_only = files.clone();
    files.extend([
        "examples/webhooks/tiktok/01-first-message-from-tiktok-ad.json".to_owned(),
        "examples/webhooks/tiktok/02-order.json".to_owned(),
    ]);
    let run = |command: &str, files: &[String]| {
        let mut args = vec![
            command,
            "--config",
            "examples/wacapi.toml",
            "--now",
            "1750100000",
        ];
        args.extend(files.iter().map(String::as_str));
        let out = wacapi(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        (text(&out.stdout), text(&out.stderr))
    };
    for command in ["replay", "demo"] {
        let (stdout, stderr) = run(command, &files);
        let lines: Vec<Value> = stdout
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        let tiktok: Vec<&Value> = lines
            .iter()
            .filter(|l| l["destination"] == "tiktok")
            .collect();
        assert_eq!(tiktok.len(), 1, "{command}: {stdout}");
        let keys: Vec<&str> = tiktok[0]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["body", "destination", "event_source_id"]);
        assert_eq!(tiktok[0]["event_source_id"], "OFFLINE7X2K9Q1EXAMPLE");
        let events = tiktok[0]["body"]["data"].as_array().unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["event"], "Purchase");
        assert_eq!(events[0]["properties"]["value"], 42.5);
        if command == "replay" {
            insta::assert_json_snapshot!("replay-tiktok-line", tiktok[0]);
        }
        // Meta's lines keep today's shape and content.
        let (whatsapp_stdout, _) = run(command, &whatsapp_only);
        let meta_events = |text: &str| -> Vec<Value> {
            text.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .filter(|l| l.get("destination").is_none())
                .flat_map(|l| l["body"]["data"].as_array().unwrap().clone())
                .collect()
        };
        assert_eq!(
            meta_events(&stdout),
            meta_events(&whatsapp_stdout),
            "{command}"
        );
        for clear in ["447700900123", "Priya", "Leeds", "GB.2039"] {
            assert!(
                !stdout.contains(clear) && !stderr.contains(clear),
                "{clear}"
            );
        }
    }
}

#[test]
fn check_config_warns_of_purchase_on_instagram_and_names_channel_mistakes() {
    let out = wacapi(&["check-config", "cli/tests/fixtures/channel-config.toml"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ok (3 account(s), 3 rule(s)"));
    let warnings: Vec<String> = text(&out.stderr).lines().map(str::to_owned).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("warning: rule \"paid\": sends Purchase for Instagram"),
        "{warnings:?}"
    );

    let out = wacapi(&["check-config", "cli/tests/fixtures/bad-channel-config.toml"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    for want in [
        "5 configuration error(s)",
        "an account (dataset \"1234567890123456\") must name exactly one of waba_id, page_id or instagram_account_id",
        "an account (dataset \"2345678901234567\") must name exactly one of",
        "rule \"quick-reply-on-whatsapp\": trigger quick_reply never fires on whatsapp",
        "rule \"unknown-channel\": channels: \"telegram\" is not a channel",
        "rule \"postback-without-payload\": trigger postback needs exactly one of payload (exact) or pattern",
    ] {
        assert!(stderr.contains(want), "missing {want:?} in {stderr}");
    }
}

/// A raw HTTP/1.1 exchange with the local server (no client library needed for two requests).
fn http(port: u16, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(request.as_bytes()).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

fn start_serve(extra_env: &[(&str, &str)]) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_wacapi"));
    cmd.args([
        "serve",
        "--port",
        &port.to_string(),
        "--config",
        "examples/wacapi.toml",
        // Secrets the test does not set are the README's demo values.
        "--demo-secrets",
    ])
    .current_dir(repo())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("serve starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not listen");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (child, port)
}

#[test]
fn send_event_signs_and_posts_business_events() {
    let (mut child, port) = start_serve(&[("WACAPI_EVENTS_KEY", "crm-events-key-0123")]);
    let url = format!("http://127.0.0.1:{port}/events");
    let ok = Command::new(env!("CARGO_BIN_EXE_wacapi"))
        .args([
            "send-event",
            "--url",
            &url,
            "examples/events/crm-qualified-then-purchase.json",
        ])
        .env("WACAPI_EVENTS_KEY", "crm-events-key-0123")
        .current_dir(repo())
        .output()
        .unwrap();
    let wrong = Command::new(env!("CARGO_BIN_EXE_wacapi"))
        .args([
            "send-event",
            "--url",
            &url,
            "--key",
            "nope",
            "examples/events/crm-qualified-then-purchase.json",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(ok.status.success(), "{}", text(&ok.stderr));
    let answer: Value = serde_json::from_str(text(&ok.stdout).trim()).unwrap();
    assert_eq!(answer["accepted"], 2);
    assert!(!wrong.status.success());
    assert!(
        text(&wrong.stderr).contains("HTTP 401"),
        "{}",
        text(&wrong.stderr)
    );
}

#[test]
fn serve_answers_the_handshake_and_refuses_bad_signatures() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_wacapi"))
        .args([
            "serve",
            "--port",
            &port.to_string(),
            "--verify-token",
            "vt-123",
            "--events-key",
            "handshake-test-events-key",
        ])
        .current_dir(repo())
        .env("WACAPI_APP_SECRET", "s3cret-app-secret-0123")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not listen");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let ok = http(
        port,
        "GET /webhook?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=777 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let wrong = http(
        port,
        "GET /webhook?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=777 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let body = r#"{"object":"whatsapp_business_account","entry":[]}"#;
    let good_sig = wacapi_shared::signature::sign(b"s3cret-app-secret-0123", body.as_bytes());
    let post = |sig: &str| {
        http(
            port,
            &format!(
                "POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hub-Signature-256: {sig}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let signed = post(&good_sig);
    let forged = post(&wacapi_shared::signature::sign(b"other", body.as_bytes()));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        ok.starts_with("HTTP/1.1 200") && ok.ends_with("777"),
        "{ok}"
    );
    assert!(wrong.starts_with("HTTP/1.1 403"), "{wrong}");
    assert!(signed.starts_with("HTTP/1.1 200"), "{signed}");
    assert!(forged.starts_with("HTTP/1.1 403"), "{forged}");
}

#[test]
fn load_test_reports_zero_loss_and_zero_duplicates() {
    let out = wacapi(&["load-test", "--rates", "100,200", "--seconds", "1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let rows: Vec<Vec<String>> = stdout
        .lines()
        .skip(2)
        .map(|l| l.split('|').map(|c| c.trim().to_owned()).collect())
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for row in rows {
        // | target | accepted/s | refused | lost | duplicated | p50 | p99 |
        assert_eq!(
            (&row[3][..], &row[4][..], &row[5][..]),
            ("0", "0", "0"),
            "{stdout}"
        );
    }
}

/// Real-world shapes (tests/fixtures/shapes) through the whole local pipeline, in conversation
/// order: nothing valid is quarantined, nothing acknowledged is dead-lettered, every amount is
/// in currency units, and the click survives the user's BSUID change.
#[test]
fn demo_takes_real_world_shapes_end_to_end() {
    let shapes = [
        "null-lists",
        "order-formatted-prices",
        "automatic-events-amounts",
        "relay-shapes",
        "bsuid-click-before-change",
        "user-changed-user-id",
        "bsuid-order-after-change",
    ]
    .map(|s| format!("tests/fixtures/shapes/{s}.json"));
    let mut args = vec![
        "demo",
        "--config",
        "examples/wacapi.toml",
        "--now",
        "1750100000",
    ];
    args.extend(shapes.iter().map(String::as_str));
    let out = wacapi(&args);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("dead-lettered: reason=undecodable"),
        "{stderr}"
    );
    // Only the entry without a WABA id is kept aside (whole, for a redrive).
    assert_eq!(
        stderr.matches("dead-lettered: reason=").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("dead-lettered: reason=bad_entry"),
        "{stderr}"
    );
    let events: Vec<Value> = text(&out.stdout)
        .lines()
        .flat_map(|l| {
            let request: Value = serde_json::from_str(l).expect("one request per line");
            request["body"]["data"].as_array().unwrap().clone()
        })
        .collect();
    let purchases: Vec<(String, f64, String)> = events
        .iter()
        .filter(|e| e["event_name"] == "Purchase")
        .map(|e| {
            (
                e["user_data"]["ctwa_clid"].as_str().unwrap().to_owned(),
                e["custom_data"]["value"].as_f64().unwrap(),
                e["custom_data"]["currency"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let want = [
        ("Aff-nulls-click-0101", 49.9, "USD"),
        ("Aff-prices-click-0202", 1324.0, "USD"),
        ("Aff-prices-click-0202", 1299.0, "EUR"),
        ("Aff-auto-purchase-25usd", 25.0, "USD"),
        ("Aff-auto-purchase-string-amount", 1299.0, "INR"),
        ("Aff-bsuid-click-0303", 99.8, "BRL"),
    ];
    let mut got = purchases.clone();
    got.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
    let mut want: Vec<(String, f64, String)> = want
        .iter()
        .map(|(c, v, cur)| (c.to_string(), *v, cur.to_string()))
        .collect();
    want.sort_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
    assert_eq!(got, want, "{stderr}");
    // Purchases without a readable amount are skipped with a counted reason, never sent.
    assert!(stderr.contains("invalid_custom_data=4"), "{stderr}");
    assert_no_clear_personal_data(&text(&out.stdout), &stderr);
}
