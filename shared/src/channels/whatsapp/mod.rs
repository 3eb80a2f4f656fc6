//! WhatsApp Cloud API webhooks (`object = whatsapp_business_account`) into signals: one per
//! message and per automatic event, the phone number hashed here at the edge; ad creative,
//! media ids and profile names dropped. [`model`] is the lenient serde model of the envelope.

pub mod model;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::channels::Channel;
use crate::conversion::hashing::hash_phone;
use crate::lenient::RawItem;
use crate::redact::safe_json_error;
use crate::signal::{
    AdReferral, MAX_FLOW_FIELD_DEPTH, OrderItem, RawKind, RejectReason, Rejected, SIGNAL_VERSION,
    Signal, SignalEvent, Split, UserRef, depth,
};
use model::{
    AutomaticCustomData, AutomaticEvent, Change, ChangeValue, Contact, Entry, Message, MessageType,
    NfmReply, WHATSAPP_OBJECT,
};

/// The user a message comes from: the message's own fields, the matching contact filling gaps.
fn user_of(message: &Message, contacts: &[Contact]) -> UserRef {
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

/// An order line as sent, its numbers read in its currency (see [`crate::conversion::money`]).
fn order_item(item: Option<&model::ProductItem>) -> OrderItem {
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
        quantity: item
            .quantity
            .as_ref()
            .and_then(|q| crate::conversion::money::amount(q, None)),
        item_price: item
            .item_price
            .as_ref()
            .and_then(|p| crate::conversion::money::amount(p, currency)),
        currency: currency.map(str::to_owned),
    }
}

/// Text bodies longer than this (WhatsApp's own limit for a text message) are cut to it: a
/// signal always fits a queue message, and rules only read the start of a text.
pub const MAX_TEXT_CHARS: usize = 4096;

/// Flow field string values longer than this are cut to it.
pub const MAX_FLOW_VALUE_CHARS: usize = 4096;

/// Flow fields beyond this many bytes (serialised, in key order) are left out and counted.
pub const MAX_FLOW_FIELDS_BYTES: usize = 64 * 1024;

/// Order lines beyond this many make the order unreadable (its value is not computed).
pub const MAX_ORDER_LINES: usize = 1000;

/// Splits the entries of a WhatsApp webhook into signals, in webhook order (the envelope was
/// read by [`crate::channels::split`]).
///
/// A malformed entry, change or item is returned in [`Split::rejected`] instead, so the rest of
/// the webhook still flows. `null` entries, changes, messages and events are absent.
pub fn split_entries(entries: &[RawItem<'_>]) -> Split {
    let mut out = Split::default();
    for raw_entry in entries {
        let entry: Entry<'_> = match serde_json::from_str(raw_entry.get()) {
            Ok(entry) => entry,
            Err(e) => {
                out.rejected.push(Rejected {
                    account_id: String::new(),
                    reason: RejectReason::BadEntry(safe_json_error(&e)),
                    kind: RawKind::Envelope,
                    raw: envelope(raw_entry.get()),
                });
                continue;
            }
        };
        for raw_change in &entry.changes {
            split_change(&entry.id, raw_change, &mut out);
        }
    }
    out
}

fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

/// An envelope holding one raw entry.
fn envelope(raw_entry: &str) -> String {
    format!(r#"{{"object":"{WHATSAPP_OBJECT}","entry":[{raw_entry}]}}"#)
}

/// An envelope holding one raw change of `waba_id`'s entry.
fn change_envelope(waba_id: &str, raw_change: &str) -> String {
    let id = serde_json::Value::from(waba_id);
    envelope(&format!(r#"{{"id":{id},"changes":[{raw_change}]}}"#))
}

fn split_change(waba_id: &str, raw_change: &RawItem<'_>, out: &mut Split) {
    let bad_change = |e: &serde_json::Error| Rejected {
        account_id: waba_id.to_owned(),
        reason: RejectReason::BadChange(safe_json_error(e)),
        kind: RawKind::Envelope,
        raw: change_envelope(waba_id, raw_change.get()),
    };
    let change: Change<'_> = match serde_json::from_str(raw_change.get()) {
        Ok(change) => change,
        Err(e) => return out.rejected.push(bad_change(&e)),
    };
    if change.field != "messages" && change.field != "automatic_events" {
        out.ignored_changes += 1;
        return;
    }
    let Some(raw_value) = change.value.filter(|v| !is_null(v)) else {
        return;
    };
    let value: ChangeValue<'_> = match serde_json::from_str(raw_value.get()) {
        Ok(value) => value,
        Err(e) => return out.rejected.push(bad_change(&e)),
    };
    out.statuses += value.statuses.len();
    out.errors += value.errors.len();
    let phone_number_id = value
        .metadata
        .as_ref()
        .and_then(|m| m.phone_number_id.clone());
    let reject = |reason: RejectReason, raw: &str| Rejected {
        account_id: waba_id.to_owned(),
        reason,
        kind: RawKind::Item,
        raw: raw.to_owned(),
    };
    for raw in &value.messages {
        match serde_json::from_str::<Message>(raw.get()) {
            Ok(message) => {
                let signal =
                    message_signal(waba_id, phone_number_id.as_ref(), &value.contacts, message);
                out.flow_fields_dropped += signal.1;
                out.signals.push(signal.0);
            }
            Err(e) => out.rejected.push(reject(
                RejectReason::BadMessage(safe_json_error(&e)),
                raw.get(),
            )),
        }
    }
    for raw in &value.automatic_events {
        match serde_json::from_str::<AutomaticEvent>(raw.get()) {
            Ok(event) => {
                out.signals
                    .push(automatic_signal(waba_id, phone_number_id.as_ref(), event))
            }
            Err(e) => out.rejected.push(reject(
                RejectReason::BadAutomaticEvent(safe_json_error(&e)),
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
        Ok(message) => Ok(message_signal(waba_id, None, &[], message).0),
        Err(message_err) => match serde_json::from_str::<AutomaticEvent>(raw) {
            Ok(event) => Ok(automatic_signal(waba_id, None, event)),
            Err(_) => Err(RejectReason::BadMessage(safe_json_error(&message_err))),
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
        channel: Channel::Whatsapp,
        account_id: waba_id.to_owned(),
        phone_number_id: phone_number_id.cloned(),
        timestamp: event.timestamp,
        user: UserRef::default(),
        referral: None,
        event: SignalEvent::AutomaticEvent {
            event_name: event.event_name,
            ctwa_clid: event.ctwa_clid,
            custom_data: event
                .custom_data
                .filter(|c| *c != AutomaticCustomData::EMPTY),
        },
    }
}

/// A message's signal, and how many Flow fields were left out of it.
fn message_signal(
    waba_id: &str,
    phone_number_id: Option<&String>,
    contacts: &[Contact],
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
            Some(i) => {
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
                let reply_id =
                    |r: &Option<crate::channels::whatsapp::model::Reply>| r.as_ref()?.id.clone();
                match (
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
                }
            }
            None => other(kind),
        },
        MessageType::System => match &message.system {
            Some(system) => SignalEvent::IdentityChanged {
                change: system.kind.clone().unwrap_or_default(),
                new: {
                    let phone = system
                        .wa_id
                        .as_deref()
                        .or(system.new_wa_id.as_deref())
                        .and_then(hash_phone);
                    UserRef {
                        scoped_id: None,
                        bsuid: non_empty(system.user_id.as_deref()).map(str::to_owned),
                        parent_bsuid: non_empty(system.parent_user_id.as_deref())
                            .map(str::to_owned),
                        ph_e164: phone.as_ref().map(|p| p.e164.clone()),
                        ph: phone.map(|p| p.digits),
                    }
                },
                previous_bsuid: non_empty(system.previous_user_id.as_deref()).map(str::to_owned),
                previous_parent_bsuid: non_empty(system.previous_parent_user_id.as_deref())
                    .map(str::to_owned),
            },
            None => other(kind),
        },
        MessageType::Other(_) => other(kind),
    };
    (event, 0)
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

/// An order's lines; past [`MAX_ORDER_LINES`] one unreadable line stands for the rest, so the
/// order's value is not computed from a part of it.
fn order_items(lines: &[Option<model::ProductItem>]) -> Vec<OrderItem> {
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

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::split;

    fn webhook(messages: &str) -> Vec<u8> {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messages":[{messages}]}}}}]}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn flow_fields_nested_too_deep_are_dropped_and_the_signal_stays_readable() {
        let deep = format!("{}1{}", "[".repeat(126), "]".repeat(126));
        let response = serde_json::json!({"flow_token": "t", "email": "a@b.co", "deep": serde_json::from_str::<Value>(&deep).unwrap()}).to_string();
        let message = serde_json::json!({"from": "16505551234", "id": "w", "timestamp": "1750096325",
            "type": "interactive", "interactive": {"type": "nfm_reply",
            "nfm_reply": {"name": "flow", "response_json": response}}});
        let split = split(&webhook(&message.to_string())).unwrap();
        assert_eq!(split.flow_fields_dropped, 1);
        let signal = &split.signals[0];
        let SignalEvent::FlowReply { fields, .. } = &signal.event else {
            panic!("a flow reply");
        };
        assert!(fields.contains_key("email") && !fields.contains_key("deep"));
        let text = serde_json::to_string(signal).unwrap();
        assert_eq!(&serde_json::from_str::<Signal>(&text).unwrap(), signal);
    }

    #[test]
    fn an_identity_change_queues_in_the_new_identity_s_group() {
        let change = r#"{"id":"s","timestamp":"1750096600","type":"system","system":{"type":"user_changed_user_id","user_id":"BR.new","previous_user_id":"BR.old"}}"#;
        let order = r#"{"from_user_id":"BR.new","id":"o","timestamp":"1750096700","type":"order","order":{"product_items":[]}}"#;
        let split = split(&webhook(&format!("{change},{order}"))).unwrap();
        let [change, order] = split.signals.as_slice() else {
            panic!("two signals");
        };
        assert_eq!(change.group_id(), order.group_id());
        let [sender, previous] = change.previous_identities();
        assert!(sender.is_empty());
        assert_eq!(previous.bsuid.as_deref(), Some("BR.old"));
    }

    #[test]
    fn business_dedup_ids_are_scoped_like_event_ids() {
        let event = |name: crate::meta::capi::EventName, waba: &str| Signal {
            v: SIGNAL_VERSION,
            id: "business:deal-4471".into(),
            channel: Channel::Whatsapp,
            account_id: waba.into(),
            phone_number_id: None,
            timestamp: 1,
            user: UserRef::default(),
            referral: None,
            event: SignalEvent::Business {
                event_name: name,
                idempotency_key: "deal-4471".into(),
                custom_data: None,
                user_data: Default::default(),
                tiktok_lead_id: None,
            },
        };
        use crate::meta::capi::EventName::{Purchase, QualifiedLead};
        assert_eq!(
            event(Purchase, "1").dedup_id(),
            event(Purchase, "1").dedup_id()
        );
        assert_ne!(
            event(Purchase, "1").dedup_id(),
            event(QualifiedLead, "1").dedup_id()
        );
        assert_ne!(
            event(Purchase, "1").dedup_id(),
            event(Purchase, "2").dedup_id()
        );
    }

    #[test]
    fn order_lines_are_read_in_their_currency_and_unreadable_ones_leave_a_hole() {
        let order = r#"{"from":"1","id":"o","timestamp":"1750096700","type":"order","order":{"product_items":[
            {"product_retailer_id":"a","quantity":"2","item_price":"1.299","currency":"EUR"},
            {"product_retailer_id":"b","quantity":1,"item_price":"1.299","currency":"KWD"},
            "not a line", null, {}]}}"#;
        let split = split(&webhook(order)).unwrap();
        let SignalEvent::Order { items, .. } = &split.signals[0].event else {
            panic!("an order");
        };
        let prices: Vec<Option<f64>> = items.iter().map(|i| i.item_price).collect();
        // "not a line" and {} leave holes: the order has no computable value.
        assert_eq!(prices, [Some(1299.0), Some(1.299), None, None]);
        assert_eq!(items[0].quantity, Some(2.0));
    }
}
