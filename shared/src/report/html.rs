//! The conversion report as one self-contained HTML page: spend against revenue per ad and per
//! campaign, ROAS per campaign, conversions per day, skips by reason and match-key coverage,
//! with the ads' names. Inline CSS and SVG only: no script, font or image is loaded, so the page
//! can be mailed, archived or opened offline, and shows nothing a viewer's browser fetches.
//!
//! Horizontal bars are CSS (they keep their labels readable at any width); the day columns and
//! the ROAS bars are SVG scaled to their box. Every text is escaped: ad and campaign names are
//! whatever the advertiser typed in Ads Manager.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::Report;
use crate::report::spend::{Joined, SpendLine};

/// The spend bars' colour (the browser test looks for it in the screenshot).
pub const SPEND_COLOUR: &str = "#3b6fd4";
/// The revenue bars' colour.
pub const REVENUE_COLOUR: &str = "#1f9d6b";
/// The conversions-per-day columns' colour.
pub const DAY_COLOUR: &str = "#7a4fd6";
/// The ROAS bars' colour.
pub const ROAS_COLOUR: &str = "#d9822b";
/// The skip and coverage bars' colour.
pub const OTHER_COLOUR: &str = "#6b7a8f";

/// Ads and campaigns drawn per chart (the tables list them all).
const MAX_BARS: usize = 12;

/// What the page shows.
pub struct Page<'a> {
    /// The sent rows, skips and coverage.
    pub report: &'a Report,
    /// The spend join (empty without `--spend`).
    pub joined: &'a Joined,
    /// Whether spend was read (without it the spend charts say how to get them).
    pub with_spend: bool,
    /// The days covered, as asked (`None`: every day of the data).
    pub period: (Option<&'a str>, Option<&'a str>),
}

/// Renders the page.
pub fn render(page: &Page<'_>) -> String {
    let mut out = String::with_capacity(32 * 1024);
    head(&mut out, page);
    summary(&mut out, page);
    out.push_str("<div class=\"grid\">");
    if page.with_spend {
        for (currency, lines) in by_currency(&page.joined.ads) {
            spend_chart(
                &mut out,
                &format!("Spend and revenue per ad ({currency})"),
                &lines,
            );
        }
        for (currency, lines) in by_currency(&page.joined.campaigns) {
            spend_chart(
                &mut out,
                &format!("Spend and revenue per campaign ({currency})"),
                &lines,
            );
            roas_chart(&mut out, &format!("ROAS per campaign ({currency})"), &lines);
        }
    } else {
        out.push_str("<section><h2>Spend and revenue</h2><p class=\"note\">Add <code>--spend act_&lt;ID&gt;</code> (and <code>WACAPI_ADS_TOKEN</code>) to join Meta's spend per ad: cost per event and ROAS.</p></section>");
    }
    days_chart(&mut out, page.joined);
    skips_chart(&mut out, page.report);
    coverage_chart(&mut out, page.report);
    out.push_str("</div>");
    if page.with_spend {
        table(&mut out, "Ads", &page.joined.ads, true);
        table(&mut out, "Campaigns", &page.joined.campaigns, false);
    }
    out.push_str("<footer><p>wacapi counts what it sent; Ads Manager what Meta attributed (attribution windows, the ad account's time zone, currency conversion): compare whole weeks. Spend days are the ad account's; event days are UTC. Events without a known ad (TikTok touches, automatic events of clicks wacapi did not see, CRM events of users without a click) have no spend to compare with.</p></footer></main></body></html>\n");
    out
}

fn head(out: &mut String, page: &Page<'_>) {
    let period = match page.period {
        (Some(a), Some(b)) => format!("{} to {}", esc(a), esc(b)),
        (Some(a), None) => format!("from {}", esc(a)),
        (None, Some(b)) => format!("until {}", esc(b)),
        (None, None) => "every day of the data".to_owned(),
    };
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>wacapi: conversions and spend</title><style>{CSS}</style></head><body><main>\
<h1>Conversions and spend</h1><p class=\"sub\">{period} · sent by wacapi</p>"
    );
}

fn summary(out: &mut String, page: &Page<'_>) {
    let mut spend: BTreeMap<&str, f64> = BTreeMap::new();
    let mut value: BTreeMap<&str, f64> = BTreeMap::new();
    // Without spend read, the revenue of the sent rows.
    for r in page.report.rows.iter().filter(|_| !page.with_spend) {
        if let Some(c) = r.currency.as_deref() {
            *value.entry(c).or_default() += r.value;
        }
    }
    for line in page.joined.campaigns.iter().filter(|_| page.with_spend) {
        if let Some(c) = line.currency.as_deref() {
            if let Some(s) = line.spend {
                *spend.entry(c).or_default() += s;
            }
            *value.entry(c).or_default() += line.value;
        }
    }
    let sent = page.report.sent();
    let purchases: u64 = page
        .report
        .rows
        .iter()
        .filter(|r| r.event_name == "Purchase")
        .map(|r| r.count)
        .sum();
    let skipped: u64 = page.report.skips.iter().map(|s| s.count).sum();
    out.push_str("<div class=\"cards\">");
    card(out, "Events sent", &sent.to_string());
    card(out, "Purchases", &purchases.to_string());
    card(out, "Skipped", &skipped.to_string());
    for (c, v) in &value {
        let s = spend.get(c).copied();
        if let Some(s) = s {
            card(out, &format!("Spend ({c})"), &money(s));
        }
        card(out, &format!("Revenue ({c})"), &money(*v));
        if let Some(s) = s.filter(|s| *s > 0.0) {
            card(out, &format!("ROAS ({c})"), &format!("{:.2}", v / s));
        }
    }
    out.push_str("</div>");
}

fn card(out: &mut String, label: &str, value: &str) {
    let _ = write!(
        out,
        "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>",
        esc(label),
        esc(value)
    );
}

/// Lines with spend, by currency.
fn by_currency(lines: &[SpendLine]) -> BTreeMap<String, Vec<&SpendLine>> {
    let mut out: BTreeMap<String, Vec<&SpendLine>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.spend.is_some()) {
        if let Some(c) = &l.currency {
            out.entry(c.clone()).or_default().push(l);
        }
    }
    out
}

fn label(line: &SpendLine) -> String {
    let name = if line.campaign_row {
        line.campaign_name
            .as_deref()
            .or(line.campaign_id.as_deref())
    } else {
        line.ad_name.as_deref().or(line.ad_id.as_deref())
    };
    name.unwrap_or("(unknown)").to_owned()
}

/// Two CSS bars per line: spend and the value of the events sent for it.
fn spend_chart(out: &mut String, title: &str, lines: &[&SpendLine]) {
    let top: Vec<&&SpendLine> = lines.iter().take(MAX_BARS).collect();
    let max = top
        .iter()
        .map(|l| l.spend.unwrap_or(0.0).max(l.value))
        .fold(0.0_f64, f64::max);
    let _ = write!(
        out,
        "<section class=\"chart\"><h2>{}</h2><div class=\"legend\"><span class=\"sw\" style=\"background:{SPEND_COLOUR}\"></span>spend <span class=\"sw\" style=\"background:{REVENUE_COLOUR}\"></span>revenue (events sent)</div>",
        esc(title)
    );
    for l in top {
        let spend = l.spend.unwrap_or(0.0);
        let _ = write!(
            out,
            "<div class=\"row\"><div class=\"lbl\">{}<span class=\"num\">{} / {} · {} ev</span></div>{}{}</div>",
            esc(&label(l)),
            money(spend),
            money(l.value),
            l.events,
            bar(spend, max, SPEND_COLOUR),
            bar(l.value, max, REVENUE_COLOUR)
        );
    }
    if lines.len() > MAX_BARS {
        let _ = write!(
            out,
            "<p class=\"note\">{} more in the table below.</p>",
            lines.len() - MAX_BARS
        );
    }
    out.push_str("</section>");
}

fn bar(value: f64, max: f64, colour: &str) -> String {
    let pct = if max > 0.0 { value / max * 100.0 } else { 0.0 };
    // A value above zero stays visible however small.
    let pct = if value > 0.0 { pct.max(0.8) } else { 0.0 };
    format!(
        "<div class=\"track\"><div class=\"bar\" style=\"width:{pct:.1}%;background:{colour}\"></div></div>"
    )
}

/// ROAS per campaign, with a mark at 1 (revenue equal to spend) on each bar's track.
fn roas_chart(out: &mut String, title: &str, lines: &[&SpendLine]) {
    let with: Vec<(&&SpendLine, f64)> = lines
        .iter()
        .filter_map(|l| l.roas.map(|r| (l, r)))
        .take(MAX_BARS)
        .collect();
    let _ = write!(out, "<section class=\"chart\"><h2>{}</h2>", esc(title));
    if with.is_empty() {
        out.push_str("<p class=\"note\">No campaign with spend in this period.</p></section>");
        return;
    }
    let max = with.iter().map(|(_, r)| *r).fold(1.0_f64, f64::max) * 1.1;
    let one = 1.0 / max * 100.0;
    for (l, r) in &with {
        let pct = (r / max * 100.0).max(if *r > 0.0 { 0.8 } else { 0.0 });
        let _ = write!(
            out,
            "<div class=\"row\"><div class=\"lbl\">{}<span class=\"num\">{r:.2}</span></div><div class=\"track roas\"><div class=\"bar\" style=\"width:{pct:.1}%;background:{ROAS_COLOUR}\"></div><div class=\"one\" style=\"left:{one:.1}%\"></div></div></div>",
            esc(&label(l))
        );
    }
    out.push_str(
        "<p class=\"note\">The mark on each bar: ROAS 1, revenue equal to spend.</p></section>",
    );
}

/// Events and purchases sent per day, as SVG columns.
fn days_chart(out: &mut String, joined: &Joined) {
    out.push_str("<section class=\"chart\"><h2>Conversions sent per day</h2>");
    if joined.days.is_empty() {
        out.push_str("<p class=\"note\">Nothing sent in this period.</p></section>");
        return;
    }
    let max = joined
        .days
        .iter()
        .map(|d| d.events)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let n = joined.days.len() as f64;
    let (w, h, base) = (400.0, 160.0, 140.0);
    let step = w / n;
    let width = (step * 0.7).clamp(1.0, 36.0);
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Conversions sent per day\" preserveAspectRatio=\"none\" class=\"days\">"
    );
    for (i, d) in joined.days.iter().enumerate() {
        let x = i as f64 * step + (step - width) / 2.0;
        let eh = d.events as f64 / max * (base - 6.0);
        let ph = d.purchases as f64 / max * (base - 6.0);
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{eh:.1}\" fill=\"{DAY_COLOUR}\"><title>{}: {} events</title></rect><rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{width:.1}\" height=\"{ph:.1}\" fill=\"{REVENUE_COLOUR}\"><title>{}: {} purchases</title></rect>",
            base - eh,
            esc(&d.day),
            d.events,
            base - ph,
            esc(&d.day),
            d.purchases
        );
    }
    let first = joined.days.first().map(|d| d.day.as_str()).unwrap_or("");
    let last = joined.days.last().map(|d| d.day.as_str()).unwrap_or("");
    let _ = write!(
        out,
        "<line x1=\"0\" y1=\"{base}\" x2=\"{w}\" y2=\"{base}\" stroke=\"#999\"/></svg><div class=\"axis\"><span>{}</span><span>{} events at most</span><span>{}</span></div><div class=\"legend\"><span class=\"sw\" style=\"background:{DAY_COLOUR}\"></span>events <span class=\"sw\" style=\"background:{REVENUE_COLOUR}\"></span>of which purchases</div></section>",
        esc(first),
        max as u64,
        esc(last)
    );
}

fn skips_chart(out: &mut String, report: &Report) {
    out.push_str("<section class=\"chart\"><h2>Skipped, by reason</h2>");
    let mut by: BTreeMap<&str, u64> = BTreeMap::new();
    for s in &report.skips {
        *by.entry(s.reason.as_str()).or_default() += s.count;
    }
    if by.is_empty() {
        out.push_str("<p class=\"note\">Nothing skipped.</p></section>");
        return;
    }
    let mut rows: Vec<(&str, u64)> = by.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1));
    let max = rows.first().map_or(1, |r| r.1) as f64;
    for (reason, count) in rows {
        let _ = write!(
            out,
            "<div class=\"row\"><div class=\"lbl\">{}<span class=\"num\">{count}</span></div>{}</div>",
            esc(reason),
            bar(count as f64, max, OTHER_COLOUR)
        );
    }
    out.push_str("<p class=\"note\">no_click: no ad click known for the user; too_old: past Meta's 7 days; tiktok_*: what TikTok's event set does not take.</p></section>");
}

fn coverage_chart(out: &mut String, report: &Report) {
    out.push_str("<section class=\"chart\"><h2>Match-key coverage</h2>");
    if report.coverage.is_empty() {
        out.push_str("<p class=\"note\">Nothing sent.</p></section>");
        return;
    }
    let mut shares: BTreeMap<(String, String), (u64, f64)> = BTreeMap::new();
    for c in &report.coverage {
        for (k, share) in &c.keys {
            let e = shares
                .entry((c.destination.clone(), k.clone()))
                .or_default();
            e.0 += c.events;
            e.1 += share * c.events as f64;
        }
    }
    let events: BTreeMap<&str, u64> = report.coverage.iter().fold(BTreeMap::new(), |mut m, c| {
        *m.entry(c.destination.as_str()).or_default() += c.events;
        m
    });
    for ((destination, key), (_, weighted)) in &shares {
        let total = events
            .get(destination.as_str())
            .copied()
            .unwrap_or(1)
            .max(1) as f64;
        let share = weighted / total * 100.0;
        let _ = write!(
            out,
            "<div class=\"row\"><div class=\"lbl\">{} · {}<span class=\"num\">{share:.0}%</span></div>{}</div>",
            esc(destination),
            esc(key),
            bar(share, 100.0, OTHER_COLOUR)
        );
    }
    out.push_str("<p class=\"note\">Share of sent events carrying each key: what Events Manager grades as match quality.</p></section>");
}

fn table(out: &mut String, title: &str, lines: &[SpendLine], ads: bool) {
    let _ = write!(
        out,
        "<section class=\"wide\"><h2>{}</h2><div class=\"scroll\"><table><thead><tr>",
        esc(title)
    );
    let heads: &[&str] = if ads {
        &[
            "ad",
            "campaign",
            "spend",
            "cur.",
            "events",
            "purch.",
            "value",
            "ROAS",
            "cost/event",
        ]
    } else {
        &[
            "campaign",
            "spend",
            "cur.",
            "events",
            "purch.",
            "value",
            "ROAS",
            "cost/event",
        ]
    };
    for h in heads {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for l in lines {
        out.push_str("<tr>");
        if ads {
            let _ = write!(out, "<td>{}</td>", esc(&label(l)));
        }
        let campaign = l
            .campaign_name
            .as_deref()
            .or(l.campaign_id.as_deref())
            .unwrap_or("–");
        let opt = |v: Option<f64>, f: fn(f64) -> String| v.map_or("–".to_owned(), f);
        let _ = write!(
            out,
            "<td>{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            esc(campaign),
            opt(l.spend, money),
            esc(l.currency.as_deref().unwrap_or("–")),
            l.events,
            l.purchases,
            money(l.value),
            opt(l.roas, |r| format!("{r:.2}")),
            opt(l.cost_per_event, money),
        );
        if let Some(note) = l.note {
            let _ = write!(
                out,
                "<tr class=\"noterow\"><td colspan=\"{}\">{}</td></tr>",
                heads.len(),
                esc(note)
            );
        }
    }
    out.push_str("</tbody></table></div></section>");
}

fn money(v: f64) -> String {
    format!("{v:.2}")
}

/// HTML-escapes text for element content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

const CSS: &str = "*{box-sizing:border-box}body{margin:0;font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2330;background:#f5f6f8}main{max-width:1200px;margin:0 auto;padding:16px}h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.05em;margin:0 0 .6em}.sub{color:#5b6472;margin:0 0 1em}.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:10px;margin-bottom:14px}.card{background:#fff;border-radius:8px;padding:10px 12px;box-shadow:0 1px 2px rgba(0,0,0,.08)}.card .k{color:#5b6472;font-size:.85em}.card .v{font-size:1.35em;font-weight:600}.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:14px}section{background:#fff;border-radius:8px;padding:14px;box-shadow:0 1px 2px rgba(0,0,0,.08);min-width:0}section.wide{margin-top:14px}.row{margin:6px 0}.lbl{display:flex;justify-content:space-between;gap:8px;font-size:.9em;overflow-wrap:anywhere}.num{color:#5b6472;white-space:nowrap}.track{height:9px;background:#eef0f3;border-radius:3px;margin-top:2px}.track.roas{position:relative;height:14px}.track.roas .bar{height:14px}.one{position:absolute;top:-3px;bottom:-3px;border-left:2px dashed #222}.bar{height:9px;border-radius:3px}.legend{font-size:.85em;color:#5b6472;margin-bottom:6px}.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin:0 4px 0 8px;vertical-align:-1px}svg{width:100%;height:auto;display:block}svg.days{height:180px}.axis{display:flex;justify-content:space-between;font-size:.8em;color:#5b6472}.note{font-size:.85em;color:#5b6472}.scroll{overflow-x:auto}table{border-collapse:collapse;width:100%;font-size:.9em}th,td{padding:5px 8px;border-bottom:1px solid #e6e8ec;text-align:left;white-space:nowrap}td.n{text-align:right;font-variant-numeric:tabular-nums}.noterow td{color:#8a5a00;font-size:.85em;white-space:normal}footer{color:#5b6472;font-size:.85em;margin-top:14px}code{background:#eef0f3;padding:0 3px;border-radius:3px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_nothing_is_loaded() {
        assert_eq!(
            esc("<b>\"A&B\"</b>'"),
            "&lt;b&gt;&quot;A&amp;B&quot;&lt;/b&gt;&#39;"
        );
        let page = render(&Page {
            report: &Report::default(),
            joined: &Joined::default(),
            with_spend: false,
            period: (Some("2026-12-01"), None),
        });
        assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>\n"));
        for loaded in ["<script", "<link", "<img", "src=", "url(", "http"] {
            assert!(!page.contains(loaded), "{loaded}");
        }
        assert!(page.contains("from 2026-12-01"));
    }
}
