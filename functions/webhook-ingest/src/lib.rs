//! The `webhook-ingest` Lambda: API Gateway HTTP API (payload v2) in front of
//! [`wacapi_shared::ingest::Ingest`].
//!
//! `GET /webhook` answers Meta's subscription handshake; `POST /webhook` verifies, splits and
//! enqueues; `POST /events` takes business-reported conversions. EMF metrics are written to stdout once per invocation.

use std::convert::Infallible;
use std::io::Write;

use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use wacapi_shared::aws::secrets_manager::SecretsManagerSource;
use wacapi_shared::aws::sqs::SqsQueue;
use wacapi_shared::business;
use wacapi_shared::config::{IngestSettings, SECRET_FORCED_REFRESH_INTERVAL};
use wacapi_shared::ingest::{Ingest, Reply};
use wacapi_shared::metrics::Metrics;
use wacapi_shared::queue::MessageSink;
use wacapi_shared::secrets::{CachedSecret, SecretSource};
use wacapi_shared::signature::SIGNATURE_HEADER;

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

/// Handles one API Gateway request. Never fails: every outcome is an HTTP answer.
pub async fn handler<S: SecretSource, Q: MessageSink, D: MessageSink>(
    state: &State<S, Q, D>,
    request: Request,
) -> Result<Response<Body>, Infallible> {
    let mut metrics = Metrics::new(state.metrics_namespace.clone(), SERVICE);
    let reply = route(state, &request, &mut metrics).await;
    if state.emit_metrics
        && let Err(err) = metrics.flush_to(&mut std::io::stdout().lock())
    {
        tracing::warn!(error = %err, "metrics could not be written");
    }
    Ok(into_response(reply))
}

async fn route<S: SecretSource, Q: MessageSink, D: MessageSink>(
    state: &State<S, Q, D>,
    request: &Request,
    metrics: &mut Metrics,
) -> Reply {
    let path = request.raw_http_path().trim_end_matches('/');
    if path.ends_with("/events") {
        if request.method() != Method::POST {
            return Reply::new(405, "method not allowed");
        }
        let all = |name: &str| -> Vec<&[u8]> {
            request
                .headers()
                .get_all(name)
                .iter()
                .map(|v| v.as_bytes())
                .collect()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        return state
            .ingest
            .receive_events(
                &all(business::TIMESTAMP_HEADER),
                &all(business::SIGNATURE_HEADER),
                request.body().as_ref(),
                now,
                metrics,
            )
            .await;
    }
    if !path.ends_with("/webhook") {
        return Reply::new(404, "not found");
    }
    match *request.method() {
        Method::GET => state.ingest.handshake(request.uri().query(), metrics).await,
        Method::POST => {
            let signatures: Vec<&[u8]> = request
                .headers()
                .get_all(SIGNATURE_HEADER)
                .iter()
                .map(|v| v.as_bytes())
                .collect();
            state
                .ingest
                .receive(&signatures, request.body().as_ref(), metrics)
                .await
        }
        _ => Reply::new(405, "method not allowed"),
    }
}

fn into_response(reply: Reply) -> Response<Body> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = reply.content_type;
    let mut response = Response::new(Body::Text(reply.body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    if let Some(seconds) = reply.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
    }
    response
}

/// Writes a line to stderr before the runtime starts (tracing may not be set up yet).
pub fn report_startup_error(err: &dyn std::fmt::Display) {
    let _ = writeln!(std::io::stderr(), "webhook-ingest cannot start: {err}");
}
