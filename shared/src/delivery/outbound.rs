//! The event a destination built, and where it goes.
//!
//! Mapping decides a [`Conversion`] (which event, when, for whom, with what value); the
//! destination the user's ad touch names builds it into its own event, serialised once as the
//! platform takes it ([`Outbound`]), or says why it cannot take it ([`Unfit`]). Events are
//! grouped by [`Target`] (a Meta dataset, a TikTok event set: one of the account's, shared), and
//! the target's [`Endpoint`] writes the request body around them. Nothing here knows a
//! platform's JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::model::custom_data::CustomData;
use crate::model::{Channel, Destination, EventName};
use crate::values::hashing::sha256_hex;

/// A conversion as mapping decided it, before any destination's form.
#[derive(Debug, Clone, Copy)]
pub struct Conversion<'a> {
    /// wacapi's name of the event.
    pub name: EventName,
    /// Unix seconds (never in the future).
    pub time: i64,
    /// What makes two firings one conversion (the rule's dedup scope): hashed with the
    /// target's id into the event id ([`event_id`]).
    pub scope_key: &'a str,
    /// The channel of the chat.
    pub channel: Channel,
    /// The channel's account (WABA, Page, Instagram account) id, raw.
    pub account_id: &'a str,
    /// The user id the event is sent or scoped with (WhatsApp: the click id).
    pub user_id: &'a str,
    /// Hashed `user_data` keys (`ph`, `em`, ...), each a list of lowercase hex SHA-256.
    pub hashed: &'a BTreeMap<String, Vec<String>>,
    /// SHA-256 of the sender's phone number in E.164 form (with its `+`).
    pub phone_e164: Option<&'a str>,
    /// Value data, checked and rounded.
    pub custom_data: Option<&'a CustomData>,
    /// The platform detected the event itself (Meta's automatic events).
    pub automatic: bool,
    /// The rule's own name of the event for this destination, when it sets one.
    pub renamed: Option<&'a str>,
    /// The lead (of an ad's instant form) the event names, when it names one.
    pub lead_id: Option<&'a str>,
}

/// Identity keys whose presence the report counts (TikTok's `phone`, `email` and `external_id`
/// count as `ph`, `em` and `external_id`).
pub const MATCH_KEYS: &[&str] = &[
    "ctwa_clid",
    "page_scoped_user_id",
    "ig_sid",
    "ph",
    "em",
    "fn",
    "ln",
    "ct",
    "st",
    "zp",
    "country",
    "db",
    "ge",
    "external_id",
];

/// The deterministic event id: the same conversion (target, event name and dedup scope key)
/// always gets the same id, so re-deliveries and re-runs collapse in the ledger.
pub fn event_id(target_id: &str, event_name: EventName, scope_key: &str) -> String {
    sha256_hex(format!("{target_id}\u{1f}{}\u{1f}{scope_key}", event_name.as_str()).as_bytes())
}

/// Why a destination cannot take a conversion: the label it is skipped and counted under
/// (`no_identity`, `tiktok_no_lead_id`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Unfit(pub &'static str);

/// An event as its destination takes it (serialised once, when it was built), with what the
/// dispatcher and the report read of it.
#[derive(Debug, Clone)]
pub struct Outbound {
    destination: Destination,
    event_id: String,
    event_time: i64,
    event_name: EventName,
    channel: Channel,
    value: Option<f64>,
    currency: Option<String>,
    match_keys: Vec<&'static str>,
    json: Box<RawValue>,
}

/// What the dispatcher and the report read of an event, besides its body.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    /// The event id (the ledger's key).
    pub event_id: String,
    /// Unix seconds.
    pub event_time: i64,
    /// wacapi's name of the event (the `EventName` dimension on every destination).
    pub event_name: EventName,
    /// The channel of the chat.
    pub channel: Channel,
    /// The value sent, and its currency.
    pub value: (Option<f64>, Option<&'a str>),
    /// The match keys ([`crate::report::MATCH_KEYS`] names) the event carries.
    pub match_keys: Vec<&'static str>,
}

impl Outbound {
    /// `event` for `destination`, serialised now.
    pub fn new(
        destination: Destination,
        event: &impl Serialize,
        facts: Facts<'_>,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            destination,
            json: serde_json::value::to_raw_value(event)?,
            event_id: facts.event_id,
            event_time: facts.event_time,
            event_name: facts.event_name,
            channel: facts.channel,
            value: facts.value.0,
            currency: facts.value.1.map(str::to_owned),
            match_keys: facts.match_keys,
        })
    }

    /// The destination the event was built for.
    pub fn destination(&self) -> Destination {
        self.destination
    }

    /// The deterministic event id (the ledger's key).
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// Unix seconds of the event.
    pub fn event_time(&self) -> i64 {
        self.event_time
    }

    /// wacapi's name of the event.
    pub fn event_name(&self) -> EventName {
        self.event_name
    }

    /// The channel of the chat.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The event's value and its currency, as sent.
    pub fn value(&self) -> (Option<f64>, Option<&str>) {
        (self.value, self.currency.as_deref())
    }

    /// The match keys the event carries.
    pub fn match_keys(&self) -> Vec<&'static str> {
        self.match_keys.clone()
    }

    /// The event as the platform takes it.
    pub fn json(&self) -> &RawValue {
        &self.json
    }

    /// The event as a JSON value (for lines and tests).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.json.get()).unwrap_or_default()
    }
}

impl PartialEq for Outbound {
    fn eq(&self, other: &Self) -> bool {
        self.destination == other.destination
            && self.event_id == other.event_id
            && self.json.get() == other.json.get()
    }
}

impl Serialize for Outbound {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

/// Where a request goes, as its destination describes it: the path, the token, and the body
/// around the events.
pub trait Endpoint: Send + Sync + fmt::Debug {
    /// The destination whose endpoint this is.
    fn destination(&self) -> Destination;
    /// The platform's id of the place events go (a dataset id, an event set id).
    fn id(&self) -> &str;
    /// The name of the access token (a key of the destination's tokens); `None` = `default`.
    fn token(&self) -> Option<&str>;
    /// The request path below the platform's base URL.
    fn path(&self) -> String;
    /// The request body of `events`, each as this destination built it.
    fn body(&self, events: &[&Outbound]) -> Result<Vec<u8>, serde_json::Error>;
    /// The line `replay`, `demo` and `serve` print for a request of `events`.
    fn line(&self, events: &[&Outbound]) -> serde_json::Value;
}

/// A shared [`Endpoint`]: one per configured dataset or event set, so two events go in one
/// request exactly when they hold the same one.
#[derive(Debug, Clone)]
pub struct Target(Arc<dyn Endpoint>);

impl Target {
    /// The target of `endpoint`.
    pub fn new(endpoint: Arc<dyn Endpoint>) -> Self {
        Self(endpoint)
    }
}

impl std::ops::Deref for Target {
    type Target = dyn Endpoint;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl PartialEq for Target {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::addr_eq(Arc::as_ptr(&self.0), Arc::as_ptr(&other.0))
    }
}
