//! What a destination is shown of the configuration to check it against its own rules (names
//! it takes, currencies it lists), and what it finds: `wacapi check-config` prints the
//! findings, and a configuration with errors does not load.

use std::collections::BTreeMap;

use crate::model::{Channel, Destination, EventName};

/// A rule, as a destination sees it.
#[derive(Debug, Clone)]
pub struct RuleView<'a> {
    /// The rule's name.
    pub name: &'a str,
    /// The event it sends (`None` for automatic events, which name Meta's click).
    pub event: Option<EventName>,
    /// The rule's own names of its event, by destination.
    pub renamed: &'a BTreeMap<Destination, String>,
    /// The fixed currency the rule sends, when it sets one.
    pub currency: Option<&'a str>,
    /// The channels the rule can fire on.
    pub channels: Vec<Channel>,
}

/// An account, as a destination configured on it sees it.
#[derive(Debug, Clone, Copy)]
pub struct AccountView<'a> {
    /// The account's channel.
    pub channel: Channel,
    /// The account's id.
    pub account_id: &'a str,
}

/// Errors (the configuration does not load) and warnings (`check-config` prints them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Findings {
    /// Problems that stop the configuration from loading.
    pub errors: Vec<String>,
    /// Things worth knowing.
    pub warnings: Vec<String>,
}
