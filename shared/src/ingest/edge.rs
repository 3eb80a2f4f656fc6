//! The HTTP edge both deployments share: the Lambda behind API Gateway and `wacapi serve`
//! translate their request into a [`Route`], its query, headers and body, call
//! [`Ingest::handle`], and translate the [`Reply`] back. Routing (a trailing slash names the same
//! route; an API Gateway stage may prefix the path), which method each route takes, which
//! headers it reads (every value of a repeated header, so a request never chooses which claim is
//! checked) and how large a body it reads are decided here once, so both edges answer alike.

use http::{HeaderMap, Method};

use super::{Ingest, MAX_BODY_BYTES, MAX_EVENTS_BODY_BYTES, Reply};
use crate::business;
use crate::metrics::Metrics;
use crate::queue::MessageSink;
use crate::secrets::SecretSource;
use crate::signature::SIGNATURE_HEADER;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /webhook`: Meta's subscription handshake.
    Handshake,
    /// `POST /webhook`: a signed webhook body.
    Webhook,
    /// `POST /events`: signed business events.
    Events,
    /// A path that is neither route.
    NotFound,
    /// A route asked with a method it does not take.
    MethodNotAllowed,
}

impl Route {
    /// The route of `method` on `path`: the path's last segment names it (`/webhook`,
    /// `/events`, after any prefix such as an API Gateway stage), a trailing slash names the
    /// same route.
    pub fn of(method: &Method, path: &str) -> Self {
        let path = path.trim_end_matches('/');
        if path.ends_with("/events") || path == "events" {
            return if method == Method::POST {
                Self::Events
            } else {
                Self::MethodNotAllowed
            };
        }
        if !(path.ends_with("/webhook") || path == "webhook") {
            return Self::NotFound;
        }
        match *method {
            Method::GET => Self::Handshake,
            Method::POST => Self::Webhook,
            _ => Self::MethodNotAllowed,
        }
    }

    /// The most body bytes the route reads: a larger body is refused with 413 (`serve` before
    /// reading it; API Gateway bounds the Lambda's, and [`Ingest::receive`] checks again).
    pub fn max_body(self) -> usize {
        match self {
            Self::Webhook => MAX_BODY_BYTES,
            Self::Events => MAX_EVENTS_BODY_BYTES,
            Self::Handshake | Self::NotFound | Self::MethodNotAllowed => 0,
        }
    }
}

/// Every value of header `name`, in order.
fn all<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a [u8]> {
    headers.get_all(name).iter().map(|v| v.as_bytes()).collect()
}

impl<S: SecretSource, Q: MessageSink, D: MessageSink> Ingest<S, Q, D> {
    /// Answers one request on `route`, as either edge received it; `now` is unix seconds (the
    /// events' signatures are checked against it).
    pub async fn handle(
        &self,
        route: Route,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
        now: i64,
        metrics: &mut Metrics,
    ) -> Reply {
        match route {
            Route::Handshake => self.handshake(query, metrics).await,
            Route::Webhook => {
                self.receive(&all(headers, SIGNATURE_HEADER), body, metrics)
                    .await
            }
            Route::Events => {
                self.receive_events(
                    &all(headers, business::TIMESTAMP_HEADER),
                    &all(headers, business::SIGNATURE_HEADER),
                    body,
                    now,
                    metrics,
                )
                .await
            }
            Route::NotFound => Reply::new(404, "not found"),
            Route::MethodNotAllowed => Reply::new(405, "method not allowed"),
        }
    }
}

impl Reply {
    /// The reply as an HTTP response of `body`'s type (each edge's body type converts from
    /// the reply's text).
    pub fn into_http<B: From<String>>(self) -> http::Response<B> {
        let mut response = http::Response::new(B::from(self.body));
        *response.status_mut() = http::StatusCode::from_u16(self.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        response.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(self.content_type),
        );
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_read_from_the_last_segment_with_or_without_a_slash() {
        let get = Method::GET;
        let post = Method::POST;
        for path in ["/webhook", "/webhook/", "/prod/webhook", "/prod/webhook/"] {
            assert_eq!(Route::of(&get, path), Route::Handshake, "{path}");
            assert_eq!(Route::of(&post, path), Route::Webhook, "{path}");
            assert_eq!(Route::of(&Method::PUT, path), Route::MethodNotAllowed);
        }
        for path in ["/events", "/events/", "/prod/events"] {
            assert_eq!(Route::of(&post, path), Route::Events, "{path}");
            assert_eq!(Route::of(&get, path), Route::MethodNotAllowed, "{path}");
        }
        for path in [
            "/",
            "",
            "/webhooks",
            "/mywebhook",
            "/events.json",
            "/report",
        ] {
            assert_eq!(Route::of(&post, path), Route::NotFound, "{path}");
        }
        assert_eq!(Route::Webhook.max_body(), MAX_BODY_BYTES);
        assert_eq!(Route::Events.max_body(), MAX_EVENTS_BODY_BYTES);
    }

    #[test]
    fn a_reply_becomes_a_response_with_its_type_and_retry_after() {
        let response: http::Response<String> =
            Reply::new(503, "full").with_retry_after(30).into_http();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "30");
        assert_eq!(
            response.headers()[http::header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(response.body(), "full");
    }
}
