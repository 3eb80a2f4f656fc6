//! The value data of a conversion (`custom_data`): its currency, value, line items and order,
//! checked and rounded by the conversion core. Its JSON is the shape both destinations read it
//! in (Meta sends it as `custom_data`; TikTok derives its `properties` from it).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The value data of a conversion (`custom_data`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomData {
    /// ISO 4217 currency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Monetary value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Line items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<Vec<Content>>,
    /// Product ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_ids: Option<Vec<String>>,
    /// `product` or `product_group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_items: Option<u64>,
    /// The advertiser's order id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Other keys (`content_name`, `delivery_category`, custom keys...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl CustomData {
    /// True when nothing is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One line item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Content {
    /// Product id.
    pub id: String,
    /// Units.
    pub quantity: u64,
    /// Unit price.
    pub item_price: f64,
    /// `home_delivery`, `curbside` or `in_store`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_category: Option<String>,
}
