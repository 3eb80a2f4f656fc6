//! wacapi's shared library: everything the ingest and dispatch functions and the CLI have in
//! common, laid out as the system is:
//!
//! - [`channels`]: one module per channel, from a webhook body to [`signal`]s (the queue
//!   messages between ingest and dispatch);
//! - [`conversion`]: the pure conversion core every channel and destination shares (the
//!   configuration, click attribution, the data an event carries, mapping); no I/O, time is a
//!   value;
//! - [`delivery`]: the destination-neutral vocabulary of sending (a built event, its target, an
//!   answer, an error with the destination's verdict, the port the dispatcher sends through);
//! - one module per destination, each speaking that vocabulary and importing no other:
//!   [`meta`] (the CAPI model, the Graph client) and [`tiktok`] (the Events API model and
//!   client); [`destinations`] registers them (a new destination is a folder and its lines
//!   there);
//! - [`model`]: the vocabulary everything names ([`model::Channel`], [`model::EventName`],
//!   [`model::Destination`]), and [`values`]: how values are normalised, hashed and checked;
//! - the ports ([`queue`], [`secrets`], and [`store`]: clicks, the sent-ledger and the report
//!   counts, with the one contract every store keeps) with in-memory adapters beside them, and
//!   their AWS adapters together in [`aws`];
//! - the edges: [`ingest`] (webhooks and [`business`] events in), [`dispatch`] (batches out);
//! - [`report`]: what was sent and skipped, per day, ad, rule and event, and match-key coverage;
//! - support: [`clock`], [`config`], [`metrics`], [`logging`], [`lenient`], [`redact`], [`signature`];
//!   [`fuzzing`], the fuzz targets' checks, which the test suite runs over the inputs they found.

pub mod aws;
pub mod business;
pub mod channels;
pub mod clock;
pub mod config;
pub mod conversion;
pub mod delivery;
pub mod destinations;
pub mod dispatch;
pub mod fuzzing;
pub mod ingest;
pub mod lenient;
pub mod logging;
pub mod meta;
pub mod metrics;
pub mod model;
pub mod queue;
pub mod redact;
pub mod report;
pub mod secrets;
pub mod signal;
pub mod signature;
pub mod store;
pub mod tiktok;
pub mod values;
