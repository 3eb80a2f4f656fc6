//! One Meta-detected conversion (an `automatic_events[]` item) into a signal. The event names no
//! user; its value data is carried as the signal's own type ([`AutomaticCustomData`]), converted
//! here from WhatsApp's model, so the queue format never follows the webhook model.

use super::model::{AutomaticEvent, EventCustomData};
use crate::model::Channel;
use crate::signal::{AutomaticCustomData, SIGNAL_VERSION, Signal, SignalEvent, UserRef};

/// The signal of an automatic event detected on a message to `waba_id`'s number.
pub(super) fn automatic_signal(
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
            custom_data: event.custom_data.and_then(custom_data),
        },
    }
}

/// The value data a signal carries for an event's `custom_data`: none when Meta sent neither a
/// currency nor a value (`custom_data: {}` is the same as no custom data).
fn custom_data(data: EventCustomData) -> Option<AutomaticCustomData> {
    let EventCustomData { currency, value } = data;
    (currency.is_some() || value.is_some()).then_some(AutomaticCustomData { currency, value })
}
