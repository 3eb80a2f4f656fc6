//! Signals: the versioned queue messages between ingest and dispatch.
//!
//! Each inbound message and each automatic event becomes one [`Signal`] carrying what the
//! mapping needs and nothing it does not. The user's phone number is hashed here, at the edge
//! ([`UserRef::ph`]), so no queue, store or log downstream ever holds it in clear. Ad creative,
//! media ids and profile names are dropped.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::hashing::{normalize_phone, sha256_hex};
use crate::webhook::{
    AutomaticCustomData, AutomaticEvent, ChangeValue, Contact, Message, MessageType, ProductItem,
    WHATSAPP_OBJECT, Webhook,
};

/// The schema version written into every signal (`"v"`).
pub const SIGNAL_VERSION: u16 = 1;

/// One conversion-relevant moment, ready for the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Schema version; dispatch refuses versions it does not know.
    pub v: u16,
    /// Signal id: the WhatsApp message id (`wamid...`) or the automatic event id.
    pub id: String,
    /// WhatsApp Business Account id.
    pub waba_id: String,
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

/// A user, by business-scoped id and/or hashed phone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// Business-scoped user id (BSUID).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bsuid: Option<String>,
    /// Parent BSUID (business portfolios).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_bsuid: Option<String>,
    /// SHA-256 of the normalised phone number (the CAPI `ph` value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ph: Option<String>,
}

impl UserRef {
    /// True when no identity is known.
    pub fn is_empty(&self) -> bool {
        self.bsuid.is_none() && self.ph.is_none()
    }

    /// The identity a user is keyed by: BSUID first, then hashed phone.
    pub fn primary_key(&self) -> Option<UserKey<'_>> {
        self.bsuid
            .as_deref()
            .map(UserKey::Bsuid)
            .or(self.ph.as_deref().map(UserKey::Phone))
    }

    /// Every identity of the user, BSUID first.
    pub fn keys(&self) -> impl Iterator<Item = UserKey<'_>> {
        self.bsuid
            .as_deref()
            .map(UserKey::Bsuid)
            .into_iter()
            .chain(self.ph.as_deref().map(UserKey::Phone))
    }

    fn from_message(message: &Message, contacts: &[Contact]) -> Self {
        // The message's own fields win; the contact fills gaps (and alone has parent_user_id).
        let contact = contacts
            .iter()
            .find(|c| {
                (message.from.is_some() && c.wa_id == message.from)
                    || (message.from_user_id.is_some() && c.user_id == message.from_user_id)
            })
            .or(if contacts.len() == 1 {
                contacts.first()
            } else {
                None
            });
        let phone = message
            .from
            .as_deref()
            .or(contact.and_then(|c| c.wa_id.as_deref()));
        Self {
            bsuid: non_empty(message.from_user_id.as_deref())
                .or(contact.and_then(|c| non_empty(c.user_id.as_deref())))
                .map(str::to_owned),
            parent_bsuid: contact
                .and_then(|c| non_empty(c.parent_user_id.as_deref()))
                .map(str::to_owned),
            ph: phone.and_then(hash_phone),
        }
    }
}

/// A stable user identity, in key order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey<'a> {
    /// A business-scoped user id.
    Bsuid(&'a str),
    /// A hashed phone number.
    Phone(&'a str),
}

impl UserKey<'_> {
    /// `b:<bsuid>` or `p:<sha256>`: a string key that cannot collide across kinds.
    pub fn tagged(&self) -> String {
        match self {
            Self::Bsuid(id) => format!("b:{id}"),
            Self::Phone(hash) => format!("p:{hash}"),
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
        items: Vec<ProductItem>,
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
        event_name: crate::capi::EventName,
        /// The caller's key: the event id derives from it.
        idempotency_key: String,
        /// Value data as reported.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        custom_data: Option<crate::capi::CustomData>,
        /// Hashed user data by key.
        #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
        user_data: std::collections::BTreeMap<String, Vec<String>>,
    },
    /// Any other message type (media, location, reaction, unknown), kept for its referral.
    Other {
        /// The message type's name.
        message_type: String,
    },
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
            (_, Some(key)) => key.tagged(),
            (SignalEvent::AutomaticEvent { ctwa_clid, .. }, None) => {
                format!("c:{}", ctwa_clid.as_deref().unwrap_or(&self.id))
            }
            (_, None) => format!("m:{}", self.id),
        };
        sha256_hex(format!("{}\u{1f}{who}", self.waba_id).as_bytes())
    }

    /// The SQS FIFO deduplication id: a hash of the message id, scoped by signal kind so an
    /// automatic event detected on a message never collides with that message.
    pub fn dedup_id(&self) -> String {
        let scope = match &self.event {
            SignalEvent::AutomaticEvent { event_name, .. } => format!("auto:{event_name}:"),
            _ => "msg:".to_owned(),
        };
        sha256_hex(format!("{scope}{}", self.id).as_bytes())
    }
}

/// Why an item of a webhook could not become a signal; the item goes to the dead-letter queue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The message does not fit the model (missing id, bad timestamp, wrong types).
    #[error("message does not parse: {0}")]
    BadMessage(String),
    /// The automatic event does not fit the model.
    #[error("automatic event does not parse: {0}")]
    BadAutomaticEvent(String),
    /// An interactive `nfm_reply` whose `response_json` is not a JSON object.
    #[error("flow response_json is not a JSON object")]
    BadFlowResponse,
    /// A change value of a known field that does not parse.
    #[error("change value does not parse: {0}")]
    BadChange(String),
}

impl RejectReason {
    /// A short label for metrics and message attributes.
    pub fn label(&self) -> &'static str {
        match self {
            Self::BadMessage(_) => "bad_message",
            Self::BadAutomaticEvent(_) => "bad_automatic_event",
            Self::BadFlowResponse => "bad_flow_response",
            Self::BadChange(_) => "bad_change",
        }
    }
}

/// A part of a webhook that could not become a signal, with its exact JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The WABA the item came under.
    pub waba_id: String,
    /// Why.
    pub reason: RejectReason,
    /// The item's JSON exactly as received.
    pub raw: String,
}

/// Everything a webhook body turned into.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Split {
    /// Signals to enqueue, in webhook order.
    pub signals: Vec<Signal>,
    /// Items to quarantine.
    pub rejected: Vec<Rejected>,
    /// `statuses[]` items seen (counted, not enqueued).
    pub statuses: usize,
    /// `errors[]` items seen at change level.
    pub errors: usize,
    /// Changes of fields wacapi does not process.
    pub ignored_changes: usize,
}

/// Why a whole body was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not the webhook envelope.
    #[error("body is not a webhook envelope: {0}")]
    NotAnEnvelope(#[from] serde_json::Error),
    /// Valid envelope of another product (`object` is not `whatsapp_business_account`).
    #[error("webhook object {0:?} is not whatsapp_business_account")]
    WrongObject(String),
}

/// Parses a verified body and splits it into signals, in webhook order.
///
/// Fails only when the envelope itself is unusable; a malformed item inside a good envelope is
/// returned in [`Split::rejected`] instead, so the rest of the webhook still flows.
pub fn split(body: &[u8]) -> Result<Split, EnvelopeError> {
    let webhook: Webhook<'_> = serde_json::from_slice(body)?;
    if webhook.object != WHATSAPP_OBJECT {
        return Err(EnvelopeError::WrongObject(webhook.object));
    }
    let mut out = Split::default();
    for entry in &webhook.entry {
        for change in &entry.changes {
            if change.field != "messages" && change.field != "automatic_events" {
                out.ignored_changes += 1;
                continue;
            }
            let value: ChangeValue<'_> = match serde_json::from_str(change.value.get()) {
                Ok(value) => value,
                Err(err) => {
                    out.rejected.push(Rejected {
                        waba_id: entry.id.clone(),
                        reason: RejectReason::BadChange(crate::redact::safe_json_error(&err)),
                        raw: change.value.get().to_owned(),
                    });
                    continue;
                }
            };
            split_change(&entry.id, &value, &mut out);
        }
    }
    Ok(out)
}

fn split_change(waba_id: &str, value: &ChangeValue<'_>, out: &mut Split) {
    out.statuses += value.statuses.len();
    out.errors += value.errors.len();
    let phone_number_id = value
        .metadata
        .as_ref()
        .and_then(|m| m.phone_number_id.clone());
    let reject = |reason: RejectReason, raw: &str| Rejected {
        waba_id: waba_id.to_owned(),
        reason,
        raw: raw.to_owned(),
    };
    for raw in &value.messages {
        let parsed = serde_json::from_str::<Message>(raw.get())
            .map_err(|e| RejectReason::BadMessage(crate::redact::safe_json_error(&e)))
            .and_then(|m| message_signal(waba_id, phone_number_id.as_ref(), &value.contacts, m));
        match parsed {
            Ok(signal) => out.signals.push(signal),
            Err(reason) => out.rejected.push(reject(reason, raw.get())),
        }
    }
    for raw in &value.automatic_events {
        match serde_json::from_str::<AutomaticEvent>(raw.get()) {
            Ok(event) => {
                out.signals
                    .push(automatic_signal(waba_id, phone_number_id.as_ref(), event))
            }
            Err(e) => out.rejected.push(reject(
                RejectReason::BadAutomaticEvent(crate::redact::safe_json_error(&e)),
                raw.get(),
            )),
        }
    }
}

/// Re-reads one quarantined webhook item (a `messages[]` or `automatic_events[]` element) as a
/// signal, for items redriven from the dead-letter queue after a fix. The envelope is gone, so
/// the user is known only from the message's own `from`/`from_user_id`.
pub fn signal_from_item(waba_id: &str, raw: &str) -> Result<Signal, RejectReason> {
    match serde_json::from_str::<Message>(raw) {
        Ok(message) => message_signal(waba_id, None, &[], message),
        Err(message_err) => match serde_json::from_str::<AutomaticEvent>(raw) {
            Ok(event) => Ok(automatic_signal(waba_id, None, event)),
            Err(_) => Err(RejectReason::BadMessage(crate::redact::safe_json_error(
                &message_err,
            ))),
        },
    }
}

fn automatic_signal(
    waba_id: &str,
    phone_number_id: Option<&String>,
    event: AutomaticEvent,
) -> Signal {
    Signal {
        v: SIGNAL_VERSION,
        id: event.id,
        waba_id: waba_id.to_owned(),
        phone_number_id: phone_number_id.cloned(),
        timestamp: event.timestamp,
        user: UserRef::default(),
        referral: None,
        event: SignalEvent::AutomaticEvent {
            event_name: event.event_name,
            ctwa_clid: event.ctwa_clid,
            custom_data: event.custom_data,
        },
    }
}

fn message_signal(
    waba_id: &str,
    phone_number_id: Option<&String>,
    contacts: &[Contact],
    message: Message,
) -> Result<Signal, RejectReason> {
    let user = UserRef::from_message(&message, contacts);
    let referral = message.referral.as_ref().map(|r| AdReferral {
        ctwa_clid: r.ctwa_clid.clone().filter(|c| !c.is_empty()),
        source_id: r.source_id.clone(),
        source_type: r.source_type.clone(),
    });
    let event = message_event(&message)?;
    Ok(Signal {
        v: SIGNAL_VERSION,
        id: message.id,
        waba_id: waba_id.to_owned(),
        phone_number_id: phone_number_id.cloned(),
        timestamp: message.timestamp,
        user,
        referral,
        event,
    })
}

fn message_event(message: &Message) -> Result<SignalEvent, RejectReason> {
    let kind = &message.kind;
    let other = |kind: &MessageType| SignalEvent::Other {
        message_type: kind.as_str().to_owned(),
    };
    Ok(match kind {
        MessageType::Text => SignalEvent::Text {
            body: message
                .text
                .as_ref()
                .map(|t| t.body.clone())
                .unwrap_or_default(),
        },
        MessageType::Button => SignalEvent::TemplateButton {
            payload: message
                .button
                .as_ref()
                .and_then(|b| b.payload.clone().or_else(|| b.text.clone()))
                .unwrap_or_default(),
        },
        MessageType::Order => SignalEvent::Order {
            catalog_id: message.order.as_ref().and_then(|o| o.catalog_id.clone()),
            items: message
                .order
                .as_ref()
                .map(|o| o.product_items.clone())
                .unwrap_or_default(),
        },
        MessageType::RequestWelcome => SignalEvent::RequestWelcome,
        MessageType::Interactive => match &message.interactive {
            Some(i) => match (
                i.kind.as_str(),
                &i.button_reply,
                &i.list_reply,
                &i.nfm_reply,
            ) {
                ("button_reply", Some(reply), _, _) => SignalEvent::ButtonReply {
                    id: reply.id.clone(),
                },
                ("list_reply", _, Some(reply), _) => SignalEvent::ListReply {
                    id: reply.id.clone(),
                },
                ("nfm_reply", _, _, Some(nfm)) => flow_reply(nfm)?,
                _ => SignalEvent::Other {
                    message_type: format!("interactive.{}", i.kind),
                },
            },
            None => other(kind),
        },
        MessageType::System => match &message.system {
            Some(system) => SignalEvent::IdentityChanged {
                change: system.kind.clone().unwrap_or_default(),
                new: UserRef {
                    bsuid: system.user_id.clone(),
                    parent_bsuid: system.parent_user_id.clone(),
                    ph: system
                        .wa_id
                        .as_deref()
                        .or(system.new_wa_id.as_deref())
                        .and_then(hash_phone),
                },
                previous_bsuid: system.previous_user_id.clone(),
            },
            None => other(kind),
        },
        MessageType::Other(_) => other(kind),
    })
}

fn flow_reply(nfm: &crate::webhook::NfmReply) -> Result<SignalEvent, RejectReason> {
    let fields = match nfm.response_json.as_deref() {
        None | Some("") => Map::new(),
        Some(json) => match serde_json::from_str::<Value>(json) {
            Ok(Value::Object(map)) => map,
            _ => return Err(RejectReason::BadFlowResponse),
        },
    };
    let flow_token = fields
        .get("flow_token")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(SignalEvent::FlowReply {
        name: nfm.name.clone(),
        flow_token,
        fields,
    })
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.trim().is_empty())
}

fn hash_phone(raw: &str) -> Option<String> {
    normalize_phone(raw).map(|digits| sha256_hex(digits.as_bytes()))
}
