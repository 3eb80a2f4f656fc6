//! Meta as a destination: the Conversions API for Business Messaging ([`capi`]), a conversion
//! built into its event ([`build`]), an account's dataset as the endpoint requests go to
//! ([`dataset`]), the Graph API client that sends to it, with Meta's error classification
//! ([`graph`]), Meta's version
//! calendar the configured Graph API version is checked against ([`versions`]), and the Ads
//! Insights API the conversion report reads spend from ([`insights`]).

pub mod build;
pub mod capi;
pub mod dataset;
pub mod graph;
pub mod insights;
pub mod versions;

use crate::delivery::Profile;

/// The metric names of Meta's delivery (the contract with `infra/`).
pub mod metric_names {
    /// Graph requests made.
    pub const GRAPH_REQUESTS: &str = "GraphRequests";
    /// Graph errors; dimension `Code`.
    pub const GRAPH_ERRORS: &str = "GraphErrors";
    /// Token and permission errors, and refusals of a deprecated Graph API version (code
    /// 2635): nothing is sent until a person acts (an alarm).
    pub const GRAPH_AUTH_ERRORS: &str = "GraphAuthErrors";
    /// Graph answers (success or error) carrying Meta's `X-Ad-Api-Version-Warning` header: the
    /// configured version is deprecated (Meta auto-upgraded the call) or about to be (an alarm).
    pub const GRAPH_VERSION_WARNINGS: &str = "GraphVersionWarnings";
    /// Graph requests answered 2xx with an `events_received` other than the events sent; their
    /// records go to the dead-letter queue (`graph_receipt_mismatch`): an alarm.
    pub const GRAPH_RECEIPT_MISMATCHES: &str = "GraphReceiptMismatches";
}

/// How Meta's deliveries are named in metrics, logs and dead-letter moves.
pub const PROFILE: Profile = Profile {
    api: "Graph API",
    requests: metric_names::GRAPH_REQUESTS,
    errors: metric_names::GRAPH_ERRORS,
    needs_operator: metric_names::GRAPH_AUTH_ERRORS,
    version_warnings: Some(metric_names::GRAPH_VERSION_WARNINGS),
    receipt_mismatches: Some(metric_names::GRAPH_RECEIPT_MISMATCHES),
    receipt_mismatch_reason: "graph_receipt_mismatch",
    receipt_attributes: [
        graph::attributes::EVENTS_RECEIVED,
        graph::attributes::EVENTS_SENT,
        graph::attributes::FBTRACE_ID,
    ],
};
