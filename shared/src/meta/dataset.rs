//! A Meta dataset as a delivery [`Endpoint`]: where an account's events for Meta go (`POST
//! /{version}/{dataset_id}/events`), with which token, and the request body around them
//! (`data`, then the account's `test_event_code` and `partner_agent`).

use serde::Serialize;
use serde_json::value::RawValue;

use crate::delivery::{Endpoint, Outbound};
use crate::model::Destination;

/// An account's dataset and how its requests are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    /// The dataset (`/{WABA_ID}/dataset`) events are posted to.
    pub dataset_id: String,
    /// Name of the access token to use (a key of `access_tokens`); `None` = `default`.
    pub token: Option<String>,
    /// Routes events to Events Manager's Test Events tool.
    pub test_event_code: Option<String>,
    /// Identifies the integration to Meta.
    pub partner_agent: Option<String>,
    /// The Graph API version requests are made with (the configuration's).
    pub graph_api_version: String,
}

/// A request body for `POST /{version}/{dataset_id}/events`: the events as they were built,
/// then the account's fields.
#[derive(Serialize)]
struct EventsBody<'a> {
    data: Vec<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    test_event_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partner_agent: Option<&'a str>,
}

impl Dataset {
    fn body_of<'a>(&'a self, events: &[&'a Outbound]) -> EventsBody<'a> {
        EventsBody {
            data: events.iter().map(|e| e.json()).collect(),
            test_event_code: self.test_event_code.as_deref(),
            partner_agent: self.partner_agent.as_deref(),
        }
    }
}

impl Endpoint for Dataset {
    fn destination(&self) -> Destination {
        Destination::Meta
    }

    fn id(&self) -> &str {
        &self.dataset_id
    }

    fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    fn path(&self) -> String {
        format!("/{}/{}/events", self.graph_api_version, self.dataset_id)
    }

    fn body(&self, events: &[&Outbound]) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&self.body_of(events))
    }

    /// `{"dataset_id": ..., "body": ...}`.
    fn line(&self, events: &[&Outbound]) -> serde_json::Value {
        serde_json::json!({"dataset_id": self.dataset_id, "body": self.body_of(events)})
    }
}
