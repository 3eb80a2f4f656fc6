//! The `webhook-ingest` Lambda: API Gateway HTTP API (payload v2) in front of
//! [`wacapi_shared::ingest::Ingest`].
//!
//! `GET /webhook` answers Meta's subscription handshake; `POST /webhook` verifies, splits and
//! enqueues; `POST /events` takes business-reported conversions. EMF metrics are written to stdout once per invocation.

use std::convert::Infallible;
use std::io::Write;

use lambda_http::{Body, Request, RequestExt, Response};
use wacapi_shared::aws::secrets_manager::SecretsManagerSource;
use wacapi_shared::aws::sqs::SqsQueue;
use wacapi_shared::config::{IngestSettings, SECRET_FORCED_REFRESH_INTERVAL};
use wacapi_shared::ingest::{Ingest, Route};
use wacapi_shared::metrics::Metrics;
use wacapi_shared::queue::MessageSink;
use wacapi_shared::secrets::{CachedSecret, SecretSource};

/// The `Service` dimension of this function's metrics.
pub const SERVICE: &str = "webhook-ingest";

/// The AWS actions this function's code calls, on which Terraform resource. `infra/iam.tf`
/// grants exactly these (plus writing its own logs); tests/tests/infra_contract.rs checks both
/// the grant and that the adapters it links call nothing else.
pub const AWS_PERMISSIONS: &[(&str, &str)] = &[
    ("sqs:SendMessage", "aws_sqs_queue.signals"),
    ("sqs:SendMessage", "aws_sqs_queue.dead_letters"),
    (
        "secretsmanager:GetSecretValue",
        "aws_secretsmanager_secret.webhook",
    ),
    (
        "secretsmanager:GetSecretValue",
        "aws_secretsmanager_secret.events_keys",
    ),
];

/// The ingest as deployed: Secrets Manager and two SQS FIFO queues.
pub type AwsIngest = Ingest<SecretsManagerSource, SqsQueue, SqsQueue>;

/// What every invocation borrows.
#[derive(Debug)]
pub struct State<S, Q, D> {
    /// The ingest core.
    pub ingest: Ingest<S, Q, D>,
    /// CloudWatch namespace for EMF metrics.
    pub metrics_namespace: String,
    /// Whether EMF documents are written to stdout (off in tests).
    pub emit_metrics: bool,
}

impl State<SecretsManagerSource, SqsQueue, SqsQueue> {
    /// Wires the deployed ingest from settings and one AWS configuration.
    pub fn from_aws(aws: &aws_config::SdkConfig, settings: &IngestSettings) -> Self {
        let sqs = aws_sdk_sqs::Client::new(aws);
        let secrets_client = aws_sdk_secretsmanager::Client::new(aws);
        fn cache<T: wacapi_shared::secrets::SecretDocument>(
            client: &aws_sdk_secretsmanager::Client,
            arn: &str,
            ttl: std::time::Duration,
        ) -> CachedSecret<T, SecretsManagerSource> {
            CachedSecret::new(
                SecretsManagerSource::new(client.clone(), arn),
                ttl,
                SECRET_FORCED_REFRESH_INTERVAL,
            )
        }
        let mut ingest = Ingest::new(
            cache(
                &secrets_client,
                &settings.webhook_secret_arn,
                settings.secret_ttl,
            ),
            SqsQueue::new(sqs.clone(), &settings.signal_queue_url),
            SqsQueue::new(sqs, &settings.dead_letter_queue_url),
        );
        if let Some(arn) = &settings.events_secret_arn {
            ingest = ingest.with_event_keys(cache(&secrets_client, arn, settings.secret_ttl));
        }
        Self {
            ingest,
            metrics_namespace: settings.metrics_namespace.clone(),
            emit_metrics: true,
        }
    }
}

/// Handles one API Gateway request. Never fails: every outcome is an HTTP answer. The routes
/// and their answers are the shared edge's ([`Route`], [`Ingest::handle`]); this only
/// translates API Gateway's request and writes the metrics.
pub async fn handler<S: SecretSource, Q: MessageSink, D: MessageSink>(
    state: &State<S, Q, D>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let mut metrics = Metrics::new(state.metrics_namespace.clone(), SERVICE);
    let route = Route::of(request.method(), request.raw_http_path());
    let reply = state
        .ingest
        .handle(
            route,
            request.uri().query(),
            request.headers(),
            request.body().as_ref(),
            wacapi_shared::clock::now(),
            &mut metrics,
        )
        .await;
    if state.emit_metrics
        && let Err(err) = metrics.flush_to(&mut std::io::stdout().lock())
    {
        tracing::warn!(error = %err, "metrics could not be written");
    }
    Ok(reply.into_http())
}

/// Writes a line to stderr before the runtime starts (tracing may not be set up yet).
pub fn report_startup_error(err: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "webhook-ingest cannot start: {err}");
}
