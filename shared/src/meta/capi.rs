//! The Conversions API for Business Messaging: event names, the event shape Meta accepts for
//! WhatsApp, Messenger and Instagram, and request bodies.
//!
//! Serialisation is exact: `action_source = "business_messaging"`, `messaging_channel` of the
//! channel, the channel's ids raw in `user_data` (WhatsApp: `whatsapp_business_account_id` and
//! `ctwa_clid`; Messenger: `page_id` and `page_scoped_user_id`; Instagram: see
//! [`INSTAGRAM_ACCOUNT_KEY`]), hashed keys as lists, `event_time` in unix seconds. Source:
//! Conversions API for Business Messaging, Onboarding Guide (updated May 5, 2026).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Channel;
pub use crate::model::custom_data::{Content, CustomData};
pub use crate::model::event_name::{EventName, UnknownEventName};

/// At most this many events per request (Meta's limit).
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// Events older than this are refused by Meta, and with them the whole request.
pub const MAX_EVENT_AGE_SECONDS: i64 = 7 * 24 * 3600;

/// The `user_data` key of the Instagram professional account, as Meta's guide sample writes it
/// (some integrations write `ig_account_id`: if Meta settles on that, this line is the fix).
pub const INSTAGRAM_ACCOUNT_KEY: &str = "instagram_business_account_id";

/// The `user_data` key of the Instagram-scoped user id, as Meta's guide sample writes it.
pub const INSTAGRAM_USER_KEY: &str = "ig_sid";

/// The `user_data` keys of a channel's account and user (WhatsApp's user is its click id).
pub fn id_keys(channel: Channel) -> (&'static str, &'static str) {
    match channel {
        Channel::Whatsapp => ("whatsapp_business_account_id", "ctwa_clid"),
        Channel::Messenger => ("page_id", "page_scoped_user_id"),
        Channel::Instagram => (INSTAGRAM_ACCOUNT_KEY, INSTAGRAM_USER_KEY),
    }
}

/// One server event for business messaging.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// One of the 14 names.
    pub event_name: EventName,
    /// Unix seconds; never in the future, at most 7 days old.
    pub event_time: i64,
    /// Deterministic id: the same conversion always gets the same id.
    pub event_id: String,
    /// Always `business_messaging`.
    pub action_source: String,
    /// `whatsapp`, `messenger` or `instagram`.
    pub messaging_channel: String,
    /// Who, and which click.
    pub user_data: UserData,
    /// Value, currency, contents...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_data: Option<CustomData>,
    /// Set to `{"outcome_type": "automatic_events"}` for events Meta detected itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_outcome_data: Option<MessagingOutcomeData>,
}

impl Event {
    /// A business-messaging event on `channel`: the fixed `action_source`, the channel's
    /// account id and user id (WhatsApp: the click id) sent raw under the channel's keys
    /// ([`id_keys`]), hashed keys as given; no custom data yet.
    pub fn new(
        channel: Channel,
        event_name: EventName,
        event_time: i64,
        event_id: String,
        account_id: &str,
        user_id: &str,
        hashed: BTreeMap<String, Vec<String>>,
    ) -> Self {
        let (account_key, user_key) = id_keys(channel);
        Self {
            event_name,
            event_time,
            event_id,
            action_source: "business_messaging".to_owned(),
            messaging_channel: channel.as_str().to_owned(),
            user_data: UserData {
                ids: BTreeMap::from([
                    (account_key.to_owned(), account_id.to_owned()),
                    (user_key.to_owned(), user_id.to_owned()),
                ]),
                hashed,
            },
            custom_data: None,
            messaging_outcome_data: None,
        }
    }
}

/// `user_data` of an event: the channel's ids, raw, and the hashed keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserData {
    /// The account and user (click) ids under the channel's keys ([`id_keys`]), raw.
    #[serde(flatten)]
    pub ids: BTreeMap<String, String>,
    /// Hashed keys (`em`, `ph`, `fn`, ...), each a list of lowercase hex SHA-256.
    #[serde(flatten)]
    pub hashed: BTreeMap<String, Vec<String>>,
}

impl UserData {
    /// A raw id by its key (`ctwa_clid`, `page_id`, ...).
    pub fn id(&self, key: &str) -> Option<&str> {
        self.ids.get(key).map(String::as_str)
    }
}

/// `messaging_outcome_data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagingOutcomeData {
    /// `automatic_events` for Meta-detected events.
    pub outcome_type: String,
}

/// A request body for `POST /{version}/{dataset_id}/events`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventsRequest {
    /// At most [`MAX_EVENTS_PER_REQUEST`] events of one dataset.
    pub data: Vec<Event>,
    /// Routes events to the Test Events tool instead of production.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<String>,
    /// Identifies the integration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_agent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::money::round_money;

    #[test]
    fn event_names_round_trip_and_unknown_names_list_the_allowed_ones() {
        for name in EventName::ALL {
            assert_eq!(name.as_str().parse::<EventName>(), Ok(name));
            assert_eq!(
                serde_json::to_value(name).unwrap(),
                serde_json::json!(name.as_str())
            );
        }
        let err = "Lead".parse::<EventName>().unwrap_err().to_string();
        assert!(err.contains("\"Lead\""), "{err}");
        assert!(err.contains("ReviewProvided"), "{err}");
    }

    #[test]
    fn money_noise_is_removed() {
        assert_eq!(round_money(0.1 + 0.2), 0.3);
        assert_eq!(round_money(2.0 * 30.0 + 25.5), 85.5);
    }
}
