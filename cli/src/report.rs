//! `wacapi report`: the conversion report (what was sent, per ad, event and currency; skips by
//! reason; match-key coverage) from a deployment's table, from a running `wacapi serve`
//! (`GET /report`, loopback only), or, through `wacapi replay --report`, from webhook files;
//! joined with Meta's spend per ad (`--spend act_<ID>`: names, cost per event, ROAS), as text,
//! CSV, JSON lines or one HTML page.

use std::time::Duration;

use secrecy::SecretString;
use wacapi_shared::meta::insights::{InsightsClient, Patience, SpendRow};
use wacapi_shared::report::html::{Page, render as render_page};
use wacapi_shared::report::spend::{SpendLine, join};
use wacapi_shared::report::{
    FactKey, Filter, Format, Report, SENT, Section, Tally, day_of, day_start,
};

/// The variable holding the access token that reads spend (`ads_read`).
pub const ADS_TOKEN_VAR: &str = "WACAPI_ADS_TOKEN";
/// The variable holding the Graph API base URL (Meta's by default).
pub const GRAPH_BASE_URL_VAR: &str = "WACAPI_GRAPH_BASE_URL";

/// Days of spend read when neither the filter nor the data name any.
const DEFAULT_DAYS: i64 = 28;

/// Filters and output of every report.
#[derive(clap::Args, Debug, Clone)]
pub struct ReportArgs {
    /// First day included (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub since: Option<String>,
    /// Last day included (YYYY-MM-DD, UTC).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this ad id.
    #[arg(long)]
    pub ad: Option<String>,
    /// Only this event name (Purchase, LeadSubmitted, ...).
    #[arg(long)]
    pub event: Option<String>,
    /// table, csv, json (one object per line) or html (one self-contained page with charts).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// What table, csv and json print: rows (sent events per ad, event and currency), skips,
    /// coverage (the share of sent events carrying each match key), ads or campaigns (joined
    /// with --spend: names, spend, events, value, ROAS, cost per event).
    #[arg(long, default_value = "rows")]
    pub show: String,
    /// Read spend per ad and day from this ad account (act_<ID>; repeatable) with the Insights
    /// API, the token in WACAPI_ADS_TOKEN (ads_read).
    #[arg(long = "spend", value_name = "act_ID")]
    pub spend: Vec<String>,
}

/// What is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Output {
    /// A section of the report ([`Report::render`]).
    Report(Format, Section),
    /// The ads or campaigns joined with spend.
    Joined(Format, bool),
    /// The HTML page.
    Html,
    /// The aggregates themselves, as JSON lines (what `wacapi report --url` reads from serve).
    Aggregates,
}

impl ReportArgs {
    /// The filter, with its days checked.
    pub fn filter(&self) -> Result<Filter, String> {
        for (name, day) in [("--since", &self.since), ("--until", &self.until)] {
            if let Some(day) = day
                && day_start(day).is_none()
            {
                return Err(format!("{name} {day:?} is not a day (YYYY-MM-DD)"));
            }
        }
        Ok(Filter {
            since: self.since.clone(),
            until: self.until.clone(),
            ad: self.ad.clone(),
            event: self.event.clone(),
        })
    }

    fn output(&self) -> Result<Output, String> {
        match self.format.as_str() {
            "html" => return Ok(Output::Html),
            "aggregates" => return Ok(Output::Aggregates),
            _ => {}
        }
        let format: Format = self
            .format
            .parse()
            .map_err(|e: String| e.replace("(table, csv, json)", "(table, csv, json, html)"))?;
        Ok(match self.show.as_str() {
            "rows" => Output::Report(format, Section::Rows),
            "skips" => Output::Report(format, Section::Skips),
            "coverage" => Output::Report(format, Section::Coverage),
            "ads" => Output::Joined(format, true),
            "campaigns" => Output::Joined(format, false),
            other => {
                return Err(format!(
                    "--show {other:?} is not rows, skips, coverage, ads or campaigns"
                ));
            }
        })
    }

    /// Checks the arguments before anything is read.
    pub fn check(&self) -> Result<(), String> {
        self.filter()?;
        self.output()?;
        for account in &self.spend {
            let digits = account.strip_prefix("act_").unwrap_or_default();
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "--spend {account:?} is not an ad account id: act_ followed by its digits"
                ));
            }
        }
        if !self.spend.is_empty() && std::env::var(ADS_TOKEN_VAR).is_ok_and(|t| t.trim().is_empty())
        {
            return Err(format!("{ADS_TOKEN_VAR} is empty"));
        }
        Ok(())
    }

    /// Renders the report of `aggregates`, without spend (what `serve`'s `GET /report`
    /// answers).
    pub fn render(&self, aggregates: &[(FactKey, Tally)]) -> Result<String, String> {
        self.render_with(aggregates, None)
    }

    /// Renders the report of `aggregates`, joined with Meta's spend when `--spend` names ad
    /// accounts.
    pub async fn render_reading_spend(
        &self,
        aggregates: &[(FactKey, Tally)],
    ) -> Result<String, String> {
        if self.spend.is_empty() {
            return self.render(aggregates);
        }
        let spend = read_spend(&self.spend, &self.filter()?, aggregates).await?;
        self.render_with(aggregates, Some(&spend))
    }

    fn render_with(
        &self,
        aggregates: &[(FactKey, Tally)],
        spend: Option<&[SpendRow]>,
    ) -> Result<String, String> {
        let filter = self.filter()?;
        let joined = || join(aggregates, &filter, spend.unwrap_or_default());
        Ok(match self.output()? {
            Output::Report(format, section) => {
                Report::new(aggregates, &filter).render(format, section)
            }
            Output::Joined(format, ads) => {
                let joined = joined();
                render_lines(
                    if ads { &joined.ads } else { &joined.campaigns },
                    format,
                    ads,
                )
            }
            Output::Html => render_page(&Page {
                report: &Report::new(aggregates, &filter),
                joined: &joined(),
                with_spend: spend.is_some(),
                period: (filter.since.as_deref(), filter.until.as_deref()),
            }),
            Output::Aggregates => aggregates
                .iter()
                .filter(|(k, _)| filter.keeps(k))
                .map(|a| serde_json::to_string(a).map(|l| l + "\n"))
                .collect::<Result<String, _>>()
                .map_err(|e| e.to_string())?,
        })
    }

    /// The media type of the rendered report.
    pub fn content_type(&self) -> &'static str {
        match self.format.as_str() {
            "json" | "aggregates" => "application/x-ndjson; charset=utf-8",
            "html" => "text/html; charset=utf-8",
            "csv" => "text/csv; charset=utf-8",
            _ => "text/plain; charset=utf-8",
        }
    }

    /// The query string of `GET /report` with these filters and this output.
    fn query(&self) -> Vec<(&'static str, String)> {
        [
            ("since", self.since.clone()),
            ("until", self.until.clone()),
            ("ad", self.ad.clone()),
            ("event", self.event.clone()),
            ("format", Some(self.format.clone())),
            ("show", Some(self.show.clone())),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect()
    }

    /// The arguments of a `GET /report` query, decoded (absent ones take their defaults;
    /// `format` defaults to json there).
    pub fn from_query(query: &std::collections::HashMap<String, String>) -> Self {
        let get = |k: &str| query.get(k).cloned();
        Self {
            since: get("since"),
            until: get("until"),
            ad: get("ad"),
            event: get("event"),
            format: get("format").unwrap_or_else(|| "json".into()),
            show: get("show").unwrap_or_else(|| "rows".into()),
            spend: Vec::new(),
        }
    }
}

/// Where the aggregates come from.
pub enum Source {
    /// A deployment's DynamoDB table (AWS credentials and region as usual; `AWS_ENDPOINT_URL`
    /// points it elsewhere, e.g. moto).
    Table(String),
    /// A running `wacapi serve` (`http://127.0.0.1:PORT`).
    Serve(String),
}

/// Prints the report.
pub fn run(source: Source, args: &ReportArgs) -> Result<(), String> {
    // Checked before anything is read.
    args.check()?;
    let runtime = crate::runtime()?;
    let text = runtime.block_on(async {
        let aggregates = read(source, args).await?;
        args.render_reading_spend(&aggregates).await
    })?;
    print(&text)
}

/// Prints a rendered report.
pub fn print(text: &str) -> Result<(), String> {
    if !text.trim().is_empty() {
        crate::out(text.trim_end_matches('\n'))?;
    }
    Ok(())
}

/// The aggregates of `source`, filtered.
async fn read(source: Source, args: &ReportArgs) -> Result<Vec<(FactKey, Tally)>, String> {
    match source {
        Source::Table(table) => {
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let client = aws_sdk_dynamodb::Client::new(&aws);
            wacapi_shared::aws::report::read_report(&client, &table, &args.filter()?)
                .await
                .map_err(|e| format!("{table}: {e}"))
        }
        Source::Serve(url) => {
            let query = ReportArgs {
                format: "aggregates".into(),
                ..args.clone()
            }
            .query();
            let endpoint = reqwest::Url::parse_with_params(
                &format!("{}/report", url.trim_end_matches('/')),
                query,
            )
            .map_err(|e| format!("{url}: {e}"))?;
            let response = reqwest::Client::new()
                .get(endpoint)
                .send()
                .await
                .map_err(|e| format!("{url}: {}", e.without_url()))?;
            let status = response.status();
            let text = response.text().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!("{url}/report answered {status}: {}", text.trim()));
            }
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    serde_json::from_str(l)
                        .map_err(|e| format!("{url}/report: an aggregate line does not read: {e}"))
                })
                .collect()
        }
    }
}

/// Meta's spend per ad and day in `accounts`, over the filter's days (else the days of the sent
/// aggregates, else the last 28 days).
async fn read_spend(
    accounts: &[String],
    filter: &Filter,
    aggregates: &[(FactKey, Tally)],
) -> Result<Vec<SpendRow>, String> {
    let token = std::env::var(ADS_TOKEN_VAR)
        .ok()
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| format!("--spend needs an access token with ads_read in {ADS_TOKEN_VAR}"))?;
    let base = std::env::var(GRAPH_BASE_URL_VAR)
        .ok()
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| wacapi_shared::meta::graph::DEFAULT_BASE_URL.to_owned());
    let client = InsightsClient::new(
        &base,
        wacapi_shared::conversion::rules::DEFAULT_GRAPH_API_VERSION,
        SecretString::from(token),
        Duration::from_secs(30),
        patience(),
    )
    .map_err(|e| e.to_string())?;
    let (since, until) = spend_days(filter, aggregates);
    let mut rows = Vec::new();
    for account in accounts {
        rows.extend(
            client
                .spend(account, &since, &until)
                .await
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(rows)
}

/// How long throttling is waited out: `WACAPI_INSIGHTS_MAX_WAIT_SECONDS` (default 120).
fn patience() -> Patience {
    let seconds = std::env::var("WACAPI_INSIGHTS_MAX_WAIT_SECONDS")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    match seconds {
        Some(s) => Patience {
            max_wait: Duration::from_secs(s),
            first_wait: Duration::from_millis((s * 1000 / 60).clamp(50, 2000)),
        },
        None => Patience::default(),
    }
}

/// The days spend is read for: the filter's, else the sent aggregates' first and last, else
/// the last [`DEFAULT_DAYS`] days.
fn spend_days(filter: &Filter, aggregates: &[(FactKey, Tally)]) -> (String, String) {
    let sent_days = aggregates
        .iter()
        .filter(|(k, _)| k.outcome == SENT && filter.keeps(k))
        .map(|(k, _)| k.day.as_str());
    let (first, last) =
        sent_days.fold((None, None), |(lo, hi): (Option<&str>, Option<&str>), d| {
            (
                Some(lo.map_or(d, |l| l.min(d))),
                Some(hi.map_or(d, |h| h.max(d))),
            )
        });
    let today = day_of(wacapi_shared::clock::now());
    let until = filter
        .until
        .clone()
        .or_else(|| last.map(str::to_owned))
        .unwrap_or_else(|| today.clone());
    let since = filter
        .since
        .clone()
        .or_else(|| first.map(str::to_owned))
        .unwrap_or_else(|| day_of(wacapi_shared::clock::now() - (DEFAULT_DAYS - 1) * 86_400));
    (since, until)
}

/// Ads or campaigns as a table, CSV or JSON lines.
fn render_lines(lines: &[SpendLine], format: Format, ads: bool) -> String {
    match format {
        Format::Json => json_lines(lines),
        Format::Csv => csv_lines(lines, ads),
        Format::Table => table_lines(lines, ads),
    }
}

/// One JSON object per line.
fn json_lines(lines: &[SpendLine]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.json().to_string());
        out.push('\n');
    }
    out
}

/// CSV with a header; for ads, the ad's id and name come first.
fn csv_lines(lines: &[SpendLine], ads: bool) -> String {
    use std::fmt::Write as _;
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    let mut out = String::new();
    out.push_str(if ads {
        "ad_id,ad_name,campaign_id,campaign_name,spend,currency,events,purchases,value,roas,cost_per_event,note\n"
    } else {
        "campaign_id,campaign_name,spend,currency,events,purchases,value,roas,cost_per_event,note\n"
    });
    for l in lines {
        if ads {
            let _ = write!(
                out,
                "{},{},",
                csv(l.ad_id.as_deref().unwrap_or("")),
                csv(l.ad_name.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{}",
            csv(l.campaign_id.as_deref().unwrap_or("")),
            csv(l.campaign_name.as_deref().unwrap_or("")),
            opt(l.spend),
            csv(l.currency.as_deref().unwrap_or("")),
            l.events,
            l.purchases,
            l.value,
            opt(l.roas),
            opt(l.cost_per_event),
            csv(l.note.unwrap_or(""))
        );
    }
    out
}

/// A text table with a header; names are shortened to their column, and for ads the campaign
/// has a column of its own.
fn table_lines(lines: &[SpendLine], ads: bool) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<28} {:<24} {:>12} {:<4} {:>7} {:>6} {:>12} {:>7} {:>10}",
        if ads { "ad" } else { "campaign" },
        if ads { "campaign" } else { "" },
        "spend",
        "cur",
        "events",
        "purch",
        "value",
        "roas",
        "cost/ev"
    );
    for l in lines {
        let name = |n: Option<&str>, id: Option<&str>| shorten(n.or(id).unwrap_or("(no ad)"), 28);
        let first = if ads {
            name(l.ad_name.as_deref(), l.ad_id.as_deref())
        } else {
            name(l.campaign_name.as_deref(), l.campaign_id.as_deref())
        };
        let second = if ads {
            shorten(
                l.campaign_name
                    .as_deref()
                    .or(l.campaign_id.as_deref())
                    .unwrap_or("-"),
                24,
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{first:<28} {second:<24} {:>12} {:<4} {:>7} {:>6} {:>12} {:>7} {:>10}{}",
            l.spend.map_or("-".into(), |s| format!("{s:.2}")),
            l.currency.as_deref().unwrap_or("-"),
            l.events,
            l.purchases,
            format!("{:.2}", l.value),
            l.roas.map_or("-".into(), |r| format!("{r:.2}")),
            l.cost_per_event.map_or("-".into(), |c| format!("{c:.2}")),
            l.note.map(|n| format!("  ({n})")).unwrap_or_default()
        );
    }
    out
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end.saturating_sub(1)]),
        None => text.to_owned(),
    }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}
