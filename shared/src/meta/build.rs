//! A conversion in Meta's form: the business-messaging event of the Conversions API
//! ([`crate::meta::capi::Event`]), with the channel's ids raw and the hashed keys in
//! `user_data`, the value data as `custom_data`, and `messaging_outcome_data` for the events
//! Meta detected itself.

use crate::delivery::outbound::MATCH_KEYS;
use crate::delivery::{Conversion, Facts, Outbound, Unfit, event_id};
use crate::meta::capi::{Event, MessagingOutcomeData};
use crate::meta::dataset::Dataset;
use crate::model::Destination;

/// The event `conversion` is sent to `dataset` as. Every conversion fits Meta (the conversion
/// core checked it); an event that cannot be serialised is refused as invalid value data.
pub fn event(dataset: &Dataset, conversion: &Conversion<'_>) -> Result<Outbound, Unfit> {
    let id = event_id(&dataset.dataset_id, conversion.name, conversion.scope_key);
    let mut event = Event::new(
        conversion.channel,
        conversion.name,
        conversion.time,
        id.clone(),
        conversion.account_id,
        conversion.user_id,
        conversion.hashed.clone(),
    );
    event.custom_data = conversion.custom_data.cloned();
    event.messaging_outcome_data = conversion.automatic.then(|| MessagingOutcomeData {
        outcome_type: "automatic_events".to_owned(),
    });
    let match_keys = MATCH_KEYS
        .iter()
        .copied()
        .filter(|k| event.user_data.ids.contains_key(*k) || event.user_data.hashed.contains_key(*k))
        .collect();
    let value = event
        .custom_data
        .as_ref()
        .map_or((None, None), |c| (c.value, c.currency.as_deref()));
    let facts = Facts {
        event_id: id,
        event_time: conversion.time,
        event_name: conversion.name,
        channel: conversion.channel,
        value,
        match_keys,
    };
    Outbound::new(Destination::Meta, &event, facts).map_err(|_| Unfit("invalid_custom_data"))
}
