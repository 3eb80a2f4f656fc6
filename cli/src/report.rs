//! `wacapi report`: the conversion report (what was sent, per ad, event and currency; skips by
//! reason; match-key coverage) from a deployment's table, from a running `wacapi serve`
//! (`GET /report`, loopback only), or, through `wacapi replay --report`, from webhook files.

use wacapi_shared::report::{FactKey, Filter, Format, Report, Section, Tally, day_start};

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
    /// table (every section), csv or json (one object per line).
    #[arg(long, default_value = "table")]
    pub format: String,
    /// What csv and json print: rows (sent events per ad, event and currency), skips, or
    /// coverage (the share of sent events carrying each match key).
    #[arg(long, default_value = "rows")]
    pub show: String,
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

    fn output(&self) -> Result<(Format, Section), String> {
        let section = match self.show.as_str() {
            "rows" => Section::Rows,
            "skips" => Section::Skips,
            "coverage" => Section::Coverage,
            other => return Err(format!("--show {other:?} is not rows, skips or coverage")),
        };
        Ok((self.format.parse()?, section))
    }

    /// Renders the report of `aggregates`.
    pub fn render(&self, aggregates: &[(FactKey, Tally)]) -> Result<String, String> {
        let (format, section) = self.output()?;
        Ok(Report::new(aggregates, &self.filter()?).render(format, section))
    }

    /// The media type of the rendered report.
    pub fn content_type(&self) -> &'static str {
        match self.format.as_str() {
            "json" => "application/x-ndjson; charset=utf-8",
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
    args.filter()?;
    args.output()?;
    let runtime = crate::runtime()?;
    let text = runtime.block_on(read(source, args))?;
    if !text.trim().is_empty() {
        crate::out(text.trim_end_matches('\n'))?;
    }
    Ok(())
}

async fn read(source: Source, args: &ReportArgs) -> Result<String, String> {
    match source {
        Source::Table(table) => {
            let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
            let client = aws_sdk_dynamodb::Client::new(&aws);
            let aggregates =
                wacapi_shared::aws::report::read_report(&client, &table, &args.filter()?)
                    .await
                    .map_err(|e| format!("{table}: {e}"))?;
            args.render(&aggregates)
        }
        Source::Serve(url) => {
            let endpoint = reqwest::Url::parse_with_params(
                &format!("{}/report", url.trim_end_matches('/')),
                args.query(),
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
            Ok(text)
        }
    }
}
