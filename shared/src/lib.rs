//! wacapi's shared library: everything the ingest and dispatch functions and the CLI have in
//! common.
//!
//! The pure core ([`webhook`], [`signature`], [`signal`], [`hashing`], [`rules`], [`mapping`],
//! [`capi`]) does no I/O and takes time as a value; the ports ([`queue`], [`secrets`],
//! [`clicks`], [`store`]) have AWS adapters ([`sqs`], [`secrets::SecretsManagerSource`],
//! [`dynamo`]) beside in-memory ones; [`ingest`], [`pipeline`] and [`dispatch`] join them behind
//! edge-agnostic APIs.

pub mod business;
pub mod capi;
pub mod clicks;
pub mod config;
pub mod dispatch;
pub mod dynamo;
pub mod graph;
pub mod hashing;
pub mod ingest;
pub mod ledger;
pub mod lenient;
pub mod logging;
pub mod mapping;
pub mod metrics;
pub mod money;
pub mod pipeline;
pub mod privacy;
pub mod queue;
pub mod redact;
pub mod rules;
pub mod secrets;
pub mod signal;
pub mod signature;
pub mod sqs;
pub mod store;
pub mod webhook;
