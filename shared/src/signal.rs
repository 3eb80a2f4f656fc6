//! Signals: the versioned queue messages between ingest and dispatch.
//!
//! Each inbound message and each automatic event becomes one [`Signal`] carrying what the
//! mapping needs and nothing it does not. The user's phone number is hashed here, at the edge
//! ([`UserRef::ph`]), so no queue, store or log downstream ever holds it in clear. Ad creative,
//! media ids and profile names are dropped.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::lenient::{self, Amount};
use crate::model::Channel;
use crate::values::hashing::sha256_hex;

/// The schema version written into every signal (`"v"`).
pub const SIGNAL_VERSION: u16 = 1;

/// One conversion-relevant moment, ready for the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Schema version; dispatch refuses versions it does not know.
    pub v: u16,
    /// Signal id: the message id (`wamid...`, `m_...`), the automatic event id, or the id
    /// derived from a Messenger referral's sender and time.
    pub id: String,
    /// The channel it came from (left out for WhatsApp, so WhatsApp signals read as before).
    #[serde(default, skip_serializing_if = "Channel::is_whatsapp")]
    pub channel: Channel,
    /// The business account it reached: the WhatsApp Business Account (WABA), the Facebook Page,
    /// or the Instagram professional account. Written `waba_id`, its first name, so signals
    /// queued by an earlier version (in flight during a deploy, or waiting in the dead-letter
    /// queue for a redrive) still read.
    #[serde(rename = "waba_id")]
    pub account_id: String,
    /// Business phone number id the message reached, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number_id: Option<String>,
    /// Unix seconds of the message.
    pub timestamp: i64,
    /// Who sent it (empty for automatic events, which name no user).
    #[serde(default, skip_serializing_if = "UserRef::is_empty")]
    pub user: UserRef,
    /// The ad click this message carries, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referral: Option<AdReferral>,
    /// What happened.
    pub event: SignalEvent,
}

/// A user, by business-scoped id and/or hashed phone (WhatsApp), or page- or Instagram-scoped
/// id (Messenger, Instagram).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// Page-scoped (PSID) or Instagram-scoped (IGSID) user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoped_id: Option<String>,
    /// Business-scoped user id (BSUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsuid: Option<String>,
    /// Parent BSUID (business portfolios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_bsuid: Option<String>,
    /// SHA-256 of the normalised phone number (the CAPI `ph` value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ph: Option<String>,
    /// SHA-256 of the phone number in E.164 form, `+` included (TikTok's `phone`): computed at
    /// the edge with `ph`, as only hashes travel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ph_e164: Option<String>,
}

impl UserRef {
    /// True when no identity is known.
    pub fn is_empty(&self) -> bool {
        self.scoped_id.is_none()
            && self.bsuid.is_none()
            && self.parent_bsuid.is_none()
            && self.ph.is_none()
    }

    /// The identity a user is keyed by: BSUID first, then hashed phone, then parent BSUID.
    pub fn primary_key(&self) -> Option<UserKey<'_>> {
        self.keys().next()
    }

    /// Every identity of the user, scoped id or BSUID first.
    pub fn keys(&self) -> impl Iterator<Item = UserKey<'_>> {
        self.scoped_id
            .as_deref()
            .map(UserKey::Scoped)
            .into_iter()
            .chain(self.bsuid.as_deref().map(UserKey::Bsuid))
            .chain(self.ph.as_deref().map(UserKey::Phone))
            .chain(self.parent_bsuid.as_deref().map(UserKey::ParentBsuid))
    }
}

/// A stable user identity, in key order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey<'a> {
    /// A business-scoped user id.
    Bsuid(&'a str),
    /// A hashed phone number.
    Phone(&'a str),
    /// The parent business's scoped user id (business portfolios).
    ParentBsuid(&'a str),
    /// A page- or Instagram-scoped user id.
    Scoped(&'a str),
}

impl UserKey<'_> {
    /// `b:<bsuid>`, `p:<sha256>` or `pb:<parent bsuid>`: a string key that cannot collide
    /// across kinds.
    pub fn tagged(&self) -> String {
        match self {
            Self::Bsuid(id) => format!("b:{id}"),
            Self::Phone(hash) => format!("p:{hash}"),
            Self::ParentBsuid(id) => format!("pb:{id}"),
            Self::Scoped(id) => format!("s:{id}"),
        }
    }
}

/// The Click-to-WhatsApp ad a message came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdReferral {
    /// The click id (absent for ads shown in WhatsApp Status).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
    /// The ad (or post) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    /// `ad` or `post`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
}

/// What a signal reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SignalEvent {
    /// A text message.
    Text {
        /// The text, for pattern rules.
        body: String,
    },
    /// A reply button was pressed.
    ButtonReply {
        /// The button id.
        id: String,
    },
    /// A list row was chosen.
    ListReply {
        /// The row id.
        id: String,
    },
    /// A Flow was completed.
    FlowReply {
        /// `flow` or `address_message`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The `flow_token` of the response.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        flow_token: Option<String>,
        /// The form fields, raw, for rules that map them into hashed user data.
        #[serde(default)]
        fields: Map<String, Value>,
    },
    /// A Messenger or Instagram quick reply was tapped.
    QuickReply {
        /// The payload the business set on it.
        payload: String,
    },
    /// A Messenger or Instagram postback: a button, the Get Started button, a menu item.
    Postback {
        /// The payload the business set on it.
        payload: String,
    },
    /// A Messenger or Instagram thread reopened from an ad (`messaging_referrals`), with nothing
    /// else in it.
    Referral,
    /// A template quick-reply button was pressed.
    TemplateButton {
        /// The button payload.
        payload: String,
    },
    /// A catalog order.
    Order {
        /// The catalog.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        catalog_id: Option<String>,
        /// The order lines.
        #[serde(default)]
        items: Vec<OrderItem>,
    },
    /// The user opened the chat for the first time.
    RequestWelcome,
    /// The user changed phone number or business-scoped id.
    IdentityChanged {
        /// `user_changed_number` or `user_changed_user_id`.
        change: String,
        /// The identity after the change.
        new: UserRef,
        /// The BSUID before the change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_bsuid: Option<String>,
        /// The parent BSUID before the change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous_parent_bsuid: Option<String>,
    },
    /// A conversion Meta detected itself.
    AutomaticEvent {
        /// `LeadSubmitted` or `Purchase`.
        event_name: String,
        /// The click the thread started from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ctwa_clid: Option<String>,
        /// Value and currency.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        custom_data: Option<AutomaticCustomData>,
    },
    /// A conversion reported by a CRM, shop or chatbot (`POST /events`); user data already
    /// hashed at the edge.
    Business {
        /// One of the 14 names.
        event_name: crate::model::EventName,
        /// The caller's key: the event id derives from it.
        idempotency_key: String,
        /// Value data as reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        custom_data: Option<crate::model::custom_data::CustomData>,
        /// Hashed user data by key.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        user_data: std::collections::BTreeMap<String, Vec<String>>,
        /// The lead (of an ad's instant form) the event concerns, when the CRM knows it: today
        /// a TikTok lead, under the queue field its format has always used (left out
        /// otherwise, so signals read as before).
        #[serde(
            default,
            rename = "tiktok_lead_id",
            skip_serializing_if = "Option::is_none"
        )]
        lead_id: Option<String>,
    },
    /// Any other message type (media, location, reaction, unknown), kept for its referral.
    Other {
        /// The message type's name.
        message_type: String,
    },
}

/// Value data of an automatic event, as the signal carries it: Meta's amount and currency as
/// they came, converted only when an event is built. The WhatsApp channel fills it from its own
/// webhook model; the queue format is this type's, whatever that model becomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutomaticCustomData {
    /// ISO 4217 currency, as sent.
    #[serde(
        default,
        deserialize_with = "lenient::string",
        skip_serializing_if = "Option::is_none"
    )]
    pub currency: Option<String>,
    /// The purchase amount **× 1000**, as Meta writes it (see
    /// [`crate::values::money::AUTOMATIC_EVENT_VALUE_SCALE`]): a number, or the text Meta sent.
    #[serde(
        default,
        deserialize_with = "lenient::amount",
        skip_serializing_if = "Option::is_none"
    )]
    pub value: Option<Amount>,
}

/// One line of an order, its numbers read (see [`crate::values::money`]); a part that could not be read
/// is `None`, and the order then has no computable value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The product's retailer id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_retailer_id: Option<String>,
    /// Units ordered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<f64>,
    /// Unit price, in currency units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_price: Option<f64>,
    /// ISO 4217 currency of the price, as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
}

impl SignalEvent {
    /// The WhatsApp message type this event came from (`None` for automatic events).
    pub fn message_type(&self) -> Option<&str> {
        Some(match self {
            Self::Text { .. } => "text",
            Self::ButtonReply { .. } | Self::ListReply { .. } | Self::FlowReply { .. } => {
                "interactive"
            }
            Self::TemplateButton { .. } => "button",
            Self::QuickReply { .. } => "quick_reply",
            Self::Postback { .. } => "postback",
            Self::Referral => "referral",
            Self::Order { .. } => "order",
            Self::RequestWelcome => "request_welcome",
            Self::IdentityChanged { .. } => "system",
            Self::Other { message_type } => message_type,
            Self::AutomaticEvent { .. } | Self::Business { .. } => return None,
        })
    }

    /// A short name for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Text { .. } => "text",
            Self::ButtonReply { .. } => "button_reply",
            Self::ListReply { .. } => "list_reply",
            Self::FlowReply { .. } => "flow_reply",
            Self::TemplateButton { .. } => "template_button",
            Self::QuickReply { .. } => "quick_reply",
            Self::Postback { .. } => "postback",
            Self::Referral => "referral",
            Self::Order { .. } => "order",
            Self::RequestWelcome => "request_welcome",
            Self::IdentityChanged { .. } => "identity_changed",
            Self::AutomaticEvent { .. } => "automatic_event",
            Self::Business { .. } => "business",
            Self::Other { .. } => "other",
        }
    }
}

impl Signal {
    /// The SQS FIFO group: one user's signals stay in order. A hash of WABA id + user
    /// (BSUID first, then phone); automatic events, which name no user, group by click id.
    pub fn group_id(&self) -> String {
        let who = match (&self.event, self.user.primary_key()) {
            // The user's next messages come under the new identity: the change goes first in
            // their group, so the click it carries over is there before they are mapped.
            (SignalEvent::IdentityChanged { new, .. }, _) if !new.is_empty() => {
                new.primary_key().map(|k| k.tagged()).unwrap_or_default()
            }
            (_, Some(key)) => key.tagged(),
            (SignalEvent::AutomaticEvent { ctwa_clid, .. }, None) => {
                format!("c:{}", ctwa_clid.as_deref().unwrap_or(&self.id))
            }
            (_, None) => format!("m:{}", self.id),
        };
        sha256_hex(format!("{}\u{1f}{who}", self.account_id).as_bytes())
    }

    /// The SQS FIFO deduplication id: a hash of the message id, scoped by signal kind so an
    /// automatic event detected on a message never collides with that message. A business
    /// event's id is scoped as its event id is (account, event name, idempotency key), so a key
    /// reused for another event name is another event, and an identical retry is the same one.
    pub fn dedup_id(&self) -> String {
        sha256_hex(self.dedup_scope().as_bytes())
    }

    /// What [`Signal::dedup_id`] hashes.
    fn dedup_scope(&self) -> String {
        match &self.event {
            SignalEvent::AutomaticEvent { event_name, .. } => {
                format!("auto:{event_name}:{}", self.id)
            }
            SignalEvent::Business {
                event_name,
                idempotency_key,
                ..
            } => format!(
                "business:{}\u{1f}{}\u{1f}{idempotency_key}",
                self.account_id,
                event_name.as_str()
            ),
            _ => format!("msg:{}", self.id),
        }
    }

    /// For an identity change, the identities the user had before it: the sender as the
    /// message names them (`from`, `from_user_id`), and the previous ids the system message
    /// names (which may be all there is: `user_changed_user_id` carries no phone number).
    pub fn previous_identities(&self) -> [UserRef; 2] {
        match &self.event {
            SignalEvent::IdentityChanged {
                previous_bsuid,
                previous_parent_bsuid,
                ..
            } => [
                self.user.clone(),
                UserRef {
                    bsuid: previous_bsuid.clone(),
                    parent_bsuid: previous_parent_bsuid.clone(),
                    ..UserRef::default()
                },
            ],
            _ => [UserRef::default(), UserRef::default()],
        }
    }
}

/// Why a part of a webhook could not become a signal; the part goes to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// An `entry[]` item that is not an entry (no WABA id, not an object).
    #[error("entry does not parse: {0}")]
    BadEntry(String),
    /// A `changes[]` item, or the value of a known field, that does not parse.
    #[error("change does not parse: {0}")]
    BadChange(String),
    /// The message does not fit the model (missing id or timestamp, not an object).
    #[error("message does not parse: {0}")]
    BadMessage(String),
    /// The automatic event does not fit the model.
    #[error("automatic event does not parse: {0}")]
    BadAutomaticEvent(String),
}

impl RejectReason {
    /// A short label for metrics and message attributes.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadEntry(_) => "bad_entry",
            Self::BadChange(_) => "bad_change",
            Self::BadMessage(_) => "bad_message",
            Self::BadAutomaticEvent(_) => "bad_automatic_event",
        }
    }
}

/// What a quarantined part holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawKind {
    /// A whole webhook envelope (a bad entry or change is kept wrapped in one, so a redrive
    /// re-reads it as a webhook).
    Envelope,
    /// One `messages[]` or `automatic_events[]` item, and which of the two it is.
    Item(ItemKind),
}

impl RawKind {
    /// The `wacapi_kind` attribute of the dead-letter message.
    pub fn label(self) -> &'static str {
        match self {
            Self::Envelope => "webhook_body",
            Self::Item(_) => "webhook_item",
        }
    }

    /// The `wacapi_item_kind` attribute of a quarantined item (none for an envelope).
    pub fn item_kind(self) -> Option<ItemKind> {
        match self {
            Self::Envelope => None,
            Self::Item(kind) => Some(kind),
        }
    }
}

/// What a quarantined webhook item was in its webhook, recorded with it (the `wacapi_item_kind`
/// attribute) so that a redrive reads it as what it was: an automatic event without an
/// `event_name` has an id and a timestamp, and would otherwise read as a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A `messages[]` item (on the `messages` or `standby` field).
    Message,
    /// An `automatic_events[]` item.
    AutomaticEvent,
}

impl ItemKind {
    /// The attribute's value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Message => "message",
            Self::AutomaticEvent => "automatic_event",
        }
    }

    /// The kind an attribute value names; `None` for any other value.
    pub fn from_label(label: &str) -> Option<Self> {
        match label {
            "message" => Some(Self::Message),
            "automatic_event" => Some(Self::AutomaticEvent),
            _ => None,
        }
    }
}

/// A part of a webhook that could not become a signal, with its exact JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The account the part came under (empty when the entry had none).
    pub account_id: String,
    /// Why.
    pub reason: RejectReason,
    /// An item, or an envelope around the entry or change.
    pub kind: RawKind,
    /// The part's JSON exactly as received (wrapped in an envelope for entries and changes).
    pub raw: String,
}

/// Everything a webhook body turned into.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Split {
    /// Signals to enqueue, in webhook order.
    pub signals: Vec<Signal>,
    /// Parts to quarantine.
    pub rejected: Vec<Rejected>,
    /// `statuses[]` items seen (counted, not enqueued).
    pub statuses: usize,
    /// `errors[]` items seen at change level.
    pub errors: usize,
    /// Parts left out on purpose that are neither statuses nor errors: changes of fields wacapi
    /// does not process, Messenger and Instagram items that are no conversation moment (receipts,
    /// echoes, handovers...), echoes of the business's own WhatsApp messages. The total behind
    /// the `ChangesIgnored` metric; [`Split::ignored`] names them.
    pub ignored_changes: usize,
    /// Everything that became no signal without being rejected, by kind: a webhook field or item
    /// kind as Meta names it (`account_update`, `statuses`, `message_echoes`, `delivery`...),
    /// from the channels' named lists, or `unknown` for one no list names. Names and counts only,
    /// for logs: the names are constants, never text from the webhook.
    pub ignored: BTreeMap<&'static str, usize>,
    /// Flow fields left out of signals: nested deeper than [`MAX_FLOW_FIELD_DEPTH`], or a
    /// `response_json` that is not a JSON object (counted as one).
    pub flow_fields_dropped: usize,
    /// Parts of items left out because they could not be read at all (see
    /// [`crate::lenient::salvage`]): a string holding a lone surrogate escape, a number out of
    /// range, a key that is no text, the earlier copies of a repeated key. The item itself
    /// became a signal without them (a message without its text, an order line without its
    /// price); the `UnreadableParts` metric.
    pub unreadable_parts: usize,
}

impl Split {
    /// Counts one part of `kind` left out on purpose, by name and in
    /// [`Split::ignored_changes`].
    pub fn ignore(&mut self, kind: &'static str) {
        self.ignored_changes += 1;
        self.tally(kind, 1);
    }

    /// Counts `n` parts of `kind` by name only (statuses and errors have totals of their own).
    pub fn tally(&mut self, kind: &'static str, n: usize) {
        if n > 0 {
            *self.ignored.entry(kind).or_default() += n;
        }
    }

    /// How many parts of `kind` were left out.
    pub fn ignored_of(&self, kind: &str) -> usize {
        self.ignored.get(kind).copied().unwrap_or(0)
    }

    /// Keeps the first signal of each deduplication id, in webhook order: a message delivered
    /// twice in one body (on `messages` and on `standby`, say) is one signal, as the queue's
    /// FIFO deduplication would make it anyway. Each one left out is counted as `duplicate`.
    pub fn dedup(&mut self) {
        let mut seen = std::collections::HashSet::with_capacity(self.signals.len());
        let before = self.signals.len();
        self.signals.retain(|s| seen.insert(s.dedup_scope()));
        let removed = before - self.signals.len();
        self.tally(DUPLICATE, removed);
    }
}

/// The [`Split::ignored`] name of a signal left out as a copy of one earlier in the same body.
pub const DUPLICATE: &str = "duplicate";

/// The [`Split::ignored`] name of a field or item kind no channel list names.
pub const UNKNOWN: &str = "unknown";

/// Why a whole body was refused. The texts name positions, kinds and lengths, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not the webhook envelope.
    #[error("body is not a webhook envelope: {0}")]
    NotAnEnvelope(String),
    /// Valid envelope of another product (`object` is not `whatsapp_business_account`).
    #[error(
        "webhook object (a {0}-character string) is not whatsapp_business_account, page or instagram"
    )]
    WrongObject(usize),
}

impl EnvelopeError {
    /// A short label for metrics and message attributes.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotAnEnvelope(_) => "not_an_envelope",
            Self::WrongObject(_) => "wrong_object",
        }
    }
}

/// Flow field values (and `/events` custom data values) nested deeper than this are left out of
/// signals (refused, on `/events`): rules read flat fields, and every signal must stay readable
/// by the dispatcher (serde_json stops at 128 levels, and a signal wraps its values in a few).
pub const MAX_FLOW_FIELD_DEPTH: usize = 16;

/// Nesting depth of a JSON value (a scalar is 0), without recursion.
pub fn depth(value: &Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0usize)];
    while let Some((v, d)) = stack.pop() {
        deepest = deepest.max(d);
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, d + 1))),
            Value::Object(map) => stack.extend(map.values().map(|i| (i, d + 1))),
            _ => {}
        }
    }
    deepest
}
