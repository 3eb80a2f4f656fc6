//! The conversion report joined with Meta's spend: per ad (and per campaign) its names, spend,
//! the events wacapi sent for it, their value, ROAS and cost per event.
//!
//! One row per ad and currency. The spend row of an ad is in its ad account's currency and
//! holds the events whose value is in that currency and the events without a value; events
//! valued in another currency get a row of their own without spend, ROAS or cost per event,
//! and a note saying why: no exchange rate is guessed. Ads that spent and brought nothing
//! appear with `events` 0, so money spent on ads that bring nothing is visible. Events without
//! a known ad (a TikTok touch carries no ad id; an automatic event of a click wacapi never saw;
//! a CRM event of a user without a click) are one row under `ad_id: null`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::meta::insights::SpendRow;
use crate::report::{FactKey, Filter, SENT, Tally};
use crate::values::money::round_money;

/// The note of an event row in another currency than its ad's spend.
pub const NOTE_OTHER_CURRENCY: &str =
    "spend is in another currency: no ROAS or cost per event (no exchange rate is guessed)";
/// The note of events of an ad without spend data.
pub const NOTE_NO_SPEND: &str = "no spend for this ad in the ad accounts read (--spend)";
/// The note of events without an ad.
pub const NOTE_NO_AD: &str = "events without a known ad: TikTok touches, automatic events of clicks wacapi did not see, CRM events of users without a click";

/// One ad (or campaign) and currency.
#[derive(Debug, Clone, PartialEq)]
pub struct SpendLine {
    /// The ad (`None`: events without a known ad, and every campaign line).
    pub ad_id: Option<String>,
    /// Its name in Ads Manager.
    pub ad_name: Option<String>,
    /// The campaign the ad belongs to (its id and name, as Ads Insights gives them).
    pub campaign_id: Option<String>,
    /// The campaign's name.
    pub campaign_name: Option<String>,
    /// Amount spent in the report's days (`null`: none known for this row).
    pub spend: Option<f64>,
    /// The currency of `spend` and `value` (`null`: events without a value and no spend).
    pub currency: Option<String>,
    /// Events wacapi sent for the ad, every event name.
    pub events: u64,
    /// Of which `Purchase`.
    pub purchases: u64,
    /// Summed value of the sent events in `currency`.
    pub value: f64,
    /// `value / spend`; `null` where spend is 0 or unknown, or in another currency.
    pub roas: Option<f64>,
    /// `spend / events`; `null` without events or spend.
    pub cost_per_event: Option<f64>,
    /// Why a figure is missing.
    pub note: Option<&'static str>,
    /// Whether this is a campaign's line (no ad fields).
    pub campaign_row: bool,
}

impl SpendLine {
    /// The line as one JSON object: a campaign's line has no `ad_id` or `ad_name`; `note` only
    /// when there is one.
    pub fn json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "campaign_id": self.campaign_id,
            "campaign_name": self.campaign_name,
            "spend": self.spend,
            "currency": self.currency,
            "events": self.events,
            "purchases": self.purchases,
            "value": self.value,
            "roas": self.roas,
            "cost_per_event": self.cost_per_event,
        });
        if !self.campaign_row {
            v["ad_id"] = serde_json::json!(self.ad_id);
            v["ad_name"] = serde_json::json!(self.ad_name);
        }
        if let Some(note) = self.note {
            v["note"] = serde_json::json!(note);
        }
        v
    }
}

/// Events, purchases and value of one ad in one currency.
#[derive(Debug, Clone, Default)]
struct Sent {
    events: u64,
    purchases: u64,
    value: f64,
}

/// Names of an ad, from the spend rows.
#[derive(Debug, Clone, Default)]
struct Names {
    ad_name: Option<String>,
    campaign_id: Option<String>,
    campaign_name: Option<String>,
}

/// Sent events and spend of one day (the page's conversions per day).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Events sent for the ad that day.
    pub events: u64,
    /// Of which `Purchase`.
    pub purchases: u64,
}

/// The joined report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Joined {
    /// Per ad and currency, by spend (highest first), then events.
    pub ads: Vec<SpendLine>,
    /// Per campaign and currency, likewise.
    pub campaigns: Vec<SpendLine>,
    /// Sent events per day.
    pub days: Vec<Day>,
}

/// Joins the sent aggregates `filter` keeps with the spend rows of the same days and ad.
pub fn join(aggregates: &[(FactKey, Tally)], filter: &Filter, spend: &[SpendRow]) -> Joined {
    let mut sent: BTreeMap<Option<String>, BTreeMap<String, Sent>> = BTreeMap::new();
    let mut days: BTreeMap<String, Day> = BTreeMap::new();
    for (key, tally) in aggregates
        .iter()
        .filter(|(k, _)| k.outcome == SENT && filter.keeps(k))
    {
        let purchases = if key.event_name == "Purchase" {
            tally.count
        } else {
            0
        };
        let ad = Some(key.ad_id.clone()).filter(|a| !a.is_empty());
        let s = sent
            .entry(ad)
            .or_default()
            .entry(key.currency.clone())
            .or_default();
        s.events += tally.count;
        s.purchases += purchases;
        s.value = round_money(s.value + tally.value);
        let d = days.entry(key.day.clone()).or_insert_with(|| Day {
            day: key.day.clone(),
            ..Day::default()
        });
        d.events += tally.count;
        d.purchases += purchases;
    }
    let mut spent: BTreeMap<Option<String>, BTreeMap<String, f64>> = BTreeMap::new();
    let mut names: BTreeMap<String, Names> = BTreeMap::new();
    for row in spend.iter().filter(|r| spend_kept(filter, r)) {
        let total = spent
            .entry(Some(row.ad_id.clone()))
            .or_default()
            .entry(row.currency.clone())
            .or_default();
        *total = round_money(*total + row.spend);
        let n = names.entry(row.ad_id.clone()).or_default();
        let non_empty = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        n.ad_name = n.ad_name.take().or_else(|| non_empty(&row.ad_name));
        n.campaign_id = n.campaign_id.take().or_else(|| non_empty(&row.campaign_id));
        n.campaign_name = n
            .campaign_name
            .take()
            .or_else(|| non_empty(&row.campaign_name));
    }
    let mut ads = Vec::new();
    let ad_ids: std::collections::BTreeSet<Option<String>> =
        sent.keys().chain(spent.keys()).cloned().collect();
    for ad in ad_ids {
        let names = ad
            .as_ref()
            .and_then(|a| names.get(a))
            .cloned()
            .unwrap_or_default();
        ads.extend(ad_lines(ad, &names, &spent, &mut sent));
    }
    let campaigns = campaign_lines(&ads);
    sort(&mut ads);
    Joined {
        ads,
        campaigns,
        days: days.into_values().collect(),
    }
}

/// Whether a spend row falls in the filter's days and ad (event names filter events only).
fn spend_kept(filter: &Filter, row: &SpendRow) -> bool {
    filter
        .since
        .as_deref()
        .is_none_or(|s| row.day.as_str() >= s)
        && filter
            .until
            .as_deref()
            .is_none_or(|u| row.day.as_str() <= u)
        && filter.ad.as_deref().is_none_or(|a| row.ad_id == a)
}

/// The lines of one ad: one per spend currency (with the events in that currency and those
/// without a value), one per other currency its events are valued in.
fn ad_lines(
    ad: Option<String>,
    names: &Names,
    spent: &BTreeMap<Option<String>, BTreeMap<String, f64>>,
    sent: &mut BTreeMap<Option<String>, BTreeMap<String, Sent>>,
) -> Vec<SpendLine> {
    let mut by_currency = sent.remove(&ad).unwrap_or_default();
    let spend = spent.get(&ad).cloned().unwrap_or_default();
    let line = |currency: Option<String>, spend: Option<f64>, s: &Sent, note| SpendLine {
        ad_id: ad.clone(),
        ad_name: names.ad_name.clone(),
        campaign_id: names.campaign_id.clone(),
        campaign_name: names.campaign_name.clone(),
        spend,
        currency,
        events: s.events,
        purchases: s.purchases,
        value: s.value,
        roas: None,
        cost_per_event: None,
        note,
        campaign_row: false,
    };
    let mut out = Vec::new();
    let mut unvalued = by_currency.remove("");
    // Events without a value have no currency: they join the ad's spend row, else its only
    // (or first) valued row, rather than stand alone.
    if spend.is_empty()
        && let (Some(u), Some(first)) = (unvalued.as_ref(), by_currency.values_mut().next())
    {
        first.events += u.events;
        first.purchases += u.purchases;
        unvalued = None;
    }
    for (currency, amount) in &spend {
        let mut s = by_currency.remove(currency).unwrap_or_default();
        if let Some(u) = unvalued.take() {
            s.events += u.events;
            s.purchases += u.purchases;
        }
        out.push(line(Some(currency.clone()), Some(*amount), &s, None));
    }
    let no_spend_note = if ad.is_none() {
        NOTE_NO_AD
    } else if spend.is_empty() {
        NOTE_NO_SPEND
    } else {
        NOTE_OTHER_CURRENCY
    };
    for (currency, s) in by_currency {
        out.push(line(Some(currency), None, &s, Some(no_spend_note)));
    }
    if let Some(u) = unvalued {
        out.push(line(None, None, &u, Some(no_spend_note)));
    }
    for l in &mut out {
        ratios(l);
    }
    out
}

/// ROAS and cost per event where spend and events allow.
fn ratios(line: &mut SpendLine) {
    line.roas = line
        .spend
        .filter(|s| *s > 0.0)
        .map(|s| (line.value / s * 10_000.0).round() / 10_000.0);
    line.cost_per_event = line
        .spend
        .filter(|_| line.events > 0)
        .map(|s| round_money(s / line.events as f64));
}

/// The ads' lines summed per campaign and currency (lines without spend stay apart by note).
fn campaign_lines(ads: &[SpendLine]) -> Vec<SpendLine> {
    let mut by: BTreeMap<(Option<String>, Option<String>, bool), SpendLine> = BTreeMap::new();
    for ad in ads {
        let key = (
            ad.campaign_id.clone(),
            ad.currency.clone(),
            ad.spend.is_some(),
        );
        let c = by.entry(key).or_insert_with(|| SpendLine {
            ad_id: None,
            ad_name: None,
            campaign_id: ad.campaign_id.clone(),
            campaign_name: ad.campaign_name.clone(),
            spend: ad.spend.map(|_| 0.0),
            currency: ad.currency.clone(),
            events: 0,
            purchases: 0,
            value: 0.0,
            roas: None,
            cost_per_event: None,
            note: ad.note,
            campaign_row: true,
        });
        c.spend = c.spend.zip(ad.spend).map(|(a, b)| round_money(a + b));
        c.events += ad.events;
        c.purchases += ad.purchases;
        c.value = round_money(c.value + ad.value);
        if c.note != ad.note {
            c.note = c.note.or(ad.note);
        }
    }
    let mut out: Vec<SpendLine> = by.into_values().collect();
    for l in &mut out {
        ratios(l);
    }
    sort(&mut out);
    out
}

/// Highest spend first, then most events, then by id.
fn sort(lines: &mut [SpendLine]) {
    lines.sort_by(|a, b| {
        b.spend
            .unwrap_or(-1.0)
            .total_cmp(&a.spend.unwrap_or(-1.0))
            .then(b.events.cmp(&a.events))
            .then(a.ad_id.cmp(&b.ad_id))
            .then(a.campaign_id.cmp(&b.campaign_id))
            .then(a.currency.cmp(&b.currency))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Fact, tally};

    fn sent(ad: &str, event: &str, currency: &str, value: Option<f64>) -> Fact {
        Fact {
            key: FactKey {
                day: "2026-12-01".into(),
                outcome: SENT.into(),
                destination: "meta".into(),
                channel: "whatsapp".into(),
                account: "1".into(),
                ad_id: ad.into(),
                rule: "r".into(),
                event_name: event.into(),
                currency: currency.into(),
            },
            value,
            keys: Vec::new(),
        }
    }

    fn spend(ad: &str, day: &str, amount: f64, currency: &str) -> SpendRow {
        SpendRow {
            account: "act_1".into(),
            ad_id: ad.into(),
            ad_name: format!("Ad {ad}"),
            adset_name: String::new(),
            campaign_id: "c1".into(),
            campaign_name: "Campaign".into(),
            day: day.into(),
            spend: amount,
            currency: currency.into(),
        }
    }

    #[test]
    fn no_exchange_rate_is_guessed_and_idle_ads_show() {
        let aggregates = tally([
            sent("a", "Purchase", "USD", Some(30.0)),
            sent("a", "Purchase", "EUR", Some(9.0)),
            sent("a", "ViewContent", "", None),
            sent("", "Purchase", "GBP", Some(1.0)),
        ]);
        let spend = [
            spend("a", "2026-12-01", 10.0, "USD"),
            spend("a", "2026-11-30", 99.0, "USD"),
            spend("idle", "2026-12-01", 5.0, "USD"),
        ];
        let filter = Filter {
            since: Some("2026-12-01".into()),
            ..Filter::default()
        };
        let joined = join(&aggregates, &filter, &spend);
        let line = |ad: Option<&str>, c: &str| {
            joined
                .ads
                .iter()
                .find(|l| l.ad_id.as_deref() == ad && l.currency.as_deref() == Some(c))
                .unwrap()
        };
        let usd = line(Some("a"), "USD");
        assert_eq!((usd.spend, usd.events, usd.value), (Some(10.0), 2, 30.0));
        assert_eq!((usd.roas, usd.cost_per_event), (Some(3.0), Some(5.0)));
        let eur = line(Some("a"), "EUR");
        assert_eq!(
            (eur.spend, eur.roas, eur.note),
            (None, None, Some(NOTE_OTHER_CURRENCY))
        );
        let idle = line(Some("idle"), "USD");
        assert_eq!(
            (idle.events, idle.roas, idle.cost_per_event),
            (0, Some(0.0), None)
        );
        assert_eq!(line(None, "GBP").note, Some(NOTE_NO_AD));
        assert_eq!(
            joined.ads[0].ad_id.as_deref(),
            Some("a"),
            "highest spend first"
        );
        let campaign = joined
            .campaigns
            .iter()
            .find(|c| c.currency.as_deref() == Some("USD") && c.spend.is_some())
            .unwrap();
        assert_eq!((campaign.spend, campaign.events), (Some(15.0), 2));
        assert!(campaign.json().get("ad_id").is_none());
        assert_eq!(joined.days.len(), 1);
        assert_eq!(joined.days[0].purchases, 3);
    }
}
