//! Where the local commands' requests go (`serve`, `demo`, `replay`, `load-test`): each
//! destination for real where its token is given ([`Live`]), otherwise a dry run that prints
//! each request as its target writes it (`{"dataset_id": ..., "body": ...}` for Meta) or, for
//! load tests, only counts them. No destination is named here: the registry
//! ([`wacapi_shared::destinations`]) says where each one's tokens and API are.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use wacapi_shared::conversion::rules::Config;
use wacapi_shared::delivery::{Answer, Deliver, DeliveryError, Outbound, Profile, Target};
use wacapi_shared::destinations::{self, BaseUrls, LiveDestinations, tokens_key};
use wacapi_shared::model::Destination;
use wacapi_shared::secrets::StaticSecret;

/// What a dry run does with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRunMode {
    /// Print it on stdout, one JSON line.
    Print,
    /// Count it only (load tests; `replay --report`).
    Count,
}

/// A destination sent to for real: one token for every account, and the API's base URL.
pub struct Live {
    /// The access token.
    pub token: SecretString,
    /// The destination's API, or another endpoint.
    pub base_url: String,
}

/// The dry run: takes every request whole, printing or counting it.
pub struct DryRun {
    counter: AtomicU64,
    mode: DryRunMode,
}

impl DryRun {
    /// A dry run that prints or counts.
    pub fn new(mode: DryRunMode) -> Self {
        Self {
            counter: AtomicU64::new(0),
            mode,
        }
    }

    fn take(&self, target: &Target, events: &[&Outbound]) -> Answer {
        if self.mode == DryRunMode::Print {
            let line = target.line(events);
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        Answer {
            received: Some(events.len() as u64),
            trace_id: Some(format!("dry-run-{n}")),
            version_warning: None,
        }
    }
}

impl Deliver for DryRun {
    async fn deliver(
        &self,
        target: &Target,
        events: &[&Outbound],
    ) -> Result<Answer, DeliveryError> {
        Ok(self.take(target, events))
    }

    fn profile(&self, destination: Destination) -> &'static Profile {
        destinations::profile(destination)
    }
}

/// Every destination live where a token was given, a dry run for the others.
pub struct LocalDestinations {
    dry: DryRun,
    live: Option<LiveDestinations<StaticSecret>>,
    live_for: BTreeSet<Destination>,
}

impl LocalDestinations {
    /// The destinations of `live` sent to for real (each with one token for the default and
    /// every token name the accounts use), the others dry-run as `mode` says.
    pub fn new(
        config: &Config,
        mode: DryRunMode,
        live: BTreeMap<Destination, Live>,
    ) -> Result<Self, String> {
        let live_for: BTreeSet<Destination> = live.keys().copied().collect();
        let clients = if live.is_empty() {
            None
        } else {
            let doc = SecretString::from(tokens_document(config, &live).to_string());
            let urls = live.iter().fold(BaseUrls::default(), |urls, (d, l)| {
                urls.with(*d, &l.base_url)
            });
            let clients = LiveDestinations::connect(
                &urls,
                Duration::from_secs(10),
                || StaticSecret(doc.clone()),
                (Duration::from_secs(3600), Duration::from_secs(30)),
            )
            .map_err(|e| e.to_string())?;
            Some(clients)
        };
        Ok(Self {
            dry: DryRun::new(mode),
            live: clients,
            live_for,
        })
    }
}

/// The tokens secret document of the live destinations: under each one's key, its token under
/// `default` and every name an account's endpoint of that destination uses.
fn tokens_document(config: &Config, live: &BTreeMap<Destination, Live>) -> serde_json::Value {
    let mut doc = serde_json::Map::new();
    for (destination, l) in live {
        let token = json!(l.token.expose_secret());
        let mut names: BTreeMap<String, serde_json::Value> =
            BTreeMap::from([("default".to_owned(), token.clone())]);
        for account in config.accounts.values() {
            if let Some(name) = account
                .destinations
                .target(*destination)
                .and_then(|t| t.token().map(str::to_owned))
            {
                names.insert(name, token.clone());
            }
        }
        doc.insert(tokens_key(*destination).to_owned(), json!(names));
    }
    serde_json::Value::Object(doc)
}

impl Deliver for LocalDestinations {
    async fn deliver(
        &self,
        target: &Target,
        events: &[&Outbound],
    ) -> Result<Answer, DeliveryError> {
        match &self.live {
            Some(live) if self.live_for.contains(&target.destination()) => {
                live.deliver(target, events).await
            }
            _ => self.dry.deliver(target, events).await,
        }
    }

    fn profile(&self, destination: Destination) -> &'static Profile {
        destinations::profile(destination)
    }
}
