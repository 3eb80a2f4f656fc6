//! TikTok Events API 2.0 requests: `POST /open_api/v1.3/event/track/` with `event_source`,
//! `event_source_id`, optional `test_event_code`, and `data[]` events of `event`,
//! `event_time` (unix seconds), `event_id`, `user` (SHA-256 of the email, of the phone number
//! in E.164 form with its `+`, of the external id), `properties` (`value`, `currency`,
//! `content_type`, `contents`, `order_id`) and, for CRM event sets, `lead`.
//!
//! What each event source takes (TikTok API for Business, Events API 2.0, "Report App, Web,
//! Offline, or CRM Events", doc 1771101303285761; "How to Adopt TikTok's Updated Standard
//! Events", May 2025; "Supported events for offline event sets", May 2025):
//! - `offline`: conversions that happened off TikTok, matched by hashed email and phone;
//!   **standard events only**; `user.external_id` is "for web and CRM events only".
//! - `crm`: lead events of a CRM event set; **`lead.lead_id` (a TikTok lead id) is required**;
//!   custom event names (mapped to standard events in Events Manager).
//! - `properties.currency`: only the currencies TikTok lists.
//!
//! docs/tiktok-reference.md holds the tables, the sources and what is uncertain.

use serde::Serialize;

use crate::model::EventName;
use crate::model::custom_data::CustomData;

/// At most this many events per request (a larger request is refused whole).
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// TikTok's current standard event codes ("About supported standard events", May 2025 list;
/// `Lead` replaced `SubmitForm` and `Purchase` replaced `CompletePayment` on May 1 2025;
/// `ClickButton` and `PlaceAnOrder` are soft-deprecated and sunset in 2027, so wacapi never
/// sends any of those four).
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
    "Purchase",
    "Schedule",
    "Search",
    "StartTrial",
    "SubmitApplication",
    "Subscribe",
    "ViewContent",
];

/// The standard events TikTok documents for offline event sets ("Supported events for offline
/// event sets", May 2025, with the May 2025 names): an offline event set takes no other name.
pub const OFFLINE_EVENTS: &[&str] = &[
    "AddPaymentInfo",
    "AddToCart",
    "AddToWishlist",
    "CompleteRegistration",
    "Contact",
    "Download",
    "InitiateCheckout",
    "Lead",
    "Purchase",
    "Search",
    "Subscribe",
    "ViewContent",
];

/// Names a custom event may not take: TikTok's reserved events ("About reserved events", Sep
/// 2025), mapped by TikTok to standard events, and the renamed or sunsetting standard names.
pub const RESERVED_EVENTS: &[&str] = &[
    "AddBilling",
    "Browse",
    "Checkout",
    "ClickButton",
    "ClickForm",
    "ClickInDownloadPage",
    "ClickToDownload",
    "CompletePayment",
    "Consult",
    "ConsultByPhone",
    "PlaceAnOrder",
    "Registration",
    "StartCheckout",
    "SubmitForm",
    "ViewConsultationPage",
    "ViewDownloadPage",
    "ViewForm",
];

/// The currencies TikTok lists for `properties.currency` ("Report App, Web, Offline, or CRM
/// Events", `currency`: "List of currencies currently supported"), sorted.
pub const SUPPORTED_CURRENCIES: &[&str] = &[
    "AED", "ARS", "AUD", "BDT", "BHD", "BIF", "BOB", "BRL", "CAD", "CHF", "CLP", "CNY", "COP",
    "CRC", "CZK", "DKK", "DZD", "EGP", "EUR", "GBP", "GTQ", "HKD", "HNL", "HUF", "IDR", "ILS",
    "INR", "ISK", "JPY", "KES", "KHR", "KRW", "KWD", "KZT", "MAD", "MOP", "MXN", "MYR", "NGN",
    "NIO", "NOK", "NZD", "OMR", "PEN", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RUB", "SAR",
    "SEK", "SGD", "THB", "TRY", "TWD", "UAH", "USD", "VES", "VND", "ZAR",
];

/// Whether TikTok takes `currency` (an ISO 4217 code, upper case).
pub fn is_supported_currency(currency: &str) -> bool {
    SUPPORTED_CURRENCIES.binary_search(&currency).is_ok()
}

/// The TikTok event a business-messaging event is sent as to an event set of `source`, unless
/// a rule says otherwise (`tiktok_event`); `None` when it has none there.
///
/// An offline event set takes standard events only: Purchase, LeadSubmitted (a submitted lead:
/// `Lead`), InitiateCheckout, AddToCart and ViewContent have a standard counterpart; the others
/// (QualifiedLead, OrderCreated, OrderShipped, OrderDelivered, OrderCanceled, OrderReturned,
/// CartAbandoned, RatingProvided, ReviewProvided) do not, and are not sent there. A CRM event
/// set takes custom events: wacapi's own name, which the advertiser maps to a standard event in
/// TikTok's Events Manager.
pub fn default_event_name(name: EventName, source: EventSource) -> Option<&'static str> {
    match source {
        EventSource::Crm => Some(name.as_str()),
        EventSource::Offline => match name {
            EventName::Purchase => Some("Purchase"),
            EventName::LeadSubmitted => Some("Lead"),
            EventName::InitiateCheckout => Some("InitiateCheckout"),
            EventName::AddToCart => Some("AddToCart"),
            EventName::ViewContent => Some("ViewContent"),
            _ => None,
        },
    }
}

/// Whether an event set of `source` takes `name`: an offline event set one of
/// [`OFFLINE_EVENTS`]; a CRM event set a custom name of letters, digits and underscores (at most
/// 50 characters) that is not reserved.
pub fn is_valid_event_name(name: &str, source: EventSource) -> bool {
    match source {
        EventSource::Offline => OFFLINE_EVENTS.contains(&name),
        EventSource::Crm => {
            !name.is_empty()
                && name.len() <= 50
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !RESERVED_EVENTS.contains(&name)
        }
    }
}

/// Where a TikTok event set's events come from (`event_source`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// An offline event set (the default): conversions that happened off TikTok, matched by
    /// hashed phone number and email.
    #[default]
    Offline,
    /// A CRM event set: lead events of TikTok Lead Generation, each with its TikTok lead id.
    Crm,
}

impl EventSource {
    /// The `event_source` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Crm => "crm",
            Self::Offline => "offline",
        }
    }

    /// Whether events of this source may carry `user.external_id` ("For web and CRM events
    /// only").
    pub fn takes_external_id(self) -> bool {
        self == Self::Crm
    }
}

impl std::str::FromStr for EventSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "crm" => Ok(Self::Crm),
            "offline" => Ok(Self::Offline),
            other => Err(format!("{other:?} is not offline or crm")),
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
    /// The TikTok lead (CRM event sets only, where it is required).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lead: Option<Lead>,
}

/// `lead`: the TikTok lead a CRM event concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lead {
    /// TikTok's id of the lead (from TikTok Leads Center or the lead download endpoints).
    pub lead_id: String,
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
    /// SHA-256 of the business's own id for the user (CRM event sets only).
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
    /// The line items, as TikTok names their fields.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contents: Vec<Content>,
    /// The business's order id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
}

/// One line item of `properties.contents`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Content {
    /// The product id (`content_id`).
    pub content_id: String,
    /// How many units of the product.
    pub quantity: u64,
    /// The price of one unit, in the event's currency.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_name_has_a_name_its_event_set_takes_or_none() {
        for name in EventName::ALL {
            for source in [EventSource::Offline, EventSource::Crm] {
                if let Some(tiktok) = default_event_name(name, source) {
                    assert!(is_valid_event_name(tiktok, source), "{name:?} {source:?}");
                }
            }
            assert!(default_event_name(name, EventSource::Crm).is_some());
        }
        let offline = |n| default_event_name(n, EventSource::Offline);
        assert_eq!(offline(EventName::Purchase), Some("Purchase"));
        assert_eq!(offline(EventName::LeadSubmitted), Some("Lead"));
        assert_eq!(offline(EventName::OrderShipped), None);
        assert_eq!(offline(EventName::OrderCreated), None);
        assert!(OFFLINE_EVENTS.iter().all(|e| STANDARD_EVENTS.contains(e)));
        for gone in [
            "PlaceAnOrder",
            "ClickButton",
            "CompletePayment",
            "SubmitForm",
        ] {
            assert!(!STANDARD_EVENTS.contains(&gone));
            assert!(!is_valid_event_name(gone, EventSource::Offline));
            assert!(!is_valid_event_name(gone, EventSource::Crm));
        }
        assert!(!is_valid_event_name("OrderShipped", EventSource::Offline));
        assert!(is_valid_event_name("OrderShipped", EventSource::Crm));
        assert!(!is_valid_event_name("Complete Payment", EventSource::Crm));
        assert!(!is_valid_event_name("", EventSource::Crm));
        assert!(!is_valid_event_name(&"x".repeat(51), EventSource::Crm));
        assert!(SUPPORTED_CURRENCIES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(SUPPORTED_CURRENCIES.len(), 62);
        assert!(is_supported_currency("EUR") && !is_supported_currency("XOF"));
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
