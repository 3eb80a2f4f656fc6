//! The pure conversion core, shared by every channel and destination: rules, click attribution,
//! mapping signals to events, normalisation and hashing, money and privacy checks. No I/O; time
//! is a value.

pub mod clicks;
pub mod geo;
pub mod hashing;
pub mod mapping;
pub mod money;
pub mod pipeline;
pub mod privacy;
pub mod rules;
pub mod toml_error;
