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
    /// The monetary value in `currency`, rounded to cents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The line items: product id, units and unit price each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<Vec<Content>>,
    /// The product ids of the line items.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_ids: Option<Vec<String>>,
    /// `product` or `product_group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The number of units across the line items.
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
    /// The product id (the catalog's retailer id).
    pub id: String,
    /// How many units of the product.
    pub quantity: u64,
    /// The price of one unit, in the event's currency.
    pub item_price: f64,
    /// `home_delivery`, `curbside` or `in_store`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_category: Option<String>,
}
