//! wacapi's conversion vocabulary: the 14 names a conversion can have, whatever its channel or
//! destination. They are the names Meta's Conversions API for Business Messaging accepts (its
//! Onboarding Guide's FAQ, May 5, 2026); each destination maps them to its own (TikTok's table
//! is in `crate::tiktok::events`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A conversion's name: the only names Meta accepts for business messaging.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EventName {
    /// A purchase (needs `value` and `currency`).
    Purchase,
    /// A lead submitted.
    LeadSubmitted,
    /// Checkout started.
    InitiateCheckout,
    /// Item added to cart.
    AddToCart,
    /// Content viewed.
    ViewContent,
    /// Order created.
    OrderCreated,
    /// Order shipped.
    OrderShipped,
    /// Order delivered.
    OrderDelivered,
    /// Order canceled.
    OrderCanceled,
    /// Order returned.
    OrderReturned,
    /// Cart abandoned.
    CartAbandoned,
    /// Lead qualified.
    QualifiedLead,
    /// Rating given.
    RatingProvided,
    /// Review given.
    ReviewProvided,
}

impl EventName {
    /// Every allowed name.
    pub const ALL: [EventName; 14] = [
        Self::Purchase,
        Self::LeadSubmitted,
        Self::InitiateCheckout,
        Self::AddToCart,
        Self::ViewContent,
        Self::OrderCreated,
        Self::OrderShipped,
        Self::OrderDelivered,
        Self::OrderCanceled,
        Self::OrderReturned,
        Self::CartAbandoned,
        Self::QualifiedLead,
        Self::RatingProvided,
        Self::ReviewProvided,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Purchase => "Purchase",
            Self::LeadSubmitted => "LeadSubmitted",
            Self::InitiateCheckout => "InitiateCheckout",
            Self::AddToCart => "AddToCart",
            Self::ViewContent => "ViewContent",
            Self::OrderCreated => "OrderCreated",
            Self::OrderShipped => "OrderShipped",
            Self::OrderDelivered => "OrderDelivered",
            Self::OrderCanceled => "OrderCanceled",
            Self::OrderReturned => "OrderReturned",
            Self::CartAbandoned => "CartAbandoned",
            Self::QualifiedLead => "QualifiedLead",
            Self::RatingProvided => "RatingProvided",
            Self::ReviewProvided => "ReviewProvided",
        }
    }

    /// The allowed names, comma-separated (for error messages).
    pub fn allowed_list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for EventName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An event name outside the 14 business-messaging names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a business-messaging event name; allowed: {allowed}", allowed = EventName::allowed_list())]
pub struct UnknownEventName(pub String);

impl FromStr for EventName {
    type Err = UnknownEventName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEventName(s.to_owned()))
    }
}
