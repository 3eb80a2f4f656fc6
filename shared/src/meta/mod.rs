//! Meta as a destination: the Conversions API for Business Messaging ([`capi`]), the Graph API
//! client that sends to it, with Meta's error classification ([`graph`]), and Meta's version
//! calendar the configured Graph API version is checked against ([`versions`]).

pub mod capi;
pub mod graph;
pub mod versions;
