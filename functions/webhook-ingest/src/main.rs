//! `bootstrap` of the webhook-ingest Lambda: wires settings, AWS clients and the secret cache
//! once, then serves invocations with [`webhook_ingest::handler`].

use lambda_http::{run, service_fn};
use wacapi_shared::config::IngestSettings;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    // Library targets are capped at INFO: at TRACE the runtime would log raw invocations.
    wacapi_shared::logging::init_lambda();
    let settings = IngestSettings::from_env().inspect_err(|e| {
        webhook_ingest::report_startup_error(e);
    })?;
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let state = webhook_ingest::State::from_aws(&aws, &settings);
    let state = &state;
    run(service_fn(move |request| {
        webhook_ingest::handler(state, request)
    }))
    .await
}
