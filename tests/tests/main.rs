//! Every integration test of this crate in one binary, a module per file. Each test binary
//! links the AWS SDK and the whole workspace; one binary instead of one per file keeps a CI run's
//! link time and disk small. Snapshots are named `suite__<module>__<name>.snap`.

mod business_aws;
mod channels_aws;
mod dispatch_aws;
mod graph_answers;
mod identity_aws;
mod infra_contract;
mod ingest_aws;
mod ingest_handler;
mod lambda_boot;
mod metrics_catalogue;
mod provider_schema;
mod report_aws;
mod store_aws;
mod store_contract_aws;
mod tiktok_aws;
mod tiktok_contract;
