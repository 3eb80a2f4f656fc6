//! An account's TikTok event set: its configuration (`tiktok = { ... }` on an account), how a
//! TikTok ad's chat is recognised (the prefilled first message), the endpoint its requests go
//! to (`POST /open_api/v1.3/event/track/` with `event_source`, `event_source_id`,
//! `test_event_code` and `data`), and what the rules must be to reach it
//! (docs/tiktok-reference.md).

use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::delivery::checks::{AccountView, Findings, RuleView};
use crate::delivery::{Endpoint, Outbound};
use crate::model::Destination;
use crate::tiktok::client::TRACK_PATH;
use crate::tiktok::events::{
    EventSource, OFFLINE_EVENTS, default_event_name, is_supported_currency, is_valid_event_name,
};
use crate::values::pattern::regex;

/// An account's TikTok event set, and how a TikTok ad's chat is recognised.
#[derive(Debug, Clone)]
pub struct EventSet {
    /// `offline` (the default) or `crm`.
    pub event_source: EventSource,
    /// The event set id.
    pub event_source_id: String,
    /// Matches the first message a TikTok ad prefills: a user who sends it has a TikTok touch.
    pub first_message_pattern: Regex,
    /// Name of the access token (a key of `tiktok_access_tokens`); `None` = `default`.
    pub token: Option<String>,
    /// Routes events to TikTok Events Manager's test events.
    pub test_event_code: Option<String>,
}

impl PartialEq for EventSet {
    fn eq(&self, other: &Self) -> bool {
        self.event_source == other.event_source
            && self.event_source_id == other.event_source_id
            && self.first_message_pattern.as_str() == other.first_message_pattern.as_str()
            && self.token == other.token
            && self.test_event_code == other.test_event_code
    }
}

impl EventSet {
    /// Whether a message's text is the TikTok ad's prefilled first message.
    pub fn is_touch(&self, text: &str) -> bool {
        self.first_message_pattern.is_match(text)
    }
}

/// A request body for `event/track/`: the event set's fields, then the events as they were
/// built.
#[derive(Serialize)]
struct TrackBody<'a> {
    event_source: EventSource,
    event_source_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_event_code: Option<&'a str>,
    data: Vec<&'a RawValue>,
}

impl EventSet {
    fn body_of<'a>(&'a self, events: &[&'a Outbound]) -> TrackBody<'a> {
        TrackBody {
            event_source: self.event_source,
            event_source_id: &self.event_source_id,
            test_event_code: self.test_event_code.as_deref(),
            data: events.iter().map(|e| e.json()).collect(),
        }
    }
}

impl Endpoint for EventSet {
    fn destination(&self) -> Destination {
        Destination::TikTok
    }

    fn id(&self) -> &str {
        &self.event_source_id
    }

    fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn path(&self) -> String {
        TRACK_PATH.to_owned()
    }

    fn body(&self, events: &[&Outbound]) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&self.body_of(events))
    }

    /// `{"destination": "tiktok", "event_source_id": ..., "body": ...}`.
    fn line(&self, events: &[&Outbound]) -> serde_json::Value {
        serde_json::json!({
            "destination": "tiktok",
            "event_source_id": self.event_source_id,
            "body": self.body_of(events),
        })
    }
}

/// `tiktok = { ... }` on an account, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEventSet {
    event_source_id: String,
    first_message_pattern: String,
    #[serde(default)]
    event_source: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    test_event_code: Option<String>,
}

impl RawEventSet {
    /// The event set, or `None` with what is wrong added to `errors` (each prefixed with the
    /// account's `label`).
    pub fn compile(self, label: &str, errors: &mut Vec<String>) -> Option<EventSet> {
        let before = errors.len();
        let id = self.event_source_id.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            errors.push(format!(
                "{label}: tiktok.event_source_id must be the event set id (letters and digits)"
            ));
        }
        let event_source = match self.event_source.as_deref().map(str::parse) {
            None => EventSource::default(),
            Some(Ok(source)) => source,
            Some(Err(e)) => {
                errors.push(format!("{label}: tiktok.event_source: {e}"));
                EventSource::default()
            }
        };
        let pattern = first_message_pattern(&self.first_message_pattern, label, errors);
        for (field, value) in [
            ("token", &self.token),
            ("test_event_code", &self.test_event_code),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                errors.push(format!(
                    "{label}: tiktok.{field} is empty (remove it instead)"
                ));
            }
        }
        match pattern {
            Some(first_message_pattern) if errors.len() == before => Some(EventSet {
                event_source,
                event_source_id: id.to_owned(),
                first_message_pattern,
                token: self.token,
                test_event_code: self.test_event_code,
            }),
            _ => None,
        }
    }
}

fn first_message_pattern(pattern: &str, label: &str, errors: &mut Vec<String>) -> Option<Regex> {
    if pattern.trim().is_empty() {
        errors.push(format!("{label}: tiktok.first_message_pattern is empty"));
        return None;
    }
    match regex(pattern, false) {
        // A pattern that matches an empty text would take every chat for a TikTok one, and
        // send every user's conversions to TikTok.
        Ok(re) if re.is_match("") => {
            errors.push(format!(
                "{label}: tiktok.first_message_pattern matches an empty message: every chat would count as a TikTok ad's"
            ));
            None
        }
        Ok(re) => Some(re),
        Err(e) => {
            errors.push(format!("{label}: tiktok.first_message_pattern: {e}"));
            None
        }
    }
}

/// Holds the rules against the TikTok event sets they can send to (docs/tiktok-reference.md):
/// a rule's `tiktok_event` must be a name every such event set takes (an offline event set a
/// standard event, a CRM event set a custom name that is not reserved); a rule whose event has
/// no standard counterpart, or whose currency TikTok does not list, is skipped for users a
/// TikTok ad brought (warned); a CRM event set never receives a chat's conversions, which carry
/// no TikTok lead id (warned).
pub fn rule_checks(rules: &[RuleView<'_>], sets: &[(AccountView<'_>, &EventSet)]) -> Findings {
    let mut out = Findings::default();
    if sets.is_empty() {
        for rule in rules {
            if let Some(name) = renamed(rule)
                && !is_valid_event_name(name, EventSource::Offline)
                && !is_valid_event_name(name, EventSource::Crm)
            {
                out.errors.push(format!(
                    "rule {:?}: tiktok_event {name:?} is no TikTok event name: use one of {} (offline event sets), or a custom name of letters, digits and _ (CRM event sets)",
                    rule.name,
                    OFFLINE_EVENTS.join(", ")
                ));
            }
        }
    }
    for (account, set) in sets {
        check_event_set(rules, *account, set, &mut out);
    }
    out.warnings.dedup();
    out
}

/// The rule's own TikTok name of its event (`tiktok_event`).
fn renamed<'a>(rule: &RuleView<'a>) -> Option<&'a str> {
    rule.renamed.get(&Destination::TikTok).map(String::as_str)
}

/// [`rule_checks`] of one event set.
fn check_event_set(
    rules: &[RuleView<'_>],
    account: AccountView<'_>,
    set: &EventSet,
    out: &mut Findings,
) {
    let source = set.event_source;
    let label = format!(
        "account {} {:?} (TikTok {} event set)",
        account.channel.account_noun(),
        account.account_id,
        source.as_str()
    );
    let rules_here = || {
        rules
            .iter()
            .filter(|r| r.channels.contains(&account.channel))
    };
    if source == EventSource::Crm && rules_here().next().is_some() {
        out.warnings.push(format!(
            "{label}: a CRM event set takes only events that carry a TikTok lead id; conversions in chats carry none and are skipped (tiktok_no_lead_id), so only POST /events items with tiktok_lead_id reach it. Use event_source = \"offline\" for chats a TikTok ad opened"
        ));
    }
    for rule in rules_here() {
        match renamed(rule) {
            Some(name) if !is_valid_event_name(name, source) => {
                out.errors.push(match source {
                    EventSource::Offline => format!(
                        "rule {:?}: tiktok_event {name:?} is not a standard event an offline event set takes ({label}); use one of {}",
                        rule.name,
                        OFFLINE_EVENTS.join(", ")
                    ),
                    EventSource::Crm => format!(
                        "rule {:?}: tiktok_event {name:?} is not a custom event name a CRM event set takes ({label}): letters, digits and _, at most 50, not a reserved name",
                        rule.name
                    ),
                });
            }
            Some(_) => {}
            // Automatic events name Meta's click: they never go to TikTok.
            None => {
                if let Some(name) = rule.event
                    && default_event_name(name, source).is_none()
                {
                    out.warnings.push(format!(
                        "rule {:?}: {} has no TikTok standard event; for users a TikTok ad brought to {label} it is skipped (tiktok_not_standard_event). Set tiktok_event to one of {} if one fits",
                        rule.name,
                        name.as_str(),
                        OFFLINE_EVENTS.join(", ")
                    ));
                }
            }
        }
        if let Some(currency) = rule.currency
            && !is_supported_currency(currency)
        {
            out.warnings.push(format!(
                "rule {:?}: TikTok does not list the currency {currency}; for users a TikTok ad brought to {label} the event is skipped (tiktok_currency_not_supported)",
                rule.name
            ));
        }
    }
}
