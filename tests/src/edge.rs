//! The same requests for both HTTP edges (the `webhook-ingest` Lambda behind API Gateway and
//! `wacapi serve`), with the answer each must give: trailing slashes, repeated signature and
//! timestamp headers. Each edge's test sends them its own way and checks the same statuses.

use std::path::Path;

/// One request and the status both edges answer it with.
#[derive(Debug, Clone)]
pub struct EdgeRequest {
    /// What the case is about.
    pub name: &'static str,
    /// `/webhook`, `/events`, with or without a trailing slash.
    pub path: &'static str,
    /// The headers, a repeated name once per value.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// The answer both edges give.
    pub status: u16,
}

/// The requests, signed with `app_secret` (webhooks) and `events_key` (events) at `now`.
/// Each case's webhook or events are its own (their ids carry the case's index), so an accepted
/// one is never a copy of another.
pub fn edge_requests(app_secret: &str, events_key: &str, now: i64) -> Vec<EdgeRequest> {
    let webhook = crate::sample("order");
    let events = std::fs::read(crate::repo_root().join(Path::new(
        "examples/events/crm-qualified-then-purchase.json",
    )))
    .unwrap_or_default();
    let mut out = Vec::new();
    let mut case = |name, path, headers: Vec<(&str, String)>, body: Vec<u8>, status| {
        out.push(EdgeRequest {
            name,
            path,
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            body,
            status,
        });
    };
    let hub = |body: &[u8]| wacapi_shared::signature::sign(app_secret.as_bytes(), body);
    let sig = |body: &[u8]| wacapi_shared::business::sign(events_key.as_bytes(), now, body);
    let ts = now.to_string();
    const HUB: &str = "X-Hub-Signature-256";
    const SIG: &str = "X-Wacapi-Signature";
    const TS: &str = "X-Wacapi-Timestamp";

    for (path, status) in [("/webhook", 200), ("/webhook/", 200)] {
        case(
            "signed webhook",
            path,
            vec![(HUB, hub(&webhook))],
            webhook.clone(),
            status,
        );
        case(
            "two X-Hub-Signature-256",
            path,
            vec![(HUB, hub(&webhook)), (HUB, hub(&webhook))],
            webhook.clone(),
            401,
        );
    }
    let forged = wacapi_shared::business::sign(b"not-the-events-key-0123", now, &events);
    for (path, status) in [("/events", 200), ("/events/", 200)] {
        case(
            "signed events",
            path,
            vec![(TS, ts.clone()), (SIG, sig(&events))],
            events.clone(),
            status,
        );
        case(
            "two X-Wacapi-Signature, both right",
            path,
            vec![(TS, ts.clone()), (SIG, sig(&events)), (SIG, sig(&events))],
            events.clone(),
            401,
        );
        case(
            "two X-Wacapi-Signature, the right one first",
            path,
            vec![(TS, ts.clone()), (SIG, sig(&events)), (SIG, forged.clone())],
            events.clone(),
            401,
        );
        case(
            "two X-Wacapi-Signature, the right one second",
            path,
            vec![(TS, ts.clone()), (SIG, forged.clone()), (SIG, sig(&events))],
            events.clone(),
            401,
        );
        case(
            "two X-Wacapi-Timestamp",
            path,
            vec![(TS, ts.clone()), (TS, ts.clone()), (SIG, sig(&events))],
            events.clone(),
            401,
        );
    }
    out
}
