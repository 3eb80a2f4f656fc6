//! How the values wacapi is handed are read, normalised and checked, whatever their channel or
//! destination: customer information normalised and SHA-256-hashed as Meta's customer
//! information parameters say ([`hashing`], with [`geo`]'s country and state codes), amounts and
//! quantities as catalogs write them ([`money`]), and what counts as personal data where only
//! non-personal data may go ([`privacy`]). No I/O; nothing here knows a channel, a rule or a
//! destination.

pub mod geo;
pub mod hashing;
pub mod money;
pub mod pattern;
pub mod privacy;
