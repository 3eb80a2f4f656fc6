//! Serde model of the WhatsApp Cloud API webhook envelope (`object = whatsapp_business_account`).
//!
//! The model is deliberately lenient: every field Meta may omit is an `Option` or defaults to
//! empty, unknown fields are ignored, unknown message types and unknown `field` values are kept as
//! strings. Lists of messages and automatic events are held as raw JSON first and parsed one item
//! at a time (see [`crate::signal`]), so one malformed item never sinks its whole webhook and its
//! exact bytes can be quarantined.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// The `object` value of every WhatsApp Business Account webhook.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// The top-level webhook body.
#[derive(Debug, Deserialize)]
pub struct Webhook<'a> {
    /// Always `whatsapp_business_account` for WhatsApp.
    pub object: String,
    /// One entry per WhatsApp Business Account.
    #[serde(default, borrow)]
    pub entry: Vec<Entry<'a>>,
}

/// The updates for one WhatsApp Business Account (WABA).
#[derive(Debug, Deserialize)]
pub struct Entry<'a> {
    /// The WABA id.
    pub id: String,
    /// The changes; each has a `field` and a `value`.
    #[serde(default, borrow)]
    pub changes: Vec<Change<'a>>,
}

/// One change: a subscribed field and its value.
#[derive(Debug, Deserialize)]
pub struct Change<'a> {
    /// `messages`, `automatic_events`, or any other subscribed field (tolerated, not processed).
    pub field: String,
    /// The payload; its shape depends on `field`. Parsed lazily so unknown fields cost nothing.
    #[serde(borrow)]
    pub value: &'a RawValue,
}

/// The `value` of a `messages` or `automatic_events` change.
#[derive(Debug, Default, Deserialize)]
pub struct ChangeValue<'a> {
    /// Always `whatsapp`.
    #[serde(default)]
    pub messaging_product: Option<String>,
    /// The business phone number the update concerns.
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// The users the messages come from (absent on `system` messages).
    #[serde(default)]
    pub contacts: Vec<Contact>,
    /// Inbound messages, each kept raw until parsed by itself.
    #[serde(default, borrow)]
    pub messages: Vec<&'a RawValue>,
    /// Delivery receipts for outgoing messages: counted, never turned into signals.
    #[serde(default)]
    pub statuses: Vec<de::IgnoredAny>,
    /// Errors Meta reports at the change level.
    #[serde(default)]
    pub errors: Vec<WebhookError>,
    /// Meta-detected conversions (`automatic_events` field), each kept raw until parsed.
    #[serde(default, borrow)]
    pub automatic_events: Vec<&'a RawValue>,
}

/// The business phone number an update was sent to.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// The business number as displayed.
    #[serde(default)]
    pub display_phone_number: Option<String>,
    /// The Cloud API phone number id.
    #[serde(default)]
    pub phone_number_id: Option<String>,
}

/// A WhatsApp user as described in `contacts[]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Contact {
    /// Phone number digits; absent for users who only share a username.
    #[serde(default)]
    pub wa_id: Option<String>,
    /// Business-scoped user id (BSUID), e.g. `US.13491208655302741918`.
    #[serde(default)]
    pub user_id: Option<String>,
    /// BSUID of the parent business, when the business is part of a portfolio.
    #[serde(default)]
    pub parent_user_id: Option<String>,
    // `profile` (name, username) is intentionally not modelled: it is personal data that no
    // part of wacapi needs, so it is never even copied out of the request buffer.
}

/// An error object as Meta sends it in webhooks (`errors[]`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct WebhookError {
    /// Numeric error code.
    #[serde(default)]
    pub code: Option<i64>,
    /// Short title.
    #[serde(default)]
    pub title: Option<String>,
}

/// One inbound message (`messages[]` item).
#[derive(Debug, Deserialize)]
pub struct Message {
    /// Sender phone number digits; may be absent for username-only users.
    #[serde(default)]
    pub from: Option<String>,
    /// Sender business-scoped user id (2026).
    #[serde(default)]
    pub from_user_id: Option<String>,
    /// `wamid....`: the natural deduplication key.
    pub id: String,
    /// Unix seconds (sent as a string; a number is accepted too).
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: i64,
    /// The message type; unknown types are kept by name.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// Reply context.
    #[serde(default)]
    pub context: Option<Context>,
    /// Click-to-WhatsApp ad referral, on the first message after an ad click.
    #[serde(default)]
    pub referral: Option<Referral>,
    /// `text` payload.
    #[serde(default)]
    pub text: Option<Text>,
    /// `interactive` payload.
    #[serde(default)]
    pub interactive: Option<Interactive>,
    /// `button` payload (template quick reply).
    #[serde(default)]
    pub button: Option<Button>,
    /// `order` payload.
    #[serde(default)]
    pub order: Option<Order>,
    /// `system` payload.
    #[serde(default)]
    pub system: Option<System>,
}

/// The message types wacapi knows; anything else is [`MessageType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "String")]
pub enum MessageType {
    /// Free text.
    Text,
    /// Button, list or Flow reply.
    Interactive,
    /// Template quick-reply button.
    Button,
    /// Catalog order.
    Order,
    /// The user opened the chat for the first time.
    RequestWelcome,
    /// Number or identity change.
    System,
    /// Any other type (media, location, reaction, unsupported, and types Meta adds later).
    Other(String),
}

impl From<String> for MessageType {
    fn from(value: String) -> Self {
        match value.as_str() {
            "text" => Self::Text,
            "interactive" => Self::Interactive,
            "button" => Self::Button,
            "order" => Self::Order,
            "request_welcome" => Self::RequestWelcome,
            "system" => Self::System,
            _ => Self::Other(value),
        }
    }
}

impl MessageType {
    /// The wire name of the type.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Text => "text",
            Self::Interactive => "interactive",
            Self::Button => "button",
            Self::Order => "order",
            Self::RequestWelcome => "request_welcome",
            Self::System => "system",
            Self::Other(name) => name,
        }
    }
}

/// Reply context of a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Context {
    /// The message replied to.
    #[serde(default)]
    pub id: Option<String>,
    /// Product the user asked about.
    #[serde(default)]
    pub referred_product: Option<ReferredProduct>,
    /// Whether the message was forwarded.
    #[serde(default)]
    pub forwarded: Option<bool>,
}

/// A catalog product referenced from a message.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferredProduct {
    /// Catalog id.
    #[serde(default)]
    pub catalog_id: Option<String>,
    /// The product's retailer id.
    #[serde(default)]
    pub product_retailer_id: Option<String>,
}

/// A Click-to-WhatsApp ad referral.
#[derive(Debug, Clone, Deserialize)]
pub struct Referral {
    /// Ad or post id.
    #[serde(default)]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default)]
    pub source_type: Option<String>,
    /// Link to the ad or post.
    #[serde(default)]
    pub source_url: Option<String>,
    /// The click id; omitted for ads shown in WhatsApp Status.
    #[serde(default)]
    pub ctwa_clid: Option<String>,
    // headline, body, media and image/video/thumbnail URLs are not modelled: the mapping needs
    // none of them and they must not travel further.
}

/// `text` payload.
#[derive(Debug, Clone, Deserialize)]
pub struct Text {
    /// The message text.
    #[serde(default)]
    pub body: String,
}

/// `interactive` payload: one of its replies, by `type`.
#[derive(Debug, Clone, Deserialize)]
pub struct Interactive {
    /// `button_reply`, `list_reply`, `nfm_reply`, or a type Meta adds later.
    #[serde(rename = "type")]
    pub kind: String,
    /// Reply button pressed.
    #[serde(default)]
    pub button_reply: Option<Reply>,
    /// List row chosen.
    #[serde(default)]
    pub list_reply: Option<Reply>,
    /// Flow (native flow message) completion.
    #[serde(default)]
    pub nfm_reply: Option<NfmReply>,
}

/// A button or list reply.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    /// The id the business gave the button or row.
    pub id: String,
    /// Its title as shown to the user.
    #[serde(default)]
    pub title: Option<String>,
}

/// A Flow completion.
#[derive(Debug, Clone, Deserialize)]
pub struct NfmReply {
    /// `flow` or `address_message`.
    #[serde(default)]
    pub name: Option<String>,
    /// A JSON object encoded as a string: `flow_token` plus the form's fields.
    #[serde(default)]
    pub response_json: Option<String>,
}

/// A template quick-reply button press.
#[derive(Debug, Clone, Deserialize)]
pub struct Button {
    /// The payload the business set on the button.
    #[serde(default)]
    pub payload: Option<String>,
    /// The button label.
    #[serde(default)]
    pub text: Option<String>,
}

/// A catalog order.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    /// The catalog ordered from.
    #[serde(default)]
    pub catalog_id: Option<String>,
    /// The items.
    #[serde(default)]
    pub product_items: Vec<ProductItem>,
}

/// One line of an order.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ProductItem {
    /// The product's retailer id.
    pub product_retailer_id: String,
    /// Units ordered.
    #[serde(deserialize_with = "number_or_string")]
    pub quantity: f64,
    /// Unit price; may be a decimal.
    #[serde(deserialize_with = "number_or_string")]
    pub item_price: f64,
    /// ISO 4217 currency of the price.
    pub currency: String,
}

/// A `system` message: the user changed number or business-scoped id.
#[derive(Debug, Clone, Deserialize)]
pub struct System {
    /// `user_changed_number`, `user_changed_user_id`, or a legacy/unknown kind.
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The new phone number.
    #[serde(default)]
    pub wa_id: Option<String>,
    /// Legacy name of the new phone number (before Graph v12).
    #[serde(default)]
    pub new_wa_id: Option<String>,
    /// The new BSUID.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The new parent BSUID.
    #[serde(default)]
    pub parent_user_id: Option<String>,
    /// The BSUID before the change.
    #[serde(default)]
    pub previous_user_id: Option<String>,
    /// The parent BSUID before the change.
    #[serde(default)]
    pub previous_parent_user_id: Option<String>,
}

/// One Meta-detected conversion (`automatic_events[]` item).
#[derive(Debug, Deserialize)]
pub struct AutomaticEvent {
    /// Id of the message the event was detected on.
    pub id: String,
    /// `LeadSubmitted` or `Purchase`.
    pub event_name: String,
    /// Unix seconds (an integer here, unlike messages).
    #[serde(deserialize_with = "unix_seconds")]
    pub timestamp: i64,
    /// The click id of the ad that started the thread.
    #[serde(default)]
    pub ctwa_clid: Option<String>,
    /// Value and currency, for purchases.
    #[serde(default)]
    pub custom_data: Option<AutomaticCustomData>,
}

/// Value data of an automatic event.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct AutomaticCustomData {
    /// ISO 4217 currency.
    #[serde(default)]
    pub currency: Option<String>,
    /// Purchase value.
    #[serde(default, deserialize_with = "opt_number_or_string")]
    pub value: Option<f64>,
}

/// Accepts unix seconds as a JSON string (`messages[]`) or integer (`automatic_events[]`).
fn unix_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw<'a> {
        Int(i64),
        Str(&'a str),
        String(String),
    }
    let parse = |s: &str| {
        s.trim()
            .parse::<i64>()
            .map_err(|_| de::Error::custom("timestamp is not unix seconds"))
    };
    match Raw::deserialize(d)? {
        Raw::Int(n) => Ok(n),
        Raw::Str(s) => parse(s),
        Raw::String(s) => parse(&s),
    }
}

/// Accepts a number or a numeric string (Meta documents numbers; some BSPs send strings).
fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(f64),
        Str(String),
    }
    let n = match Raw::deserialize(d)? {
        Raw::Num(n) => n,
        Raw::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| de::Error::custom("not a number"))?,
    };
    if n.is_finite() {
        Ok(n)
    } else {
        Err(de::Error::custom("not a finite number"))
    }
}

fn opt_number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    number_or_string(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_accept_string_and_integer() {
        let m: AutomaticEvent =
            serde_json::from_str(r#"{"id":"a","event_name":"Purchase","timestamp":17}"#)
                .expect("int");
        assert_eq!(m.timestamp, 17);
        let m: AutomaticEvent =
            serde_json::from_str(r#"{"id":"a","event_name":"Purchase","timestamp":"18"}"#)
                .expect("str");
        assert_eq!(m.timestamp, 18);
        assert!(
            serde_json::from_str::<AutomaticEvent>(
                r#"{"id":"a","event_name":"Purchase","timestamp":"x"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn unknown_message_types_are_kept_by_name() {
        let m: Message = serde_json::from_str(
            r#"{"id":"w","timestamp":"1","type":"hologram","hologram":{"x":1},"new_field":true}"#,
        )
        .expect("parse");
        assert_eq!(m.kind, MessageType::Other("hologram".into()));
        assert_eq!(m.kind.as_str(), "hologram");
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let m: Message = serde_json::from_str(
            r#"{"id":"w","timestamp":"1","type":"text","text":{"body":"caf\u00e9"}}"#,
        )
        .expect("parse");
        assert_eq!(m.text.map(|t| t.body).as_deref(), Some("café"));
    }
}
