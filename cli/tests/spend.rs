//! `--spend act_<ID>`: the conversion report joined with Meta's spend per ad and day, read from
//! a loopback Ads Insights API (`tests/src/insights_mock.rs`, Meta's rules) at
//! `WACAPI_GRAPH_BASE_URL` with the token in `WACAPI_ADS_TOKEN`: names, spend, events, value,
//! ROAS and cost per event per ad and per campaign, ads that spent and brought nothing included;
//! pages followed, throttling waited out, token and permission errors explained; nothing
//! personal and no token in any output. The expected figures are worked out by hand from the
//! fixtures (`cli/tests/fixtures/report`, `cli/tests/fixtures/insights/spend.json`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;
use wacapi_tests::insights_mock::{MOCK_ADS_TOKEN, MockInsights, Scripted};

/// "Now" for the report fixtures (2025-12-01 14:40 UTC).
const NOW: &str = "1764600000";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn report_files() -> Vec<String> {
    (1..=3)
        .map(|i| {
            let name = ["01-ad-clicks", "02-orders", "03-more-orders"][i - 1];
            format!("cli/tests/fixtures/report/{name}.json")
        })
        .collect()
}

async fn mock(page_size: usize) -> MockInsights {
    let text =
        std::fs::read_to_string(repo().join("cli/tests/fixtures/insights/spend.json")).unwrap();
    let rows: BTreeMap<String, Vec<Value>> = serde_json::from_str(&text).unwrap();
    MockInsights::start(rows, page_size).await
}

fn replay_with_spend(mock: &MockInsights, token: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "replay",
        "--now",
        NOW,
        "--config",
        "examples/wacapi.toml",
        "--report",
        "--spend",
        "act_1001",
        "--spend",
        "act_2002",
    ];
    args.extend_from_slice(extra);
    let files = report_files();
    args.extend(files.iter().map(String::as_str));
    Command::new(env!("CARGO_BIN_EXE_wacapi"))
        .args(&args)
        .current_dir(repo())
        .env("WACAPI_GRAPH_BASE_URL", &mock.url)
        .env("WACAPI_ADS_TOKEN", token)
        .env("WACAPI_INSIGHTS_MAX_WAIT_SECONDS", "5")
        .output()
        .expect("wacapi runs")
}

fn lines(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

/// What nothing may print: the token, and the fixtures' phone numbers.
fn assert_nothing_personal(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        for secret in [
            MOCK_ADS_TOKEN,
            "token-in-the-next-link",
            "15550100001",
            "5550100002",
        ] {
            assert!(!text.contains(secret), "{secret} printed:\n{text}");
        }
    }
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 0.005)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_report_joins_spend_per_ad_and_campaign() {
    // One row per page, a throttling answer before the first: every page read, once.
    let mock = mock(1).await;
    mock.script([Scripted::Throttle]);
    let out = tokio::task::spawn_blocking({
        let mock = mock.clone();
        move || {
            replay_with_spend(
                &mock,
                MOCK_ADS_TOKEN,
                &["--format", "json", "--show", "ads"],
            )
        }
    })
    .await
    .unwrap();
    assert_nothing_personal(&out);
    let ads = lines(&out);
    assert_eq!(mock.violations(), Vec::<String>::new());
    // The report's days are the events' (2025-12-01): the other days' spend is not read.
    for r in mock.received() {
        assert_eq!(
            r.query["time_range"],
            r#"{"since":"2025-12-01","until":"2025-12-01"}"#
        );
    }
    let statuses: Vec<u16> = mock.received().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [400, 200, 200, 200, 200],
        "throttled, then 3 + 1 pages"
    );

    // Worked out by hand. Ad 101 (EUR account): 20.00 spent on 12-01; sent 3 EUR purchases
    // (59.97 + 0.30 + 10.01) and 2 ViewContent without a value; 1 USD purchase (5.00) on a row
    // of its own. Ad 102 (BRL account): 400.00; 1 purchase of 1,299.00 and 1 ViewContent.
    // Ad 103: 12.00 spent, nothing sent. Ad 104: nothing spent, nothing sent.
    let row = |ad: &str, currency: Option<&str>| -> &Value {
        ads.iter()
            .find(|r| r["ad_id"] == ad && r["currency"].as_str() == currency)
            .unwrap_or_else(|| panic!("{ad} {currency:?} in {ads:#?}"))
    };
    assert_eq!(ads.len(), 5, "{ads:#?}");
    let a101 = row("120230000000000101", Some("EUR"));
    assert_eq!(a101["ad_name"], "Spring sale — carousel");
    assert_eq!(a101["campaign_id"], "120230000000000900");
    assert_eq!(a101["campaign_name"], "Spring sale");
    assert!(close(&a101["spend"], 20.0));
    assert_eq!(
        (a101["events"].as_u64(), a101["purchases"].as_u64()),
        (Some(5), Some(3))
    );
    assert!(close(&a101["value"], 70.28));
    assert!(close(&a101["roas"], 70.28 / 20.0));
    assert!(close(&a101["cost_per_event"], 20.0 / 5.0));
    let usd = row("120230000000000101", Some("USD"));
    assert_eq!(usd["spend"], Value::Null);
    assert_eq!(usd["roas"], Value::Null);
    assert!(close(&usd["value"], 5.0));
    assert!(usd["note"].as_str().unwrap().contains("another currency"));
    let a102 = row("120230000000000102", Some("BRL"));
    assert!(close(&a102["spend"], 400.0));
    assert_eq!(
        (a102["events"].as_u64(), a102["purchases"].as_u64()),
        (Some(2), Some(1))
    );
    assert!(close(&a102["roas"], 1299.0 / 400.0));
    assert!(close(&a102["cost_per_event"], 200.0));
    let a103 = row("120230000000000103", Some("EUR"));
    assert_eq!(
        a103["events"], 0,
        "money spent on an ad that brought nothing shows"
    );
    assert!(close(&a103["roas"], 0.0));
    assert_eq!(a103["cost_per_event"], Value::Null);
    let a104 = row("120230000000000104", Some("EUR"));
    assert_eq!(a104["roas"], Value::Null, "no ROAS of nothing spent");
    // Highest spend first.
    assert_eq!(ads[0]["ad_id"], "120230000000000102");

    let out = tokio::task::spawn_blocking({
        let mock = mock.clone();
        move || {
            replay_with_spend(
                &mock,
                MOCK_ADS_TOKEN,
                &["--format", "json", "--show", "campaigns"],
            )
        }
    })
    .await
    .unwrap();
    let campaigns = lines(&out);
    let spring = campaigns
        .iter()
        .find(|c| c["campaign_id"] == "120230000000000900" && c["currency"] == "EUR")
        .unwrap();
    assert!(close(&spring["spend"], 32.0));
    assert_eq!(spring["events"], 5);
    assert!(close(&spring["roas"], 70.28 / 32.0));
    assert!(spring.get("ad_id").is_none(), "a campaign line names no ad");
    let total_spend: f64 = campaigns.iter().filter_map(|c| c["spend"].as_f64()).sum();
    assert!(
        (total_spend - 432.0).abs() < 0.005,
        "every spend counted once"
    );
    let total_events: u64 = campaigns
        .iter()
        .map(|c| c["events"].as_u64().unwrap())
        .sum();
    assert_eq!(total_events, 8, "every sent event counted once");

    // CSV and the table read the same rows.
    let out = tokio::task::spawn_blocking({
        let mock = mock.clone();
        move || replay_with_spend(&mock, MOCK_ADS_TOKEN, &["--format", "csv", "--show", "ads"])
    })
    .await
    .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("ad_id,ad_name,campaign_id,campaign_name,spend,currency,events,purchases,value,roas,cost_per_event,note\n"), "{csv}");
    assert_eq!(csv.lines().count(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_and_permission_errors_say_what_to_fix_and_never_the_token() {
    let mock = mock(10).await;
    for (scripted, want) in [
        (Scripted::BadToken, "code 190"),
        (Scripted::NoPermission, "ads_read"),
    ] {
        mock.script([scripted]);
        let out = tokio::task::spawn_blocking({
            let mock = mock.clone();
            move || {
                replay_with_spend(
                    &mock,
                    MOCK_ADS_TOKEN,
                    &["--format", "json", "--show", "ads"],
                )
            }
        })
        .await
        .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(want) && stderr.contains("act_1001"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty(), "nothing half-joined is printed");
        assert_nothing_personal(&out);
    }
    // Throttled past the time limit.
    mock.script([Scripted::Throttle; 30]);
    let out = tokio::task::spawn_blocking({
        let mock = mock.clone();
        move || {
            replay_with_spend(
                &mock,
                MOCK_ADS_TOKEN,
                &["--format", "json", "--show", "ads"],
            )
        }
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("throttling"));
    // No token at all; a bad account id: refused before anything is read.
    let before = mock.received().len();
    let out = Command::new(env!("CARGO_BIN_EXE_wacapi"))
        .args(["replay", "--report", "--spend", "act_1001", "--show", "ads"])
        .args(report_files())
        .current_dir(repo())
        .env("WACAPI_GRAPH_BASE_URL", &mock.url)
        .env_remove("WACAPI_ADS_TOKEN")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("WACAPI_ADS_TOKEN"));
    let out = Command::new(env!("CARGO_BIN_EXE_wacapi"))
        .args(["report", "--url", "http://127.0.0.1:9", "--spend", "1001"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("act_ followed by its digits"));
    assert_eq!(mock.received().len(), before);
}

/// `wacapi report --table` (a deployment's aggregates, here on moto) joins the same spend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_table_joins_spend_from_a_deployments_aggregates() {
    use wacapi_shared::aws::dynamo::DynamoStore;
    use wacapi_shared::report::{Fact, FactKey, tally};
    use wacapi_shared::store::DispatchStore;
    use wacapi_shared::store::ledger::SentMark;

    let aws = wacapi_tests::aws_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&aws);
    let table = wacapi_tests::stack::create_table(&ddb).await;
    let store = DynamoStore::new(ddb, &table, 600);
    let fact = |ad: &str, event: &str, value: Option<f64>| Fact {
        key: FactKey {
            day: "2025-12-01".into(),
            outcome: "sent".into(),
            destination: "meta".into(),
            channel: "whatsapp".into(),
            account: "102290129340398".into(),
            ad_id: ad.into(),
            rule: "r".into(),
            event_name: event.into(),
            currency: if value.is_some() {
                "EUR".into()
            } else {
                String::new()
            },
        },
        value,
        keys: vec!["ctwa_clid"],
    };
    let facts = vec![
        fact("120230000000000101", "Purchase", Some(40.0)),
        fact("120230000000000101", "Purchase", Some(10.0)),
        fact("120230000000000101", "ViewContent", None),
    ];
    let marks: Vec<SentMark> = (0..facts.len())
        .map(|j| SentMark {
            event_id: format!("{j:064x}"),
            fbtrace_id: None,
            sent_at: 1,
            expires_at: 10_000,
        })
        .collect();
    store.mark_sent(&marks, &tally(facts)).await.unwrap();

    let mock = mock(50).await;
    let url = mock.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wacapi"))
            .args([
                "report", "--table", &table, "--spend", "act_1001", "--format", "json", "--show",
                "ads",
            ])
            .env("AWS_ENDPOINT_URL", wacapi_tests::moto_url())
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
            .env_remove("AWS_PROFILE")
            .env("WACAPI_GRAPH_BASE_URL", url)
            .env("WACAPI_ADS_TOKEN", MOCK_ADS_TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_nothing_personal(&out);
    let ads = lines(&out);
    let a101 = ads
        .iter()
        .find(|r| r["ad_id"] == "120230000000000101")
        .unwrap();
    // 20.00 spent on 2025-12-01; 3 events (2 purchases, 50.00 EUR).
    assert!(close(&a101["spend"], 20.0));
    assert_eq!(
        (a101["events"].as_u64(), a101["purchases"].as_u64()),
        (Some(3), Some(2))
    );
    assert!(close(&a101["roas"], 50.0 / 20.0));
    assert!(close(&a101["cost_per_event"], 20.0 / 3.0));
    assert!(
        ads.iter()
            .any(|r| r["ad_id"] == "120230000000000103" && r["events"] == 0),
        "ads that spent and sent nothing are listed: {ads:#?}"
    );
}
