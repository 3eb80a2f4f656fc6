//! Instagram Direct: the same webhook shape as Messenger (see [`super::messenger`]) under
//! `object = instagram`, from Instagram-scoped user ids (IGSID) to the Instagram professional
//! account. What differs is the CAPI side: `user_data` names the account and the user with
//! Instagram's keys ([`crate::meta::capi::INSTAGRAM_ACCOUNT_KEY`],
//! [`crate::meta::capi::INSTAGRAM_USER_KEY`]), and Purchase optimisation is not offered for
//! Instagram (the configuration check warns).

/// The `object` of every Instagram webhook.
pub const INSTAGRAM_OBJECT: &str = "instagram";
