//! The wacapi configuration: accounts (a channel account → where its conversions go) and
//! declarative conversion rules, loaded from TOML (`raw`) and validated completely before use,
//! rule by rule and across rules and accounts (`checks`). Every problem is reported at once,
//! each naming the rule or account it concerns.
//!
//! The format is documented in `docs/configuration.md`; `examples/wacapi.toml` exercises every
//! feature; [`DEFAULT_CONFIG`] applies when no file is given.

mod checks;
mod raw;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use regex::Regex;
use serde::Deserialize;

use crate::destinations::AccountDestinations;
use crate::meta::dataset::Dataset;
use crate::model::{Channel, Destination, EventName};
use crate::values::hashing::UserDataKey;

/// The configuration used when none is given: the rules most advertisers want, and every WABA
/// routed to a placeholder dataset so a dry run works out of the box.
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

/// The Graph API version used when the configuration names none: the newest Marketing API
/// version (Nov 4, 2026). Neither the v26.0 nor the v27.0 changelog changes
/// `POST /{dataset_id}/events`; v26.0 drops legacy Graph protocol features (`date_format`,
/// method override, field aliases, JSONP, multi-ID requests) that wacapi never uses. Its dates
/// and the check of a configured version: [`crate::meta::versions`].
pub const DEFAULT_GRAPH_API_VERSION: &str = "v27.0";

/// The click attribution window used when the configuration names none (third parties use 7
/// days from the click; Meta documents none).
pub const DEFAULT_ATTRIBUTION_WINDOW_DAYS: u32 = 7;

/// The account id that matches every account of its channel not listed explicitly.
pub const ANY_ACCOUNT: &str = "*";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Graph API version, e.g. `v25.0`.
    pub graph_api_version: String,
    /// Clicks older than this (seconds) before an event do not attribute it.
    pub attribution_window_seconds: i64,
    /// Accounts by channel and id (WABA, Page, Instagram account; [`ANY_ACCOUNT`] for the
    /// fallback of a channel). Shared: every mapped event and request holds its account.
    pub accounts: BTreeMap<(Channel, String), Arc<Account>>,
    /// Rules, in file order. Every rule that matches a signal fires.
    pub rules: Vec<Rule>,
    /// What is valid but probably not what was meant (printed by `check-config`).
    pub warnings: Vec<String>,
}

impl Config {
    /// Whether a rule sends Meta's automatic events: only then are clicks worth keeping under
    /// their click id ([`crate::conversion::clicks::ClickStore::record_click_id`]).
    pub fn sends_automatic_events(&self) -> bool {
        self.rules
            .iter()
            .any(|r| matches!(r.trigger, Trigger::AutomaticEvents(_)))
    }

    /// The account an account id of `channel` sends to: its own entry, else the channel's
    /// `*` entry.
    pub fn account(&self, channel: Channel, id: &str) -> Option<&Arc<Account>> {
        self.accounts
            .get(&(channel, id.to_owned()))
            .or_else(|| self.accounts.get(&(channel, ANY_ACCOUNT.to_owned())))
    }

    /// The account id a business event belongs to: the one it names, else the only explicit
    /// account of its channel when there is exactly one (`None` when that cannot be decided).
    pub fn resolve_account<'a>(&'a self, channel: Channel, id: &'a str) -> Option<&'a str> {
        if !id.is_empty() {
            return Some(id);
        }
        let mut explicit = self
            .accounts
            .keys()
            .filter(|(c, k)| *c == channel && k.as_str() != ANY_ACCOUNT);
        match (explicit.next(), explicit.next()) {
            (Some((_, only)), None) => Some(only.as_str()),
            _ => None,
        }
    }

    /// Parses and validates TOML. A file that does not parse is reported by line and column with
    /// the offending line quoted, the value of a secret-named key redacted
    /// ([`super::toml_error::describe`]).
    pub fn from_toml(text: &str) -> Result<Self, ConfigErrors> {
        let raw: raw::RawConfig = toml::from_str(text)
            .map_err(|e| ConfigErrors(vec![super::toml_error::describe(text, &e)]))?;
        raw.validate()
    }

    /// The built-in default configuration.
    pub fn default_config() -> Result<Self, ConfigErrors> {
        Self::from_toml(DEFAULT_CONFIG)
    }
}

/// Where one account's events go.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// The channel: which of `waba_id`, `page_id` or `instagram_account_id` named it.
    pub channel: Channel,
    /// The WABA, Page or Instagram professional account id (or `*`).
    pub account_id: String,
    /// Its destinations: Meta's dataset, and the others it configures.
    pub destinations: AccountDestinations,
}

impl Account {
    /// The account's Meta dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.destinations.meta
    }

    /// The id of the account's Meta dataset (`/{WABA_ID}/dataset`).
    pub fn dataset_id(&self) -> &str {
        &self.destinations.meta.dataset_id
    }
}

/// One conversion rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Unique name (logs, metrics, errors).
    pub name: String,
    /// The event sent; `None` only for `automatic_events`, which carry Meta's own name.
    pub event: Option<EventName>,
    /// When it fires.
    pub trigger: Trigger,
    /// What makes two firings the same conversion.
    pub dedup: DedupScope,
    /// How `custom_data` is filled.
    pub custom_data: CustomDataSpec,
    /// Flow response fields hashed into `user_data`.
    pub user_data: Vec<(UserDataTarget, String)>,
    /// The channels the rule applies to (`None`: every channel).
    pub channels: Option<Vec<Channel>>,
    /// The rule's own names of its event, by destination (each destination's default name
    /// of [`Rule::event`] otherwise).
    pub renamed: BTreeMap<Destination, String>,
}

impl Rule {
    /// Whether the rule applies to `channel`.
    pub fn applies_to(&self, channel: Channel) -> bool {
        self.channels.as_ref().is_none_or(|c| c.contains(&channel))
    }
}

/// What a rule reacts to.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// The first message of an ad click: any message (or postback, or reopened thread) whose
    /// referral is an ad (on WhatsApp, carrying a `ctwa_clid`).
    AdClick,
    /// A message of this type (`order`, `request_welcome`, `image`, ...).
    MessageType(String),
    /// An interactive reply-button press.
    ButtonReply(Matcher),
    /// An interactive list-row choice.
    ListReply(Matcher),
    /// A template quick-reply button press, by payload.
    TemplateButton(Matcher),
    /// A Messenger or Instagram quick reply, by payload.
    QuickReply(Matcher),
    /// A Messenger or Instagram postback (a button, Get Started, a menu item), by payload.
    Postback(Matcher),
    /// A Flow completion.
    Flow {
        /// `nfm_reply.name` (`flow`, `address_message`), if constrained.
        name: Option<String>,
        /// The `flow_token`, if constrained.
        flow_token: Option<Matcher>,
    },
    /// A text matching a case-insensitive pattern.
    Text(Regex),
    /// Meta-detected events, optionally only some names.
    AutomaticEvents(Option<Vec<EventName>>),
}

impl Trigger {
    /// The trigger kind as written in the configuration.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AdClick => "ad_click",
            Self::MessageType(_) => "message_type",
            Self::ButtonReply(_) => "button_reply",
            Self::ListReply(_) => "list_reply",
            Self::TemplateButton(_) => "template_button",
            Self::QuickReply(_) => "quick_reply",
            Self::Postback(_) => "postback",
            Self::Flow { .. } => "flow",
            Self::Text(_) => "text",
            Self::AutomaticEvents(_) => "automatic_events",
        }
    }

    /// Whether the trigger can fire for a signal of `channel`: WhatsApp alone has interactive
    /// replies, template buttons, Flows, orders and automatic events; Messenger and Instagram
    /// alone have quick replies, postbacks and bare referrals.
    pub fn can_fire_on(&self, channel: Channel) -> bool {
        match self {
            Self::AdClick | Self::Text(_) => true,
            Self::MessageType(t) => match t.as_str() {
                "order" | "interactive" | "button" | "request_welcome" | "system" => {
                    channel.is_whatsapp()
                }
                "quick_reply" | "postback" | "referral" => !channel.is_whatsapp(),
                _ => true,
            },
            Self::ButtonReply(_)
            | Self::ListReply(_)
            | Self::TemplateButton(_)
            | Self::Flow { .. }
            | Self::AutomaticEvents(_) => channel.is_whatsapp(),
            Self::QuickReply(_) | Self::Postback(_) => !channel.is_whatsapp(),
        }
    }
}

/// An exact value or a pattern.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// Equal to this.
    Exact(String),
    /// Matching this regular expression (anchor it with `^…$` for a whole match).
    Pattern(Regex),
}

impl Matcher {
    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(want) => want == value,
            Self::Pattern(re) => re.is_match(value),
        }
    }
}

/// What makes two firings of a rule the same conversion (and so one event id).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DedupScope {
    /// One event per WhatsApp message (re-deliveries collapse).
    #[default]
    Message,
    /// One event per ad click (e.g. one `LeadSubmitted` per click, however many forms).
    Click,
    /// One event per order (the order id when known, else the order message).
    Order,
}

impl DedupScope {
    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::Click => "click",
            Self::Order => "order",
        }
    }
}

/// How a rule fills `custom_data`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomDataSpec {
    /// Derive contents, value, currency and counts from a WhatsApp order.
    pub from_order: bool,
    /// A fixed value.
    pub value: Option<f64>,
    /// A fixed currency.
    pub currency: Option<String>,
    /// `custom_data` key → Flow response field.
    pub fields: BTreeMap<String, String>,
}

/// Where a Flow field goes in `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserDataTarget {
    /// One hashed key.
    Key(UserDataKey),
    /// A full name, split into `fn` (first word) and `ln` (last word).
    FullName,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_default_configuration_is_valid() {
        let config = Config::default_config().expect("valid default");
        assert!(
            config.account(Channel::Whatsapp, "any-waba").is_some(),
            "placeholder for every WABA"
        );
        assert_eq!(config.graph_api_version, DEFAULT_GRAPH_API_VERSION);
    }

    #[test]
    fn the_example_configuration_is_valid() {
        let text = include_str!("../../../../examples/wacapi.toml");
        let config = Config::from_toml(text).expect("valid example");
        let kinds: HashSet<&str> = config.rules.iter().map(|r| r.trigger.kind()).collect();
        for kind in [
            "ad_click",
            "message_type",
            "button_reply",
            "list_reply",
            "template_button",
            "flow",
            "text",
            "automatic_events",
        ] {
            assert!(kinds.contains(kind), "the example exercises {kind}");
        }
    }

    fn errors(text: &str) -> Vec<String> {
        Config::from_toml(text).expect_err("invalid").0
    }

    const ACCOUNT: &str = "[[accounts]]\nwaba_id = \"1\"\ndataset_id = \"2\"\n";

    #[test]
    fn unknown_event_names_name_the_rule_and_list_the_allowed_names() {
        let e = errors(&format!(
            "{ACCOUNT}[[rules]]\nname = \"r1\"\nevent = \"Lead\"\ntrigger = {{ kind = \"ad_click\" }}\n"
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].starts_with("rule \"r1\": event \"Lead\" is not a business-messaging event name; allowed: Purchase, LeadSubmitted,"), "{}", e[0]);
    }

    #[test]
    fn purchase_without_value_and_currency_is_refused() {
        let e = errors(&format!(
            "{ACCOUNT}[[rules]]\nname = \"p\"\nevent = \"Purchase\"\ntrigger = {{ kind = \"button_reply\", id = \"buy\" }}\ncustom_data = {{ value = 10.0 }}\n"
        ));
        assert_eq!(
            e,
            vec![
                "rule \"p\": Purchase needs custom_data value and currency (from_order = true, fixed value and currency, or Flow fields)"
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
graph_api_version = "25"
attribution_window_days = 90
[[accounts]]
waba_id = "1"
dataset_id = "abc"
[[accounts]]
waba_id = "1"
dataset_id = "2"
[[rules]]
name = "a"
event = "LeadSubmitted"
trigger = { kind = "button_reply" }
[[rules]]
name = "a"
event = "ViewContent"
trigger = { kind = "text", pattern = "(" }
user_data = { em = "email" }
[[rules]]
name = "c"
event = "AddToCart"
trigger = { kind = "flow" }
user_data = { email = "e" }
custom_data = { currency = "usd" }
[[rules]]
name = "d"
event = "LeadSubmitted"
trigger = { kind = "ad_click" }
dedup = "order"
"#;
        let e = errors(text);
        let expected = [
            "graph_api_version \"25\" must look like \"v27.0\"",
            "attribution_window_days must be between 1 and 28, not 90",
            "account \"1\": dataset_id must be the numeric dataset id",
            "account \"1\" is listed twice",
            "rule \"a\": trigger button_reply needs exactly one of id (exact) or pattern",
            "rule \"a\" is defined twice",
            "rule \"a\": pattern \"(\" is not a valid regular expression",
            "rule \"a\": user_data maps Flow response fields, but the trigger is not a flow",
            "rule \"c\": currency \"usd\" must be an ISO 4217 code such as \"USD\"",
            "rule \"c\": user_data key \"email\" is not one of",
            "rule \"d\": dedup = \"order\" needs trigger message_type = \"order\"",
        ];
        for want in expected {
            assert!(
                e.iter().any(|got| got.starts_with(want)),
                "missing {want:?} in {e:#?}"
            );
        }
        assert_eq!(e.len(), expected.len(), "{e:#?}");
    }

    #[test]
    fn unknown_keys_and_trigger_kinds_are_refused() {
        let e = errors(&format!(
            "{ACCOUNT}[[rules]]\nname = \"r\"\nevent = \"LeadSubmitted\"\ntrigger = {{ kind = \"telepathy\" }}\n"
        ));
        assert!(e[0].contains("unknown variant `telepathy`"), "{e:?}");
        let e = errors(&format!("{ACCOUNT}colour = \"blue\"\n"));
        assert!(e[0].contains("unknown field `colour`"), "{e:?}");
    }

    #[test]
    fn personal_flow_fields_may_not_feed_custom_data() {
        let e = errors(&format!(
            "{ACCOUNT}[[rules]]\nname = \"f\"\nevent = \"LeadSubmitted\"\ntrigger = {{ kind = \"flow\" }}\ncustom_data = {{ fields = {{ content_name = \"email\", content_category = \"contact\" }} }}\nuser_data = {{ em = \"contact\" }}\n"
        ));
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e.iter().any(|m| m.contains("custom_data.fields.content_name is fed from Flow field \"email\", which is personal (it names customer information)")), "{e:#?}");
        assert!(e.iter().any(|m| m.contains("custom_data.fields.content_category is fed from Flow field \"contact\", which is personal (a user_data mapping hashes it)")), "{e:#?}");
        let e = errors(&format!(
            "{ACCOUNT}[[rules]]\nname = \"g\"\nevent = \"LeadSubmitted\"\ntrigger = {{ kind = \"flow\" }}\ncustom_data = {{ fields = {{ phone = \"plan\" }} }}\n"
        ));
        assert!(e[0].contains("custom_data.fields.phone"), "{e:#?}");
    }

    #[test]
    fn automatic_events_take_no_event_name() {
        let e = errors(&format!(
            "{ACCOUNT}[[rules]]\nname = \"m\"\nevent = \"Purchase\"\ntrigger = {{ kind = \"automatic_events\" }}\n"
        ));
        assert!(e[0].contains("carry Meta's own event name"), "{e:?}");
        let e = errors(&format!(
            "{ACCOUNT}[[rules]]\nname = \"m\"\ntrigger = {{ kind = \"automatic_events\", events = [\"Lead\"] }}\n"
        ));
        assert!(e[0].contains("trigger.events: \"Lead\" is not"), "{e:?}");
    }
}
