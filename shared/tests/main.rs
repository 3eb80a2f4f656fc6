//! Every integration test of this crate in one binary, a module per file. Each test binary
//! links the AWS SDK and the whole workspace; one binary instead of one per file keeps a CI run's
//! link time and disk small. Snapshots are named `suite__<module>__<name>.snap`.

mod dispatch;
mod documented;
mod mapping;
mod parsers;
mod queue;
mod shapes;
mod store;
mod tiktok;
