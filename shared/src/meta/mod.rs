//! Meta as a destination: the Conversions API for Business Messaging ([`capi`]) and the Graph API
//! client that sends to it, with Meta's error classification ([`graph`]).

pub mod capi;
pub mod graph;
