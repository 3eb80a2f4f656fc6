//! The local pipeline's HTTP server: the ingest routes behind the limits a public endpoint
//! needs. A connection must send its request headers within [`HEADER_READ_TIMEOUT`] (idle
//! keep-alive connections included) and its body within [`BODY_READ_TIMEOUT`]; at most
//! [`MAX_CONNECTIONS`] are served at once.
//!
//! One client cannot starve the rest by holding connections it sends nothing on. The server
//! never stops accepting: a connection that has not sent a complete request head is *idle*,
//! one whose request is being answered is *busy*. At the cap, a new connection closes the idle
//! connection that has waited longest (a legitimate client sends its head at once, so its
//! connection is busy or young); with nothing idle to close, the new one is answered 503.
//! Above half the cap, idle connections get [`PRESSED_HEADER_TIMEOUT`] instead of
//! [`HEADER_READ_TIMEOUT`].

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};

/// Time a connection has to send a request's headers (and an idle one to send its next).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The same under pressure (more than half of [`MAX_CONNECTIONS`] open).
pub const PRESSED_HEADER_TIMEOUT: Duration = Duration::from_secs(1);

/// Time a request has to send its whole body (4 MiB at a slow 150 kB/s).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 512;

/// Time requests in progress get to finish when the server stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How often idle connections are checked against the header timeout under pressure.
const SWEEP_INTERVAL: Duration = Duration::from_millis(100);

/// The answer to a connection that finds every slot busy with a request.
const BUSY_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

const IDLE: u8 = 0;
const BUSY: u8 = 1;
const CLOSED: u8 = 2;

/// One open connection, as the cap sees it.
#[derive(Debug)]
struct Slot {
    /// [`IDLE`], [`BUSY`] or [`CLOSED`] (chosen to be closed; its task drops it).
    state: AtomicU8,
    /// Milliseconds since the server started when it last became idle.
    idle_since: AtomicU64,
    close: Notify,
}

/// The open connections.
#[derive(Debug)]
struct Connections {
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    next: AtomicU64,
    epoch: Instant,
    max: usize,
}

impl Connections {
    /// Room for `max` connections.
    fn new(max: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            epoch: Instant::now(),
            max,
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// A slot for a new connection: at the cap, the connection idle the longest is closed to
    /// make room; `None` when every one is busy with a request.
    fn admit(&self) -> Option<(u64, Arc<Slot>)> {
        let mut slots = self.slots.lock().ok()?;
        while slots.len() >= self.max {
            // The idle one that has waited longest: one pass, as this runs on every accept at
            // the cap. It may turn busy while this looks; then the next is chosen.
            let (id, slot) = slots
                .iter()
                .filter(|(_, s)| s.state.load(Ordering::Acquire) == IDLE)
                .min_by_key(|(_, s)| s.idle_since.load(Ordering::Acquire))
                .map(|(id, s)| (*id, Arc::clone(s)))?;
            if slot
                .state
                .compare_exchange(IDLE, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                slots.remove(&id);
                slot.close.notify_one();
            }
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(Slot {
            state: AtomicU8::new(IDLE),
            idle_since: AtomicU64::new(self.now_ms()),
            close: Notify::new(),
        });
        slots.insert(id, Arc::clone(&slot));
        Some((id, slot))
    }

    fn remove(&self, id: u64) {
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(&id);
        }
    }

    /// Under pressure, closes the connections idle for longer than [`PRESSED_HEADER_TIMEOUT`].
    fn sweep(&self) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        if slots.len() <= self.max / 2 {
            return;
        }
        let cutoff = self
            .now_ms()
            .saturating_sub(PRESSED_HEADER_TIMEOUT.as_millis() as u64);
        slots.retain(|_, slot| {
            let stale = slot.idle_since.load(Ordering::Acquire) < cutoff
                && slot
                    .state
                    .compare_exchange(IDLE, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok();
            if stale {
                slot.close.notify_one();
            }
            !stale
        });
    }

    /// Connections open.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().map(|s| s.len()).unwrap_or(0)
    }
}

/// Marks its connection busy while a request is answered, and idle again once the answer's
/// body is written (or dropped).
struct Busy {
    slot: Arc<Slot>,
    connections: Arc<Connections>,
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.slot
            .idle_since
            .store(self.connections.now_ms(), Ordering::Release);
        let _ = self
            .slot
            .state
            .compare_exchange(BUSY, IDLE, Ordering::AcqRel, Ordering::Acquire);
    }
}

/// A response body that keeps its connection busy until it is written.
struct TrackedBody {
    inner: Body,
    _busy: Busy,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The router, marking the connection busy from a complete request head to the end of the
/// answer.
struct Tracked {
    router: TowerToHyperService<Router>,
    slot: Arc<Slot>,
    connections: Arc<Connections>,
}

type TrackedFuture =
    Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Tracked {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = TrackedFuture;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let busy = Busy {
            slot: Arc::clone(&self.slot),
            connections: Arc::clone(&self.connections),
        };
        let began = self
            .slot
            .state
            .compare_exchange(IDLE, BUSY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if !began {
            // Chosen to be closed just as its head arrived: nothing is done for it.
            let refused = (StatusCode::SERVICE_UNAVAILABLE, "try again").into_response();
            return Box::pin(
                async move { Ok(refused.map(|inner| TrackedBody { inner, _busy: busy })) },
            );
        }
        let answer = hyper::service::Service::call(&self.router, request);
        Box::pin(async move {
            let response = answer.await?;
            Ok(response.map(|inner| TrackedBody { inner, _busy: busy }))
        })
    }
}

/// Serves `router` on `listener` until `stop` turns true, then stops accepting and lets the
/// requests in progress finish (at most [`SHUTDOWN_GRACE`]).
pub async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let connections = Arc::new(Connections::new(MAX_CONNECTIONS));
    let graceful = GracefulShutdown::new();
    let sweeper = tokio::spawn({
        let connections = Arc::clone(&connections);
        async move {
            loop {
                tokio::time::sleep(SWEEP_INTERVAL).await;
                connections.sweep();
            }
        }
    });
    loop {
        if *stop.borrow() {
            break;
        }
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
        let Some((id, slot)) = connections.admit() else {
            refuse(stream);
            continue;
        };
        let service = Tracked {
            router: TowerToHyperService::new(router.clone()),
            slot: Arc::clone(&slot),
            connections: Arc::clone(&connections),
        };
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        let connections = Arc::clone(&connections);
        tokio::spawn(async move {
            tokio::select! {
                _ = connection => {}
                // Chosen to make room: dropping the connection closes it.
                _ = slot.close.notified() => {}
            }
            connections.remove(id);
        });
    }
    sweeper.abort();
    drop(listener);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
}

/// Answers 503 to a connection that finds every slot busy with a request, without waiting.
fn refuse(stream: TcpStream) {
    let _ = stream.try_write(BUSY_ANSWER);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(slot: &Slot) -> u8 {
        slot.state.load(Ordering::SeqCst)
    }

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room_never_a_busy_one() {
        let connections = Connections::new(3);
        let slots: Vec<_> = (0..3).map(|_| connections.admit().unwrap().1).collect();
        // The oldest is busy with a request; the second oldest has waited longest idle.
        slots[0].state.store(BUSY, Ordering::SeqCst);
        slots[1].idle_since.store(1, Ordering::SeqCst);
        slots[2].idle_since.store(2, Ordering::SeqCst);
        slots[0].idle_since.store(0, Ordering::SeqCst);
        let (_, fourth) = connections.admit().unwrap();
        assert_eq!(state(&slots[1]), CLOSED);
        assert_eq!((state(&slots[0]), state(&slots[2])), (BUSY, IDLE));
        assert_eq!(connections.len(), 3);
        // Busy ones are never closed: with every slot busy a new connection is refused.
        for slot in [&slots[2], &fourth] {
            slot.state.store(BUSY, Ordering::SeqCst);
        }
        assert!(connections.admit().is_none());
        assert_eq!(connections.len(), 3);
    }

    #[test]
    fn above_half_the_cap_idle_connections_get_the_short_header_timeout() {
        let connections = Connections::new(4);
        let slots: Vec<_> = (0..3).map(|_| connections.admit().unwrap().1).collect();
        let now = connections.now_ms() + 10_000;
        let old = now - PRESSED_HEADER_TIMEOUT.as_millis() as u64 - 1;
        // Pretend 10 s passed: two waited longer than the short timeout, one is busy.
        let connections = Connections {
            epoch: connections.epoch - Duration::from_secs(10),
            slots: Mutex::new(std::mem::take(&mut *connections.slots.lock().unwrap())),
            next: AtomicU64::new(3),
            max: 4,
        };
        slots[0].idle_since.store(old, Ordering::SeqCst);
        slots[1].idle_since.store(old, Ordering::SeqCst);
        slots[1].state.store(BUSY, Ordering::SeqCst);
        slots[2].idle_since.store(now, Ordering::SeqCst);
        connections.sweep();
        assert_eq!(
            slots.iter().map(|s| state(s)).collect::<Vec<_>>(),
            [CLOSED, BUSY, IDLE]
        );
        assert_eq!(connections.len(), 2);
        // At half the cap or below, the long timeout (hyper's) is the only one.
        slots[2].idle_since.store(0, Ordering::SeqCst);
        connections.sweep();
        assert_eq!(state(&slots[2]), IDLE);
    }
}
