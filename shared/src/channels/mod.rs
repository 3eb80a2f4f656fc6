//! The channels signals come from, one module each: a webhook body is routed by its `object` to
//! the channel that understands it, which splits it into [`Signal`](crate::signal::Signal)s.

pub mod whatsapp;

use crate::signal::{EnvelopeError, Split};

/// Parses a verified webhook body and splits it into signals, in webhook order, by the channel
/// its `object` names. See [`whatsapp::split`].
pub fn split(body: &[u8]) -> Result<Split, EnvelopeError> {
    whatsapp::split(body)
}
