//! The configuration file as written (TOML), and its reading into the model of
//! [`super`]: the settings, each account with its destinations, each rule in named steps
//! (trigger, event, custom data, user data, channels, dedup scope), every problem collected
//! with the account or rule it concerns.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Deserialize;

use super::checks;
use super::{
    Account, Config, ConfigErrors, CustomDataSpec, DEFAULT_ATTRIBUTION_WINDOW_DAYS,
    DEFAULT_GRAPH_API_VERSION, DedupScope, Matcher, Rule, Trigger, UserDataTarget,
};
use crate::destinations::{AccountDestinations, RawAccountDestinations};
use crate::meta::dataset::Dataset;
use crate::model::{Channel, Destination, EventName};
use crate::tiktok::event_set::RawEventSet;
use crate::values::hashing::UserDataKey;
use crate::values::money::{MAX_AMOUNT, is_currency_code, is_valid_amount};
use crate::values::pattern::regex;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    graph_api_version: Option<String>,
    #[serde(default)]
    attribution_window_days: Option<u32>,
    #[serde(default)]
    accounts: Vec<RawAccount>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccount {
    #[serde(default)]
    waba_id: Option<String>,
    #[serde(default)]
    page_id: Option<String>,
    #[serde(default)]
    instagram_account_id: Option<String>,
    dataset_id: String,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    test_event_code: Option<String>,
    #[serde(default)]
    partner_agent: Option<String>,
    #[serde(default)]
    tiktok: Option<RawEventSet>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    event: Option<String>,
    trigger: RawTrigger,
    #[serde(default)]
    dedup: Option<DedupScope>,
    #[serde(default)]
    custom_data: Option<RawCustomData>,
    #[serde(default)]
    user_data: BTreeMap<String, String>,
    #[serde(default)]
    channels: Option<Vec<String>>,
    #[serde(default)]
    tiktok_event: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RawTrigger {
    AdClick,
    MessageType {
        message_type: String,
    },
    ButtonReply {
        id: Option<String>,
        pattern: Option<String>,
    },
    ListReply {
        id: Option<String>,
        pattern: Option<String>,
    },
    TemplateButton {
        payload: Option<String>,
        pattern: Option<String>,
    },
    QuickReply {
        payload: Option<String>,
        pattern: Option<String>,
    },
    Postback {
        payload: Option<String>,
        pattern: Option<String>,
    },
    Flow {
        name: Option<String>,
        flow_token: Option<String>,
        flow_token_pattern: Option<String>,
    },
    Text {
        pattern: String,
    },
    AutomaticEvents {
        events: Option<Vec<String>>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomData {
    #[serde(default)]
    from_order: bool,
    #[serde(default)]
    value: Option<f64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

impl RawConfig {
    /// The configuration, or every problem found in it: the settings, each account, each rule,
    /// then what the rules make of each other and of the accounts' destinations
    /// ([`super::checks`]).
    pub(super) fn validate(self) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let (graph_api_version, days) = self.settings(&mut errors);
        let accounts = accounts(self.accounts, &graph_api_version, &mut errors);
        let rules = rules(self.rules, &mut errors);
        let mut warnings = Vec::new();
        checks::cross_checks(&rules, &accounts, &mut errors, &mut warnings);
        if errors.is_empty() {
            Ok(Config {
                graph_api_version,
                attribution_window_seconds: i64::from(days) * 24 * 3600,
                accounts,
                rules,
                warnings,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The Graph API version and the attribution window in days (defaults when absent).
    fn settings(&self, errors: &mut Vec<String>) -> (String, u32) {
        let graph_api_version = self
            .graph_api_version
            .clone()
            .unwrap_or_else(|| DEFAULT_GRAPH_API_VERSION.to_owned());
        if !is_graph_version(&graph_api_version) {
            errors.push(format!(
                "graph_api_version {graph_api_version:?} must look like {DEFAULT_GRAPH_API_VERSION:?}"
            ));
        }
        let days = self
            .attribution_window_days
            .unwrap_or(DEFAULT_ATTRIBUTION_WINDOW_DAYS);
        if !(1..=28).contains(&days) {
            errors.push(format!(
                "attribution_window_days must be between 1 and 28, not {days}"
            ));
        }
        (graph_api_version, days)
    }
}

/// The accounts by channel and id; an account listed twice is an error.
fn accounts(
    raw: Vec<RawAccount>,
    graph_api_version: &str,
    errors: &mut Vec<String>,
) -> BTreeMap<(Channel, String), Arc<Account>> {
    let mut accounts = BTreeMap::new();
    if raw.is_empty() {
        errors.push(
            "no [[accounts]]: add one per WABA, Page or Instagram account (or waba_id = \"*\")"
                .to_owned(),
        );
    }
    for a in raw {
        let Some(account) = a.compile(graph_api_version, errors) else {
            continue;
        };
        let label = account_label(account.channel, &account.account_id);
        let key = (account.channel, account.account_id.clone());
        if accounts.insert(key, Arc::new(account)).is_some() {
            errors.push(format!("{label} is listed twice"));
        }
    }
    accounts
}

/// How errors name an account: a WABA by its id, a Page or Instagram account by key and id.
fn account_label(channel: Channel, id: &str) -> String {
    if channel.is_whatsapp() {
        format!("account {id:?}")
    } else {
        format!("account {} {id:?}", account_key(channel))
    }
}

/// The configuration key that names an account of `channel`.
fn account_key(channel: Channel) -> &'static str {
    match channel {
        Channel::Whatsapp => "waba_id",
        Channel::Messenger => "page_id",
        Channel::Instagram => "instagram_account_id",
    }
}

impl RawAccount {
    /// The account, or `None` when it names no single channel account; its other problems are
    /// added to `errors`.
    fn compile(self, graph_api_version: &str, errors: &mut Vec<String>) -> Option<Account> {
        let named: Vec<(Channel, String)> = [
            (Channel::Whatsapp, self.waba_id),
            (Channel::Messenger, self.page_id),
            (Channel::Instagram, self.instagram_account_id),
        ]
        .into_iter()
        .filter_map(|(c, id)| id.map(|id| (c, id)))
        .collect();
        let [(channel, id)] = named.as_slice() else {
            errors.push(format!(
                "an account (dataset {:?}) must name exactly one of waba_id, page_id or instagram_account_id",
                self.dataset_id
            ));
            return None;
        };
        let (channel, id) = (*channel, id.clone());
        let label = account_label(channel, &id);
        if id.trim().is_empty() {
            errors.push(format!("an account has an empty {}", account_key(channel)));
        }
        if self.dataset_id.trim().is_empty() || !self.dataset_id.bytes().all(|b| b.is_ascii_digit())
        {
            errors.push(format!(
                "{label}: dataset_id must be the numeric dataset id"
            ));
        }
        for (field, value) in [
            ("token", &self.token),
            ("test_event_code", &self.test_event_code),
            ("partner_agent", &self.partner_agent),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                errors.push(format!("{label}: {field} is empty (remove it instead)"));
            }
        }
        let dataset = Dataset {
            dataset_id: self.dataset_id,
            token: self.token,
            test_event_code: self.test_event_code,
            partner_agent: self.partner_agent,
            graph_api_version: graph_api_version.to_owned(),
        };
        let others = RawAccountDestinations {
            tiktok: self.tiktok,
        };
        Some(Account {
            channel,
            account_id: id,
            destinations: AccountDestinations::compile(dataset, others, &label, errors),
        })
    }
}

/// The rules in file order; names must be unique and not empty.
fn rules(raw: Vec<RawRule>, errors: &mut Vec<String>) -> Vec<Rule> {
    let mut names = HashSet::new();
    let mut rules = Vec::new();
    if raw.is_empty() {
        errors.push("no [[rules]]: nothing would ever be sent".to_owned());
    }
    for rule in raw {
        if rule.name.trim().is_empty() {
            errors.push("a rule has an empty name".to_owned());
        } else if !names.insert(rule.name.clone()) {
            errors.push(format!("rule {:?} is defined twice", rule.name));
        }
        match rule.validate() {
            Ok(rule) => rules.push(rule),
            Err(mut e) => errors.append(&mut e),
        }
    }
    rules
}

impl RawRule {
    /// The rule, or every problem found in it, each prefixed with the rule's name.
    fn validate(self) -> Result<Rule, Vec<String>> {
        let label = format!("rule {:?}", self.name);
        let mut errors = Vec::new();
        let trigger = match self.trigger.compile() {
            Ok(t) => Some(t),
            Err(e) => {
                errors.push(format!("{label}: {e}"));
                None
            }
        };
        let event = event(self.event.as_deref(), trigger.as_ref(), &label, &mut errors);
        let custom_data = custom_data(
            self.custom_data,
            trigger.as_ref(),
            event,
            &label,
            &mut errors,
        );
        let user_data = user_data(self.user_data, trigger.as_ref(), &label, &mut errors);
        let channels = channels(self.channels, &label, &mut errors);
        let dedup = self.dedup.unwrap_or_default();
        if dedup == DedupScope::Order && !is_order(trigger.as_ref()) {
            errors.push(format!(
                "{label}: dedup = \"order\" needs trigger message_type = \"order\""
            ));
        }
        if let Some(trigger) = &trigger {
            check_reachable(trigger, channels.as_deref(), &label, &mut errors);
        }
        // Whether a renamed event suits the accounts' destinations is checked with the
        // accounts (checks::cross_checks).
        let renamed = self
            .tiktok_event
            .map(|name| (Destination::TikTok, name.trim().to_owned()))
            .into_iter()
            .collect();
        match (trigger, errors.is_empty()) {
            (Some(trigger), true) => Ok(Rule {
                name: self.name,
                event,
                trigger,
                dedup,
                custom_data,
                user_data,
                channels,
                renamed,
            }),
            _ => Err(errors),
        }
    }
}

fn is_flow(trigger: Option<&Trigger>) -> bool {
    matches!(trigger, Some(Trigger::Flow { .. }))
}

fn is_order(trigger: Option<&Trigger>) -> bool {
    matches!(trigger, Some(Trigger::MessageType(t)) if t == "order")
}

/// The rule's event: required, one of the 14 names; automatic events carry Meta's own.
fn event(
    name: Option<&str>,
    trigger: Option<&Trigger>,
    label: &str,
    errors: &mut Vec<String>,
) -> Option<EventName> {
    let is_automatic = matches!(trigger, Some(Trigger::AutomaticEvents(_)));
    match (name, is_automatic) {
        (Some(name), false) => match name.parse::<EventName>() {
            Ok(e) => Some(e),
            Err(e) => {
                errors.push(format!("{label}: event {e}"));
                None
            }
        },
        (None, false) => {
            errors.push(format!(
                "{label}: event is required; allowed: {}",
                EventName::allowed_list()
            ));
            None
        }
        (Some(_), true) => {
            errors.push(format!(
                "{label}: automatic_events carry Meta's own event name; use trigger.events to filter instead of event"
            ));
            None
        }
        (None, true) => None,
    }
}

/// How the rule fills `custom_data`: from an order only on an order trigger, from Flow fields
/// only on a Flow trigger, an ISO 4217 currency, an amount in range, and value and currency
/// for a Purchase.
fn custom_data(
    raw: Option<RawCustomData>,
    trigger: Option<&Trigger>,
    event: Option<EventName>,
    label: &str,
    errors: &mut Vec<String>,
) -> CustomDataSpec {
    let raw = raw.unwrap_or(RawCustomData {
        from_order: false,
        value: None,
        currency: None,
        fields: BTreeMap::new(),
    });
    if raw.from_order && !is_order(trigger) {
        errors.push(format!(
            "{label}: custom_data.from_order needs trigger message_type = \"order\""
        ));
    }
    if !raw.fields.is_empty() && !is_flow(trigger) {
        errors.push(format!(
            "{label}: custom_data.fields maps Flow response fields, but the trigger is not a flow"
        ));
    }
    if let Some(currency) = &raw.currency
        && !is_currency_code(currency)
    {
        errors.push(format!(
            "{label}: currency {currency:?} must be an ISO 4217 code such as \"USD\""
        ));
    }
    if raw.value.is_some_and(|v| !is_valid_amount(v)) {
        errors.push(format!(
            "{label}: value must be a number from 0 to {MAX_AMOUNT:e}"
        ));
    }
    if event == Some(EventName::Purchase) {
        let has_value = raw.from_order || raw.value.is_some() || raw.fields.contains_key("value");
        let has_currency =
            raw.from_order || raw.currency.is_some() || raw.fields.contains_key("currency");
        if !(has_value && has_currency) {
            errors.push(format!(
                "{label}: Purchase needs custom_data value and currency (from_order = true, fixed value and currency, or Flow fields)"
            ));
        }
    }
    CustomDataSpec {
        from_order: raw.from_order,
        value: raw.value,
        currency: raw.currency,
        fields: raw.fields,
    }
}

/// The Flow fields the rule hashes into `user_data`, by key (or `full_name`); only on a Flow
/// trigger.
fn user_data(
    raw: BTreeMap<String, String>,
    trigger: Option<&Trigger>,
    label: &str,
    errors: &mut Vec<String>,
) -> Vec<(UserDataTarget, String)> {
    let mut user_data = Vec::new();
    if !raw.is_empty() && !is_flow(trigger) {
        errors.push(format!(
            "{label}: user_data maps Flow response fields, but the trigger is not a flow"
        ));
    }
    for (key, field) in raw {
        let target = if key == "full_name" {
            Some(UserDataTarget::FullName)
        } else {
            match key.parse::<UserDataKey>() {
                Ok(k) => Some(UserDataTarget::Key(k)),
                Err(_) => {
                    errors.push(format!(
                        "{label}: user_data key {key:?} is not one of em, ph, fn, ln, ct, st, zp, country, db, ge, external_id, full_name"
                    ));
                    None
                }
            }
        };
        if field.trim().is_empty() {
            errors.push(format!("{label}: user_data.{key} names no Flow field"));
        }
        if let Some(target) = target {
            user_data.push((target, field));
        }
    }
    user_data
}

/// The channels the rule is limited to (`None`: every channel); an empty list is an error.
fn channels(
    raw: Option<Vec<String>>,
    label: &str,
    errors: &mut Vec<String>,
) -> Option<Vec<Channel>> {
    let names = raw?;
    let parsed: Vec<Channel> = names
        .iter()
        .filter_map(|n| match n.parse::<Channel>() {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(format!("{label}: channels: {e}"));
                None
            }
        })
        .collect();
    if names.is_empty() {
        errors.push(format!(
            "{label}: channels is empty (remove it to apply the rule to every channel)"
        ));
    }
    Some(parsed)
}

/// A trigger that can fire on none of the rule's channels is an error.
fn check_reachable(
    trigger: &Trigger,
    channels: Option<&[Channel]>,
    label: &str,
    errors: &mut Vec<String>,
) {
    let listed = channels.unwrap_or(&Channel::ALL);
    if !listed.is_empty() && !listed.iter().any(|c| trigger.can_fire_on(*c)) {
        let names: Vec<&str> = listed.iter().map(|c| c.as_str()).collect();
        errors.push(format!(
            "{label}: trigger {} never fires on {}",
            trigger.kind(),
            names.join(", ")
        ));
    }
}

impl RawTrigger {
    fn compile(self) -> Result<Trigger, String> {
        Ok(match self {
            Self::AdClick => Trigger::AdClick,
            Self::MessageType { message_type } => {
                if message_type.trim().is_empty() {
                    return Err("trigger.message_type is empty".to_owned());
                }
                Trigger::MessageType(message_type)
            }
            Self::ButtonReply { id, pattern } => {
                Trigger::ButtonReply(matcher("button_reply", "id", id, pattern)?)
            }
            Self::ListReply { id, pattern } => {
                Trigger::ListReply(matcher("list_reply", "id", id, pattern)?)
            }
            Self::TemplateButton { payload, pattern } => {
                Trigger::TemplateButton(matcher("template_button", "payload", payload, pattern)?)
            }
            Self::QuickReply { payload, pattern } => {
                Trigger::QuickReply(matcher("quick_reply", "payload", payload, pattern)?)
            }
            Self::Postback { payload, pattern } => {
                Trigger::Postback(matcher("postback", "payload", payload, pattern)?)
            }
            Self::Flow {
                name,
                flow_token,
                flow_token_pattern,
            } => Trigger::Flow {
                name,
                flow_token: match (flow_token, flow_token_pattern) {
                    (None, None) => None,
                    (t, p) => Some(matcher("flow", "flow_token", t, p)?),
                },
            },
            Self::Text { pattern } => Trigger::Text(regex(&pattern, true)?),
            Self::AutomaticEvents { events } => Trigger::AutomaticEvents(
                events
                    .map(|names| {
                        names
                            .iter()
                            .map(|n| {
                                n.parse::<EventName>()
                                    .map_err(|e| format!("trigger.events: {e}"))
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .transpose()?,
            ),
        })
    }
}

fn matcher(
    kind: &str,
    field: &str,
    exact: Option<String>,
    pattern: Option<String>,
) -> Result<Matcher, String> {
    match (exact, pattern) {
        (Some(v), None) => Ok(Matcher::Exact(v)),
        (None, Some(p)) => Ok(Matcher::Pattern(regex(&p, false)?)),
        _ => Err(format!(
            "trigger {kind} needs exactly one of {field} (exact) or pattern"
        )),
    }
}
fn is_graph_version(v: &str) -> bool {
    v.strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
        .is_some_and(|(major, minor)| {
            !major.is_empty()
                && !minor.is_empty()
                && major.bytes().all(|b| b.is_ascii_digit())
                && minor.bytes().all(|b| b.is_ascii_digit())
        })
}
