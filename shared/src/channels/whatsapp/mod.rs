//! WhatsApp Cloud API webhooks (`object = whatsapp_business_account`) into signals: one per
//! message and per automatic event, the phone number hashed here at the edge; ad creative,
//! media ids and profile names dropped. [`model`] is the lenient serde model of the entries.
//!
//! Messages come on the `messages` field, or on `standby` when Meta Business Agent is the
//! number's active handler (Standby webhooks, Aug 4, 2026): then the app listens passively and
//! the user's messages, the agent's replies (`message_echoes`) and their receipts arrive one level
//! deeper, under `value.standby`; a flat `value.messages` on that field is read too. Echoes, and
//! any message from the business's own number, are the business talking: counted, never
//! signals. Every other documented field is ignored by name ([`IGNORED_FIELDS`]), an unknown one
//! as `unknown`: none is ever dead-lettered.
//!
//! This file reads the entries and changes of a webhook and counts what is no signal; one
//! message becomes a signal in `message.rs`, one automatic event in `automatic.rs`, and a
//! quarantined item is read again in `redrive.rs` ([`signal_from_item`]).

mod automatic;
mod message;
pub mod model;
mod redrive;

use serde_json::value::RawValue;

use crate::channels::envelope::one_entry;
use crate::lenient::RawItem;
use crate::redact::safe_json_error;
use crate::signal::{ItemKind, RawKind, RejectReason, Rejected, Split, UNKNOWN};
use automatic::automatic_signal;
use message::{Contacts, message_signal};
use model::{AutomaticEvent, Change, ChangeValue, Contact, Entry, Message, WHATSAPP_OBJECT};
pub use redrive::signal_from_item;

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
        let salvaged;
        let entry: Entry<'_> = match serde_json::from_str(raw_entry.get()) {
            Ok(entry) => entry,
            Err(e) => match salvaged_text(raw_entry.get()) {
                Some((text, dropped)) => {
                    salvaged = text;
                    match serde_json::from_str(&salvaged) {
                        Ok(entry) => {
                            out.unreadable_parts += dropped;
                            entry
                        }
                        Err(_) => {
                            out.rejected.push(bad_entry(raw_entry.get(), &e));
                            continue;
                        }
                    }
                }
                None => {
                    out.rejected.push(bad_entry(raw_entry.get(), &e));
                    continue;
                }
            },
        };
        for raw_change in &entry.changes {
            split_change(&entry.id, raw_change, &mut out);
        }
    }
    out
}

/// An entry that is not one (not an object, no WABA id), kept whole in an envelope.
fn bad_entry(raw_entry: &str, e: &serde_json::Error) -> Rejected {
    Rejected {
        account_id: String::new(),
        reason: RejectReason::BadEntry(safe_json_error(e)),
        kind: RawKind::Envelope,
        raw: envelope(raw_entry),
    }
}

/// What [`crate::lenient::salvage`] keeps of a part that could not be read as it came.
fn salvaged_text(raw: &str) -> Option<(String, usize)> {
    crate::lenient::salvage(raw)
}

/// Reads an item as `T`, salvaged when it cannot be read as it came (see
/// [`crate::lenient::read_salvaged`]), its unreadable parts counted.
fn read_item<T: serde::de::DeserializeOwned>(
    raw: &str,
    out: &mut Split,
) -> Result<T, serde_json::Error> {
    let (item, dropped) = crate::lenient::read_salvaged(raw)?;
    out.unreadable_parts += dropped;
    Ok(item)
}

fn is_null(raw: &RawValue) -> bool {
    raw.get().trim() == "null"
}

/// An envelope holding one raw entry.
fn envelope(raw_entry: &str) -> String {
    one_entry(WHATSAPP_OBJECT, raw_entry)
}

/// An envelope holding one raw change of `waba_id`'s entry.
fn change_envelope(waba_id: &str, raw_change: &str) -> String {
    let id = serde_json::Value::from(waba_id);
    envelope(&format!(r#"{{"id":{id},"changes":[{raw_change}]}}"#))
}

/// The webhook fields whose changes become signals: inbound messages (on `messages`, and on
/// `standby` while Meta Business Agent is the number's active handler) and the conversions
/// Meta detects (`automatic_events`).
pub const SIGNAL_FIELDS: [&str; 3] = ["messages", "standby", "automatic_events"];

/// Every other WhatsApp webhook field Meta documents, ignored by name: account, template,
/// number, payment and security notices; calls and call settings; Flows health; group
/// administration; coexistence (`smb_message_echoes` are the business's own messages sent from
/// the WhatsApp Business app, `smb_app_state_sync` its contacts, `history` past chats, the
/// business's messages among them); user preferences (marketing opt-out); thread handovers
/// between the app and Meta Business Agent (`messaging_handovers`, no message in it); echoes
/// of the business's messages. None carries a user's conversion moment. A field not listed is
/// counted as [`UNKNOWN`] and ignored all the same.
// Sources (docs/meta-reference.md has the table): WhatsApp › Webhooks overview, the 19-field
// table (Apr 29, 2026); Calling API reference (calls, Jun 26, 2026); Configure call settings
// (account_settings_update, Jun 26, 2026); Flows webhooks (flows, Jun 16, 2026); Webhooks for
// Groups API (group_*, May 21, 2026); Business-scoped user IDs (business_username_updates,
// user_id_update, Jun 29, 2026; withdrawn Aug 11, 2026); Webhook overrides (message_echoes,
// consumer_profile, Jun 28, 2026); messaging_handovers reference (Sep 22, 2026).
pub const IGNORED_FIELDS: &[&str] = &[
    "account_alerts",
    "account_review_update",
    "account_settings_update",
    "account_update",
    "business_capability_update",
    "business_username_updates",
    "calls",
    "consumer_profile",
    "flows",
    "group_lifecycle_update",
    "group_participants_update",
    "group_settings_update",
    "group_status_update",
    "history",
    "message_echoes",
    "message_template_components_update",
    "message_template_quality_update",
    "message_template_status_update",
    "messaging_handovers",
    "partner_solutions",
    "payment_configuration_update",
    "phone_number_name_update",
    "phone_number_quality_update",
    "security",
    "smb_app_state_sync",
    "smb_message_echoes",
    "template_category_update",
    "user_id_update",
    "user_preferences",
];

/// [`Split::ignored`] name of delivery and read receipts (`statuses[]`).
pub const STATUSES: &str = "statuses";
/// [`Split::ignored`] name of errors Meta reports at the change level (`errors[]`).
pub const ERRORS: &str = "errors";
/// [`Split::ignored`] name of echoes of the business's side (`message_echoes[]`).
pub const MESSAGE_ECHOES: &str = "message_echoes";
/// [`Split::ignored`] name of marketing-message link clicks (`user_actions[]`).
pub const USER_ACTIONS: &str = "user_actions";
/// [`Split::ignored`] name of messages sent from the business's own number (its
/// `metadata.display_phone_number`): the business talking, never a user's conversion.
pub const OWN_MESSAGES: &str = "own_messages";

/// The name a field is counted under: its own when listed, else [`UNKNOWN`].
fn field_kind(field: &str) -> &'static str {
    IGNORED_FIELDS
        .iter()
        .chain(&SIGNAL_FIELDS)
        .find(|f| **f == field)
        .copied()
        .unwrap_or(UNKNOWN)
}

fn split_change(waba_id: &str, raw_change: &RawItem<'_>, out: &mut Split) {
    let bad_change = |reason: String| Rejected {
        account_id: waba_id.to_owned(),
        reason: RejectReason::BadChange(reason),
        kind: RawKind::Envelope,
        raw: change_envelope(waba_id, raw_change.get()),
    };
    let salvaged;
    let change: Change<'_> = match serde_json::from_str(raw_change.get()) {
        Ok(change) => change,
        Err(e) => match salvaged_text(raw_change.get()) {
            Some((text, dropped)) => {
                salvaged = text;
                match serde_json::from_str(&salvaged) {
                    Ok(change) => {
                        out.unreadable_parts += dropped;
                        change
                    }
                    Err(_) => return out.rejected.push(bad_change(safe_json_error(&e))),
                }
            }
            None => return out.rejected.push(bad_change(safe_json_error(&e))),
        },
    };
    let raw_value = change.value.filter(|v| !is_null(v));
    let field = match change.field.as_deref() {
        Some(field) if !SIGNAL_FIELDS.contains(&field) => {
            out.ignore(field_kind(field));
            return;
        }
        Some(field) => field,
        None => {
            // No usable field: the value says what it is, or nothing in it is a conversation.
            let value =
                raw_value.and_then(|raw| serde_json::from_str::<ChangeValue<'_>>(raw.get()).ok());
            match value.as_ref().map(unnamed_field) {
                Some(Unnamed::Field(field)) => field,
                Some(Unnamed::Unreadable) => {
                    return out
                        .rejected
                        .push(bad_change(NO_FIELD_WITH_CONVERSATIONS.to_owned()));
                }
                Some(Unnamed::Nothing) | None => {
                    out.ignore(NO_FIELD);
                    return;
                }
            }
        }
    };
    let Some(raw_value) = raw_value else {
        return;
    };
    let value: ChangeValue<'_> = match serde_json::from_str(raw_value.get()) {
        Ok(value) => value,
        Err(e) => return out.rejected.push(bad_change(safe_json_error(&e))),
    };
    let metadata = value.metadata.as_ref();
    let to = Recipient {
        waba_id,
        phone_number_id: metadata.and_then(|m| m.phone_number_id.as_ref()),
        business_number: metadata
            .and_then(|m| m.display_phone_number.as_deref())
            .map(digits)
            .filter(|d| !d.is_empty()),
    };
    split_parts(&to, &value, &value.contacts, out);
    // Meta Business Agent's numbers: the same parts one level deeper. An empty or unreadable
    // `standby` holds nothing (Meta's own page shows `"standby": {}`).
    if field == "standby"
        && let Some(nested) = value
            .standby
            .filter(|v| !is_null(v))
            .and_then(|raw| serde_json::from_str::<ChangeValue<'_>>(raw.get()).ok())
    {
        let contacts = if nested.contacts.is_empty() {
            &value.contacts
        } else {
            &nested.contacts
        };
        split_parts(&to, &nested, contacts, out);
    }
}

/// [`Split::ignored`] name of a change without a usable `field` (absent, `null`, empty, not a
/// string) whose value holds no conversation: nothing in it could become a signal.
pub const NO_FIELD: &str = "no_field";

/// Why a change without a usable `field` that holds conversations is dead-lettered.
const NO_FIELD_WITH_CONVERSATIONS: &str = "change has no usable field, and its value holds messages or automatic events without the metadata of a messages value";

/// What a change without a usable `field` is read as.
enum Unnamed {
    /// The signal field its value has the shape of.
    Field(&'static str),
    /// It holds conversations, but not in the shape of a signal field's value: kept for an
    /// operator (dead-lettered) rather than read as something it may not be.
    Unreadable,
    /// Nothing in it is a conversation: counted as [`NO_FIELD`].
    Nothing,
}

/// The field a value without one is read as. A value of the `messages`, `standby` or
/// `automatic_events` fields always names the business number it reached (`metadata`), and
/// holds messages (flat, or nested under `standby`) or automatic events: such a value is read
/// as `standby` when it nests one, else as `messages` (whose reading also takes its automatic
/// events). Conversations without that metadata could be the business's own (echoes, history)
/// and are not guessed at; a value holding no conversation is only counted.
fn unnamed_field(value: &ChangeValue<'_>) -> Unnamed {
    let nested = value.standby.filter(|v| !is_null(v));
    let conversations =
        !value.messages.is_empty() || !value.automatic_events.is_empty() || nested.is_some();
    match (conversations, value.metadata.is_some()) {
        (false, _) => Unnamed::Nothing,
        (true, true) if nested.is_some() => Unnamed::Field("standby"),
        (true, true) => Unnamed::Field("messages"),
        (true, false) => Unnamed::Unreadable,
    }
}

/// The business side a change reached.
struct Recipient<'a> {
    waba_id: &'a str,
    phone_number_id: Option<&'a String>,
    /// The digits of the business's own number, when the change names it.
    business_number: Option<String>,
}

/// The digits of a phone number as written (`+1 555-078-3881` is `15550783881`).
fn digits(number: &str) -> String {
    number.chars().filter(char::is_ascii_digit).collect()
}

/// The signals and counts of one value's parts (a change's `value`, or the object its
/// `standby` nests).
fn split_parts(to: &Recipient<'_>, part: &ChangeValue<'_>, contacts: &[Contact], out: &mut Split) {
    let waba_id = to.waba_id;
    out.statuses += part.statuses.len();
    out.tally(STATUSES, part.statuses.len());
    out.errors += part.errors.len();
    out.tally(ERRORS, part.errors.len());
    for _ in &part.message_echoes {
        out.ignore(MESSAGE_ECHOES);
    }
    for _ in &part.user_actions {
        out.ignore(USER_ACTIONS);
    }
    let reject = |reason: RejectReason, raw: &str| Rejected {
        account_id: waba_id.to_owned(),
        kind: RawKind::Item(match reason {
            RejectReason::BadAutomaticEvent(_) => ItemKind::AutomaticEvent,
            _ => ItemKind::Message,
        }),
        reason,
        raw: raw.to_owned(),
    };
    // Indexed once per value (and only when it holds messages), never scanned per message.
    let contacts = if part.messages.is_empty() {
        Contacts::none()
    } else {
        Contacts::new(contacts)
    };
    for raw in &part.messages {
        match read_item::<Message>(raw.get(), out) {
            Ok(message) if is_own(&message, to.business_number.as_deref()) => {
                out.ignore(OWN_MESSAGES)
            }
            Ok(message) => {
                let signal = message_signal(waba_id, to.phone_number_id, &contacts, message);
                out.flow_fields_dropped += signal.1;
                out.signals.push(signal.0);
            }
            Err(e) => out.rejected.push(reject(
                RejectReason::BadMessage(safe_json_error(&e)),
                raw.get(),
            )),
        }
    }
    for raw in &part.automatic_events {
        match read_item::<AutomaticEvent>(raw.get(), out) {
            Ok(event) => out
                .signals
                .push(automatic_signal(waba_id, to.phone_number_id, event)),
            Err(e) => out.rejected.push(reject(
                RejectReason::BadAutomaticEvent(safe_json_error(&e)),
                raw.get(),
            )),
        }
    }
}

/// True for a message from the business's own number: its echo of what it (or an agent
/// answering for it) sent, never a user's conversion.
fn is_own(message: &Message, business_number: Option<&str>) -> bool {
    match (message.from.as_deref(), business_number) {
        (Some(from), Some(own)) => digits(from) == own,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::{MESSAGE_ECHOES, OWN_MESSAGES, STATUSES, USER_ACTIONS};
    use crate::channels::split;
    use crate::model::Channel;
    use crate::signal::{SIGNAL_VERSION, Signal, SignalEvent, UNKNOWN, UserRef};

    fn webhook(messages: &str) -> Vec<u8> {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"field":"messages","value":{{"messages":[{messages}]}}}}]}}]}}"#
        )
        .into_bytes()
    }

    fn changes(changes: &str) -> Vec<u8> {
        format!(
            r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{changes}]}}]}}"#
        )
        .into_bytes()
    }

    const METADATA: &str =
        r#""metadata":{"display_phone_number":"+1 555-078-3881","phone_number_id":"10"}"#;

    fn text(id: &str, from: &str) -> String {
        format!(
            r#"{{"from":"{from}","id":"{id}","timestamp":"1750096325","type":"text","text":{{"body":"hi"}}}}"#
        )
    }

    #[test]
    fn standby_messages_are_signals_nested_or_flat_and_echoes_are_not() {
        let nested = format!(
            r#"{{"field":"standby","value":{{{METADATA},"standby":{{"contacts":[{{"wa_id":"16505551234"}}],"messages":[{}],
                "message_echoes":[{{"id":"e","timestamp":"1750096326","message":{{"to":"16505551234","type":"text","text":{{"body":"ok"}}}}}}],
                "statuses":[{{"id":"e","status":"read","timestamp":"1750096327","recipient_id":"16505551234"}}]}}}}}}"#,
            text("wamid.nested", "16505551234")
        );
        let flat = format!(
            r#"{{"field":"standby","value":{{{METADATA},"messages":[{}]}}}}"#,
            text("wamid.flat", "16505551234")
        );
        let empty = format!(r#"{{"field":"standby","value":{{{METADATA},"standby":{{}}}}}}"#);
        let odd = format!(r#"{{"field":"standby","value":{{{METADATA},"standby":"x"}}}}"#);
        let split = split(&changes(&[nested, flat, empty, odd].join(","))).unwrap();
        assert!(split.rejected.is_empty(), "{:?}", split.rejected);
        let ids: Vec<&str> = split.signals.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["wamid.nested", "wamid.flat"]);
        let signal = &split.signals[0];
        assert_eq!(signal.phone_number_id.as_deref(), Some("10"));
        assert!(signal.user.ph.is_some(), "the nested contact is the sender");
        assert_eq!(split.ignored_of(MESSAGE_ECHOES), 1);
        assert_eq!((split.statuses, split.ignored_of(STATUSES)), (1, 1));
        assert_eq!(split.ignored_changes, 1, "the echo");
    }

    #[test]
    fn the_business_s_own_messages_are_no_signals() {
        let value = format!(
            r#"{{"field":"standby","value":{{{METADATA},"standby":{{"messages":[{},{}]}}}}}}"#,
            text("wamid.own", "15550783881"),
            text("wamid.user", "16505551234")
        );
        let split = split(&changes(&value)).unwrap();
        let ids: Vec<&str> = split.signals.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["wamid.user"]);
        assert_eq!(split.ignored_of(OWN_MESSAGES), 1);
    }

    #[test]
    fn a_message_on_messages_and_on_standby_is_one_signal() {
        let message = text("wamid.both", "16505551234");
        let on_messages =
            format!(r#"{{"field":"messages","value":{{{METADATA},"messages":[{message}]}}}}"#);
        let on_standby = format!(
            r#"{{"field":"standby","value":{{{METADATA},"standby":{{"messages":[{message}]}}}}}}"#
        );
        let split = split(&changes(&format!("{on_standby},{on_messages}"))).unwrap();
        assert_eq!(split.signals.len(), 1);
        assert_eq!(split.ignored_of(crate::signal::DUPLICATE), 1);
    }

    #[test]
    fn other_fields_are_ignored_by_name_whatever_their_shape() {
        let split = split(&changes(
            r#"{"field":"messaging_handovers","value":{"type":"control_passed","control_passed":{}}},
               {"field":"messaging_handovers","value":"odd"},
               {"field":"smb_message_echoes","value":{"message_echoes":[{"from":"15550783881","to":"1","id":"x","timestamp":"1","type":"text"}]}},
               {"field":"hologram_update","value":{}},
               {"field":"messages","value":{"user_actions":[{"action_type":"marketing_messages_link_click"}]}}"#,
        ))
        .unwrap();
        assert!(split.signals.is_empty() && split.rejected.is_empty());
        assert_eq!(split.ignored_of("messaging_handovers"), 2);
        assert_eq!(split.ignored_of("smb_message_echoes"), 1);
        assert_eq!(split.ignored_of(UNKNOWN), 1);
        assert_eq!(split.ignored_of(USER_ACTIONS), 1);
        assert_eq!(split.ignored_changes, 5);
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
        let event = |name: crate::model::EventName, waba: &str| Signal {
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
                lead_id: None,
            },
        };
        use crate::model::EventName::{Purchase, QualifiedLead};
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
