//! The local pipeline's HTTP server: the ingest routes behind the limits a public endpoint
//! needs. A connection must send its request headers within [`HEADER_READ_TIMEOUT`] (idle
//! keep-alive connections included) and its body within [`BODY_READ_TIMEOUT`]; at most
//! [`MAX_CONNECTIONS`] are served at once, further ones wait in the listen backlog. Idle or slow
//! clients therefore cannot hold the server: each is closed within seconds.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Body as _;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Time a connection has to send a request's headers (and an idle one to send its next).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Time a request has to send its whole body (4 MiB at a slow 150 kB/s).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Time requests in progress get to finish when the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `stop` turns true, then stops accepting and lets the
/// requests in progress finish (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of descriptors or a reset handshake: wait a little, never spin.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true)
            .serve_connection(
                TokioIo::new(stream),
                TowerToHyperService::new(router.clone()),
            );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// Why a body was not read.
enum BodyError {
    /// More than the limit.
    TooLarge,
    /// Not a well-formed HTTP/1.1 body (a malformed chunk size, say), or the client left.
    Malformed,
}

/// Reads a request body of at most `limit` bytes within [`BODY_READ_TIMEOUT`]: 413 at once
/// when its declared `Content-Length` is above the limit (nothing is read, so a client cannot
/// hold the connection by announcing a body it never sends), 413 as soon as a chunked body
/// passes it, 400 for a body that is not well-formed HTTP/1.1 (a malformed chunk size), 408
/// when the client is too slow.
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let too_large = || {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body exceeds the {limit}-byte limit"),
        )
            .into_response()
    };
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(BODY_READ_TIMEOUT, collect(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(BodyError::TooLarge)) => Err(too_large()),
        Ok(Err(BodyError::Malformed)) => {
            Err((StatusCode::BAD_REQUEST, "malformed request body").into_response())
        }
        Err(_) => Err((StatusCode::REQUEST_TIMEOUT, "body not received in time").into_response()),
    }
}

/// The body's bytes, refusing it as soon as it passes `limit`.
async fn collect(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let mut out = Vec::new();
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        match frame {
            None => return Ok(Bytes::from(out)),
            Some(Err(_)) => return Err(BodyError::Malformed),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > limit {
                        return Err(BodyError::TooLarge);
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}
