//! `--format html`: the conversion report as one self-contained page, rendered in a real
//! headless browser (Debian's Chromium; `./scripts/test` installs it when missing) at a laptop's
//! and a phone's width, and checked from the screenshots that its charts are drawn: the spend,
//! revenue, ROAS and conversions-per-day bars, each in its own colour, cover a visible area.
//! The page loads nothing from the network (no script, stylesheet, font or image).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use wacapi_shared::report::html::{DAY_COLOUR, REVENUE_COLOUR, ROAS_COLOUR, SPEND_COLOUR};
use wacapi_tests::insights_mock::{MOCK_ADS_TOKEN, MockInsights};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Debian's Chromium, or `WACAPI_TEST_CHROMIUM`. `None` when absent, unless the test command
/// requires it (`WACAPI_TEST_BROWSER=required`, as `./scripts/test` sets after installing it).
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("WACAPI_TEST_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var("WACAPI_TEST_BROWSER").as_deref() != Ok("required"),
        "no Chromium at {}: ./scripts/test installs Debian's chromium package",
        path.display()
    );
    eprintln!("page test skipped: no Chromium at {}", path.display());
    None
}

/// A screenshot of `page` at `width` × `height` CSS pixels, decoded to RGB(A) rows.
fn screenshot(
    chromium: &Path,
    page: &Path,
    width: u32,
    height: u32,
    dir: &Path,
) -> (Vec<u8>, usize) {
    let png = dir.join(format!("page-{width}.png"));
    let profile = dir.join(format!("profile-{width}"));
    // The flags the machine's probe uses: no background networking (the machine's network is
    // closed), a fresh profile, no sandbox (tests run as root).
    let status = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            &format!("--user-data-dir={}", profile.display()),
            &format!("--window-size={width},{height}"),
            &format!("--screenshot={}", png.display()),
            &format!("file://{}", page.display()),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("chromium runs");
    assert!(status.success(), "chromium failed");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.width, width, "the screenshot is the asked width");
    let channels = info.color_type.samples();
    buf.truncate(info.buffer_size());
    (buf, channels)
}

/// Pixels of exactly `colour` (`#rrggbb`).
fn pixels_of(image: &(Vec<u8>, usize), colour: &str) -> usize {
    let rgb: Vec<u8> = (0..3)
        .map(|i| u8::from_str_radix(&colour[1 + 2 * i..3 + 2 * i], 16).unwrap())
        .collect();
    image
        .0
        .chunks(image.1)
        .filter(|p| p[..3] == rgb[..])
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_draws_its_charts_at_laptop_and_phone_widths() {
    let text =
        std::fs::read_to_string(repo().join("cli/tests/fixtures/insights/spend.json")).unwrap();
    let rows: BTreeMap<String, Vec<Value>> = serde_json::from_str(&text).unwrap();
    let mock = MockInsights::start(rows, 50).await;
    let url = mock.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_wacapi"))
            .args([
                "replay",
                "--now",
                "1764600000",
                "--config",
                "examples/wacapi.toml",
                "--report",
                "--spend",
                "act_1001",
                "--spend",
                "act_2002",
                "--format",
                "html",
                "cli/tests/fixtures/report/01-ad-clicks.json",
                "cli/tests/fixtures/report/02-orders.json",
                "cli/tests/fixtures/report/03-more-orders.json",
            ])
            .current_dir(repo())
            .env("WACAPI_GRAPH_BASE_URL", url)
            .env("WACAPI_ADS_TOKEN", MOCK_ADS_TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let html = String::from_utf8(out.stdout).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    for loaded in [
        "<script", "<link", "<img", "src=", "@import", "url(", "http://", "https://",
    ] {
        assert!(!html.contains(loaded), "the page loads something: {loaded}");
    }
    for name in [
        "Spring sale — carousel",
        "Promo Brasil",
        "Spring sale",
        "Brasil",
    ] {
        assert!(html.contains(name), "{name}");
    }
    assert!(html.contains("&lt;b&gt;B&lt;/b&gt;"), "names are escaped");
    assert!(!html.contains(MOCK_ADS_TOKEN) && !html.contains("15550100001"));
    // Without --spend the page says how to get spend, and draws the rest.
    let without = Command::new(env!("CARGO_BIN_EXE_wacapi"))
        .args([
            "replay",
            "--now",
            "1764600000",
            "--config",
            "examples/wacapi.toml",
            "--report",
            "--format",
            "html",
            "cli/tests/fixtures/report/02-orders.json",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    let without = String::from_utf8(without.stdout).unwrap();
    assert!(without.contains("--spend act_") && without.contains("Skipped, by reason"));

    let Some(chromium) = chromium() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("wacapi-page-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("report.html");
    std::fs::write(&page, &html).unwrap();
    for (width, height) in [(1280, 1800), (390, 3600)] {
        let image = screenshot(&chromium, &page, width, height, &dir);
        for (what, colour) in [
            ("spend bars", SPEND_COLOUR),
            ("revenue bars", REVENUE_COLOUR),
            ("ROAS bars", ROAS_COLOUR),
            ("conversions per day", DAY_COLOUR),
        ] {
            let n = pixels_of(&image, colour);
            assert!(n > 400, "{width} px wide: {what} cover {n} pixels");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
