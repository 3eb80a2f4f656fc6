//! The conversion report: what wacapi sent (and skipped, and why), by day, ad, rule, event,
//! channel, destination and currency, with the share of sent events carrying each match key.
//!
//! The dispatcher turns every sent event and every skip into a [`Fact`]; facts of one batch are
//! summed per [`FactKey`] into [`Tally`]s, which the store adds to daily aggregates (DynamoDB's
//! `ADD`, in the transaction that marks the events sent: a sent event is counted exactly when
//! it is marked, so a redelivery, which finds it sent, counts nothing). No personal data: ad,
//! account and event-set ids, rule and event names, amounts, and counts of keys present.
//!
//! [`Report`] reads aggregates back into rows (one per ad, event and currency), skip counts and
//! match-key coverage, filtered by day, ad and event, and renders them as a table, CSV or JSON
//! lines.

pub mod html;
pub mod spend;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::values::money::round_money;

pub use crate::delivery::outbound::MATCH_KEYS;

/// Aggregates are kept this long after their day (13 months, past Ads Manager's reporting).
pub const REPORT_TTL_SECONDS: i64 = 400 * 86_400;

/// The outcome of a sent event.
pub const SENT: &str = "sent";

/// What a fact is counted under.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FactKey {
    /// `YYYY-MM-DD` (UTC) of the event (of the message, for a skip).
    pub day: String,
    /// `sent`, or the skip reason.
    pub outcome: String,
    /// `meta` or `tiktok` (empty for a skip before attribution).
    pub destination: String,
    /// `whatsapp`, `messenger` or `instagram`.
    pub channel: String,
    /// The WABA, Page or Instagram account.
    pub account: String,
    /// The ad of the attributed click (empty when unknown: automatic events, TikTok touches,
    /// skips without a click).
    pub ad_id: String,
    /// The rule (empty for a skip of the whole signal).
    pub rule: String,
    /// wacapi's event name (empty when no rule said one).
    pub event_name: String,
    /// ISO 4217 of `value` (empty when the event has none).
    pub currency: String,
}

impl FactKey {
    /// A stable id of the key (the store's item key): SHA-256 of its fields.
    pub fn id(&self) -> String {
        let text = [
            &self.day,
            &self.outcome,
            &self.destination,
            &self.channel,
            &self.account,
            &self.ad_id,
            &self.rule,
            &self.event_name,
            &self.currency,
        ]
        .map(String::as_str)
        .join("\u{1f}");
        crate::values::hashing::sha256_hex(text.as_bytes())[..32].to_owned()
    }

    /// Unix seconds after which the aggregate may be deleted.
    pub fn expires_at(&self) -> i64 {
        day_start(&self.day).unwrap_or(0) + 86_400 + REPORT_TTL_SECONDS
    }
}

/// The longest ad or account id an aggregate keeps (Meta's are about 18 digits).
pub const MAX_ID_LEN: usize = 64;

/// An ad or account id as the report keys it: ids as Meta and TikTok write them (letters,
/// digits, `_`, `-`, `.`, up to [`MAX_ID_LEN`]) unchanged; anything else, which no real ad id
/// is, as `invalid` (an aggregate stays small and holds nothing a sender made up).
pub fn id_label(id: Option<&str>) -> String {
    match id {
        None | Some("") => String::new(),
        Some(id)
            if id.len() <= MAX_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) =>
        {
            id.to_owned()
        }
        Some(_) => "invalid".to_owned(),
    }
}

/// One sent event or one skip.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// Where it is counted.
    pub key: FactKey,
    /// The event's value (sent events with a value only).
    pub value: Option<f64>,
    /// The match keys the sent event carried.
    pub keys: Vec<&'static str>,
}

/// Counts and sums of one [`FactKey`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    /// Events (or skips).
    pub count: u64,
    /// Sum of the values, in `currency`.
    pub value: f64,
    /// Sent events carrying each match key.
    pub keys: BTreeMap<String, u64>,
}

impl Tally {
    /// Adds another tally.
    pub fn add(&mut self, other: &Tally) {
        self.count += other.count;
        self.value = round_money(self.value + other.value);
        for (k, n) in &other.keys {
            *self.keys.entry(k.clone()).or_default() += n;
        }
    }
}

/// Sums facts per key (one store update per key and batch).
pub fn tally(facts: impl IntoIterator<Item = Fact>) -> Vec<(FactKey, Tally)> {
    let mut out: BTreeMap<FactKey, Tally> = BTreeMap::new();
    for fact in facts {
        let t = out.entry(fact.key).or_default();
        t.count += 1;
        if let Some(v) = fact.value {
            t.value = round_money(t.value + v);
        }
        for k in fact.keys {
            *t.keys.entry(k.to_owned()).or_default() += 1;
        }
    }
    out.into_iter().collect()
}

/// `YYYY-MM-DD` (UTC) of unix seconds.
pub fn day_of(unix_seconds: i64) -> String {
    crate::clock::Day::from_unix_seconds(unix_seconds).to_string()
}

/// Unix seconds of a `YYYY-MM-DD` day's start (UTC); `None` unless it is a real date.
pub fn day_start(day: &str) -> Option<i64> {
    crate::clock::Day::parse(day).map(crate::clock::Day::start)
}

/// Which aggregates a report covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// First day included (`YYYY-MM-DD`).
    pub since: Option<String>,
    /// Last day included.
    pub until: Option<String>,
    /// Only this ad.
    pub ad: Option<String>,
    /// Only this event name.
    pub event: Option<String>,
}

impl Filter {
    /// Whether an aggregate's key passes.
    pub fn keeps(&self, key: &FactKey) -> bool {
        self.since.as_deref().is_none_or(|s| key.day.as_str() >= s)
            && self.until.as_deref().is_none_or(|u| key.day.as_str() <= u)
            && self.ad.as_deref().is_none_or(|a| key.ad_id == a)
            && self.event.as_deref().is_none_or(|e| key.event_name == e)
    }
}

/// One line of the report: the sent events of one ad, event and currency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// The ad (`null` when unknown).
    pub ad_id: Option<String>,
    /// wacapi's event name.
    pub event_name: String,
    /// Events sent.
    pub count: u64,
    /// Their summed value (0 without one).
    pub value: f64,
    /// The currency of `value` (`null` without one).
    pub currency: Option<String>,
    /// Events sent per destination.
    pub destinations: BTreeMap<String, u64>,
}

/// Skips of one reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkipRow {
    /// The reason (`no_click`, `too_old`, ...).
    pub reason: String,
    /// The event name, when a rule said one.
    pub event_name: Option<String>,
    /// How many.
    pub count: u64,
}

/// The share of sent events of one name and destination carrying each match key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CoverageRow {
    /// wacapi's event name.
    pub event_name: String,
    /// `meta` or `tiktok`.
    pub destination: String,
    /// Events sent.
    pub events: u64,
    /// Share (0 to 1) per key present in at least one event.
    pub keys: BTreeMap<String, f64>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns, with the skip and coverage sections.
    Table,
    /// One header line and one line per row.
    Csv,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "table" => Ok(Self::Table),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is not a format (table, csv, json)")),
        }
    }
}

/// A report over aggregates.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Sent events per ad, event and currency.
    pub rows: Vec<Row>,
    /// Skips per reason and event.
    pub skips: Vec<SkipRow>,
    /// Match-key coverage per event and destination.
    pub coverage: Vec<CoverageRow>,
}

impl Report {
    /// The report of `aggregates` that `filter` keeps.
    pub fn new(aggregates: &[(FactKey, Tally)], filter: &Filter) -> Self {
        let mut rows: BTreeMap<(String, String, String), Row> = BTreeMap::new();
        let mut skips: BTreeMap<(String, String), u64> = BTreeMap::new();
        let mut coverage: BTreeMap<(String, String), (u64, BTreeMap<String, u64>)> =
            BTreeMap::new();
        for (key, tally) in aggregates.iter().filter(|(k, _)| filter.keeps(k)) {
            if key.outcome != SENT {
                *skips
                    .entry((key.outcome.clone(), key.event_name.clone()))
                    .or_default() += tally.count;
                continue;
            }
            let row = rows
                .entry((
                    key.ad_id.clone(),
                    key.event_name.clone(),
                    key.currency.clone(),
                ))
                .or_insert_with(|| Row {
                    ad_id: Some(key.ad_id.clone()).filter(|a| !a.is_empty()),
                    event_name: key.event_name.clone(),
                    count: 0,
                    value: 0.0,
                    currency: Some(key.currency.clone()).filter(|c| !c.is_empty()),
                    destinations: BTreeMap::new(),
                });
            row.count += tally.count;
            row.value = round_money(row.value + tally.value);
            *row.destinations.entry(key.destination.clone()).or_default() += tally.count;
            let c = coverage
                .entry((key.event_name.clone(), key.destination.clone()))
                .or_default();
            c.0 += tally.count;
            for (k, n) in &tally.keys {
                *c.1.entry(k.clone()).or_default() += n;
            }
        }
        Self {
            rows: rows.into_values().collect(),
            skips: skips
                .into_iter()
                .map(|((reason, event), count)| SkipRow {
                    reason,
                    event_name: Some(event).filter(|e| !e.is_empty()),
                    count,
                })
                .collect(),
            coverage: coverage
                .into_iter()
                .map(|((event_name, destination), (events, keys))| CoverageRow {
                    event_name,
                    destination,
                    events,
                    keys: keys
                        .into_iter()
                        .map(|(k, n)| (k, round_share(n, events)))
                        .collect(),
                })
                .collect(),
        }
    }

    /// The total of sent events.
    pub fn sent(&self) -> u64 {
        self.rows.iter().map(|r| r.count).sum()
    }

    /// Renders the sent rows (JSON and CSV), or every section (table). `section` picks what JSON
    /// and CSV print: `rows`, `skips` or `coverage`.
    pub fn render(&self, format: Format, section: Section) -> String {
        let mut out = String::new();
        match format {
            Format::Json => {
                let lines: Vec<String> = match section {
                    Section::Rows => self.rows.iter().map(json_line).collect(),
                    Section::Skips => self.skips.iter().map(json_line).collect(),
                    Section::Coverage => self.coverage.iter().map(json_line).collect(),
                };
                for line in lines {
                    out.push_str(&line);
                    out.push('\n');
                }
            }
            Format::Csv => match section {
                Section::Rows => {
                    out.push_str("ad_id,event_name,count,value,currency\n");
                    for r in &self.rows {
                        let _ = writeln!(
                            out,
                            "{},{},{},{},{}",
                            csv(r.ad_id.as_deref().unwrap_or("")),
                            csv(&r.event_name),
                            r.count,
                            r.value,
                            csv(r.currency.as_deref().unwrap_or(""))
                        );
                    }
                }
                Section::Skips => {
                    out.push_str("reason,event_name,count\n");
                    for s in &self.skips {
                        let _ = writeln!(
                            out,
                            "{},{},{}",
                            csv(&s.reason),
                            csv(s.event_name.as_deref().unwrap_or("")),
                            s.count
                        );
                    }
                }
                Section::Coverage => {
                    out.push_str("event_name,destination,events,key,share\n");
                    for c in &self.coverage {
                        for (k, share) in &c.keys {
                            let _ = writeln!(
                                out,
                                "{},{},{},{},{share}",
                                csv(&c.event_name),
                                csv(&c.destination),
                                c.events,
                                csv(k)
                            );
                        }
                    }
                }
            },
            Format::Table => self.table(&mut out),
        }
        out
    }

    fn table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "{:<24} {:<18} {:>8} {:>14} {:<8} destinations",
            "ad", "event", "count", "value", "currency"
        );
        for r in &self.rows {
            let destinations: Vec<String> = r
                .destinations
                .iter()
                .map(|(d, n)| format!("{d}={n}"))
                .collect();
            let _ = writeln!(
                out,
                "{:<24} {:<18} {:>8} {:>14} {:<8} {}",
                r.ad_id.as_deref().unwrap_or("(none)"),
                r.event_name,
                r.count,
                r.value,
                r.currency.as_deref().unwrap_or("-"),
                destinations.join(" ")
            );
        }
        let _ = writeln!(out, "total sent: {}", self.sent());
        if !self.skips.is_empty() {
            let _ = writeln!(out, "\nskipped:");
            for s in &self.skips {
                let _ = writeln!(
                    out,
                    "  {:<20} {:<18} {:>8}",
                    s.reason,
                    s.event_name.as_deref().unwrap_or("-"),
                    s.count
                );
            }
        }
        if !self.coverage.is_empty() {
            let _ = writeln!(
                out,
                "\nmatch-key coverage (share of sent events carrying each key):"
            );
            for c in &self.coverage {
                let keys: Vec<String> = c
                    .keys
                    .iter()
                    .map(|(k, s)| format!("{k} {:.0}%", s * 100.0))
                    .collect();
                let _ = writeln!(
                    out,
                    "  {:<18} {:<7} {:>8}  {}",
                    c.event_name,
                    c.destination,
                    c.events,
                    keys.join(", ")
                );
            }
        }
    }
}

/// What JSON and CSV output print.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Section {
    /// Sent events per ad, event and currency.
    #[default]
    Rows,
    /// Skips per reason.
    Skips,
    /// Match-key coverage.
    Coverage,
}

fn json_line(v: &impl Serialize) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn round_share(n: u64, of: u64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 / of as f64 * 10_000.0).round() / 10_000.0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_kept_as_written_and_anything_else_is_invalid() {
        assert_eq!(id_label(Some("120226305854810726")), "120226305854810726");
        assert_eq!(id_label(None), "");
        assert_eq!(id_label(Some("+1 555 0100")), "invalid");
        assert_eq!(id_label(Some(&"9".repeat(65))), "invalid");
        assert_eq!(id_label(Some("ad\u{1f}x")), "invalid");
    }

    fn key(ad: &str, event: &str, currency: &str, outcome: &str) -> FactKey {
        FactKey {
            day: "2026-12-01".into(),
            outcome: outcome.into(),
            destination: "meta".into(),
            channel: "whatsapp".into(),
            account: "1".into(),
            ad_id: ad.into(),
            rule: "r".into(),
            event_name: event.into(),
            currency: currency.into(),
        }
    }

    #[test]
    fn report_days_are_the_clock_s_utc_days() {
        // The calendar itself is clock::Day's (tested there); the report reads it as text.
        assert_eq!(day_of(1_750_100_000), "2025-06-16");
        assert_eq!(day_start("2025-06-16"), Some(1_750_032_000));
        assert_eq!(day_start("2026-02-30"), None);
    }

    #[test]
    fn rows_are_per_ad_event_and_currency_with_exact_sums() {
        let fact = |ad: &str, currency: &str, value: f64, keys: Vec<&'static str>| Fact {
            key: key(ad, "Purchase", currency, SENT),
            value: Some(value),
            keys,
        };
        let facts = vec![
            fact("a1", "USD", 0.1, vec!["ph", "ctwa_clid"]),
            fact("a1", "USD", 0.2, vec!["ph"]),
            fact("a1", "EUR", 5.0, vec!["ph"]),
            fact("a2", "USD", 85.5, vec![]),
            Fact {
                key: key("a1", "Purchase", "", "no_click"),
                value: None,
                keys: vec![],
            },
        ];
        let aggregates = tally(facts);
        let report = Report::new(&aggregates, &Filter::default());
        let json = report.render(Format::Json, Section::Rows);
        let lines: Vec<serde_json::Value> = json
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["ad_id"], "a1");
        assert_eq!(lines[0]["currency"], "EUR");
        assert_eq!(lines[1]["value"], 0.3, "no floating-point noise");
        assert_eq!(lines[1]["count"], 2);
        assert_eq!(report.sent(), 4);
        assert_eq!(report.skips[0].reason, "no_click");
        assert_eq!(report.coverage[0].keys["ph"], 0.75);
        assert_eq!(report.coverage[0].keys["ctwa_clid"], 0.25);
        let only_a2 = Report::new(
            &aggregates,
            &Filter {
                ad: Some("a2".into()),
                ..Filter::default()
            },
        );
        assert_eq!(only_a2.sent(), 1);
        let later = Report::new(
            &aggregates,
            &Filter {
                since: Some("2026-12-02".into()),
                ..Filter::default()
            },
        );
        assert_eq!(later, Report::default());
        let csv = report.render(Format::Csv, Section::Rows);
        assert!(
            csv.starts_with("ad_id,event_name,count,value,currency\na1,Purchase,1,5,EUR\n"),
            "{csv}"
        );
        assert!(
            report
                .render(Format::Table, Section::Rows)
                .contains("total sent: 4")
        );
    }

    #[test]
    fn key_ids_are_stable_and_distinct() {
        assert_eq!(
            key("a", "Purchase", "USD", SENT).id(),
            key("a", "Purchase", "USD", SENT).id()
        );
        assert_ne!(
            key("a", "Purchase", "USD", SENT).id(),
            key("a", "Purchase", "EUR", SENT).id()
        );
        assert!(key("a", "Purchase", "USD", SENT).expires_at() > day_start("2026-12-01").unwrap());
    }
}
