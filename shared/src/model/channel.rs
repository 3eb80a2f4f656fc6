//! The messaging channels a conversation happens on (and the `messaging_channel` of its
//! events): the bottom of the vocabulary, named by everything else.

use serde::{Deserialize, Serialize};

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
