//! `wacapi report` and `wacapi replay --report`, run as a user runs them: the offline report of
//! webhook files counts each event the replay would send once under its ad with exact values per
//! currency; filters, formats and sections; `GET /report` of `wacapi serve`; and `--table`
//! against a deployment's table on moto through `AWS_ENDPOINT_URL`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// "Now" for the report fixtures (2025-12-01 14:40 UTC, minutes after their messages).
const NOW: &str = "1764600000";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
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

fn json_lines(out: &Output) -> Vec<Value> {
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn replay(extra: &[&str], files: &[String]) -> Output {
    replay_at(NOW, extra, files)
}

fn report_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(repo().join("cli/tests/fixtures/report"))
        .unwrap()
        .map(|e| {
            format!(
                "cli/tests/fixtures/report/{}",
                e.unwrap().file_name().to_string_lossy()
            )
        })
        .collect();
    files.sort();
    files
}

fn replay_at(now: &str, extra: &[&str], files: &[String]) -> Output {
    let mut args = vec!["replay", "--now", now, "--config", "examples/wacapi.toml"];
    args.extend_from_slice(extra);
    args.extend(files.iter().map(String::as_str));
    wacapi(&args)
}

/// `(event name, currency) -> (count, value)` of the events in replay's printed requests
/// (Meta's `custom_data` and TikTok's `properties`).
fn sent_by_event(requests: &[Value]) -> BTreeMap<(String, String), (u64, f64)> {
    let mut out: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for request in requests {
        for event in request["body"]["data"].as_array().unwrap() {
            let name = event["event_name"]
                .as_str()
                .or(event["event"].as_str())
                .unwrap();
            let data = if event["custom_data"].is_object() {
                &event["custom_data"]
            } else {
                &event["properties"]
            };
            let currency = data["currency"].as_str().unwrap_or("").to_owned();
            let entry = out.entry((name.to_owned(), currency)).or_default();
            entry.0 += 1;
            entry.1 += data["value"].as_f64().unwrap_or(0.0);
        }
    }
    out
}

/// The report's rows summed the same way (TikTok's event names are wacapi's in the report).
fn reported_by_event(rows: &[Value]) -> BTreeMap<(String, String), (u64, f64)> {
    let mut out: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for row in rows {
        let currency = row["currency"].as_str().unwrap_or("").to_owned();
        let entry = out
            .entry((row["event_name"].as_str().unwrap().to_owned(), currency))
            .or_default();
        entry.0 += row["count"].as_u64().unwrap();
        entry.1 += row["value"].as_f64().unwrap();
    }
    out
}

fn round(map: BTreeMap<(String, String), (u64, f64)>) -> BTreeMap<(String, String), (u64, String)> {
    map.into_iter()
        .map(|(k, (n, v))| (k, (n, format!("{v:.2}"))))
        .collect()
}

#[test]
fn replay_report_counts_each_event_the_replay_would_send_once_under_its_ad() {
    let mut files = report_files();
    files.extend(
        [
            "examples/webhooks/01-text-from-ctwa-ad.json",
            "examples/webhooks/02-order.json",
            "examples/webhooks/03-interactive-button-reply.json",
            "examples/webhooks/04-flow-lead-form.json",
            "examples/webhooks/05-template-quick-reply.json",
        ]
        .map(String::from),
    );
    // Against the sample webhooks' own June 2025 clock, so both sets are inside Meta's window.
    let june = "1750100000";
    let requests = json_lines(&replay_at(june, &[], &files[3..]));
    let rows = json_lines(&replay_at(
        june,
        &["--report", "--format", "json"],
        &files[3..],
    ));
    assert_eq!(
        round(reported_by_event(&rows)),
        round(sent_by_event(&requests)),
        "the report counts what replay sends"
    );

    let requests = json_lines(&replay(&[], &files[..3]));
    let rows = json_lines(&replay(&["--report", "--format", "json"], &files[..3]));
    assert_eq!(
        round(reported_by_event(&rows)),
        round(sent_by_event(&requests))
    );
    for row in &rows {
        for field in ["ad_id", "event_name", "count", "value", "currency"] {
            assert!(row.get(field).is_some(), "{field} in {row}");
        }
    }
    // One line per ad, event and currency; amounts exact (0.1 + 0.2 + 59.97 + 10.01 EUR).
    let line = |ad: &str, event: &str, currency: &str| {
        rows.iter()
            .filter(|r| r["ad_id"] == ad && r["event_name"] == event && r["currency"] == currency)
            .collect::<Vec<_>>()
    };
    let eur = line("120230000000000101", "Purchase", "EUR");
    assert_eq!(eur.len(), 1);
    assert_eq!(
        (eur[0]["count"].as_u64(), eur[0]["value"].as_f64()),
        (Some(3), Some(70.28))
    );
    let usd = line("120230000000000101", "Purchase", "USD");
    assert_eq!(
        (usd[0]["count"].as_u64(), usd[0]["value"].as_f64()),
        (Some(1), Some(5.0))
    );
    let brl = line("120230000000000102", "Purchase", "BRL");
    assert_eq!(
        brl[0]["value"].as_f64(),
        Some(1299.0),
        "a thousands separator read right"
    );
    insta::assert_snapshot!(
        "replay_report_json",
        text(&replay(&["--report", "--format", "json"], &files[..3]).stdout)
    );
}

/// Meta's automatic events name the click (`ctwa_clid`), not the user or the ad: the report
/// finds the ad through the click recorded under that id, and one whose click wacapi never saw
/// is counted with no ad.
#[test]
fn automatic_events_count_under_the_ad_of_the_click_they_name() {
    let mut files = report_files();
    files.truncate(1);
    files.push("cli/tests/fixtures/report-automatic/04-automatic-purchases.json".to_owned());
    let requests = json_lines(&replay(&[], &files));
    let rows = json_lines(&replay(&["--report", "--format", "json"], &files));
    assert_eq!(
        round(reported_by_event(&rows)),
        round(sent_by_event(&requests))
    );
    let purchases: Vec<(Option<&str>, u64, f64)> = rows
        .iter()
        .filter(|r| r["event_name"] == "Purchase")
        .map(|r| {
            (
                r["ad_id"].as_str(),
                r["count"].as_u64().unwrap(),
                r["value"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        purchases,
        vec![(None, 1, 12.5), (Some("120230000000000102"), 1, 49.9)],
        "{rows:?}"
    );
}

#[test]
fn filters_formats_and_sections() {
    let files = report_files();
    let only_ad = json_lines(&replay(
        &["--report", "--format", "json", "--ad", "120230000000000102"],
        &files,
    ));
    assert_eq!(only_ad.len(), 2);
    assert!(only_ad.iter().all(|r| r["ad_id"] == "120230000000000102"));
    let purchases = json_lines(&replay(
        &["--report", "--format", "json", "--event", "Purchase"],
        &files,
    ));
    assert_eq!(purchases.len(), 3);
    // The fixtures are all on 2025-12-01.
    let before = json_lines(&replay(
        &["--report", "--format", "json", "--until", "2025-11-30"],
        &files,
    ));
    assert!(before.is_empty());
    let on_the_day = json_lines(&replay(
        &[
            "--report",
            "--format",
            "json",
            "--since",
            "2025-12-01",
            "--until",
            "2025-12-01",
        ],
        &files,
    ));
    assert_eq!(on_the_day.len(), 5);

    let csv = text(&replay(&["--report", "--format", "csv"], &files).stdout);
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("ad_id,event_name,count,value,currency"));
    assert!(
        csv.contains("120230000000000101,Purchase,3,70.28,EUR\n"),
        "{csv}"
    );
    assert_eq!(lines.count(), 5);

    let skips = json_lines(&replay(
        &["--report", "--format", "json", "--show", "skips"],
        &files,
    ));
    assert_eq!(skips.len(), 1);
    assert_eq!(
        (skips[0]["reason"].as_str(), skips[0]["count"].as_u64()),
        (Some("no_click"), Some(1))
    );
    let coverage = json_lines(&replay(
        &["--report", "--format", "json", "--show", "coverage"],
        &files,
    ));
    let purchase = coverage
        .iter()
        .find(|r| r["event_name"] == "Purchase")
        .unwrap();
    assert_eq!(purchase["destination"], "meta");
    assert_eq!(purchase["events"], 5);
    assert_eq!(purchase["keys"]["ctwa_clid"], 1.0);
    assert_eq!(purchase["keys"]["ph"], 1.0);

    let table = replay(&["--report"], &files);
    let table = text(&table.stdout);
    for want in [
        "total sent: 8",
        "skipped:",
        "no_click",
        "match-key coverage",
    ] {
        assert!(table.contains(want), "{want} in {table}");
    }
    // No phone number, click id or name reaches the report.
    for out in [&csv, &table] {
        for secret in ["15550100001", "ARAkReportClid", "Customer"] {
            assert!(!out.contains(secret), "{secret} in {out}");
        }
    }

    for (args, want) in [
        (
            &["--report", "--since", "yesterday"][..],
            "--since \"yesterday\" is not a day",
        ),
        (&["--report", "--format", "xml"][..], "xml"),
        (
            &["--report", "--format", "json", "--show", "adverts"][..],
            "--show \"adverts\" is not rows, skips, coverage, ads or campaigns",
        ),
    ] {
        let out = replay(args, &files);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out.stderr).contains(want), "{}", text(&out.stderr));
    }
}

/// The fixture bodies with their clock moved to now (serve checks Meta's 7-day window).
fn freshened(file: &str, now: i64) -> Vec<u8> {
    let shift = now - NOW.parse::<i64>().unwrap();
    let mut body: Value =
        serde_json::from_slice(&std::fs::read(repo().join(file)).unwrap()).unwrap();
    for change in body["entry"][0]["changes"].as_array_mut().unwrap() {
        for m in change["value"]["messages"].as_array_mut().unwrap() {
            let t: i64 = m["timestamp"].as_str().unwrap().parse().unwrap();
            m["timestamp"] = Value::String((t + shift).to_string());
        }
    }
    serde_json::to_vec(&body).unwrap()
}

fn http(port: u16, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(request).expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

#[test]
fn serve_reports_what_it_sent_on_loopback() {
    const SECRET: &str = "report-test-app-secret-0123";
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
            "--config",
            "examples/wacapi.toml",
        ])
        .env("WACAPI_APP_SECRET", SECRET)
        .env("WACAPI_EVENTS_KEY", "report-test-events-key")
        .env("WACAPI_VERIFY_TOKEN", "report-test-verify-token")
        .current_dir(repo())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("serve starts");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "serve did not listen");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for file in report_files() {
        let body = freshened(&file, now);
        let signature = wacapi_shared::signature::sign(SECRET.as_bytes(), &body);
        let mut request = format!(
            "POST /webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let answer = http(port, &request);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    // Dispatch runs beside ingest: ask until all 8 events are counted.
    let get = |query: &str| {
        http(
            port,
            format!(
                "GET /report{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    let body_of = |response: &str| response.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let rows: Vec<Value> = loop {
        let response = get("");
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(
            response
                .to_ascii_lowercase()
                .contains("content-type: application/x-ndjson")
        );
        let rows: Vec<Value> = body_of(&response)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if rows
            .iter()
            .map(|r| r["count"].as_u64().unwrap())
            .sum::<u64>()
            == 8
        {
            break rows;
        }
        assert!(std::time::Instant::now() < deadline, "serve sent {rows:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let eur = rows
        .iter()
        .find(|r| r["ad_id"] == "120230000000000101" && r["currency"] == "EUR")
        .unwrap();
    assert_eq!(
        (eur["count"].as_u64(), eur["value"].as_f64()),
        (Some(3), Some(70.28))
    );
    let csv = body_of(&get("?format=csv&event=Purchase&ad=120230000000000102"));
    assert_eq!(
        csv,
        "ad_id,event_name,count,value,currency\n120230000000000102,Purchase,1,1299,BRL\n"
    );
    let bad = get("?since=soon");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");

    // DNS rebinding: a page of another site that made its name resolve to 127.0.0.1 still
    // sends its own name. Only loopback names and addresses are answered.
    let head = |host_lines: &str| {
        http(
            port,
            format!("GET /report HTTP/1.1\r\n{host_lines}Connection: close\r\n\r\n").as_bytes(),
        )
    };
    for host in [
        "localhost",
        "LOCALHOST:8080",
        "127.0.0.1",
        "127.3.2.1:1",
        "[::1]",
        "[::1]:8080",
    ] {
        let answer = head(&format!("Host: {host}\r\n"));
        assert!(answer.starts_with("HTTP/1.1 200"), "{host}: {answer}");
    }
    for host_lines in [
        "Host: evil.example\r\n".to_owned(),
        format!("Host: evil.example:{port}\r\n"),
        "Host: 127.0.0.1.evil.example\r\n".to_owned(),
        "Host: localhost.evil.example\r\n".to_owned(),
        "Host: 0.0.0.0\r\n".to_owned(),
        "Host: 192.168.1.10\r\n".to_owned(),
        "Host: \r\n".to_owned(),
        "Host: 127.0.0.1\r\nHost: evil.example\r\n".to_owned(),
        // No Host at all.
        String::new(),
    ] {
        let answer = head(&host_lines);
        assert!(
            answer.starts_with("HTTP/1.1 403") || answer.starts_with("HTTP/1.1 400"),
            "{host_lines:?}: {answer}"
        );
        assert!(!answer.contains("ad_id"), "{host_lines:?}: {answer}");
    }
    // The request line's absolute form names the host too.
    let absolute = http(
        port,
        b"GET http://evil.example/report HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert!(absolute.starts_with("HTTP/1.1 403"), "{absolute}");

    // `wacapi report --url` reads the same.
    let out = wacapi(&[
        "report",
        "--url",
        &format!("http://127.0.0.1:{port}"),
        "--format",
        "json",
    ]);
    assert_eq!(json_lines(&out), rows);

    // And joins Meta's spend to it (a loopback Insights API on a runtime of its own).
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let spend = std::fs::read_to_string(repo().join("cli/tests/fixtures/insights/spend.json"))
        .unwrap()
        // Moved to the day serve counts the events under (the messages' shifted day).
        .replace(
            "2025-12-01",
            &wacapi_shared::report::day_of(now - (NOW.parse::<i64>().unwrap() - 1_764_590_000)),
        );
    let mock = runtime.block_on(wacapi_tests::insights_mock::MockInsights::start(
        serde_json::from_str(&spend).unwrap(),
        50,
    ));
    let out = Command::new(env!("CARGO_BIN_EXE_wacapi"))
        .args([
            "report",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--spend",
            "act_1001",
            "--spend",
            "act_2002",
            "--format",
            "json",
            "--show",
            "ads",
        ])
        .env("WACAPI_GRAPH_BASE_URL", &mock.url)
        .env(
            "WACAPI_ADS_TOKEN",
            wacapi_tests::insights_mock::MOCK_ADS_TOKEN,
        )
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let ads = json_lines(&out);
    let brl = ads
        .iter()
        .find(|r| r["ad_id"] == "120230000000000102" && r["currency"] == "BRL")
        .unwrap();
    assert_eq!(brl["ad_name"], "Promo Brasil");
    assert_eq!(
        (brl["spend"].as_f64(), brl["events"].as_u64()),
        (Some(400.0), Some(2))
    );
    assert!(mock.received().iter().all(|r| r.status == 200));
}

#[tokio::test]
async fn report_table_reads_a_deployments_aggregates_through_aws_endpoint_url() {
    use wacapi_shared::aws::dynamo::DynamoStore;
    use wacapi_shared::report::{Fact, FactKey, tally};
    use wacapi_shared::store::DispatchStore;
    use wacapi_shared::store::ledger::SentMark;

    let aws = wacapi_tests::aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let table = wacapi_tests::stack::create_table(&ddb).await;
    let store = DynamoStore::new(ddb, &table, 600);
    let fact = |day: &str, ad: &str, value: f64| Fact {
        key: FactKey {
            day: day.into(),
            outcome: "sent".into(),
            destination: "meta".into(),
            channel: "whatsapp".into(),
            account: "102290129340398".into(),
            ad_id: ad.into(),
            rule: "order-purchase".into(),
            event_name: "Purchase".into(),
            currency: "EUR".into(),
        },
        value: Some(value),
        keys: vec!["ctwa_clid", "ph"],
    };
    // Two batches on the first day, one on the next.
    for (i, facts) in [
        vec![
            fact("2026-11-30", "ad-1", 19.99),
            fact("2026-11-30", "ad-1", 0.01),
        ],
        vec![
            fact("2026-11-30", "ad-1", 5.0),
            fact("2026-11-30", "ad-2", 7.5),
        ],
        vec![fact("2026-12-01", "ad-1", 1.0)],
    ]
    .into_iter()
    .enumerate()
    {
        let marks: Vec<SentMark> = (0..facts.len())
            .map(|j| SentMark {
                event_id: format!("{:064x}", i * 10 + j),
                fbtrace_id: None,
                sent_at: 1,
                expires_at: 10_000,
            })
            .collect();
        store.mark_sent(&marks, &tally(facts)).await.unwrap();
    }

    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_wacapi"))
            .args(args)
            .env("AWS_ENDPOINT_URL", wacapi_tests::moto_url())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .output()
            .unwrap()
    };
    let rows = json_lines(&run(&["report", "--table", &table, "--format", "json"]));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["ad_id"], "ad-1");
    assert_eq!(
        (rows[0]["count"].as_u64(), rows[0]["value"].as_f64()),
        (Some(4), Some(26.0))
    );
    assert_eq!(
        (rows[1]["count"].as_u64(), rows[1]["value"].as_f64()),
        (Some(1), Some(7.5))
    );
    let first_day = json_lines(&run(&[
        "report",
        "--table",
        &table,
        "--format",
        "json",
        "--until",
        "2026-11-30",
        "--ad",
        "ad-1",
    ]));
    assert_eq!(
        (
            first_day[0]["count"].as_u64(),
            first_day[0]["value"].as_f64()
        ),
        (Some(3), Some(25.0))
    );
    let coverage = json_lines(&run(&[
        "report", "--table", &table, "--format", "json", "--show", "coverage",
    ]));
    assert_eq!(coverage[0]["events"], 5);
    assert_eq!(coverage[0]["keys"]["ph"], 1.0);

    let missing = run(&["report", "--table", "no-such-table", "--format", "json"]);
    assert!(!missing.status.success());
    let stderr = text(&missing.stderr);
    assert!(
        stderr.contains("table \"no-such-table\" not found"),
        "{stderr}"
    );
}
