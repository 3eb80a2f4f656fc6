//! The pure mapping: one signal, its account, the click attributed to it and the time now →
//! the conversions its rules fire, each built by the destination the click names, or the
//! reasons none could be. No I/O; time is a value.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::conversion::attribution::{channel_user_id, own_click, scope_key};
use crate::conversion::clicks::Click;
use crate::conversion::event_data::{custom_data, personal_values, scrub_custom_data, user_data};
use crate::conversion::rules::{Account, Config, Rule, Trigger};
pub use crate::delivery::event_id;
use crate::delivery::{Conversion, Outbound, Target, Unfit};
use crate::meta::capi::MAX_EVENT_AGE_SECONDS;
use crate::model::EventName;
use crate::report::{Fact, FactKey};
use crate::signal::{Signal, SignalEvent};
use crate::values::hashing::NormalizeError;
use crate::values::privacy::PersonalValues;

/// Events this close to Meta's 7-day limit are not sent: retries need time to finish inside it.
pub const TOO_OLD_SAFETY_MARGIN_SECONDS: i64 = 3600;

/// Why a signal or one of its rules produced no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// No rule matches the signal.
    NoRule,
    /// No ad click within the attribution window.
    NoClick,
    /// Older than Meta's 7-day window (less the safety margin).
    TooOld,
    /// The WABA has no account (no dataset) configured.
    UnknownAccount,
    /// The rule needs value data the signal does not have (e.g. a Purchase without a price).
    InvalidCustomData,
    /// The event was already sent (durable dedup).
    Duplicate,
    /// The destination the user's ad touch names cannot take the event, for the reason it
    /// gives: the account has no event set there (`no_destination`), there is no identity of
    /// the user it matches on (`no_identity`), or its own rules refuse it.
    Unfit(Unfit),
}

impl SkipReason {
    /// The metric and log label.
    pub fn label(self) -> &'static str {
        match self {
            Self::NoRule => "no_rule",
            Self::NoClick => "no_click",
            Self::TooOld => "too_old",
            Self::UnknownAccount => "unknown_account",
            Self::InvalidCustomData => "invalid_custom_data",
            Self::Duplicate => "duplicate",
            Self::Unfit(unfit) => unfit.0,
        }
    }
}

impl MappedEvent {
    /// The report fact of this event, once sent.
    pub fn fact(&self) -> Fact {
        let (value, currency) = self.event.value();
        Fact {
            key: FactKey {
                day: crate::report::day_of(self.event.event_time()),
                outcome: crate::report::SENT.to_owned(),
                destination: self.event.destination().as_str().to_owned(),
                channel: self.event.channel().as_str().to_owned(),
                account: crate::report::id_label(Some(&self.account.account_id)),
                ad_id: crate::report::id_label(self.ad_id.as_deref()),
                rule: self.rule.clone(),
                event_name: self.event.event_name().as_str().to_owned(),
                currency: currency.unwrap_or_default().to_owned(),
            },
            value,
            keys: self.event.match_keys(),
        }
    }

    /// Where the event goes: its destination's endpoint of the account. `None` only for an
    /// event of a destination the account lacks, which mapping never produces.
    pub fn target(&self) -> Option<Target> {
        self.account.destinations.target(self.event.destination())
    }
}

/// The report fact of a skip: the signal's day, channel and account, the click's ad and
/// platform when there is one, the rule and its event name when the skip concerns a rule.
pub fn skip_fact(
    config: &Config,
    signal: &Signal,
    click: Option<&Click>,
    rule: Option<&str>,
    reason: SkipReason,
) -> Fact {
    let event_name = match (&signal.event, rule) {
        (SignalEvent::Business { event_name, .. }, _) => Some(*event_name),
        (SignalEvent::AutomaticEvent { event_name, .. }, _) => event_name.parse().ok(),
        (_, Some(rule)) => config
            .rules
            .iter()
            .find(|r| r.name == rule)
            .and_then(|r| r.event),
        _ => None,
    };
    Fact {
        key: FactKey {
            day: crate::report::day_of(signal.timestamp),
            outcome: reason.label().to_owned(),
            destination: click
                .map(|c| c.destination.as_str().to_owned())
                .unwrap_or_default(),
            channel: signal.channel.as_str().to_owned(),
            account: crate::report::id_label(Some(&signal.account_id)),
            ad_id: crate::report::id_label(click.and_then(|c| c.ad_id.as_deref())),
            rule: rule.unwrap_or_default().to_owned(),
            event_name: event_name
                .map(|n| n.as_str().to_owned())
                .unwrap_or_default(),
            currency: String::new(),
        },
        value: None,
        keys: Vec::new(),
    }
}

/// An event ready to send, with where it goes and how it came about.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedEvent {
    /// The rule that fired.
    pub rule: String,
    /// The account (its destinations' endpoints), shared.
    pub account: Arc<Account>,
    /// The event, in its destination's form.
    pub event: Outbound,
    /// The ad of the attributed click, when known (the report's key).
    pub ad_id: Option<String>,
    /// Flow fields that could not be normalised and were left out of `user_data`.
    pub dropped_user_data: Vec<NormalizeError>,
    /// `custom_data` values left out because they read as an email address or a phone number
    /// (`custom_data` is sent in clear).
    pub dropped_custom_data: usize,
}

/// What one rule (or the whole signal) came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// An event to send.
    Event(Box<MappedEvent>),
    /// Nothing to send, and why.
    Skipped {
        /// The rule, when the skip concerns one.
        rule: Option<String>,
        /// Why nothing was sent (the label counted in metrics and the report).
        reason: SkipReason,
    },
}

impl Outcome {
    fn skipped(rule: &str, reason: SkipReason) -> Self {
        Self::Skipped {
            rule: Some(rule.to_owned()),
            reason,
        }
    }

    fn whole(reason: SkipReason) -> Self {
        Self::Skipped { rule: None, reason }
    }
}

/// Maps one signal. `click` is the attributed click
/// ([`crate::conversion::attribution::attributed_click`]); `now` is unix seconds. Returns one
/// outcome per matching rule, or a single `NoRule`/`UnknownAccount` skip.
pub fn map_signal(
    config: &Config,
    signal: &Signal,
    click: Option<&Click>,
    now: i64,
) -> Vec<Outcome> {
    let account = config.account(signal.channel, &signal.account_id);
    map_with(config, account, signal, click, now)
}

/// [`map_signal`] with the signal's account already resolved (`None`: none is configured).
pub fn map_with(
    config: &Config,
    account: Option<&Arc<Account>>,
    signal: &Signal,
    click: Option<&Click>,
    now: i64,
) -> Vec<Outcome> {
    if let SignalEvent::Business { .. } = &signal.event {
        return vec![map_business(account, signal, click, now)];
    }
    let matching: Vec<&Rule> = config.rules.iter().filter(|r| matches(r, signal)).collect();
    if matching.is_empty() {
        return vec![Outcome::whole(SkipReason::NoRule)];
    }
    let Some(account) = account else {
        return vec![Outcome::whole(SkipReason::UnknownAccount)];
    };
    matching
        .into_iter()
        .map(|rule| map_rule(rule, account, signal, click, now))
        .collect()
}

/// True when an event at `event_time` is past Meta's 7-day window (less the safety margin) at
/// `now`. Signal times are read from queue messages and may be any i64: an age that does not fit
/// one is older than any window, never wrapped into it.
pub fn too_old(event_time: i64, now: i64) -> bool {
    now.checked_sub(event_time)
        .is_none_or(|age| age > MAX_EVENT_AGE_SECONDS - TOO_OLD_SAFETY_MARGIN_SECONDS)
}

/// What one firing of a rule (or one business event) came to before a destination builds it.
struct Fired<'a> {
    rule: &'a str,
    account: &'a Arc<Account>,
    click: &'a Click,
    conversion: Conversion<'a>,
    dropped_user_data: Vec<NormalizeError>,
    dropped_custom_data: usize,
}

impl Fired<'_> {
    /// The event built by the destination the click names, or why it cannot take it.
    fn build(self) -> Outcome {
        match self
            .account
            .destinations
            .build(self.click.destination, &self.conversion)
        {
            Ok(event) => Outcome::Event(Box::new(MappedEvent {
                rule: self.rule.to_owned(),
                account: Arc::clone(self.account),
                event,
                ad_id: self.click.ad_id.clone(),
                dropped_user_data: self.dropped_user_data,
                dropped_custom_data: self.dropped_custom_data,
            })),
            Err(unfit) => Outcome::skipped(self.rule, SkipReason::Unfit(unfit)),
        }
    }
}

/// The click and the user id an event is attributed with (`None`: it cannot be).
fn attributed<'a>(signal: &Signal, click: Option<&'a Click>) -> Option<(&'a Click, String)> {
    click.and_then(|c| Some((c, channel_user_id(signal, c)?)))
}

fn map_rule(
    rule: &Rule,
    account: &Arc<Account>,
    signal: &Signal,
    click: Option<&Click>,
    now: i64,
) -> Outcome {
    let event_time = signal.timestamp.min(now);
    if too_old(event_time, now) {
        return Outcome::skipped(&rule.name, SkipReason::TooOld);
    }
    let Some((click, user_id)) = attributed(signal, click) else {
        return Outcome::skipped(&rule.name, SkipReason::NoClick);
    };
    let event_name = match (rule.event, &signal.event) {
        (Some(name), _) => name,
        (None, SignalEvent::AutomaticEvent { event_name, .. }) => match event_name.parse() {
            Ok(name) => name,
            Err(_) => return Outcome::skipped(&rule.name, SkipReason::NoRule),
        },
        (None, _) => return Outcome::skipped(&rule.name, SkipReason::NoRule),
    };
    let Some(mut custom_data) = custom_data(rule, signal) else {
        return Outcome::skipped(&rule.name, SkipReason::InvalidCustomData);
    };
    let dropped_custom_data = custom_data
        .as_mut()
        .map_or(0, |c| scrub_custom_data(c, &personal_values(rule, signal)));
    if event_name == EventName::Purchase
        && custom_data
            .as_ref()
            .is_none_or(|c| c.value.is_none() || c.currency.is_none())
    {
        return Outcome::skipped(&rule.name, SkipReason::InvalidCustomData);
    }
    let (hashed, dropped_user_data) = user_data(rule, signal);
    let order_id = custom_data.as_ref().and_then(|c| c.order_id.as_deref());
    let scope_key = scope_key(rule, signal, click, &user_id, order_id);
    Fired {
        rule: &rule.name,
        account,
        click,
        conversion: Conversion {
            name: event_name,
            time: event_time,
            scope_key: &scope_key,
            channel: signal.channel,
            account_id: &signal.account_id,
            user_id: &user_id,
            hashed: &hashed,
            phone_e164: signal.user.ph_e164.as_deref(),
            custom_data: custom_data.as_ref(),
            automatic: matches!(signal.event, SignalEvent::AutomaticEvent { .. }),
            renamed: rule.renamed.get(&click.destination).map(String::as_str),
            lead_id: None,
        },
        dropped_user_data,
        dropped_custom_data,
    }
    .build()
}

/// The name business events carry in outcomes (they follow no rule).
pub const BUSINESS_RULE: &str = "business-events";

/// A business event maps as reported: its name, value data and hashed user data, the sender's
/// click, and an event id derived from the caller's idempotency key.
fn map_business(
    account: Option<&Arc<Account>>,
    signal: &Signal,
    click: Option<&Click>,
    now: i64,
) -> Outcome {
    let SignalEvent::Business {
        event_name,
        idempotency_key,
        custom_data,
        user_data,
        lead_id,
    } = &signal.event
    else {
        return Outcome::whole(SkipReason::NoRule);
    };
    let Some(account) = account else {
        return Outcome::whole(SkipReason::UnknownAccount);
    };
    let event_time = signal.timestamp.min(now);
    if too_old(event_time, now) {
        return Outcome::skipped(BUSINESS_RULE, SkipReason::TooOld);
    }
    let Some((click, user_id)) = attributed(signal, click) else {
        return Outcome::skipped(BUSINESS_RULE, SkipReason::NoClick);
    };
    let hashed = with_sender_phone(user_data, signal.user.ph.as_deref());
    let mut custom_data = custom_data.clone();
    // Refused at the edge already (business::parse); kept for signals queued before that check.
    let mut personal = PersonalValues::default();
    if let Some(ph) = &signal.user.ph {
        personal.add_phone_hash(ph);
    }
    let dropped_custom_data = custom_data
        .as_mut()
        .map_or(0, |c| scrub_custom_data(c, &personal));
    let custom_data = custom_data.filter(|c| !c.is_empty());
    let scope_key = format!("idempotency:{idempotency_key}");
    Fired {
        rule: BUSINESS_RULE,
        account,
        click,
        conversion: Conversion {
            name: *event_name,
            time: event_time,
            scope_key: &scope_key,
            channel: signal.channel,
            account_id: &signal.account_id,
            user_id: &user_id,
            hashed: &hashed,
            phone_e164: signal.user.ph_e164.as_deref(),
            custom_data: custom_data.as_ref(),
            automatic: false,
            renamed: None,
            lead_id: lead_id.as_deref(),
        },
        dropped_user_data: Vec::new(),
        dropped_custom_data,
    }
    .build()
}

/// A business event's hashed user data, with the sender's phone hash first when the event did
/// not list it.
fn with_sender_phone(
    user_data: &BTreeMap<String, Vec<String>>,
    phone: Option<&str>,
) -> BTreeMap<String, Vec<String>> {
    let mut hashed = user_data.clone();
    if let Some(ph) = phone {
        let list = hashed.entry("ph".to_owned()).or_default();
        if !list.iter().any(|h| h == ph) {
            list.insert(0, ph.to_owned());
        }
    }
    hashed
}

/// Whether `rule`'s trigger matches `signal`.
pub fn matches(rule: &Rule, signal: &Signal) -> bool {
    if !rule.applies_to(signal.channel) {
        return false;
    }
    match (&rule.trigger, &signal.event) {
        (Trigger::AdClick, _) => own_click(signal).is_some(),
        (Trigger::MessageType(want), event) => event.message_type() == Some(want.as_str()),
        (Trigger::ButtonReply(m), SignalEvent::ButtonReply { id }) => m.matches(id),
        (Trigger::ListReply(m), SignalEvent::ListReply { id }) => m.matches(id),
        (Trigger::TemplateButton(m), SignalEvent::TemplateButton { payload }) => m.matches(payload),
        (Trigger::QuickReply(m), SignalEvent::QuickReply { payload }) => m.matches(payload),
        (Trigger::Postback(m), SignalEvent::Postback { payload }) => m.matches(payload),
        (
            Trigger::Flow { name, flow_token },
            SignalEvent::FlowReply {
                name: got_name,
                flow_token: got_token,
                ..
            },
        ) => {
            name.as_ref().is_none_or(|n| got_name.as_ref() == Some(n))
                && flow_token
                    .as_ref()
                    .is_none_or(|m| got_token.as_deref().is_some_and(|t| m.matches(t)))
        }
        (Trigger::Text(re), SignalEvent::Text { body }) => re.is_match(body),
        (Trigger::AutomaticEvents(filter), SignalEvent::AutomaticEvent { event_name, .. }) => {
            match event_name.parse::<EventName>() {
                Ok(name) => filter.as_ref().is_none_or(|f| f.contains(&name)),
                Err(_) => false,
            }
        }
        _ => false,
    }
}
