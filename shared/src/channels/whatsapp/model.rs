//! Serde model of the WhatsApp Cloud API webhook entries (`object = whatsapp_business_account`;
//! the envelope around them is every channel's, [`crate::channels::envelope`]).
//!
//! The model reads what real senders write, not only what Meta documents (see
//! [`crate::lenient`]): every field Meta may omit is an `Option` or defaults to empty, `null`
//! is absent, ids may be numbers, a sub-object of an unexpected shape is dropped rather than
//! sinking its message, unknown fields are ignored and unknown message types and `field` values
//! are kept as strings. Entries, changes, messages and automatic events are held as raw JSON and
//! parsed one at a time (see [`crate::signal`]), so one malformed item never sinks its
//! neighbours and its exact bytes can be quarantined.

use std::fmt;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::lenient::{self, Amount, RawItem};
/// The `object` value of every WhatsApp Business Account webhook.
pub const WHATSAPP_OBJECT: &str = "whatsapp_business_account";

/// The updates for one WhatsApp Business Account (WABA).
#[derive(Debug, Deserialize)]
pub struct Entry<'a> {
    /// The WABA id.
    #[serde(deserialize_with = "lenient::required_string")]
    pub id: String,
    /// The changes, each kept raw until parsed by itself.
    #[serde(default, borrow, deserialize_with = "lenient::list")]
    pub changes: Vec<RawItem<'a>>,
}

/// One change: a subscribed field and its value.
#[derive(Debug, Deserialize)]
pub struct Change<'a> {
    /// `messages`, `automatic_events`, or any other subscribed field (tolerated, not processed);
    /// `None` when absent or not usable (`null`, empty, an object), and then the value says
    /// what the change is (see [`crate::channels::whatsapp::split_entries`]).
    #[serde(default, deserialize_with = "lenient::string")]
    pub field: Option<String>,
    /// The payload; its shape depends on `field`. Parsed lazily so unknown fields cost nothing.
    #[serde(default, borrow)]
    pub value: Option<&'a RawValue>,
}

/// The `value` of a `messages`, `standby` or `automatic_events` change (and of the object a
/// `standby` value nests its parts in).
#[derive(Debug, Default, Deserialize)]
pub struct ChangeValue<'a> {
    /// Always `whatsapp`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub messaging_product: Option<String>,
    /// The business phone number the update concerns.
    #[serde(default, deserialize_with = "lenient::object")]
    pub metadata: Option<Metadata>,
    /// The users the messages come from (absent on `system` messages); unreadable ones are
    /// left out.
    #[serde(default, deserialize_with = "lenient::items")]
    pub contacts: Vec<Contact>,
    /// Inbound messages, each kept raw until parsed by itself.
    #[serde(default, borrow, deserialize_with = "lenient::list")]
    pub messages: Vec<RawItem<'a>>,
    /// Delivery receipts for outgoing messages: counted, never turned into signals.
    #[serde(default, deserialize_with = "lenient::items")]
    pub statuses: Vec<IgnoredAny>,
    /// Errors Meta reports at the change level.
    #[serde(default, deserialize_with = "lenient::items")]
    pub errors: Vec<IgnoredAny>,
    /// Echoes of what the business's side sent (on `standby`, Meta Business Agent's replies:
    /// `{id, timestamp, message}`, no `from`): counted, never signals.
    #[serde(default, deserialize_with = "lenient::items")]
    pub message_echoes: Vec<IgnoredAny>,
    /// Marketing-message link clicks (`user_actions`, a `messages` change with no message):
    /// counted, never signals (the click is on the business's own link, not an ad).
    #[serde(default, deserialize_with = "lenient::items")]
    pub user_actions: Vec<IgnoredAny>,
    /// On the `standby` field (Meta Business Agent handles the number), the parts nest one
    /// level deeper: `standby: {contacts, messages, message_echoes, statuses}`. Kept raw and
    /// read as a [`ChangeValue`] of its own; anything but an object holds nothing.
    #[serde(default, borrow)]
    pub standby: Option<&'a RawValue>,
    /// Meta-detected conversions (`automatic_events` field), each kept raw until parsed.
    #[serde(default, borrow, deserialize_with = "lenient::list")]
    pub automatic_events: Vec<RawItem<'a>>,
}

/// The business phone number an update was sent to.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// The business number as displayed.
    #[serde(default, deserialize_with = "lenient::string")]
    pub display_phone_number: Option<String>,
    /// The Cloud API phone number id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub phone_number_id: Option<String>,
}

/// A WhatsApp user as described in `contacts[]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Contact {
    /// Phone number digits; absent for users who only share a username.
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    /// Business-scoped user id (BSUID), e.g. `US.13491208655302741918`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_id: Option<String>,
    /// BSUID of the parent business, when the business is part of a portfolio.
    #[serde(default, deserialize_with = "lenient::string")]
    pub parent_user_id: Option<String>,
    // `profile` (name, username) is intentionally not modelled: it is personal data that no
    // part of wacapi needs, so it is never even copied out of the request buffer.
}

/// One inbound message (`messages[]` item).
#[derive(Debug, Deserialize)]
pub struct Message {
    /// Sender phone number digits; may be absent for username-only users.
    #[serde(default, deserialize_with = "lenient::string")]
    pub from: Option<String>,
    /// Sender business-scoped user id (2026).
    #[serde(default, deserialize_with = "lenient::string")]
    pub from_user_id: Option<String>,
    /// `wamid....`: the natural deduplication key.
    #[serde(deserialize_with = "lenient::required_string")]
    pub id: String,
    /// Unix seconds (sent as a string; a number is accepted too).
    #[serde(deserialize_with = "lenient::unix_seconds")]
    pub timestamp: i64,
    /// The message type; unknown (or missing) types are kept by name.
    #[serde(rename = "type", default, deserialize_with = "message_type")]
    pub kind: MessageType,
    /// Reply context.
    #[serde(default, deserialize_with = "lenient::object")]
    pub context: Option<Context>,
    /// Click-to-WhatsApp ad referral, on the first message after an ad click.
    #[serde(default, deserialize_with = "lenient::object")]
    pub referral: Option<Referral>,
    /// `text` payload.
    #[serde(default, deserialize_with = "text")]
    pub text: Option<Text>,
    /// `interactive` payload.
    #[serde(default, deserialize_with = "lenient::object")]
    pub interactive: Option<Interactive>,
    /// `button` payload (template quick reply).
    #[serde(default, deserialize_with = "lenient::object")]
    pub button: Option<Button>,
    /// `order` payload.
    #[serde(default, deserialize_with = "lenient::object")]
    pub order: Option<Order>,
    /// `system` payload.
    #[serde(default, deserialize_with = "lenient::object")]
    pub system: Option<System>,
}

/// The message types wacapi knows; anything else is [`MessageType::Other`].
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl Default for MessageType {
    /// A message without a usable `type` (Meta always sends one; relays may not).
    fn default() -> Self {
        Self::Other("unknown".to_owned())
    }
}

fn message_type<'de, D: Deserializer<'de>>(d: D) -> Result<MessageType, D::Error> {
    Ok(lenient::string(d)?
        .map(MessageType::from)
        .unwrap_or_default())
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
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
    /// Product the user asked about.
    #[serde(default, deserialize_with = "lenient::object")]
    pub referred_product: Option<ReferredProduct>,
}

/// A catalog product referenced from a message.
#[derive(Debug, Clone, Deserialize)]
pub struct ReferredProduct {
    /// Catalog id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub catalog_id: Option<String>,
    /// The product's retailer id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub product_retailer_id: Option<String>,
}

/// A Click-to-WhatsApp ad referral.
#[derive(Debug, Clone, Deserialize)]
pub struct Referral {
    /// Ad or post id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub source_type: Option<String>,
    /// The click id; omitted for ads shown in WhatsApp Status.
    #[serde(default, deserialize_with = "lenient::string")]
    pub ctwa_clid: Option<String>,
    // source_url, headline, body, media and image/video/thumbnail URLs are not modelled: the
    // mapping needs none of them and they must not travel further.
}

/// `text` payload.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Text {
    /// The message text.
    #[serde(default, deserialize_with = "lenient::string")]
    pub body: Option<String>,
}

/// `{"body": "..."}` as Meta sends it, or the bare string some relays write; other shapes are
/// no text.
fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Text>, D::Error> {
    struct TextVisitor;
    impl<'de> Visitor<'de> for TextVisitor {
        type Value = Option<Text>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a text object or a string")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(Text {
                body: Some(v.to_owned()),
            }))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Text::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(TextVisitor)
}

/// `interactive` payload: one of its replies, by `type`.
#[derive(Debug, Clone, Deserialize)]
pub struct Interactive {
    /// `button_reply`, `list_reply`, `nfm_reply`, or a type Meta adds later; when absent, the
    /// reply object present says it.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
    /// Reply button pressed.
    #[serde(default, deserialize_with = "lenient::object")]
    pub button_reply: Option<Reply>,
    /// List row chosen.
    #[serde(default, deserialize_with = "lenient::object")]
    pub list_reply: Option<Reply>,
    /// Flow (native flow message) completion.
    #[serde(default, deserialize_with = "lenient::object")]
    pub nfm_reply: Option<NfmReply>,
}

/// A button or list reply.
#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    /// The id the business gave the button or row.
    #[serde(default, deserialize_with = "lenient::string")]
    pub id: Option<String>,
}

/// A Flow completion.
#[derive(Debug, Clone, Deserialize)]
pub struct NfmReply {
    /// `flow` or `address_message`.
    #[serde(default, deserialize_with = "lenient::string")]
    pub name: Option<String>,
    /// A JSON object encoded as a string (Meta's form), or the object itself (some relays
    /// decode it): `flow_token` plus the form's fields.
    #[serde(default)]
    pub response_json: Option<Box<RawValue>>,
}

/// A template quick-reply button press.
#[derive(Debug, Clone, Deserialize)]
pub struct Button {
    /// The payload the business set on the button.
    #[serde(default, deserialize_with = "lenient::string")]
    pub payload: Option<String>,
    /// The button label.
    #[serde(default, deserialize_with = "lenient::string")]
    pub text: Option<String>,
}

/// A catalog order.
#[derive(Debug, Clone, Deserialize)]
pub struct Order {
    /// The catalog ordered from.
    #[serde(default, deserialize_with = "lenient::string")]
    pub catalog_id: Option<String>,
    /// The items; an item that is not an object is kept as `None`, so the order is known to be
    /// incomplete (its value cannot be computed) rather than silently smaller.
    #[serde(default, deserialize_with = "lenient::slots")]
    pub product_items: Vec<Option<ProductItem>>,
}

/// One line of an order, as sent.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductItem {
    /// The product's retailer id.
    #[serde(default, deserialize_with = "lenient::string")]
    pub product_retailer_id: Option<String>,
    /// Units ordered.
    #[serde(default, deserialize_with = "lenient::amount")]
    pub quantity: Option<Amount>,
    /// Unit price: a number, a numeric string, or a string with separators.
    #[serde(default, deserialize_with = "lenient::amount")]
    pub item_price: Option<Amount>,
    /// ISO 4217 currency of the price.
    #[serde(default, deserialize_with = "lenient::string")]
    pub currency: Option<String>,
}

/// A `system` message: the user changed number or business-scoped id.
#[derive(Debug, Clone, Deserialize)]
pub struct System {
    /// `user_changed_number`, `user_changed_user_id`, or a legacy/unknown kind.
    #[serde(rename = "type", default, deserialize_with = "lenient::string")]
    pub kind: Option<String>,
    /// The new phone number.
    #[serde(default, deserialize_with = "lenient::string")]
    pub wa_id: Option<String>,
    /// Legacy name of the new phone number (before Graph v12).
    #[serde(default, deserialize_with = "lenient::string")]
    pub new_wa_id: Option<String>,
    /// The new BSUID.
    #[serde(default, deserialize_with = "lenient::string")]
    pub user_id: Option<String>,
    /// The new parent BSUID.
    #[serde(default, deserialize_with = "lenient::string")]
    pub parent_user_id: Option<String>,
    /// The BSUID before the change.
    #[serde(default, deserialize_with = "lenient::string")]
    pub previous_user_id: Option<String>,
    /// The parent BSUID before the change.
    #[serde(default, deserialize_with = "lenient::string")]
    pub previous_parent_user_id: Option<String>,
}

/// One Meta-detected conversion (`automatic_events[]` item).
#[derive(Debug, Deserialize)]
pub struct AutomaticEvent {
    /// Id of the message the event was detected on.
    #[serde(deserialize_with = "lenient::required_string")]
    pub id: String,
    /// `LeadSubmitted` or `Purchase`.
    #[serde(deserialize_with = "lenient::required_string")]
    pub event_name: String,
    /// Unix seconds (an integer here, unlike messages).
    #[serde(deserialize_with = "lenient::unix_seconds")]
    pub timestamp: i64,
    /// The click id of the ad that started the thread (absent for ads in WhatsApp Status).
    #[serde(default, deserialize_with = "lenient::string")]
    pub ctwa_clid: Option<String>,
    /// Value and currency, for purchases.
    #[serde(default, deserialize_with = "lenient::object")]
    pub custom_data: Option<EventCustomData>,
}

/// The `custom_data` of an automatic event, as Meta sends it. A signal carries it as
/// [`crate::signal::AutomaticCustomData`] (see [`crate::channels::whatsapp`]); an object with neither part is
/// the same as none.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EventCustomData {
    /// ISO 4217 currency.
    #[serde(default, deserialize_with = "lenient::string")]
    pub currency: Option<String>,
    /// The purchase amount **× 1000**, as Meta writes it (see
    /// [`crate::values::money::AUTOMATIC_EVENT_VALUE_SCALE`]).
    #[serde(default, deserialize_with = "lenient::amount")]
    pub value: Option<Amount>,
}

#[cfg(test)]
mod tests {
    use super::{Message, MessageType};

    #[test]
    fn unknown_and_missing_message_types_are_kept_by_name() {
        let m: Message = serde_json::from_str(
            r#"{"id":"w","timestamp":"1","type":"hologram","hologram":{"x":1},"new_field":true}"#,
        )
        .expect("parse");
        assert_eq!(m.kind, MessageType::Other("hologram".into()));
        assert_eq!(m.kind.as_str(), "hologram");
        let m: Message =
            serde_json::from_str(r#"{"id":"w","timestamp":"1","type":null}"#).expect("parse");
        assert_eq!(m.kind.as_str(), "unknown");
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let m: Message = serde_json::from_str(
            r#"{"id":"w","timestamp":"1","type":"text","text":{"body":"caf\u00e9"}}"#,
        )
        .expect("parse");
        assert_eq!(m.text.and_then(|t| t.body).as_deref(), Some("café"));
    }

    #[test]
    fn a_message_survives_odd_sub_objects() {
        let m: Message = serde_json::from_str(
            r#"{"from":16505551234,"id":"w","timestamp":1750096325,"type":"text","text":"hello",
                "referral":{"ctwa_clid":"clid","source_id":120226305854810999},"context":[],
                "interactive":null,"order":{"product_items":null},"system":7}"#,
        )
        .expect("parse");
        assert_eq!(m.from.as_deref(), Some("16505551234"));
        assert_eq!(m.text.and_then(|t| t.body).as_deref(), Some("hello"));
        assert!(m.interactive.is_none() && m.system.is_none());
        let referral = m.referral.expect("referral kept");
        assert_eq!(referral.ctwa_clid.as_deref(), Some("clid"));
        assert_eq!(referral.source_id.as_deref(), Some("120226305854810999"));
        assert!(m.order.expect("order").product_items.is_empty());
    }

    #[test]
    fn what_a_message_cannot_do_without_is_still_required() {
        for bad in [
            r#"{"timestamp":"1","type":"text"}"#,
            r#"{"id":null,"timestamp":"1","type":"text"}"#,
            r#"{"id":"w","type":"text"}"#,
            r#"{"id":"w","timestamp":"soon","type":"text"}"#,
        ] {
            assert!(serde_json::from_str::<Message>(bad).is_err(), "{bad}");
        }
    }
}
