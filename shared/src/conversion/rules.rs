//! The wacapi configuration: accounts (WABA → dataset) and declarative conversion rules, loaded
//! from TOML and validated completely before use. Every problem is reported at once, each naming
//! the rule or account it concerns.
//!
//! The format is documented in `docs/configuration.md`; `examples/wacapi.toml` exercises every
//! feature; [`DEFAULT_CONFIG`] applies when no file is given.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use serde::Deserialize;

use crate::model::Channel;
use crate::model::EventName;
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
pub const ANY_WABA: &str = "*";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Graph API version, e.g. `v25.0`.
    pub graph_api_version: String,
    /// Clicks older than this (seconds) before an event do not attribute it.
    pub attribution_window_seconds: i64,
    /// Accounts by channel and id (WABA, Page, Instagram account; [`ANY_WABA`] for the
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
            .or_else(|| self.accounts.get(&(channel, ANY_WABA.to_owned())))
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
            .filter(|(c, k)| *c == channel && k.as_str() != ANY_WABA);
        match (explicit.next(), explicit.next()) {
            (Some((_, only)), None) => Some(only.as_str()),
            _ => None,
        }
    }

    /// Parses and validates TOML. A file that does not parse is reported by line and column with
    /// the offending line quoted, the value of a secret-named key redacted
    /// ([`super::toml_error::describe`]).
    pub fn from_toml(text: &str) -> Result<Self, ConfigErrors> {
        let raw: RawConfig = toml::from_str(text)
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
    /// The dataset (`/{WABA_ID}/dataset`) events are posted to.
    pub dataset_id: String,
    /// Name of the access token to use (a key of the tokens secret); `None` = `default`.
    pub token: Option<String>,
    /// Routes events to Events Manager's Test Events tool.
    pub test_event_code: Option<String>,
    /// Identifies the integration to Meta.
    pub partner_agent: Option<String>,
    /// Where the conversions of users a TikTok ad brought go (`tiktok = { ... }`). Shared, as
    /// every mapped event holds its account and a compiled pattern is costly to clone.
    pub tiktok: Option<Arc<TikTokAccount>>,
}

/// An account's TikTok event set, and how a TikTok ad's chat is recognised.
#[derive(Debug, Clone)]
pub struct TikTokAccount {
    /// `crm` (the default) or `offline`.
    pub event_source: crate::tiktok::events::EventSource,
    /// The event set id.
    pub event_source_id: String,
    /// Matches the first message a TikTok ad prefills: a user who sends it has a TikTok touch.
    pub first_message_pattern: Regex,
    /// Name of the access token (a key of `tiktok_access_tokens`); `None` = `default`.
    pub token: Option<String>,
    /// Routes events to TikTok Events Manager's test events.
    pub test_event_code: Option<String>,
}

impl PartialEq for TikTokAccount {
    fn eq(&self, other: &Self) -> bool {
        self.event_source == other.event_source
            && self.event_source_id == other.event_source_id
            && self.first_message_pattern.as_str() == other.first_message_pattern.as_str()
            && self.token == other.token
            && self.test_event_code == other.test_event_code
    }
}

impl TikTokAccount {
    /// Whether a message's text is the TikTok ad's prefilled first message.
    pub fn is_touch(&self, text: &str) -> bool {
        self.first_message_pattern.is_match(text)
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
    /// The TikTok event sent instead of the default for [`Rule::event`]
    /// ([`crate::tiktok::events::default_event_name`]).
    pub tiktok_event: Option<String>,
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

// --- the TOML shape ---------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
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
    tiktok: Option<RawTikTok>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTikTok {
    event_source_id: String,
    first_message_pattern: String,
    #[serde(default)]
    event_source: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    test_event_code: Option<String>,
}

impl RawTikTok {
    fn compile(self, label: &str, errors: &mut Vec<String>) -> Option<TikTokAccount> {
        let before = errors.len();
        let id = self.event_source_id.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            errors.push(format!(
                "{label}: tiktok.event_source_id must be the event set id (letters and digits)"
            ));
        }
        let event_source = match self.event_source.as_deref().map(str::parse) {
            None => crate::tiktok::events::EventSource::default(),
            Some(Ok(source)) => source,
            Some(Err(e)) => {
                errors.push(format!("{label}: tiktok.event_source: {e}"));
                crate::tiktok::events::EventSource::default()
            }
        };
        let pattern = if self.first_message_pattern.trim().is_empty() {
            errors.push(format!("{label}: tiktok.first_message_pattern is empty"));
            None
        } else {
            match regex(&self.first_message_pattern, false) {
                // A pattern that matches an empty text would take every chat for a TikTok one,
                // and send every user's conversions to TikTok.
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
        };
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
            Some(first_message_pattern) if errors.len() == before => Some(TikTokAccount {
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
    fn validate(self) -> Result<Config, ConfigErrors> {
        let mut errors = Vec::new();
        let graph_api_version = self
            .graph_api_version
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

        let mut accounts = BTreeMap::new();
        if self.accounts.is_empty() {
            errors.push(
                "no [[accounts]]: add one per WABA, Page or Instagram account (or waba_id = \"*\")"
                    .to_owned(),
            );
        }
        for a in self.accounts {
            let named: Vec<(Channel, String)> = [
                (Channel::Whatsapp, a.waba_id),
                (Channel::Messenger, a.page_id),
                (Channel::Instagram, a.instagram_account_id),
            ]
            .into_iter()
            .filter_map(|(c, id)| id.map(|id| (c, id)))
            .collect();
            let (channel, id) = match named.as_slice() {
                [(channel, id)] => (*channel, id.clone()),
                _ => {
                    errors.push(format!(
                        "an account (dataset {:?}) must name exactly one of waba_id, page_id or instagram_account_id",
                        a.dataset_id
                    ));
                    continue;
                }
            };
            let key_name = match channel {
                Channel::Whatsapp => "waba_id",
                Channel::Messenger => "page_id",
                Channel::Instagram => "instagram_account_id",
            };
            let label = if channel.is_whatsapp() {
                format!("account {id:?}")
            } else {
                format!("account {key_name} {id:?}")
            };
            if id.trim().is_empty() {
                errors.push(format!("an account has an empty {key_name}"));
            }
            if a.dataset_id.trim().is_empty() || !a.dataset_id.bytes().all(|b| b.is_ascii_digit()) {
                errors.push(format!(
                    "{label}: dataset_id must be the numeric dataset id"
                ));
            }
            for (field, value) in [
                ("token", &a.token),
                ("test_event_code", &a.test_event_code),
                ("partner_agent", &a.partner_agent),
            ] {
                if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                    errors.push(format!("{label}: {field} is empty (remove it instead)"));
                }
            }
            let tiktok = a
                .tiktok
                .and_then(|t| t.compile(&label, &mut errors))
                .map(Arc::new);
            let account = Account {
                channel,
                account_id: id.clone(),
                dataset_id: a.dataset_id,
                token: a.token,
                test_event_code: a.test_event_code,
                partner_agent: a.partner_agent,
                tiktok,
            };
            if accounts.insert((channel, id), Arc::new(account)).is_some() {
                errors.push(format!("{label} is listed twice"));
            }
        }

        let mut names = HashSet::new();
        let mut rules = Vec::new();
        if self.rules.is_empty() {
            errors.push("no [[rules]]: nothing would ever be sent".to_owned());
        }
        for raw in self.rules {
            if raw.name.trim().is_empty() {
                errors.push("a rule has an empty name".to_owned());
            } else if !names.insert(raw.name.clone()) {
                errors.push(format!("rule {:?} is defined twice", raw.name));
            }
            match raw.validate() {
                Ok(rule) => rules.push(rule),
                Err(mut e) => errors.append(&mut e),
            }
        }

        errors.extend(personal_custom_data(&rules));
        let mut warnings = purchase_on_instagram(&rules, &accounts);
        let tiktok = tiktok_rule_checks(&rules, &accounts);
        errors.extend(tiktok.errors);
        warnings.extend(tiktok.warnings);

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
}

/// Meta optimises ads for Purchase on Messenger and WhatsApp, not Instagram (CAPI for Business
/// Messaging FAQ): a Purchase rule that can fire for an Instagram account is worth a warning.
fn purchase_on_instagram(
    rules: &[Rule],
    accounts: &BTreeMap<(Channel, String), Arc<Account>>,
) -> Vec<String> {
    if !accounts.keys().any(|(c, _)| *c == Channel::Instagram) {
        return Vec::new();
    }
    rules
        .iter()
        .filter(|r| r.applies_to(Channel::Instagram) && r.trigger.can_fire_on(Channel::Instagram))
        .filter(|r| {
            r.event == Some(EventName::Purchase)
                || matches!(&r.trigger, Trigger::AutomaticEvents(f) if f.as_ref().is_none_or(|f| f.contains(&EventName::Purchase)))
        })
        .map(|r| {
            format!(
                "rule {:?}: sends Purchase for Instagram, where Meta does not optimise ads for purchases (Messenger and WhatsApp only); add channels = [\"whatsapp\", \"messenger\"] if that is not meant",
                r.name
            )
        })
        .collect()
}

/// What the configured TikTok event sets make of the rules.
#[derive(Default)]
struct TikTokChecks {
    errors: Vec<String>,
    warnings: Vec<String>,
}

/// Holds the rules against the TikTok event sets they can send to (docs/tiktok-reference.md):
/// a rule's `tiktok_event` must be a name every such event set takes (an offline event set a
/// standard event, a CRM event set a custom name that is not reserved); a rule whose event has
/// no standard counterpart, or whose currency TikTok does not list, is skipped for users a
/// TikTok ad brought (warned); a CRM event set never receives a chat's conversions, which carry
/// no TikTok lead id (warned).
fn tiktok_rule_checks(
    rules: &[Rule],
    accounts: &BTreeMap<(Channel, String), Arc<Account>>,
) -> TikTokChecks {
    use crate::tiktok::events::{
        EventSource, OFFLINE_EVENTS, default_event_name, is_supported_currency, is_valid_event_name,
    };
    let mut out = TikTokChecks::default();
    let tiktok_accounts: Vec<&Account> = accounts
        .values()
        .filter(|a| a.tiktok.is_some())
        .map(Arc::as_ref)
        .collect();
    for rule in rules {
        if let Some(name) = &rule.tiktok_event
            && tiktok_accounts.is_empty()
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
    for account in tiktok_accounts {
        let Some(tiktok) = &account.tiktok else {
            continue;
        };
        let source = tiktok.event_source;
        let label = format!(
            "account {} {:?} (TikTok {} event set)",
            account.channel.account_noun(),
            account.account_id,
            source.as_str()
        );
        let rules_here = || {
            rules
                .iter()
                .filter(|r| r.applies_to(account.channel) && r.trigger.can_fire_on(account.channel))
        };
        if source == EventSource::Crm && rules_here().next().is_some() {
            out.warnings.push(format!(
                "{label}: a CRM event set takes only events that carry a TikTok lead id; conversions in chats carry none and are skipped (tiktok_no_lead_id), so only POST /events items with tiktok_lead_id reach it. Use event_source = \"offline\" for chats a TikTok ad opened"
            ));
        }
        for rule in rules_here() {
            match &rule.tiktok_event {
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
            if let Some(currency) = &rule.custom_data.currency
                && !is_supported_currency(currency)
            {
                out.warnings.push(format!(
                    "rule {:?}: TikTok does not list the currency {currency}; for users a TikTok ad brought to {label} the event is skipped (tiktok_currency_not_supported)",
                    rule.name
                ));
            }
        }
    }
    out.warnings.dedup();
    out
}

/// `custom_data` is sent to Meta in clear: a Flow field that any rule hashes into `user_data`,
/// or whose name (or whose `custom_data` key) names customer information, may not feed it.
fn personal_custom_data(rules: &[Rule]) -> Vec<String> {
    let hashed: HashSet<&str> = rules
        .iter()
        .flat_map(|r| r.user_data.iter().map(|(_, field)| field.as_str()))
        .collect();
    let mut errors = Vec::new();
    for rule in rules {
        for (key, field) in &rule.custom_data.fields {
            let why = if hashed.contains(field.as_str()) {
                "a user_data mapping hashes it"
            } else if crate::values::privacy::is_personal_field_name(field)
                || crate::values::privacy::is_personal_field_name(key)
            {
                "it names customer information"
            } else {
                continue;
            };
            errors.push(format!(
                "rule {:?}: custom_data.fields.{key} is fed from Flow field {field:?}, which is personal ({why}); custom_data is sent in clear: map it in user_data, where it is hashed",
                rule.name
            ));
        }
    }
    errors
}

impl RawRule {
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
        let is_automatic = matches!(trigger, Some(Trigger::AutomaticEvents(_)));
        let event = match (&self.event, is_automatic) {
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
        };
        let is_flow = matches!(trigger, Some(Trigger::Flow { .. }));
        let is_order = matches!(&trigger, Some(Trigger::MessageType(t)) if t == "order");

        let raw_custom = self.custom_data.unwrap_or(RawCustomData {
            from_order: false,
            value: None,
            currency: None,
            fields: BTreeMap::new(),
        });
        if raw_custom.from_order && !is_order {
            errors.push(format!(
                "{label}: custom_data.from_order needs trigger message_type = \"order\""
            ));
        }
        if !raw_custom.fields.is_empty() && !is_flow {
            errors.push(format!(
                "{label}: custom_data.fields maps Flow response fields, but the trigger is not a flow"
            ));
        }
        if let Some(currency) = &raw_custom.currency
            && !crate::values::money::is_currency_code(currency)
        {
            errors.push(format!(
                "{label}: currency {currency:?} must be an ISO 4217 code such as \"USD\""
            ));
        }
        if raw_custom
            .value
            .is_some_and(|v| !crate::values::money::is_valid_amount(v))
        {
            errors.push(format!(
                "{label}: value must be a number from 0 to {:e}",
                crate::values::money::MAX_AMOUNT
            ));
        }
        if event == Some(EventName::Purchase) {
            let has_value = raw_custom.from_order
                || raw_custom.value.is_some()
                || raw_custom.fields.contains_key("value");
            let has_currency = raw_custom.from_order
                || raw_custom.currency.is_some()
                || raw_custom.fields.contains_key("currency");
            if !(has_value && has_currency) {
                errors.push(format!(
                    "{label}: Purchase needs custom_data value and currency (from_order = true, fixed value and currency, or Flow fields)"
                ));
            }
        }

        let mut user_data = Vec::new();
        if !self.user_data.is_empty() && !is_flow {
            errors.push(format!(
                "{label}: user_data maps Flow response fields, but the trigger is not a flow"
            ));
        }
        for (key, field) in self.user_data {
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

        let channels = match self.channels {
            None => None,
            Some(names) => {
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
        };
        // Whether the name suits the accounts' event sets is checked with the accounts
        // (tiktok_rule_checks).
        let tiktok_event = self.tiktok_event.map(|name| name.trim().to_owned());
        let dedup = self.dedup.unwrap_or_default();
        if dedup == DedupScope::Order && !is_order {
            errors.push(format!(
                "{label}: dedup = \"order\" needs trigger message_type = \"order\""
            ));
        }

        if let Some(trigger) = &trigger {
            let listed = channels.as_deref().unwrap_or(&Channel::ALL);
            if !listed.is_empty() && !listed.iter().any(|c| trigger.can_fire_on(*c)) {
                let names: Vec<&str> = listed.iter().map(|c| c.as_str()).collect();
                errors.push(format!(
                    "{label}: trigger {} never fires on {}",
                    trigger.kind(),
                    names.join(", ")
                ));
            }
        }

        match (trigger, errors.is_empty()) {
            (Some(trigger), true) => Ok(Rule {
                name: self.name,
                event,
                trigger,
                dedup,
                custom_data: CustomDataSpec {
                    from_order: raw_custom.from_order,
                    value: raw_custom.value,
                    currency: raw_custom.currency,
                    fields: raw_custom.fields,
                },
                user_data,
                channels,
                tiktok_event,
            }),
            _ => Err(errors),
        }
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

fn regex(pattern: &str, case_insensitive: bool) -> Result<Regex, String> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("pattern {pattern:?} is not a valid regular expression: {e}"))
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

#[cfg(test)]
mod tests {
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
        let text = include_str!("../../../examples/wacapi.toml");
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
