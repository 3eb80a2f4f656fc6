//! TikTok Events API 2.0 requests: `POST /open_api/v1.3/event/track/` with `event_source`,
//! `event_source_id`, optional `test_event_code`, and `data[]` events of `event`,
//! `event_time` (unix seconds), `event_id`, `user` (SHA-256 of the email, of the phone number
//! in E.164 form with its `+`, of the external id) and `properties` (`value`, `currency`,
//! `content_type`, `contents`). Sources: TikTok API for Business › Events API 2.0 (event/track
//! parameters); TikTok Ads Manager help, "About supported standard events", Sep 2025; "How to
//! postback signals through Events API" (CRM event sets: `event_source = crm`), Mar 2025.
//! docs/tiktok-reference.md holds the table and what is uncertain.

use serde::Serialize;

use crate::channels::Channel;
use crate::meta::capi::{CustomData, EventName};

/// At most this many events per request (a larger request is refused whole).
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// TikTok's standard event codes (Sep 2025), and the earlier names TikTok still accepts.
pub const STANDARD_EVENTS: &[&str] = &[
    "AddPaymentInfo",
    "AddToCart",
    "AddToWishlist",
    "ApplicationApproval",
    "CompleteRegistration",
    "Contact",
    "CustomizeProduct",
    "Download",
    "FindLocation",
    "InitiateCheckout",
    "Lead",
    "PlaceAnOrder",
    "Purchase",
    "Schedule",
    "Search",
    "StartTrial",
    "SubmitApplication",
    "Subscribe",
    "ViewContent",
    // Earlier standard names, still accepted.
    "ClickButton",
    "CompletePayment",
    "SubmitForm",
];

/// The TikTok event a business-messaging event is sent as, unless a rule says otherwise
/// (`tiktok_event`). Events without a standard counterpart keep their name: TikTok takes them
/// as custom events (reported, not optimised for).
pub fn default_event_name(name: EventName) -> &'static str {
    match name {
        EventName::Purchase => "Purchase",
        EventName::LeadSubmitted => "SubmitApplication",
        EventName::QualifiedLead => "ApplicationApproval",
        EventName::InitiateCheckout => "InitiateCheckout",
        EventName::AddToCart => "AddToCart",
        EventName::ViewContent => "ViewContent",
        EventName::OrderCreated => "PlaceAnOrder",
        other => other.as_str(),
    }
}

/// Whether `name` can be sent as a TikTok event: a standard code, or a custom name of letters,
/// digits and underscores (at most 50 characters, no spaces: TikTok refuses others).
pub fn is_valid_event_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 50
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Where a TikTok event set's events come from (`event_source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// A CRM event set (the default: conversions reported by the business's systems).
    #[default]
    Crm,
    /// An offline event set.
    Offline,
}

impl EventSource {
    /// The `event_source` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crm => "crm",
            Self::Offline => "offline",
        }
    }
}

impl std::str::FromStr for EventSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "crm" => Ok(Self::Crm),
            "offline" => Ok(Self::Offline),
            other => Err(format!("{other:?} is not crm or offline")),
        }
    }
}

/// One event of `data[]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The TikTok event code (standard or custom).
    pub event: String,
    /// Unix seconds.
    pub event_time: i64,
    /// Deterministic: the same conversion always gets the same id (TikTok dedups on event
    /// source, `event_id` and `event`).
    pub event_id: String,
    /// Who, hashed.
    pub user: User,
    /// Value and contents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub properties: Option<Properties>,
    /// The channel of the chat (not sent: metrics and reports).
    #[serde(skip)]
    pub channel: Channel,
    /// wacapi's event name (not sent: metrics and reports).
    #[serde(skip)]
    pub source_name: EventName,
}

/// `user`: SHA-256 hex values only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct User {
    /// SHA-256 of the phone number in E.164 form (`+` and digits).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// SHA-256 of the trimmed, lower-cased email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// SHA-256 of the business's own id for the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

impl User {
    /// True when no identity is known (TikTok cannot match such an event).
    pub fn is_empty(&self) -> bool {
        self.phone.is_none() && self.email.is_none() && self.external_id.is_none()
    }
}

/// `properties`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Properties {
    /// ISO 4217.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// In currency units.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// `product` or `product_group`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Line items.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<Content>,
    /// The business's order id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

/// One line item of `properties.contents`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Content {
    /// Product id.
    pub content_id: String,
    /// Units.
    pub quantity: u64,
    /// Unit price.
    pub price: f64,
}

impl Properties {
    /// The properties of a CAPI `custom_data`: value, currency, content type, line items and
    /// order id (other keys stay with Meta's model); `None` when nothing is left.
    pub fn from_custom_data(data: &CustomData) -> Option<Self> {
        let properties = Self {
            currency: data.currency.clone(),
            value: data.value,
            content_type: data.content_type.clone(),
            contents: data
                .contents
                .iter()
                .flatten()
                .map(|c| Content {
                    content_id: c.id.clone(),
                    quantity: c.quantity,
                    price: c.item_price,
                })
                .collect(),
            order_id: data.order_id.clone(),
        };
        (properties != Self::default()).then_some(properties)
    }
}

/// A request body for `event/track/`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackRequest {
    /// `crm` or `offline`.
    pub event_source: EventSource,
    /// The event set id.
    pub event_source_id: String,
    /// Routes events to Events Manager's test events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_event_code: Option<String>,
    /// At most [`MAX_EVENTS_PER_REQUEST`] events.
    pub data: Vec<Event>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_name_has_a_tiktok_name_tiktok_takes() {
        for name in EventName::ALL {
            assert!(is_valid_event_name(default_event_name(name)), "{name:?}");
        }
        assert_eq!(default_event_name(EventName::Purchase), "Purchase");
        assert!(!is_valid_event_name("Complete Payment"));
        assert!(!is_valid_event_name(""));
        assert!(!is_valid_event_name(&"x".repeat(51)));
    }

    #[test]
    fn properties_keep_what_tiktok_reads() {
        let data = CustomData {
            currency: Some("USD".into()),
            value: Some(85.5),
            content_type: Some("product".into()),
            contents: Some(vec![crate::meta::capi::Content {
                id: "sku".into(),
                quantity: 2,
                item_price: 30.0,
                delivery_category: None,
            }]),
            num_items: Some(2),
            ..CustomData::default()
        };
        let p = Properties::from_custom_data(&data).unwrap();
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"currency": "USD", "value": 85.5, "content_type": "product",
                "contents": [{"content_id": "sku", "quantity": 2, "price": 30.0}]})
        );
        assert_eq!(Properties::from_custom_data(&CustomData::default()), None);
    }
}
