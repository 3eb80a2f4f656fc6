//! wacapi's shared library: everything the ingest and dispatch functions and the CLI have in
//! common.
//!
//! The pure core ([`webhook`], [`signature`], [`signal`], [`hashing`]) does no I/O; the ports
//! ([`queue`], [`secrets`]) have AWS adapters ([`sqs`], [`secrets::SecretsManagerSource`]) beside
//! in-memory ones; [`ingest`] joins them behind an edge-agnostic API.

pub mod config;
pub mod hashing;
pub mod ingest;
pub mod metrics;
pub mod queue;
pub mod redact;
pub mod secrets;
pub mod signal;
pub mod signature;
pub mod sqs;
pub mod webhook;
