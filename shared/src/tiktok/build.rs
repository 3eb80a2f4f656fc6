//! A conversion in TikTok's form, as the account's event set takes it
//! (docs/tiktok-reference.md): a CRM event set only events naming a TikTok lead, an offline
//! event set only standard events; the rule's (or the default) TikTok name, an id of the event
//! set and scope, properties only in a currency TikTok lists, and the user as TikTok hashes it:
//! the phone number in E.164 form and the email, plus the external id where the event set takes
//! one (CRM).

use crate::delivery::{Conversion, Facts, Outbound, Unfit, event_id};
use crate::model::Destination;
use crate::tiktok::event_set::EventSet;
use crate::tiktok::events::{
    Event, EventSource, Lead, Properties, User, default_event_name, is_supported_currency,
};
use crate::values::hashing::UserDataKey;

/// A CRM event set takes only events naming a TikTok lead, and this one names none.
pub const NO_LEAD_ID: Unfit = Unfit("tiktok_no_lead_id");
/// An offline event set takes only standard events, and this one has no standard counterpart.
pub const NOT_STANDARD_EVENT: Unfit = Unfit("tiktok_not_standard_event");
/// The event's currency is not one TikTok lists.
pub const CURRENCY_NOT_SUPPORTED: Unfit = Unfit("tiktok_currency_not_supported");
/// No phone number or email of the user (nor an external id where the event set takes one).
pub const NO_IDENTITY: Unfit = Unfit("no_identity");

/// The event `conversion` is sent to `set` as, or why the event set cannot take it.
pub fn event(set: &EventSet, conversion: &Conversion<'_>) -> Result<Outbound, Unfit> {
    let source = set.event_source;
    let lead = match source {
        EventSource::Crm => Some(Lead {
            lead_id: conversion.lead_id.ok_or(NO_LEAD_ID)?.to_owned(),
        }),
        EventSource::Offline => None,
    };
    let name = conversion
        .renamed
        .or(default_event_name(conversion.name, source))
        .ok_or(NOT_STANDARD_EVENT)?;
    if conversion
        .custom_data
        .and_then(|c| c.currency.as_deref())
        .is_some_and(|c| !is_supported_currency(c))
    {
        return Err(CURRENCY_NOT_SUPPORTED);
    }
    let first = |key: &str| conversion.hashed.get(key).and_then(|v| v.first()).cloned();
    let user = User {
        phone: conversion.phone_e164.map(str::to_owned),
        email: first(UserDataKey::Em.as_str()),
        external_id: source
            .takes_external_id()
            .then(|| first(UserDataKey::ExternalId.as_str()))
            .flatten(),
    };
    if user.is_empty() {
        return Err(NO_IDENTITY);
    }
    let event = Event {
        event: name.to_owned(),
        event_time: conversion.time,
        event_id: event_id(
            &format!("tiktok:{}", set.event_source_id),
            conversion.name,
            conversion.scope_key,
        ),
        properties: conversion
            .custom_data
            .and_then(Properties::from_custom_data),
        lead,
        user,
    };
    let match_keys = [
        ("ph", event.user.phone.is_some()),
        ("em", event.user.email.is_some()),
        ("external_id", event.user.external_id.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, present)| present.then_some(k))
    .collect();
    let facts = Facts {
        event_id: event.event_id.clone(),
        event_time: event.event_time,
        event_name: conversion.name,
        channel: conversion.channel,
        value: event
            .properties
            .as_ref()
            .map_or((None, None), |p| (p.value, p.currency.as_deref())),
        match_keys,
    };
    Outbound::new(Destination::TikTok, &event, facts).map_err(|_| Unfit("invalid_custom_data"))
}
