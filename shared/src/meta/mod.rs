//! Meta as a destination: the Conversions API for Business Messaging ([`capi`]), the Graph API
//! client that sends to it, with Meta's error classification ([`graph`]), Meta's version
//! calendar the configured Graph API version is checked against ([`versions`]), and the Ads
//! Insights API the conversion report reads spend from ([`insights`]).

pub mod capi;
pub mod graph;
pub mod insights;
pub mod versions;
