//! The pure conversion core, shared by every channel and destination: rules, click attribution,
//! mapping signals to events, and the processing of a signal through them (the values they
//! read are normalised, hashed and checked in [`crate::values`]). No I/O; time is a value.

pub mod attribution;
pub mod clicks;
pub mod event_data;
pub mod mapping;
pub mod pipeline;
pub mod rules;
pub mod toml_error;
