//! Signal processing shared by the dispatcher and the CLI: record the clicks signals carry,
//! attribute the rest, map, and group events into Graph requests.

use std::sync::Arc;

use crate::conversion::clicks::{Click, ClickStore, StoreError, click_id_key, user_key};
use crate::conversion::mapping::{
    MappedEvent, Outbound, Outcome, SkipReason, attributed_click, map_signal, matches, touch,
};
use crate::conversion::rules::{Account, Config, TikTokAccount};
use crate::meta::capi::{EventsRequest, MAX_EVENTS_PER_REQUEST};
use crate::signal::{Signal, SignalEvent, UserRef};
use crate::tiktok::events::{MAX_EVENTS_PER_REQUEST as TIKTOK_MAX_EVENTS, TrackRequest};

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

    /// The configuration.
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
        let own = touch(self.config, signal);
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
        let click = attributed_click(self.config, signal, stored.as_ref());
        Ok((map_signal(self.config, signal, click.as_ref(), now), click))
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

    /// Business events name no rule: resolve their WABA, look up the user's click, map.
    async fn process_business(
        &self,
        signal: &Signal,
        now: i64,
    ) -> Result<(Vec<Outcome>, Option<Click>), StoreError> {
        let Some(waba_id) = self
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
        signal.account_id = waba_id.to_owned();
        let stored = self.clicks.latest(&signal.account_id, &signal.user).await?;
        let click = attributed_click(self.config, &signal, stored.as_ref());
        Ok((map_signal(self.config, &signal, click.as_ref(), now), click))
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
    let keys = |waba_id: &str| {
        signal
            .user
            .keys()
            .map(|k| user_key(waba_id, k))
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
    let looks_up = looks_up_stored_click(signal, touch(config, signal).is_some())
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

/// Where a request goes: a Meta dataset (the account's), or a TikTok event set.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The account's dataset, token, test code and partner agent.
    Meta(Arc<Account>),
    /// The account's TikTok event set, token and test code.
    TikTok(Arc<TikTokAccount>),
}

impl MappedEvent {
    /// Where the event goes. `None` for a TikTok event of an account without a TikTok event
    /// set, which mapping never produces.
    pub fn target(&self) -> Option<Target> {
        match &self.event {
            Outbound::Meta(_) => Some(Target::Meta(Arc::clone(&self.account))),
            Outbound::TikTok(_) => self.account.tiktok.clone().map(Target::TikTok),
        }
    }
}

/// Groups items by target in first-seen order, in chunks of at most 1,000 (both platforms'
/// limit per request).
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
            let chunk: Vec<T> = items
                .by_ref()
                .take(MAX_EVENTS_PER_REQUEST.min(TIKTOK_MAX_EVENTS))
                .collect();
            out.push((target.clone(), chunk));
        }
    }
    out
}

/// One Graph API request: where it goes and its body.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphRequest {
    /// The account (dataset, token name, test code, partner agent).
    pub account: Arc<Account>,
    /// The request body.
    pub body: EventsRequest,
}

/// One TikTok Events API request.
#[derive(Debug, Clone, PartialEq)]
pub struct TikTokRequest {
    /// The event set (id, token name, test code).
    pub account: Arc<TikTokAccount>,
    /// The request body.
    pub body: TrackRequest,
}

/// A request to either platform.
#[derive(Debug, Clone, PartialEq)]
pub enum OutboundRequest {
    /// To Meta's Graph API.
    Meta(GraphRequest),
    /// To TikTok's Events API.
    TikTok(TikTokRequest),
}

impl OutboundRequest {
    /// The request for `target` of `events` (each of the target's platform; others are left
    /// out, which grouping by [`MappedEvent::target`] never produces).
    pub fn new(target: Target, events: Vec<Outbound>) -> Self {
        match target {
            Target::Meta(account) => Self::Meta(GraphRequest {
                body: EventsRequest {
                    data: events
                        .into_iter()
                        .filter_map(|e| match e {
                            Outbound::Meta(e) => Some(e),
                            Outbound::TikTok(_) => None,
                        })
                        .collect(),
                    test_event_code: account.test_event_code.clone(),
                    partner_agent: account.partner_agent.clone(),
                },
                account,
            }),
            Target::TikTok(account) => Self::TikTok(TikTokRequest {
                body: TrackRequest {
                    event_source: account.event_source,
                    event_source_id: account.event_source_id.clone(),
                    test_event_code: account.test_event_code.clone(),
                    data: events
                        .into_iter()
                        .filter_map(|e| match e {
                            Outbound::TikTok(e) => Some(e),
                            Outbound::Meta(_) => None,
                        })
                        .collect(),
                },
                account,
            }),
        }
    }

    /// The line `replay`, `demo` and `serve` print: a Meta request as
    /// `{"dataset_id": ..., "body": ...}`, a TikTok one as `{"destination": "tiktok",
    /// "event_source_id": ..., "body": ...}`.
    pub fn line(&self) -> serde_json::Value {
        match self {
            Self::Meta(r) => {
                serde_json::json!({"dataset_id": r.account.dataset_id, "body": r.body})
            }
            Self::TikTok(r) => serde_json::json!({
                "destination": "tiktok",
                "event_source_id": r.account.event_source_id,
                "body": r.body,
            }),
        }
    }
}

/// Groups events into requests: one per target (a Meta dataset with its token, test code and
/// partner agent; a TikTok event set), in first-seen order, at most 1,000 events each.
pub fn batch_requests(events: impl IntoIterator<Item = MappedEvent>) -> Vec<OutboundRequest> {
    group_by_target(
        events
            .into_iter()
            .filter_map(|m| Some((m.target()?, m.event))),
    )
    .into_iter()
    .map(|(target, events)| OutboundRequest::new(target, events))
    .collect()
}
