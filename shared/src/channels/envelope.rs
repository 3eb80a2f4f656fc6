//! The webhook envelope every channel shares: Meta writes each webhook body as
//! `{"object": ..., "entry": [...]}`, whatever the product. [`crate::channels::split`] reads only
//! this much to route a body by its `object`; each channel then reads its own entries (see
//! [`crate::channels::whatsapp::model`] and [`crate::channels::messenger`]). A quarantined entry
//! is kept in an envelope of its own ([`one_entry`]), so a redrive re-reads it as a webhook.

use serde::Deserialize;

use crate::lenient::{self, RawItem};

/// The top-level webhook body of any channel.
#[derive(Debug, Deserialize)]
pub struct Webhook<'a> {
    /// The product the body comes from: `whatsapp_business_account`, `page` (Messenger) or
    /// `instagram`.
    pub object: String,
    /// The entries, one per account, each kept raw until its channel parses it by itself (so one
    /// malformed entry never sinks its neighbours and its exact bytes can be quarantined).
    #[serde(default, borrow, deserialize_with = "lenient::list")]
    pub entry: Vec<RawItem<'a>>,
}

/// A webhook body of `object` holding one raw entry, as written.
pub fn one_entry(object: &str, raw_entry: &str) -> String {
    format!(r#"{{"object":"{object}","entry":[{raw_entry}]}}"#)
}
