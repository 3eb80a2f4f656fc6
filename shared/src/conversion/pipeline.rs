//! Signal processing shared by the dispatcher and the CLI: resolve the signal's account once,
//! record the clicks signals carry, attribute the rest, map, and group events into requests
//! per target.

use crate::conversion::attribution::{attribute, touch};
use crate::conversion::clicks::{Click, ClickStore, StoreError, click_id_key, user_key};
use crate::conversion::mapping::{MappedEvent, Outcome, SkipReason, map_with, matches};
use crate::conversion::rules::Config;
use crate::delivery::{Outbound, Target};
use crate::signal::{Signal, SignalEvent, UserRef};

/// At most this many events per request: Meta's limit and TikTok's.
pub const MAX_EVENTS_PER_REQUEST: usize = 1000;

/// Turns signals into outcomes, keeping the click store up to date.
#[derive(Debug)]
pub struct Processor<'a, C> {
    config: &'a Config,
    clicks: C,
}

impl<'a, C: ClickStore> Processor<'a, C> {
    /// A processor over `config` and a click store.
    pub fn new(config: &'a Config, clicks: C) -> Self {
        Self { config, clicks }
    }

    /// The configuration the processor maps with.
    pub fn config(&self) -> &Config {
        self.config
    }

    /// Records what the signal says about clicks and identities, then maps it. A store failure
    /// is returned so the caller can retry the signal (recording is idempotent).
    pub async fn process(&self, signal: &Signal, now: i64) -> Result<Vec<Outcome>, StoreError> {
        Ok(self.process_with_click(signal, now).await?.0)
    }

    /// [`Processor::process`], with the click the signal was attributed to (the report keys
    /// skips by its ad).
    pub async fn process_with_click(
        &self,
        signal: &Signal,
        now: i64,
    ) -> Result<(Vec<Outcome>, Option<Click>), StoreError> {
        if let SignalEvent::Business { .. } = &signal.event {
            return self.process_business(signal, now).await;
        }
        let account = self.config.account(signal.channel, &signal.account_id);
        let own = touch(account.map(AsRef::as_ref), signal);
        if let Some(click) = &own
            && !signal.user.is_empty()
        {
            self.clicks
                .record(&signal.account_id, &signal.user, click)
                .await?;
        }
        if let Some(click) = &own
            && self.config.sends_automatic_events()
        {
            self.clicks
                .record_click_id(&signal.account_id, click)
                .await?;
        }
        if let SignalEvent::IdentityChanged { new, .. } = &signal.event
            && !new.is_empty()
        {
            self.carry_click(signal, new).await?;
        }
        if !self.config.rules.iter().any(|r| matches(r, signal)) {
            return Ok((
                vec![Outcome::Skipped {
                    rule: None,
                    reason: SkipReason::NoRule,
                }],
                own,
            ));
        }
        let stored = if looks_up_stored_click(signal, own.is_some()) {
            self.clicks.latest(&signal.account_id, &signal.user).await?
        } else if let Some(clid) = automatic_click_id(signal) {
            self.clicks.by_click_id(&signal.account_id, clid).await?
        } else {
            None
        };
        let click = attribute(
            self.config,
            account.map(AsRef::as_ref),
            signal,
            stored.as_ref(),
        );
        let outcomes = map_with(self.config, account, signal, click.as_ref(), now);
        Ok((outcomes, click))
    }
}

impl<C: ClickStore> Processor<'_, C> {
    /// The user's later messages arrive under the new identity: the newest click of any
    /// previous identity is recorded under the new one. Recording is "newest wins", so the same
    /// change seen twice writes nothing new, and a click made since under the new identity is
    /// kept.
    async fn carry_click(&self, signal: &Signal, new: &UserRef) -> Result<(), StoreError> {
        let mut newest: Option<Click> = None;
        for previous in signal.previous_identities() {
            if previous.is_empty() {
                continue;
            }
            if let Some(click) = self.clicks.latest(&signal.account_id, &previous).await?
                && newest.as_ref().is_none_or(|n| click.supersedes(n))
            {
                newest = Some(click);
            }
        }
        match newest {
            Some(click) => self.clicks.record(&signal.account_id, new, &click).await,
            None => Ok(()),
        }
    }

    /// Business events name no rule: resolve their account, look up the user's click, map.
    async fn process_business(
        &self,
        signal: &Signal,
        now: i64,
    ) -> Result<(Vec<Outcome>, Option<Click>), StoreError> {
        let Some(account_id) = self
            .config
            .resolve_account(signal.channel, &signal.account_id)
        else {
            return Ok((
                vec![Outcome::Skipped {
                    rule: None,
                    reason: SkipReason::UnknownAccount,
                }],
                None,
            ));
        };
        let mut signal = signal.clone();
        signal.account_id = account_id.to_owned();
        let account = self.config.account(signal.channel, &signal.account_id);
        let stored = self.clicks.latest(&signal.account_id, &signal.user).await?;
        let click = attribute(
            self.config,
            account.map(AsRef::as_ref),
            &signal,
            stored.as_ref(),
        );
        let outcomes = map_with(self.config, account, &signal, click.as_ref(), now);
        Ok((outcomes, click))
    }
}

/// Whether a signal a rule matched is attributed through the user's stored click: not when it
/// carries its own, not for automatic events (they carry theirs), not without a user.
fn looks_up_stored_click(signal: &Signal, has_own_click: bool) -> bool {
    !has_own_click
        && !matches!(signal.event, SignalEvent::AutomaticEvent { .. })
        && !signal.user.is_empty()
}

/// The click id an automatic event names: its click, stored under that id, tells the report
/// which ad it came from.
fn automatic_click_id(signal: &Signal) -> Option<&str> {
    match &signal.event {
        SignalEvent::AutomaticEvent {
            ctwa_clid: Some(clid),
            ..
        } => Some(clid),
        _ => None,
    }
}

/// The hashed click keys [`Processor::process`] will read for `signal`, so a batch can read
/// them all in one call before processing.
pub fn click_lookups(config: &Config, signal: &Signal) -> Vec<String> {
    let keys = |account_id: &str| {
        signal
            .user
            .keys()
            .map(|k| user_key(account_id, k))
            .collect::<Vec<_>>()
    };
    if let SignalEvent::Business { .. } = &signal.event {
        return config
            .resolve_account(signal.channel, &signal.account_id)
            .map(keys)
            .unwrap_or_default();
    }
    let mut out = Vec::new();
    if let SignalEvent::IdentityChanged { new, .. } = &signal.event
        && !new.is_empty()
    {
        for previous in signal.previous_identities() {
            out.extend(previous.keys().map(|k| user_key(&signal.account_id, k)));
        }
        // Recording under the new identity compares with what it holds.
        out.extend(new.keys().map(|k| user_key(&signal.account_id, k)));
    }
    let account = config.account(signal.channel, &signal.account_id);
    let looks_up =
        looks_up_stored_click(signal, touch(account.map(AsRef::as_ref), signal).is_some())
            && config.rules.iter().any(|r| matches(r, signal));
    if looks_up {
        out.extend(keys(&signal.account_id));
    }
    if let Some(clid) = automatic_click_id(signal)
        && config.rules.iter().any(|r| matches(r, signal))
    {
        out.push(click_id_key(&signal.account_id, clid));
    }
    out.sort();
    out.dedup();
    out
}

/// Groups items by target in first-seen order, in chunks of at most 1,000 (every
/// destination's limit per request).
pub fn group_by_target<T>(items: impl IntoIterator<Item = (Target, T)>) -> Vec<(Target, Vec<T>)> {
    let mut groups: Vec<(Target, Vec<T>)> = Vec::new();
    for (target, item) in items {
        match groups.iter_mut().find(|(t, _)| *t == target) {
            Some((_, items)) => items.push(item),
            None => groups.push((target, vec![item])),
        }
    }
    let mut out = Vec::new();
    for (target, items) in groups {
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let chunk: Vec<T> = items.by_ref().take(MAX_EVENTS_PER_REQUEST).collect();
            out.push((target.clone(), chunk));
        }
    }
    out
}

/// One request: where it goes and its events, as their destination built them.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The endpoint (a Meta dataset, a TikTok event set).
    pub target: Target,
    /// The events, each as its destination built it.
    pub events: Vec<Outbound>,
}

impl Request {
    /// The request body, as the target writes it.
    pub fn body(&self) -> Result<Vec<u8>, serde_json::Error> {
        self.target.body(&self.events.iter().collect::<Vec<_>>())
    }

    /// The line `replay`, `demo` and `serve` print, as the target writes it.
    pub fn line(&self) -> serde_json::Value {
        self.target.line(&self.events.iter().collect::<Vec<_>>())
    }
}

/// Groups events into requests: one per target (a Meta dataset with its token, test code and
/// partner agent; a TikTok event set), in first-seen order, at most 1,000 events each.
pub fn batch_requests(events: impl IntoIterator<Item = MappedEvent>) -> Vec<Request> {
    group_by_target(
        events
            .into_iter()
            .filter_map(|m| Some((m.target()?, m.event))),
    )
    .into_iter()
    .map(|(target, events)| Request { target, events })
    .collect()
}
