//! The registry of destinations: the one place that lists them. Each destination lives in its
//! own folder ([`crate::meta`], [`crate::tiktok`]) and speaks the vocabulary of
//! [`crate::delivery`]; this module wires them: what an account configures for each
//! ([`AccountDestinations`]), which destination a user's ad touch names, building a conversion
//! for the destination it goes to, checking the rules against each, and the [`Deliver`] port
//! the dispatcher posts through ([`Destinations`]). A new destination is a new folder and its
//! lines here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::delivery::checks::{AccountView, Findings, RuleView};
use crate::delivery::{
    Answer, Conversion, Deliver, DeliveryError, Outbound, Profile, Target, Unfit,
};
use crate::meta::dataset::Dataset;
use crate::meta::graph::{GraphClient, GraphSender};
use crate::model::Destination;
use crate::secrets::{CachedSecret, SecretSource};
use crate::tiktok::client::{NoTikTok, TikTokClient, TikTokSender};
use crate::tiktok::event_set::{EventSet, RawEventSet};

/// An account has no event set of the destination its user's ad touch names.
pub const NO_DESTINATION: Unfit = Unfit("no_destination");

/// Where an account's conversions go: Meta's dataset always (the account's `dataset_id`), and
/// the other destinations it configures. Shared: every mapped event holds its account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountDestinations {
    /// The account's Meta dataset.
    pub meta: Arc<Dataset>,
    /// The account's TikTok event set (`tiktok = { ... }`), for users a TikTok ad brought.
    pub tiktok: Option<Arc<EventSet>>,
}

/// The other destinations of an account, as its configuration writes them.
#[derive(Debug, Default)]
pub struct RawAccountDestinations {
    /// `tiktok = { ... }`.
    pub tiktok: Option<RawEventSet>,
}

impl AccountDestinations {
    /// The destinations of an account whose Meta dataset is `meta`; what is wrong with the
    /// others is added to `errors`, each prefixed with the account's `label`.
    pub fn compile(
        meta: Dataset,
        raw: RawAccountDestinations,
        label: &str,
        errors: &mut Vec<String>,
    ) -> Self {
        Self {
            meta: Arc::new(meta),
            tiktok: raw
                .tiktok
                .and_then(|t| t.compile(label, errors))
                .map(Arc::new),
        }
    }

    /// The destination a message's text is an ad touch of: a TikTok ad's prefilled first
    /// message.
    pub fn text_touch(&self, text: &str) -> Option<Destination> {
        self.tiktok
            .as_ref()
            .is_some_and(|t| t.is_touch(text))
            .then_some(Destination::TikTok)
    }

    /// The destination whose lead (of an instant form) a business event names: TikTok's Lead
    /// Generation, when the account has a TikTok event set.
    pub fn lead_destination(&self) -> Option<Destination> {
        self.tiktok.as_ref().map(|_| Destination::TikTok)
    }

    /// Where `destination`'s requests of this account go, when it has one.
    pub fn target(&self, destination: Destination) -> Option<Target> {
        match destination {
            Destination::Meta => Some(Target::new(self.meta.clone())),
            Destination::TikTok => self.tiktok.clone().map(|t| Target::new(t)),
        }
    }

    /// `conversion` built for `destination`, or why it cannot take it.
    pub fn build(
        &self,
        destination: Destination,
        conversion: &Conversion<'_>,
    ) -> Result<Outbound, Unfit> {
        match destination {
            Destination::Meta => crate::meta::build::event(&self.meta, conversion),
            Destination::TikTok => {
                let set = self.tiktok.as_deref().ok_or(NO_DESTINATION)?;
                crate::tiktok::build::event(set, conversion)
            }
        }
    }
}

/// Every destination's findings on the rules, for the accounts that configure it.
pub fn check_rules(
    rules: &[RuleView<'_>],
    accounts: &[(AccountView<'_>, &AccountDestinations)],
) -> Findings {
    let sets: Vec<(AccountView<'_>, &EventSet)> = accounts
        .iter()
        .filter_map(|(view, d)| Some((*view, d.tiktok.as_deref()?)))
        .collect();
    crate::tiktok::event_set::rule_checks(rules, &sets)
}

/// The key of `destination`'s access tokens (by name) in the tokens secret document: Meta's
/// `access_tokens`, TikTok's `tiktok_access_tokens`.
pub fn tokens_key(destination: Destination) -> &'static str {
    match destination {
        Destination::Meta => "access_tokens",
        Destination::TikTok => "tiktok_access_tokens",
    }
}

/// Every destination's profile.
pub const PROFILES: [&Profile; 2] = [&crate::meta::PROFILE, &crate::tiktok::PROFILE];

/// How `destination`'s deliveries are named.
pub fn profile(destination: Destination) -> &'static Profile {
    match destination {
        Destination::Meta => &crate::meta::PROFILE,
        Destination::TikTok => &crate::tiktok::PROFILE,
    }
}

/// Each destination's API base URL: the environment variable that overrides it (the dispatch
/// function's contract with `infra/`; tests point them at loopback mocks) and its default.
pub const BASE_URLS: [(Destination, &str, &str); 2] = [
    (
        Destination::Meta,
        "WACAPI_GRAPH_BASE_URL",
        crate::meta::graph::DEFAULT_BASE_URL,
    ),
    (
        Destination::TikTok,
        "WACAPI_TIKTOK_BASE_URL",
        crate::tiktok::client::DEFAULT_BASE_URL,
    ),
];

/// The base URL of each destination's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrls(BTreeMap<Destination, String>);

impl BaseUrls {
    /// Each destination's URL read through `lookup` ([`BASE_URLS`]), its default when unset or
    /// blank.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        Self(
            BASE_URLS
                .iter()
                .map(|(destination, variable, default)| {
                    let url = lookup(variable)
                        .filter(|v| !v.trim().is_empty())
                        .unwrap_or_else(|| (*default).to_owned());
                    (*destination, url)
                })
                .collect(),
        )
    }

    /// The same URLs, `destination`'s being `url`.
    pub fn with(mut self, destination: Destination, url: impl Into<String>) -> Self {
        self.0.insert(destination, url.into());
        self
    }

    /// The URL of `destination`'s API.
    pub fn get(&self, destination: Destination) -> &str {
        self.0.get(&destination).map_or_else(
            || {
                BASE_URLS
                    .iter()
                    .find(|(d, _, _)| *d == destination)
                    .map_or("", |(_, _, default)| default)
            },
            String::as_str,
        )
    }
}

impl Default for BaseUrls {
    fn default() -> Self {
        Self::from_lookup(|_| None)
    }
}

/// Every destination's real client, each reading its own keys of the tokens secret.
pub type LiveDestinations<S> = Destinations<GraphClient<S>, TikTokClient<S>>;

impl<S: SecretSource> LiveDestinations<S> {
    /// The clients of every destination at `urls`, with a per-request `timeout`; `source`
    /// opens the tokens secret (each client caches its own view of it for `cache.0`, at most
    /// until the forced refresh interval `cache.1`).
    pub fn connect(
        urls: &BaseUrls,
        timeout: Duration,
        source: impl Fn() -> S,
        cache: (Duration, Duration),
    ) -> Result<Self, DeliveryError> {
        let (ttl, refresh) = cache;
        Ok(Destinations {
            graph: GraphClient::new(
                urls.get(Destination::Meta),
                timeout,
                CachedSecret::new(source(), ttl, refresh),
            )?,
            tiktok: TikTokClient::new(
                urls.get(Destination::TikTok),
                timeout,
                CachedSecret::new(source(), ttl, refresh),
            )?,
        })
    }
}

/// The senders of every destination, as one [`Deliver`]: Meta's Graph API, and TikTok's Events
/// API (none until [`Destinations::with_tiktok`] wires one: TikTok requests are then refused as
/// an authentication problem, so the events are kept and the alarm fires).
#[derive(Debug, Clone)]
pub struct Destinations<G, T = NoTikTok> {
    graph: G,
    tiktok: T,
}

impl<G: GraphSender> Destinations<G> {
    /// Meta's sender only.
    pub fn new(graph: G) -> Self {
        Self {
            graph,
            tiktok: NoTikTok,
        }
    }
}

impl<G: GraphSender, T: TikTokSender> Destinations<G, T> {
    /// The same senders, TikTok's being `tiktok`.
    pub fn with_tiktok<T2: TikTokSender>(self, tiktok: T2) -> Destinations<G, T2> {
        Destinations {
            graph: self.graph,
            tiktok,
        }
    }
}

impl<G: GraphSender, T: TikTokSender> Deliver for Destinations<G, T> {
    async fn deliver(
        &self,
        target: &Target,
        events: &[&Outbound],
    ) -> Result<Answer, DeliveryError> {
        match target.destination() {
            Destination::Meta => self.graph.send(target, events).await,
            Destination::TikTok => self.tiktok.send(target, events).await,
        }
    }

    fn profile(&self, destination: Destination) -> &'static Profile {
        profile(destination)
    }
}
