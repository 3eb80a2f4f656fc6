//! One WhatsApp message (a `messages[]` item) into a signal: the sender found among the change's
//! contacts and their phone number hashed, the ad click kept, and the message's content read by
//! type (text cut to [`MAX_TEXT_CHARS`], replies by id, Flow fields bounded, order lines read in
//! their currency, identity changes with the identity before and after).

use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::model::{
    Contact, Interactive, Message, MessageType, NfmReply, ProductItem, Reply, System,
};
use super::{MAX_FLOW_FIELDS_BYTES, MAX_FLOW_VALUE_CHARS, MAX_ORDER_LINES, MAX_TEXT_CHARS};
use crate::model::Channel;
use crate::signal::{
    AdReferral, MAX_FLOW_FIELD_DEPTH, OrderItem, SIGNAL_VERSION, Signal, SignalEvent, UserRef,
    depth,
};
use crate::values::hashing::hash_phone;
use crate::values::money;

/// The `contacts[]` of one change value, indexed once by `wa_id` and by `user_id`, so each of its
/// messages finds its sender in constant time: a split stays linear in the body's size however
/// many contacts and messages one value holds (a scan per message took minutes on a signed 4 MiB
/// body of a million contacts and 30,000 messages).
pub(super) struct Contacts<'a> {
    list: &'a [Contact],
    /// The first contact of each `wa_id`, by position.
    by_wa_id: HashMap<&'a str, usize>,
    /// The first contact of each `user_id`, by position.
    by_user_id: HashMap<&'a str, usize>,
}

impl<'a> Contacts<'a> {
    pub(super) fn new(list: &'a [Contact]) -> Self {
        let mut by_wa_id = HashMap::new();
        let mut by_user_id = HashMap::new();
        for (i, contact) in list.iter().enumerate() {
            if let Some(wa_id) = contact.wa_id.as_deref() {
                by_wa_id.entry(wa_id).or_insert(i);
            }
            if let Some(user_id) = contact.user_id.as_deref() {
                by_user_id.entry(user_id).or_insert(i);
            }
        }
        Self {
            list,
            by_wa_id,
            by_user_id,
        }
    }

    /// No contacts (a redriven item, whose envelope is gone).
    pub(super) fn none() -> Self {
        Self::new(&[])
    }

    /// The contact a message comes from: the first whose `wa_id` is the message's `from` or whose
    /// `user_id` is its `from_user_id`; else the only contact, when there is one.
    fn of(&self, message: &Message) -> Option<&'a Contact> {
        let by_phone = message
            .from
            .as_deref()
            .and_then(|f| self.by_wa_id.get(f).copied());
        let by_user = message
            .from_user_id
            .as_deref()
            .and_then(|u| self.by_user_id.get(u).copied());
        // The first in list order of either match, as a scan of the list would find it.
        let first = match (by_phone, by_user) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match first {
            Some(i) => self.list.get(i),
            None if self.list.len() == 1 => self.list.first(),
            None => None,
        }
    }
}

/// The user a message comes from: the message's own fields, the matching contact filling gaps.
fn user_of(message: &Message, contacts: &Contacts<'_>) -> UserRef {
    // The message's own fields win; the contact fills gaps (and alone has parent_user_id).
    let contact = contacts.of(message);
    let phone = message
        .from
        .as_deref()
        .or(contact.and_then(|c| c.wa_id.as_deref()));
    let phone = phone.and_then(hash_phone);
    UserRef {
        scoped_id: None,
        bsuid: non_empty(message.from_user_id.as_deref())
            .or(contact.and_then(|c| non_empty(c.user_id.as_deref())))
            .map(str::to_owned),
        parent_bsuid: contact
            .and_then(|c| non_empty(c.parent_user_id.as_deref()))
            .map(str::to_owned),
        ph_e164: phone.as_ref().map(|p| p.e164.clone()),
        ph: phone.map(|p| p.digits),
    }
}

/// A message's signal, and how many Flow fields were left out of it.
pub(super) fn message_signal(
    waba_id: &str,
    phone_number_id: Option<&String>,
    contacts: &Contacts<'_>,
    message: Message,
) -> (Signal, usize) {
    let user = user_of(&message, contacts);
    let referral = message.referral.as_ref().map(|r| AdReferral {
        ctwa_clid: r.ctwa_clid.clone().filter(|c| !c.trim().is_empty()),
        source_id: r.source_id.clone(),
        source_type: r.source_type.clone(),
    });
    let (event, dropped) = message_event(&message);
    let signal = Signal {
        v: SIGNAL_VERSION,
        id: message.id,
        channel: Channel::Whatsapp,
        account_id: waba_id.to_owned(),
        phone_number_id: phone_number_id.cloned(),
        timestamp: message.timestamp,
        user,
        referral,
        event,
    };
    (signal, dropped)
}

/// What a message says, by type, and how many Flow fields were left out of it.
fn message_event(message: &Message) -> (SignalEvent, usize) {
    let kind = &message.kind;
    let other = |kind: &MessageType| SignalEvent::Other {
        message_type: kind.as_str().to_owned(),
    };
    let event = match kind {
        MessageType::Text => SignalEvent::Text {
            body: message
                .text
                .as_ref()
                .and_then(|t| t.body.as_deref())
                .map(|b| cut(b, MAX_TEXT_CHARS))
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
                .map(|o| order_items(&o.product_items))
                .unwrap_or_default(),
        },
        MessageType::RequestWelcome => SignalEvent::RequestWelcome,
        MessageType::Interactive => match &message.interactive {
            Some(interactive) => return interactive_event(interactive),
            None => other(kind),
        },
        MessageType::System => match &message.system {
            Some(system) => identity_changed(system),
            None => other(kind),
        },
        MessageType::Other(_) => other(kind),
    };
    (event, 0)
}

/// An `interactive` reply, by its `type` (or, when absent, by the reply object present): a
/// button or list reply by id, a Flow completion with its fields and how many were left out.
fn interactive_event(i: &Interactive) -> (SignalEvent, usize) {
    let inferred = || {
        [
            ("button_reply", i.button_reply.is_some()),
            ("list_reply", i.list_reply.is_some()),
            ("nfm_reply", i.nfm_reply.is_some()),
        ]
        .into_iter()
        .find_map(|(name, present)| present.then_some(name))
    };
    let reply_kind = i.kind.as_deref().or_else(inferred).unwrap_or("unknown");
    let reply_id = |r: &Option<Reply>| r.as_ref()?.id.clone();
    let event = match (
        reply_kind,
        reply_id(&i.button_reply),
        reply_id(&i.list_reply),
        &i.nfm_reply,
    ) {
        ("button_reply", Some(id), _, _) => SignalEvent::ButtonReply { id },
        ("list_reply", _, Some(id), _) => SignalEvent::ListReply { id },
        ("nfm_reply", _, _, Some(nfm)) => return flow_reply(nfm),
        _ => SignalEvent::Other {
            message_type: format!("interactive.{reply_kind}"),
        },
    };
    (event, 0)
}

/// A `system` message: the identity after the change (its phone number hashed) and the one
/// before it.
fn identity_changed(system: &System) -> SignalEvent {
    let phone = system
        .wa_id
        .as_deref()
        .or(system.new_wa_id.as_deref())
        .and_then(hash_phone);
    SignalEvent::IdentityChanged {
        change: system.kind.clone().unwrap_or_default(),
        new: UserRef {
            scoped_id: None,
            bsuid: non_empty(system.user_id.as_deref()).map(str::to_owned),
            parent_bsuid: non_empty(system.parent_user_id.as_deref()).map(str::to_owned),
            ph_e164: phone.as_ref().map(|p| p.e164.clone()),
            ph: phone.map(|p| p.digits),
        },
        previous_bsuid: non_empty(system.previous_user_id.as_deref()).map(str::to_owned),
        previous_parent_bsuid: non_empty(system.previous_parent_user_id.as_deref())
            .map(str::to_owned),
    }
}

/// A Flow completion: its form fields (Meta sends them as a JSON string; some relays as the
/// object), with values nested too deep left out. A `response_json` that holds no JSON object
/// keeps the completion with no fields.
fn flow_reply(nfm: &NfmReply) -> (SignalEvent, usize) {
    let (mut fields, mut dropped) = match nfm.response_json.as_deref().map(RawValue::get) {
        None => (Map::new(), 0),
        Some(raw) => match serde_json::from_str::<Value>(raw) {
            Ok(Value::String(text)) if text.trim().is_empty() => (Map::new(), 0),
            Ok(Value::String(text)) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(map)) => (map, 0),
                _ => (Map::new(), 1),
            },
            Ok(Value::Object(map)) => (map, 0),
            Ok(Value::Null) => (Map::new(), 0),
            _ => (Map::new(), 1),
        },
    };
    let before = fields.len();
    fields.retain(|_, value| depth(value) <= MAX_FLOW_FIELD_DEPTH);
    let mut budget = MAX_FLOW_FIELDS_BYTES;
    fields.retain(|key, value| {
        cut_strings(value);
        let size = key.len() + serde_json::to_string(value).map_or(usize::MAX, |t| t.len());
        let fits = size <= budget;
        budget = budget.saturating_sub(size);
        fits
    });
    dropped += before - fields.len();
    let flow_token = match fields.get("flow_token") {
        Some(Value::String(token)) => Some(token.clone()),
        Some(Value::Number(token)) => Some(token.to_string()),
        _ => None,
    };
    let event = SignalEvent::FlowReply {
        name: nfm.name.clone(),
        flow_token,
        fields,
    };
    (event, dropped)
}

/// The first `max` characters of `text`.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => text[..end].to_owned(),
        None => text.to_owned(),
    }
}

/// Cuts every string in `value` to [`MAX_FLOW_VALUE_CHARS`].
fn cut_strings(value: &mut Value) {
    match value {
        Value::String(s) if s.len() > MAX_FLOW_VALUE_CHARS => *s = cut(s, MAX_FLOW_VALUE_CHARS),
        Value::Array(items) => items.iter_mut().for_each(cut_strings),
        Value::Object(map) => map.values_mut().for_each(cut_strings),
        _ => {}
    }
}

/// An order line as sent, its numbers read in its currency (see [`crate::values::money`]).
fn order_item(item: Option<&ProductItem>) -> OrderItem {
    let Some(item) = item else {
        return OrderItem::default();
    };
    let currency = item
        .currency
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    OrderItem {
        product_retailer_id: item.product_retailer_id.clone(),
        quantity: item.quantity.as_ref().and_then(|q| money::amount(q, None)),
        item_price: item
            .item_price
            .as_ref()
            .and_then(|p| money::amount(p, currency)),
        currency: currency.map(str::to_owned),
    }
}

/// An order's lines; past [`MAX_ORDER_LINES`] one unreadable line stands for the rest, so the
/// order's value is not computed from a part of it.
fn order_items(lines: &[Option<ProductItem>]) -> Vec<OrderItem> {
    let mut items: Vec<OrderItem> = lines
        .iter()
        .take(MAX_ORDER_LINES)
        .map(|i| order_item(i.as_ref()))
        .collect();
    if lines.len() > MAX_ORDER_LINES {
        items.push(OrderItem::default());
    }
    items
}

/// `s` when it holds more than whitespace.
fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.trim().is_empty())
}
