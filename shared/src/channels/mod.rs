//! The channels signals come from, one module each: a webhook body is routed by its `object` to
//! the channel that understands it ([`whatsapp`]; [`messenger`] for Messenger and Instagram
//! Direct, which share one webhook shape), which splits it into [`Signal`](crate::signal::Signal)s.

pub mod instagram;
pub mod messenger;
pub mod whatsapp;

use serde::{Deserialize, Serialize};

use crate::signal::{EnvelopeError, Split};

/// A messaging channel: where a conversation happens, and the CAPI `messaging_channel` of its
/// events.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// WhatsApp (Click-to-WhatsApp ads).
    #[default]
    Whatsapp,
    /// Facebook Messenger (Click-to-Messenger ads).
    Messenger,
    /// Instagram Direct (Click-to-Instagram-Direct ads).
    Instagram,
}

impl Channel {
    /// Every channel.
    pub const ALL: [Channel; 3] = [Self::Whatsapp, Self::Messenger, Self::Instagram];

    /// The CAPI `messaging_channel` value (and the configuration's name).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Whatsapp => "whatsapp",
            Self::Messenger => "messenger",
            Self::Instagram => "instagram",
        }
    }

    /// What the channel's account id names, for messages to operators.
    pub fn account_noun(self) -> &'static str {
        match self {
            Self::Whatsapp => "WABA",
            Self::Messenger => "Page",
            Self::Instagram => "Instagram account",
        }
    }

    /// True for WhatsApp (signals leave the default out, so WhatsApp signals read as before).
    pub fn is_whatsapp(&self) -> bool {
        *self == Self::Whatsapp
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a channel (whatsapp, messenger, instagram)"))
    }
}

/// Parses a verified webhook body and splits it into signals, in webhook order, by the channel
/// its `object` names: `whatsapp_business_account`, `page` (Messenger) or `instagram`. A
/// message that appears twice in the body (on WhatsApp's `messages` and `standby` fields, say)
/// is one signal (see [`Split::dedup`]).
pub fn split(body: &[u8]) -> Result<Split, EnvelopeError> {
    let envelope: whatsapp::model::Webhook<'_> = serde_json::from_slice(body)
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
