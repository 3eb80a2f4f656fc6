//! Where a conversion goes: the ad platform the user came from. A user's latest ad touch
//! decides it (a Meta referral, or a TikTok ad's prefilled first message), so a user's data
//! never reaches a platform the user did not come from.

use serde::{Deserialize, Serialize};

/// An ad platform wacapi reports conversions to.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Destination {
    /// Meta's Conversions API for business messaging.
    #[default]
    Meta,
    /// TikTok's Events API.
    #[serde(rename = "tiktok")]
    TikTok,
}

impl Destination {
    /// The name in metrics, output lines and stored clicks.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Meta => "meta",
            Self::TikTok => "tiktok",
        }
    }

    /// True for Meta (stored clicks leave the default out, so earlier clicks read as Meta's).
    pub fn is_meta(&self) -> bool {
        *self == Self::Meta
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Destination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "meta" => Ok(Self::Meta),
            "tiktok" => Ok(Self::TikTok),
            other => Err(format!("{other:?} is not a destination (meta, tiktok)")),
        }
    }
}
