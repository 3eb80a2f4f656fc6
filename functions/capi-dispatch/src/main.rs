//! `bootstrap` of the capi-dispatch Lambda: wires settings, rules, AWS clients and the token
//! cache once, then serves SQS batches with [`capi_dispatch::handler`]. Invalid rules and an
//! expired Graph API version ([`versions::check`], on today's date) fail the init.

use lambda_runtime::{run, service_fn};
use wacapi_shared::config::DispatchEnv;
use wacapi_shared::meta::versions;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    // Library targets are capped at INFO: at TRACE the runtime would log raw invocations.
    wacapi_shared::logging::init_lambda();
    let env = DispatchEnv::from_env()?;
    // An invalid rules file stops the function at init: nothing is sent under wrong rules, the
    // records wait in the queue, and the Lambda error alarm fires.
    let rules = env.load_rules()?;
    for warning in &rules.warnings {
        tracing::warn!(warning = %warning, "configuration");
    }
    // An expired Graph API version stops the function at init as well: Meta would refuse its
    // calls or auto-upgrade them to a version whose behaviour nobody chose. The records wait in
    // the queue and the Lambda errors alarm fires; one expiring soon is a warning.
    match versions::check(&rules.graph_api_version, versions::Date::today()) {
        Ok(None) => {}
        Ok(Some(warning)) => tracing::warn!(warning = %warning, "configuration"),
        Err(err) => {
            tracing::error!(error = %err, "configuration");
            // As text: the init error Lambda reports is the error's Debug form.
            return Err(err.to_string().into());
        }
    }
    let aws = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let state = capi_dispatch::State::from_aws(&aws, &env, rules)?;
    let state = &state;
    run(service_fn(move |event| {
        capi_dispatch::handler(state, event)
    }))
    .await
}
