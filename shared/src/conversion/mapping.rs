//! The pure mapping: one signal, the click attributed to it and the time now → the CAPI events
//! the rules produce, or the reasons none could be. No I/O; time is a value.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::conversion::clicks::Click;
use crate::conversion::rules::{Account, Config, DedupScope, Rule, Trigger, UserDataTarget};
use crate::meta::capi::{
    Content, CustomData, Event, EventName, MAX_EVENT_AGE_SECONDS, MessagingOutcomeData,
};
use crate::model::Channel;
use crate::model::Destination;
use crate::report::{Fact, FactKey};
use crate::signal::OrderItem;
use crate::signal::{Signal, SignalEvent};
use crate::tiktok::events as tiktok;
use crate::values::hashing::{NormalizeError, UserDataKey, hash, sha256_hex};
use crate::values::money::{is_currency_code, is_valid_amount, is_valid_quantity, round_money};
use crate::values::privacy::{PersonalValues, find_personal};

/// Events this close to Meta's 7-day limit are not sent: retries need time to finish inside it.
pub const TOO_OLD_SAFETY_MARGIN_SECONDS: i64 = 3600;

/// A click may be stamped this far after the event (clock skew between messages).
const CLICK_CLOCK_SKEW_SECONDS: i64 = 300;

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
    /// The user's latest ad touch is TikTok's, and the account has no TikTok event set.
    NoDestination,
    /// The destination has no identity of the user to match (TikTok: no phone number or email,
    /// nor an external id where the event set takes one).
    NoIdentity,
    /// The account's TikTok event set is a CRM event set, which takes only events that carry a
    /// TikTok lead id, and this one carries none (a chat, or a CRM event without
    /// `tiktok_lead_id`).
    TikTokNoLeadId,
    /// The account's TikTok event set is an offline event set, which takes only standard
    /// events, and this event has no standard counterpart (OrderShipped, QualifiedLead, ...).
    TikTokNotStandardEvent,
    /// The event's currency is not one TikTok lists.
    TikTokCurrencyNotSupported,
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
            Self::NoDestination => "no_destination",
            Self::NoIdentity => "no_identity",
            Self::TikTokNoLeadId => "tiktok_no_lead_id",
            Self::TikTokNotStandardEvent => "tiktok_not_standard_event",
            Self::TikTokCurrencyNotSupported => "tiktok_currency_not_supported",
        }
    }
}

/// An event in the form of the platform it goes to (serialised as that event).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Outbound {
    /// A CAPI business-messaging event for Meta.
    Meta(Event),
    /// A TikTok Events API event.
    TikTok(tiktok::Event),
}

impl Outbound {
    /// The platform.
    pub fn destination(&self) -> Destination {
        match self {
            Self::Meta(_) => Destination::Meta,
            Self::TikTok(_) => Destination::TikTok,
        }
    }

    /// The deterministic event id (the ledger's key).
    pub fn event_id(&self) -> &str {
        match self {
            Self::Meta(e) => &e.event_id,
            Self::TikTok(e) => &e.event_id,
        }
    }

    /// Unix seconds of the event.
    pub fn event_time(&self) -> i64 {
        match self {
            Self::Meta(e) => e.event_time,
            Self::TikTok(e) => e.event_time,
        }
    }

    /// wacapi's name of the event (the `EventName` metric dimension on every destination).
    pub fn event_name(&self) -> EventName {
        match self {
            Self::Meta(e) => e.event_name,
            Self::TikTok(e) => e.source_name,
        }
    }

    /// The channel of the chat.
    pub fn channel(&self) -> Channel {
        match self {
            Self::Meta(e) => e.messaging_channel.parse().unwrap_or_default(),
            Self::TikTok(e) => e.channel,
        }
    }

    /// The Meta event, when it is one.
    pub fn meta(&self) -> Option<&Event> {
        match self {
            Self::Meta(e) => Some(e),
            Self::TikTok(_) => None,
        }
    }

    /// The TikTok event, when it is one.
    pub fn tiktok(&self) -> Option<&tiktok::Event> {
        match self {
            Self::TikTok(e) => Some(e),
            Self::Meta(_) => None,
        }
    }

    /// The event's value and its currency, as sent.
    pub fn value(&self) -> (Option<f64>, Option<&str>) {
        match self {
            Self::Meta(e) => e
                .custom_data
                .as_ref()
                .map_or((None, None), |c| (c.value, c.currency.as_deref())),
            Self::TikTok(e) => e
                .properties
                .as_ref()
                .map_or((None, None), |p| (p.value, p.currency.as_deref())),
        }
    }

    /// The match keys ([`crate::report::MATCH_KEYS`]) the event carries.
    pub fn match_keys(&self) -> Vec<&'static str> {
        match self {
            Self::Meta(e) => crate::report::MATCH_KEYS
                .iter()
                .copied()
                .filter(|k| e.user_data.ids.contains_key(*k) || e.user_data.hashed.contains_key(*k))
                .collect(),
            Self::TikTok(e) => [
                ("ph", e.user.phone.is_some()),
                ("em", e.user.email.is_some()),
                ("external_id", e.user.external_id.is_some()),
            ]
            .into_iter()
            .filter_map(|(k, present)| present.then_some(k))
            .collect(),
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
    /// The account (its dataset for Meta, its TikTok event set for TikTok), shared.
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
        /// Why.
        reason: SkipReason,
    },
}

impl Outcome {
    fn skipped(rule: &Rule, reason: SkipReason) -> Self {
        Self::Skipped {
            rule: Some(rule.name.clone()),
            reason,
        }
    }
}

/// The click a signal is attributed to: its own referral (or Meta's click id for automatic
/// events) first, else `stored` when it falls inside the attribution window. An automatic
/// event's `stored` is the click recorded under its click id: Meta names the click, so no
/// window applies, and the stored click only tells which ad it was.
pub fn attributed_click(config: &Config, signal: &Signal, stored: Option<&Click>) -> Option<Click> {
    if let SignalEvent::AutomaticEvent {
        ctwa_clid: Some(clid),
        ..
    } = &signal.event
    {
        let ad_id = stored
            .filter(|c| c.ctwa_clid.as_deref() == Some(clid.as_str()))
            .and_then(|c| c.ad_id.clone());
        return Some(Click {
            ctwa_clid: Some(clid.clone()),
            ad_id,
            clicked_at: signal.timestamp,
            channel: signal.channel,
            destination: Destination::Meta,
        });
    }
    if let Some(own) = touch(config, signal) {
        return Some(own);
    }
    stored
        .filter(|c| {
            // Checked: both times come from queue messages, and one that is no real time (near
            // i64::MIN or MAX) attributes nothing rather than wrapping into the window.
            c.clicked_at <= signal.timestamp.saturating_add(CLICK_CLOCK_SKEW_SECONDS)
                && signal
                    .timestamp
                    .checked_sub(c.clicked_at)
                    .is_some_and(|age| age <= config.attribution_window_seconds)
        })
        .cloned()
        .or_else(|| tiktok_lead_touch(config, signal))
}

/// A CRM event naming a TikTok lead (`tiktok_lead_id`) of a user wacapi saw no ad touch for:
/// the lead itself says a TikTok ad brought the user (TikTok Lead Generation), so it goes to
/// the account's TikTok event set. A touch wacapi did see comes first.
fn tiktok_lead_touch(config: &Config, signal: &Signal) -> Option<Click> {
    let SignalEvent::Business {
        tiktok_lead_id: Some(_),
        ..
    } = &signal.event
    else {
        return None;
    };
    config
        .account(signal.channel, &signal.account_id)?
        .tiktok
        .as_ref()?;
    Some(Click {
        ctwa_clid: None,
        ad_id: None,
        clicked_at: signal.timestamp,
        channel: signal.channel,
        destination: Destination::TikTok,
    })
}

/// The ad touch a message is itself: a Meta ad's click ([`own_click`]), or a TikTok ad's
/// prefilled first message ([`tiktok_touch`]).
pub fn touch(config: &Config, signal: &Signal) -> Option<Click> {
    own_click(signal).or_else(|| tiktok_touch(config, signal))
}

/// A TikTok ad's touch: a text matching the account's `tiktok.first_message_pattern`. It has
/// no click or ad id (WhatsApp's webhook carries none for TikTok ads), only its time.
pub fn tiktok_touch(config: &Config, signal: &Signal) -> Option<Click> {
    let SignalEvent::Text { body } = &signal.event else {
        return None;
    };
    let tiktok = config
        .account(signal.channel, &signal.account_id)?
        .tiktok
        .as_ref()?;
    tiktok.is_touch(body).then_some(Click {
        ctwa_clid: None,
        ad_id: None,
        clicked_at: signal.timestamp,
        channel: signal.channel,
        destination: Destination::TikTok,
    })
}

/// The click a message carries itself: on WhatsApp a referral with a `ctwa_clid`, on
/// Messenger and Instagram an ad referral (they have no click id).
pub fn own_click(signal: &Signal) -> Option<Click> {
    let referral = signal.referral.as_ref()?;
    let ctwa_clid = match signal.channel {
        Channel::Whatsapp => Some(referral.ctwa_clid.clone()?),
        Channel::Messenger | Channel::Instagram => None,
    };
    Some(Click {
        ctwa_clid,
        ad_id: referral.source_id.clone(),
        clicked_at: signal.timestamp,
        channel: signal.channel,
        destination: Destination::Meta,
    })
}

/// The user id an event is sent (or, for TikTok, scoped) with: WhatsApp's click id, Messenger's
/// and Instagram's scoped user id; for a TikTok touch the user's own key (a BSUID, a phone
/// hash, a scoped id: never sent, only hashed into event ids). `None` when there is none (the
/// event cannot be attributed).
fn channel_user_id(signal: &Signal, click: &Click) -> Option<String> {
    if click.destination == Destination::TikTok {
        return signal.user.primary_key().map(|k| k.tagged());
    }
    match signal.channel {
        Channel::Whatsapp => click.ctwa_clid.clone(),
        Channel::Messenger | Channel::Instagram => signal.user.scoped_id.clone(),
    }
}

/// What makes a click one click, for the `click` dedup scope: WhatsApp's click id; elsewhere the
/// user and the time of the ad referral.
fn click_scope(signal: &Signal, click: &Click, user_id: &str) -> String {
    match &click.ctwa_clid {
        Some(clid) if signal.channel.is_whatsapp() && click.destination.is_meta() => {
            format!("click:{clid}")
        }
        _ if click.destination == Destination::TikTok => format!(
            "click:tiktok:{}:{user_id}:{}",
            signal.channel.as_str(),
            click.clicked_at
        ),
        _ => format!(
            "click:{}:{user_id}:{}",
            signal.channel.as_str(),
            click.clicked_at
        ),
    }
}

/// Maps one signal. `click` is the attributed click ([`attributed_click`]); `now` is unix
/// seconds. Returns one outcome per matching rule, or a single `NoRule`/`UnknownAccount` skip.
pub fn map_signal(
    config: &Config,
    signal: &Signal,
    click: Option<&Click>,
    now: i64,
) -> Vec<Outcome> {
    if let SignalEvent::Business { .. } = &signal.event {
        return vec![map_business(config, signal, click, now)];
    }
    let matching: Vec<&Rule> = config.rules.iter().filter(|r| matches(r, signal)).collect();
    if matching.is_empty() {
        return vec![Outcome::Skipped {
            rule: None,
            reason: SkipReason::NoRule,
        }];
    }
    let Some(account) = config.account(signal.channel, &signal.account_id) else {
        return vec![Outcome::Skipped {
            rule: None,
            reason: SkipReason::UnknownAccount,
        }];
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

fn map_rule(
    rule: &Rule,
    account: &Arc<Account>,
    signal: &Signal,
    click: Option<&Click>,
    now: i64,
) -> Outcome {
    let event_time = signal.timestamp.min(now);
    if too_old(event_time, now) {
        return Outcome::skipped(rule, SkipReason::TooOld);
    }
    let Some((click, user_id)) = click.and_then(|c| Some((c, channel_user_id(signal, c)?))) else {
        return Outcome::skipped(rule, SkipReason::NoClick);
    };
    let event_name = match (rule.event, &signal.event) {
        (Some(name), _) => name,
        (None, SignalEvent::AutomaticEvent { event_name, .. }) => match event_name.parse() {
            Ok(name) => name,
            Err(_) => return Outcome::skipped(rule, SkipReason::NoRule),
        },
        (None, _) => return Outcome::skipped(rule, SkipReason::NoRule),
    };
    let Some(mut custom_data) = custom_data(rule, signal) else {
        return Outcome::skipped(rule, SkipReason::InvalidCustomData);
    };
    let dropped_custom_data = custom_data
        .as_mut()
        .map_or(0, |c| scrub_custom_data(c, &personal_values(rule, signal)));
    if event_name == EventName::Purchase
        && custom_data
            .as_ref()
            .is_none_or(|c| c.value.is_none() || c.currency.is_none())
    {
        return Outcome::skipped(rule, SkipReason::InvalidCustomData);
    }
    let (hashed, dropped_user_data) = user_data(rule, signal);
    let scope_key = match rule.dedup {
        DedupScope::Message => format!("message:{}", signal.id),
        DedupScope::Click => click_scope(signal, click, &user_id),
        DedupScope::Order => match custom_data.as_ref().and_then(|c| c.order_id.as_deref()) {
            Some(order_id) => format!("order:{order_id}"),
            None => format!("order-message:{}", signal.id),
        },
    };
    let event = match click.destination {
        Destination::Meta => {
            let mut event = Event::new(
                signal.channel,
                event_name,
                event_time,
                event_id(&account.dataset_id, event_name, &scope_key),
                &signal.account_id,
                &user_id,
                hashed,
            );
            event.custom_data = custom_data;
            event.messaging_outcome_data =
                matches!(signal.event, SignalEvent::AutomaticEvent { .. }).then(|| {
                    MessagingOutcomeData {
                        outcome_type: "automatic_events".to_owned(),
                    }
                });
            Outbound::Meta(event)
        }
        Destination::TikTok => match tiktok_event(
            account,
            signal,
            TikTokParts {
                name: event_name,
                override_name: rule.tiktok_event.as_deref(),
                time: event_time,
                scope_key: &scope_key,
                hashed: &hashed,
                custom_data: custom_data.as_ref(),
                lead_id: None,
            },
        ) {
            Ok(event) => Outbound::TikTok(event),
            Err(reason) => return Outcome::skipped(rule, reason),
        },
    };
    Outcome::Event(Box::new(MappedEvent {
        rule: rule.name.clone(),
        account: Arc::clone(account),
        event,
        ad_id: click.ad_id.clone(),
        dropped_user_data,
        dropped_custom_data,
    }))
}

/// What a TikTok event is made of.
struct TikTokParts<'a> {
    name: EventName,
    override_name: Option<&'a str>,
    time: i64,
    scope_key: &'a str,
    hashed: &'a BTreeMap<String, Vec<String>>,
    custom_data: Option<&'a CustomData>,
    /// The TikTok lead a CRM event names.
    lead_id: Option<&'a str>,
}

/// The TikTok event of a conversion whose user came from a TikTok ad, as the account's event
/// set takes it (docs/tiktok-reference.md): a CRM event set only events naming a TikTok lead,
/// an offline event set only standard events; the rule's (or the default) TikTok name, an id
/// of the event set and scope, properties only in a currency TikTok lists, and the user as
/// TikTok hashes it: the phone number in E.164 form and the email, plus the external id where
/// the event set takes one (CRM).
fn tiktok_event(
    account: &Account,
    signal: &Signal,
    parts: TikTokParts<'_>,
) -> Result<tiktok::Event, SkipReason> {
    let tiktok = account.tiktok.as_ref().ok_or(SkipReason::NoDestination)?;
    let source = tiktok.event_source;
    let lead = match source {
        tiktok::EventSource::Crm => Some(tiktok::Lead {
            lead_id: parts.lead_id.ok_or(SkipReason::TikTokNoLeadId)?.to_owned(),
        }),
        tiktok::EventSource::Offline => None,
    };
    let event = parts
        .override_name
        .or(tiktok::default_event_name(parts.name, source))
        .ok_or(SkipReason::TikTokNotStandardEvent)?;
    if parts
        .custom_data
        .and_then(|c| c.currency.as_deref())
        .is_some_and(|c| !tiktok::is_supported_currency(c))
    {
        return Err(SkipReason::TikTokCurrencyNotSupported);
    }
    let first = |key: &str| parts.hashed.get(key).and_then(|v| v.first()).cloned();
    let user = tiktok::User {
        phone: signal.user.ph_e164.clone(),
        email: first(UserDataKey::Em.as_str()),
        external_id: source
            .takes_external_id()
            .then(|| first(UserDataKey::ExternalId.as_str()))
            .flatten(),
    };
    if user.is_empty() {
        return Err(SkipReason::NoIdentity);
    }
    Ok(tiktok::Event {
        event: event.to_owned(),
        event_time: parts.time,
        event_id: event_id(
            &format!("tiktok:{}", tiktok.event_source_id),
            parts.name,
            parts.scope_key,
        ),
        user,
        properties: parts
            .custom_data
            .and_then(tiktok::Properties::from_custom_data),
        lead,
        channel: signal.channel,
        source_name: parts.name,
    })
}

/// Leaves out of `custom_data` every part that is personal as
/// [`crate::values::privacy::find_personal`] draws the line (an email address, an
/// international phone number, or a copy of one of `personal`): `custom_data` goes to Meta in
/// clear, and personal data may only travel hashed. A whole custom key goes; of `content_ids`
/// and `contents` only the personal entries. Returns how many parts were left out.
pub fn scrub_custom_data(data: &mut CustomData, personal: &PersonalValues) -> usize {
    let is_personal = |key: &str, value: Value| {
        let mut one = Map::new();
        one.insert(key.to_owned(), value);
        find_personal(&one, personal).is_some()
    };
    let mut dropped = 0;
    let mut drop_if = |personal: bool| {
        dropped += usize::from(personal);
        !personal
    };
    data.extra
        .retain(|key, value| drop_if(is_personal(key, value.clone())));
    if let Some(id) = data.order_id.take()
        && drop_if(is_personal("order_id", Value::from(id.as_str())))
    {
        data.order_id = Some(id);
    }
    if let Some(ids) = &mut data.content_ids {
        ids.retain(|id| drop_if(is_personal("content_ids", Value::from(vec![id.as_str()]))));
    }
    if let Some(contents) = &mut data.contents {
        contents.retain(|c| {
            drop_if(is_personal(
                "contents",
                serde_json::json!([{ "id": c.id.as_str() }]),
            ))
        });
    }
    dropped
}

/// The personal values of a rule's event, whose copies its `custom_data` may not carry: the
/// sender's phone number (by its hash) and the Flow fields the rule hashes into `user_data`.
fn personal_values(rule: &Rule, signal: &Signal) -> PersonalValues {
    let mut personal = PersonalValues::default();
    if let Some(ph) = &signal.user.ph {
        personal.add_phone_hash(ph);
    }
    if let SignalEvent::FlowReply { fields, .. } = &signal.event {
        for (target, field) in &rule.user_data {
            if let Some(text) = field_text(fields, field) {
                match target {
                    UserDataTarget::Key(UserDataKey::Ph) => personal.add_phone(&text),
                    _ => personal.add_text(&text),
                }
            }
        }
    }
    personal
}

/// The deterministic event id: the same conversion (dataset, event name and dedup scope key)
/// always gets the same id, so re-deliveries and re-runs collapse in the ledger.
pub fn event_id(dataset_id: &str, event_name: EventName, scope_key: &str) -> String {
    sha256_hex(format!("{dataset_id}\u{1f}{}\u{1f}{scope_key}", event_name.as_str()).as_bytes())
}

/// The name business events carry in outcomes (they follow no rule).
pub const BUSINESS_RULE: &str = "business-events";

/// A business event maps as reported: its name, value data and hashed user data, the sender's
/// click, and an event id derived from the caller's idempotency key.
fn map_business(config: &Config, signal: &Signal, click: Option<&Click>, now: i64) -> Outcome {
    let SignalEvent::Business {
        event_name,
        idempotency_key,
        custom_data,
        user_data,
        tiktok_lead_id,
    } = &signal.event
    else {
        return Outcome::Skipped {
            rule: None,
            reason: SkipReason::NoRule,
        };
    };
    let skipped = |reason| Outcome::Skipped {
        rule: Some(BUSINESS_RULE.to_owned()),
        reason,
    };
    let Some(account) = config.account(signal.channel, &signal.account_id) else {
        return Outcome::Skipped {
            rule: None,
            reason: SkipReason::UnknownAccount,
        };
    };
    let event_time = signal.timestamp.min(now);
    if too_old(event_time, now) {
        return skipped(SkipReason::TooOld);
    }
    let Some((click, user_id)) = click.and_then(|c| Some((c, channel_user_id(signal, c)?))) else {
        return skipped(SkipReason::NoClick);
    };
    let mut hashed = user_data.clone();
    if let Some(ph) = &signal.user.ph {
        let list = hashed.entry("ph".to_owned()).or_default();
        if !list.contains(ph) {
            list.insert(0, ph.clone());
        }
    }
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
    let event = match click.destination {
        Destination::Meta => {
            let mut event = Event::new(
                signal.channel,
                *event_name,
                event_time,
                event_id(&account.dataset_id, *event_name, &scope_key),
                &signal.account_id,
                &user_id,
                hashed,
            );
            event.custom_data = custom_data;
            Outbound::Meta(event)
        }
        Destination::TikTok => match tiktok_event(
            account,
            signal,
            TikTokParts {
                name: *event_name,
                override_name: None,
                time: event_time,
                scope_key: &scope_key,
                hashed: &hashed,
                custom_data: custom_data.as_ref(),
                lead_id: tiktok_lead_id.as_deref(),
            },
        ) {
            Ok(event) => Outbound::TikTok(event),
            Err(reason) => return skipped(reason),
        },
    };
    Outcome::Event(Box::new(MappedEvent {
        rule: BUSINESS_RULE.to_owned(),
        account: Arc::clone(account),
        event,
        ad_id: click.ad_id.clone(),
        dropped_user_data: Vec::new(),
        dropped_custom_data,
    }))
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

/// `custom_data` for a firing rule: `Some(None)` when there is none, `None` when the signal's
/// data is unusable (an order without items, mixed currencies...).
fn custom_data(rule: &Rule, signal: &Signal) -> Option<Option<CustomData>> {
    let spec = &rule.custom_data;
    let mut data = CustomData::default();
    if spec.from_order {
        let SignalEvent::Order { items, .. } = &signal.event else {
            return None;
        };
        data = order_custom_data(items)?;
    }
    if let SignalEvent::AutomaticEvent {
        custom_data: Some(meta),
        ..
    } = &signal.event
    {
        let currency = meta
            .currency
            .as_deref()
            .map(|c| c.trim().to_ascii_uppercase());
        // Meta writes the amount × 1000 (see money::AUTOMATIC_EVENT_VALUE_SCALE for the source).
        if let Some(raw) = &meta.value {
            let value = crate::values::money::automatic_event_value(raw, currency.as_deref())
                .filter(|v| is_valid_amount(*v))?;
            data.value = Some(round_money(value));
        }
        data.currency = currency;
    }
    if let Some(value) = spec.value {
        data.value = Some(round_money(value));
    }
    if let Some(currency) = &spec.currency {
        data.currency = Some(currency.clone());
    }
    if let SignalEvent::FlowReply { fields, .. } = &signal.event {
        for (key, field) in &spec.fields {
            if let Some(value) = fields.get(field) {
                apply_field(&mut data, key, value)?;
            }
        }
    }
    if data
        .currency
        .as_deref()
        .is_some_and(|c| !is_currency_code(c))
    {
        return None;
    }
    Some((!data.is_empty()).then_some(data))
}

/// An order's value data, or `None` when it cannot be computed: no items, a line whose
/// quantity, price or currency could not be read, a quantity outside 1..=10^6 or fractional, a
/// price or total outside 0..=10^12 (see [`crate::values::money`]), or mixed currencies.
fn order_custom_data(items: &[OrderItem]) -> Option<CustomData> {
    struct Line<'a> {
        id: &'a str,
        quantity: f64,
        price: f64,
    }
    let currency = items
        .first()?
        .currency
        .as_deref()?
        .trim()
        .to_ascii_uppercase();
    let lines = items
        .iter()
        .map(|i| {
            let same_currency = i
                .currency
                .as_deref()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case(&currency));
            let quantity = i.quantity.filter(|q| is_valid_quantity(*q))?;
            let price = i.item_price.filter(|p| is_valid_amount(*p))?;
            same_currency.then_some(Line {
                id: i.product_retailer_id.as_deref().unwrap_or_default(),
                quantity,
                price,
            })
        })
        .collect::<Option<Vec<Line<'_>>>>()?;
    let value: f64 = lines.iter().map(|l| l.quantity * l.price).sum();
    if !is_valid_amount(value) {
        return None;
    }
    let num_items: f64 = lines.iter().map(|l| l.quantity).sum();
    let ids: Vec<String> = lines
        .iter()
        .filter(|l| !l.id.is_empty())
        .map(|l| l.id.to_owned())
        .collect();
    Some(CustomData {
        currency: Some(currency),
        value: Some(round_money(value)),
        contents: Some(
            lines
                .iter()
                .filter(|l| !l.id.is_empty())
                .map(|l| Content {
                    id: l.id.to_owned(),
                    quantity: l.quantity.round() as u64,
                    item_price: l.price,
                    delivery_category: None,
                })
                .collect(),
        ),
        content_ids: Some(ids),
        content_type: Some("product".to_owned()),
        num_items: Some(num_items.round() as u64),
        order_id: None,
        extra: BTreeMap::new(),
    })
}

/// Puts one Flow field into `custom_data` under `key`, typed as Meta expects.
fn apply_field(data: &mut CustomData, key: &str, value: &Value) -> Option<()> {
    let as_text = || match value {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match key {
        "value" => {
            let v = match value {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|v| is_valid_amount(*v))?;
            data.value = Some(round_money(v));
        }
        "currency" => data.currency = Some(as_text()?.to_ascii_uppercase()),
        "num_items" => data.num_items = Some(as_text()?.parse().ok()?),
        "order_id" => data.order_id = Some(as_text()?),
        "content_type" => data.content_type = Some(as_text()?),
        _ => {
            data.extra.insert(key.to_owned(), value.clone());
        }
    }
    Some(())
}

/// Hashed `user_data`: the sender's phone hash plus the rule's Flow fields.
fn user_data(rule: &Rule, signal: &Signal) -> (BTreeMap<String, Vec<String>>, Vec<NormalizeError>) {
    let mut hashed: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut dropped = Vec::new();
    let mut push = |key: UserDataKey, value: String| {
        let list = hashed.entry(key.as_str().to_owned()).or_default();
        if !list.contains(&value) {
            list.push(value);
        }
    };
    if let Some(ph) = &signal.user.ph {
        push(UserDataKey::Ph, ph.clone());
    }
    if let SignalEvent::FlowReply { fields, .. } = &signal.event {
        for (target, field) in &rule.user_data {
            let Some(text) = field_text(fields, field) else {
                continue;
            };
            match target {
                UserDataTarget::Key(key) => match hash(*key, &text) {
                    Ok(h) => push(*key, h),
                    Err(e) => dropped.push(e),
                },
                UserDataTarget::FullName => {
                    let words: Vec<&str> = text.split_whitespace().collect();
                    let parts = match words.as_slice() {
                        [] => vec![],
                        [only] => vec![(UserDataKey::Fn, *only)],
                        [first, .., last] => {
                            vec![(UserDataKey::Fn, *first), (UserDataKey::Ln, *last)]
                        }
                    };
                    for (key, part) in parts {
                        match hash(key, part) {
                            Ok(h) => push(key, h),
                            Err(e) => dropped.push(e),
                        }
                    }
                }
            }
        }
    }
    (hashed, dropped)
}

fn field_text(fields: &Map<String, Value>, name: &str) -> Option<String> {
    match fields.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
