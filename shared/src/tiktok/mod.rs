//! TikTok as a destination: the Events API 2.0 model ([`events`]), a conversion built into its
//! event ([`build`]), an account's event set with its configuration and the checks the rules
//! must pass to reach it ([`event_set`]), and its HTTP client with TikTok's error
//! classification ([`client`]). A chat reaches TikTok only when the user's latest ad touch was
//! a TikTok ad: WhatsApp's webhook carries no TikTok click id, so the touch is the prefilled
//! first message the ad puts in the user's composer, matched by the account's
//! `first_message_pattern`; a CRM event naming a TikTok lead is a touch of its own.

pub mod build;
pub mod client;
pub mod event_set;
pub mod events;

use crate::delivery::Profile;

/// The metric names of TikTok's delivery (the contract with `infra/`).
pub mod metric_names {
    /// TikTok Events API requests made.
    pub const TIKTOK_REQUESTS: &str = "TikTokRequests";
    /// TikTok Events API errors; dimension `Code`.
    pub const TIKTOK_ERRORS: &str = "TikTokErrors";
    /// TikTok refused the access token or its permissions: an alarm.
    pub const TIKTOK_AUTH_ERRORS: &str = "TikTokAuthErrors";
}

/// How TikTok's deliveries are named in metrics, logs and dead-letter moves. TikTok's code 0
/// takes the whole request, so its answers never count fewer events than were sent.
pub const PROFILE: Profile = Profile {
    api: "TikTok Events API",
    requests: metric_names::TIKTOK_REQUESTS,
    errors: metric_names::TIKTOK_ERRORS,
    needs_operator: metric_names::TIKTOK_AUTH_ERRORS,
    version_warnings: None,
    receipt_mismatches: None,
    receipt_mismatch_reason: "tiktok_receipt_mismatch",
    receipt_attributes: [
        "wacapi_tiktok_events_received",
        "wacapi_tiktok_events_sent",
        client::attributes::REQUEST_ID,
    ],
};
