//! The channels signals come from, one module each: a webhook body is read as the [`envelope`]
//! every channel shares and routed by its `object` to the channel that understands it
//! ([`whatsapp`]; [`messenger`] for Messenger and Instagram Direct, which share one webhook
//! shape), which splits its entries into [`Signal`](crate::signal::Signal)s.

pub mod envelope;
pub mod instagram;
pub mod messenger;
pub mod whatsapp;

pub use crate::model::Channel;
use crate::signal::{EnvelopeError, Split};

/// Parses a verified webhook body and splits it into signals, in webhook order, by the channel
/// its `object` names: `whatsapp_business_account`, `page` (Messenger) or `instagram`. A
/// message that appears twice in the body (on WhatsApp's `messages` and `standby` fields, say)
/// is one signal (see [`Split::dedup`]).
pub fn split(body: &[u8]) -> Result<Split, EnvelopeError> {
    let envelope: envelope::Webhook<'_> = serde_json::from_slice(body)
        .map_err(|e| EnvelopeError::NotAnEnvelope(crate::redact::safe_json_error(&e)))?;
    let mut split = match envelope.object.as_str() {
        whatsapp::model::WHATSAPP_OBJECT => whatsapp::split_entries(&envelope.entry),
        messenger::PAGE_OBJECT => messenger::split_entries(Channel::Messenger, &envelope.entry),
        instagram::INSTAGRAM_OBJECT => {
            messenger::split_entries(Channel::Instagram, &envelope.entry)
        }
        other => return Err(EnvelopeError::WrongObject(other.chars().count())),
    };
    split.dedup();
    Ok(split)
}
