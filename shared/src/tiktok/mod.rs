//! TikTok as a destination: the Events API 2.0 model ([`events`]) and its HTTP client
//! ([`client`]). A chat reaches TikTok only when the user's latest ad touch was a TikTok ad:
//! WhatsApp's webhook carries no TikTok click id, so the touch is the prefilled first message
//! the ad puts in the user's composer, matched by the account's `first_message_pattern`.

pub mod client;
pub mod events;
