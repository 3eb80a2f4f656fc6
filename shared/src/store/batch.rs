//! One batch's view of the clicks over any [`DispatchStore`]: what the conversion core reads and
//! writes through the [`ClickStore`] port while the dispatcher handles one SQS batch, read up
//! front in one call and written back in the batch's one commit.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::conversion::clicks::{Click, ClickStore, StoreError, click_id_key, user_key};
use crate::signal::UserRef;
use crate::store::{ClickWrite, DispatchStore};

/// One batch's view of the clicks: a [`ClickStore`] over the clicks read up front, which keeps
/// the clicks recorded during the batch in memory (later signals of the batch see them) and
/// hands them over for [`DispatchStore::commit`]. A key that was not read up front is read on
/// demand, so a missed prefetch costs a round trip, never a wrong attribution.
#[derive(Debug)]
pub struct BatchClicks<'s, S> {
    store: &'s S,
    state: Mutex<BatchState>,
}

#[derive(Debug, Default)]
struct BatchState {
    /// What the store holds, per key read (`None`: nothing).
    stored: HashMap<String, Option<Click>>,
    /// Clicks recorded in this batch, newest per key, in key order (deterministic commits).
    written: BTreeMap<String, Click>,
    /// Why reads cannot be made (the up-front read failed): later misses fail fast.
    unavailable: Option<StoreError>,
    /// How many reads were made on demand.
    misses: usize,
}

fn newer<'a>(a: Option<&'a Click>, b: Option<&'a Click>) -> Option<&'a Click> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.supersedes(a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

impl<'s, S: DispatchStore> BatchClicks<'s, S> {
    /// A view over `store` that already knows `keys`, from `read`, the result of reading them
    /// in one call (a failed read makes later misses fail at once).
    pub fn new(
        store: &'s S,
        keys: &[String],
        read: Result<HashMap<String, Click>, StoreError>,
    ) -> Self {
        let mut state = BatchState::default();
        match read {
            Ok(mut found) => {
                for key in keys {
                    let click = found.remove(key);
                    state.stored.insert(key.clone(), click);
                }
            }
            Err(err) => state.unavailable = Some(err),
        }
        Self {
            store,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, BatchState>, StoreError> {
        self.state
            .lock()
            .map_err(|_| StoreError("batch click view lock poisoned".into()))
    }

    /// The clicks recorded during the batch, newest per key.
    pub fn take_writes(&self) -> Vec<ClickWrite> {
        self.lock()
            .map(|mut s| {
                std::mem::take(&mut s.written)
                    .into_iter()
                    .map(|(key, click)| ClickWrite { key, click })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many reads were made on demand because a key was not read up front.
    pub fn misses(&self) -> usize {
        self.lock().map(|s| s.misses).unwrap_or(0)
    }

    async fn stored(&self, key: &str) -> Result<Option<Click>, StoreError> {
        {
            let mut state = self.lock()?;
            if let Some(known) = state.stored.get(key) {
                return Ok(known.clone());
            }
            if let Some(err) = &state.unavailable {
                return Err(err.clone());
            }
            state.misses += 1;
        }
        let mut found = self.store.clicks(&[key.to_owned()]).await?;
        let click = found.remove(key);
        self.lock()?.stored.insert(key.to_owned(), click.clone());
        Ok(click)
    }
}

impl<S: DispatchStore> ClickStore for BatchClicks<'_, S> {
    async fn record(
        &self,
        account_id: &str,
        user: &UserRef,
        click: &Click,
    ) -> Result<(), StoreError> {
        let mut state = self.lock()?;
        for key in user.keys().map(|k| user_key(account_id, k)) {
            state.write(key, click);
        }
        Ok(())
    }

    async fn record_click_id(&self, account_id: &str, click: &Click) -> Result<(), StoreError> {
        if let Some(clid) = &click.ctwa_clid {
            self.lock()?.write(click_id_key(account_id, clid), click);
        }
        Ok(())
    }

    async fn latest(&self, account_id: &str, user: &UserRef) -> Result<Option<Click>, StoreError> {
        let mut newest: Option<Click> = None;
        for key in user.keys() {
            let key = user_key(account_id, key);
            let stored = self.stored(&key).await?;
            let state = self.lock()?;
            if let Some(c) = newer(stored.as_ref(), state.written.get(&key))
                && newest.as_ref().is_none_or(|n| n.clicked_at < c.clicked_at)
            {
                newest = Some(c.clone());
            }
        }
        Ok(newest)
    }

    async fn by_click_id(
        &self,
        account_id: &str,
        ctwa_clid: &str,
    ) -> Result<Option<Click>, StoreError> {
        let key = click_id_key(account_id, ctwa_clid);
        let stored = self.stored(&key).await?;
        let state = self.lock()?;
        Ok(newer(stored.as_ref(), state.written.get(&key)).cloned())
    }
}

impl BatchState {
    /// Keeps `click` for writing under `key` unless a newer one is known there (the store would
    /// refuse an older write anyway).
    fn write(&mut self, key: String, click: &Click) {
        let stored = self.stored.get(&key).and_then(Option::as_ref);
        let written = self.written.get(&key);
        if newer(newer(stored, written), Some(click)) == Some(click) {
            self.written.insert(key, click.clone());
        }
    }
}
