//! The vocabulary every part of wacapi shares, and which names nothing above it: the
//! [`Channel`] a conversation happens on, the [`EventName`] of a conversion, and the
//! [`Destination`] (the ad platform) it is reported to.

pub mod channel;
pub mod custom_data;
pub mod destination;
pub mod event_name;

pub use channel::Channel;
pub use destination::Destination;
pub use event_name::EventName;
