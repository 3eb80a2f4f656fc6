//! Redrive: one quarantined WhatsApp item (a `messages[]` or `automatic_events[]` element kept in
//! the dead-letter queue) read again as a signal after a fix, as what it was in its webhook.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::automatic::automatic_signal;
use super::message::{Contacts, message_signal};
use super::model::{AutomaticEvent, Message};
use crate::lenient::read_salvaged;
use crate::redact::safe_json_error;
use crate::signal::{ItemKind, RejectReason, Signal};

/// Re-reads one quarantined webhook item (a `messages[]` or `automatic_events[]` element) as a
/// signal, for items redriven from the dead-letter queue after a fix. The envelope is gone, so
/// the user is known only from the message's own `from`/`from_user_id`.
///
/// `kind` is what the item was in its webhook (the quarantine's `wacapi_item_kind` attribute):
/// it is read as that and nothing else, so an automatic event that still lacks its
/// `event_name` is refused again as an automatic event, never read as a message. An item
/// quarantined before the attribute existed (`None`) is told by its keys: an item with no
/// `type`, `from` or `from_user_id` and with an `event_name`, `ctwa_clid` or `custom_data` is an
/// automatic event; any other is read as a message first, as it always was.
pub fn signal_from_item(
    waba_id: &str,
    raw: &str,
    kind: Option<ItemKind>,
) -> Result<Signal, RejectReason> {
    let as_event = || {
        read_salvaged::<AutomaticEvent>(raw)
            .map(|(event, _)| automatic_signal(waba_id, None, event))
            .map_err(|e| RejectReason::BadAutomaticEvent(safe_json_error(&e)))
    };
    let as_message = || {
        read_salvaged::<Message>(raw)
            .map(|(message, _)| message_signal(waba_id, None, &Contacts::none(), message).0)
            .map_err(|e| RejectReason::BadMessage(safe_json_error(&e)))
    };
    match kind {
        Some(ItemKind::AutomaticEvent) => as_event(),
        Some(ItemKind::Message) => as_message(),
        None => match guess_item_kind(raw) {
            ItemKind::AutomaticEvent => as_event(),
            // As such items were always read: a message, else an automatic event.
            ItemKind::Message => {
                as_message().or_else(|message_err| as_event().map_err(|_| message_err))
            }
        },
    }
}

/// The keys that tell an old quarantined item's kind.
#[derive(Deserialize)]
struct KindKeys {
    #[serde(rename = "type", default)]
    kind: Option<IgnoredAny>,
    #[serde(default)]
    from: Option<IgnoredAny>,
    #[serde(default)]
    from_user_id: Option<IgnoredAny>,
    #[serde(default)]
    event_name: Option<IgnoredAny>,
    #[serde(default)]
    ctwa_clid: Option<IgnoredAny>,
    #[serde(default)]
    custom_data: Option<IgnoredAny>,
}

/// The kind of an item quarantined without its kind recorded, told by its keys.
fn guess_item_kind(raw: &str) -> ItemKind {
    let Ok((keys, _)) = read_salvaged::<KindKeys>(raw) else {
        return ItemKind::Message;
    };
    let message_keys = keys.kind.is_some() || keys.from.is_some() || keys.from_user_id.is_some();
    let event_keys =
        keys.event_name.is_some() || keys.ctwa_clid.is_some() || keys.custom_data.is_some();
    if event_keys && !message_keys {
        ItemKind::AutomaticEvent
    } else {
        ItemKind::Message
    }
}
