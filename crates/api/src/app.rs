//! The HTTP service: every request goes through the router and its layers, except a webhook
//! delivered to `POST`/`PUT /ingest/{webhook_key}`, which takes a lane of its own to the same
//! handler.
//!
//! Why a lane: ingest is the endpoint that takes load by design (every tool's webhooks, in
//! bursts), and the router's own work per request — cloning the boxed stack of layers around
//! the matched route, extensions for the matched path and its parameters, a future per layer —
//! was a tenth of the CPU an accepted event cost (BENCHMARKS.md, "An ingest lane"). The lane
//! gives an ingest request what the layers give every other one, directly: the request id
//! (kept from the request or made, set on both the request and the response), the trace span
//! and its events, the request metrics under the route `/ingest/{webhook_key}`, and a 500 in
//! Port's shape if the handler panics.
//!
//! Invariant: a request answers the same through the lane as through the router. Anything the
//! lane does not handle the same way (a percent-encoded key, another method, a deeper path)
//! goes to the router.

use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use tower::Service;
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;
use crate::{REQUEST_ID, new_request_id, request_span, routes, telemetry};

/// The route the lane serves, as the router names it (the metrics' `route` label).
const INGEST_ROUTE: &str = "/ingest/{webhook_key}";

/// Wharf's HTTP service (what `axum::serve` runs). Cheap to clone: hyper clones it per request.
#[derive(Clone)]
pub struct App {
    state: AppState,
    router: Router,
}

impl App {
    pub(crate) fn new(state: AppState, router: Router) -> Self {
        Self { state, router }
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl Service<Request> for App {
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready, and so is the lane.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Answer {
        match ingest_key(req.method(), req.uri().path()) {
            Some(key) => {
                let key = key.to_owned();
                Box::pin(ingest_lane(self.state.clone(), key, req))
            }
            None => Box::pin(self.router.call(req)),
        }
    }
}

/// The webhook key of a request the lane takes: `POST` or `PUT` to `/ingest/` and one path
/// segment that needs no decoding.
fn ingest_key<'a>(method: &Method, path: &'a str) -> Option<&'a str> {
    if method != Method::POST && method != Method::PUT {
        return None;
    }
    let key = path.strip_prefix("/ingest/")?;
    (!key.is_empty() && !key.contains(['/', '%'])).then_some(key)
}

async fn ingest_lane(state: AppState, key: String, req: Request) -> Result<Response, Infallible> {
    let started = Instant::now();
    let (mut parts, body) = req.into_parts();
    let request_id = request_id(&mut parts.headers);
    let span = request_span(&parts.method, parts.uri.path(), &request_id);
    let method = parts.method.clone();
    let handler = async move {
        let query = parts.uri.query();
        routes::ingest::receive(&state, &key, query, parts.headers, body).await.into_response()
    };
    let answer = async move {
        tracing::debug!("started processing request");
        let mut response = CatchPanic(Box::pin(handler)).await;
        let status = response.status();
        let latency = started.elapsed();
        tracing::debug!(latency = ?latency, status = status.as_u16(), "finished processing request");
        if status.is_server_error() {
            tracing::error!(latency = ?latency, status = status.as_u16(), "response failed");
        }
        response.headers_mut().insert(REQUEST_ID, request_id);
        telemetry::record(&method, INGEST_ROUTE, status.as_u16(), latency);
        response
    };
    Ok(answer.instrument(span).await)
}

/// The request's id: its own `x-request-id`, else a new one, set on the request (the handler
/// and the stored event see it, as they do behind the router's `SetRequestIdLayer`).
fn request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(id) = headers.get(REQUEST_ID) {
        return id.clone();
    }
    let id = new_request_id();
    headers.insert(REQUEST_ID, id.clone());
    id
}

/// A handler's future that answers a panic with a 500, as the router's `CatchPanicLayer` does.
struct CatchPanic(Pin<Box<dyn Future<Output = Response> + Send>>);

impl Future for CatchPanic {
    type Output = Response;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response> {
        // After a panic the future is not polled again: this answers `Ready` then.
        match std::panic::catch_unwind(AssertUnwindSafe(|| self.0.as_mut().poll(cx))) {
            Ok(poll) => poll,
            Err(panic) => Poll::Ready(panic_response(panic)),
        }
    }
}

/// The answer to a handler that panicked, on either path.
pub(crate) fn panic_response(_panic: Box<dyn Any + Send>) -> Response {
    ApiError::internal(&"a handler panicked").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lane_takes_one_plain_key_for_post_and_put() {
        assert_eq!(ingest_key(&Method::POST, "/ingest/abc123"), Some("abc123"));
        assert_eq!(ingest_key(&Method::PUT, "/ingest/abc123"), Some("abc123"));
    }

    #[test]
    fn the_router_takes_everything_else() {
        assert_eq!(ingest_key(&Method::GET, "/ingest/abc123"), None, "405 comes from the router");
        assert_eq!(ingest_key(&Method::POST, "/ingest/"), None);
        assert_eq!(ingest_key(&Method::POST, "/ingest/abc/def"), None);
        assert_eq!(ingest_key(&Method::POST, "/ingest/abc/"), None);
        assert_eq!(ingest_key(&Method::POST, "/ingest/a%62c"), None, "the router decodes keys");
        assert_eq!(ingest_key(&Method::POST, "/v1/webhooks"), None);
        assert_eq!(ingest_key(&Method::POST, "/ingestx/abc"), None);
    }
}
