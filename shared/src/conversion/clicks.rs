//! Click attribution storage: the latest ad click of each user, per account (WABA, Page or Instagram account), under hashed keys.
//!
//! A click is recorded under every identity the user showed (BSUID and hashed phone), so a later
//! message carrying only one of them still finds it. Lookups take the newest click across the
//! user's identities. Where automatic events are sent, a WhatsApp click is also kept under its
//! hashed click id, so an `automatic_events` item, which names the click (`ctwa_clid`) but
//! neither the user nor the ad, is reported under the ad that click came from. [`ClickStore`] is what [`crate::conversion::pipeline::Processor`] reads and writes: the
//! dispatcher gives it [`crate::store::BatchClicks`], one batch's view over the durable store
//! (DynamoDB, read and written once per batch); the CLI's replay uses [`MemoryClickStore`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::model::Channel;
use crate::model::Destination;
use crate::signal::{UserKey, UserRef};
use crate::values::hashing::sha256_hex;

/// An ad click: the referral of a Click-to-WhatsApp, Click-to-Messenger or Click-to-Instagram
/// ad.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Click {
    /// WhatsApp's click id, sent raw to Meta (Messenger and Instagram have none: their events
    /// are attributed by the scoped user id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ctwa_clid: Option<String>,
    /// The ad id (`referral.source_id` on WhatsApp, `referral.ad_id` elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ad_id: Option<String>,
    /// Unix seconds of the message that carried the click.
    pub clicked_at: i64,
    /// The channel the ad opened.
    #[serde(default, skip_serializing_if = "Channel::is_whatsapp")]
    pub channel: Channel,
    /// The platform of the ad: Meta (a referral), or TikTok (the prefilled first message).
    #[serde(default, skip_serializing_if = "Destination::is_meta")]
    pub destination: Destination,
}

impl Click {
    /// Whether this click replaces `stored` under "newest wins" (a tie replaces it too, as the
    /// DynamoDB condition `clicked_at <= :at` does).
    pub fn supersedes(&self, stored: &Click) -> bool {
        stored.clicked_at <= self.clicked_at
    }
}

/// A storage failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("store failed: {0}")]
pub struct StoreError(pub String);

/// The store key of one identity of a user under an account: a SHA-256, so stored keys reveal no
/// phone number or BSUID.
pub fn user_key(account_id: &str, key: UserKey<'_>) -> String {
    sha256_hex(format!("user\u{1f}{account_id}\u{1f}{}", key.tagged()).as_bytes())
}

/// The store key of a WhatsApp click id under an account (its WABA): a SHA-256 like [`user_key`], in its own
/// namespace.
pub fn click_id_key(account_id: &str, ctwa_clid: &str) -> String {
    sha256_hex(format!("clid\u{1f}{account_id}\u{1f}{ctwa_clid}").as_bytes())
}

/// Where clicks are kept.
pub trait ClickStore: Send + Sync {
    /// Records `click` for every identity of `user`, unless a newer click is already stored.
    fn record(
        &self,
        account_id: &str,
        user: &UserRef,
        click: &Click,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records `click` under its WhatsApp click id (a click without one is not recorded).
    /// Only worth its write where automatic events are sent: they are what looks clicks up by id.
    fn record_click_id(
        &self,
        account_id: &str,
        click: &Click,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The click recorded under the WhatsApp click id `ctwa_clid` (the one an automatic event
    /// names), if it is still stored.
    fn by_click_id(
        &self,
        account_id: &str,
        ctwa_clid: &str,
    ) -> impl Future<Output = Result<Option<Click>, StoreError>> + Send;

    /// The newest click stored for any identity of `user`.
    fn latest(
        &self,
        account_id: &str,
        user: &UserRef,
    ) -> impl Future<Output = Result<Option<Click>, StoreError>> + Send;
}

/// An in-memory click store (the CLI and tests).
#[derive(Debug, Default)]
pub struct MemoryClickStore {
    clicks: Mutex<HashMap<String, Click>>,
}

impl MemoryClickStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys hold a click.
    pub fn len(&self) -> usize {
        self.clicks.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// True when no click is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored key (tests check that no clear identity is used as a key).
    pub fn keys(&self) -> Vec<String> {
        self.clicks
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }
}

impl ClickStore for MemoryClickStore {
    async fn record(
        &self,
        account_id: &str,
        user: &UserRef,
        click: &Click,
    ) -> Result<(), StoreError> {
        let mut clicks = self
            .clicks
            .lock()
            .map_err(|_| StoreError("click store lock poisoned".into()))?;
        let keys = user.keys().map(|k| user_key(account_id, k));
        for key in keys {
            let entry = clicks.entry(key);
            match entry {
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    if click.supersedes(e.get()) {
                        e.insert(click.clone());
                    }
                }
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(click.clone());
                }
            }
        }
        Ok(())
    }

    async fn latest(&self, account_id: &str, user: &UserRef) -> Result<Option<Click>, StoreError> {
        let clicks = self
            .clicks
            .lock()
            .map_err(|_| StoreError("click store lock poisoned".into()))?;
        Ok(user
            .keys()
            .filter_map(|k| clicks.get(&user_key(account_id, k)))
            .max_by_key(|c| c.clicked_at)
            .cloned())
    }

    async fn record_click_id(&self, account_id: &str, click: &Click) -> Result<(), StoreError> {
        let Some(clid) = &click.ctwa_clid else {
            return Ok(());
        };
        let mut clicks = self
            .clicks
            .lock()
            .map_err(|_| StoreError("click store lock poisoned".into()))?;
        let entry = clicks
            .entry(click_id_key(account_id, clid))
            .or_insert_with(|| click.clone());
        if click.supersedes(entry) {
            *entry = click.clone();
        }
        Ok(())
    }

    async fn by_click_id(
        &self,
        account_id: &str,
        ctwa_clid: &str,
    ) -> Result<Option<Click>, StoreError> {
        let clicks = self
            .clicks
            .lock()
            .map_err(|_| StoreError("click store lock poisoned".into()))?;
        Ok(clicks.get(&click_id_key(account_id, ctwa_clid)).cloned())
    }
}

impl<T: ClickStore> ClickStore for &T {
    fn record(
        &self,
        account_id: &str,
        user: &UserRef,
        click: &Click,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record(account_id, user, click)
    }

    fn latest(
        &self,
        account_id: &str,
        user: &UserRef,
    ) -> impl Future<Output = Result<Option<Click>, StoreError>> + Send {
        (**self).latest(account_id, user)
    }

    fn record_click_id(
        &self,
        account_id: &str,
        click: &Click,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).record_click_id(account_id, click)
    }

    fn by_click_id(
        &self,
        account_id: &str,
        ctwa_clid: &str,
    ) -> impl Future<Output = Result<Option<Click>, StoreError>> + Send {
        (**self).by_click_id(account_id, ctwa_clid)
    }
}
