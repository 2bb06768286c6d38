//! The request span and correlation id every answer of both listeners goes through.

use std::future::Future;
use std::time::Instant;

use hyper::{Request, Response};
use tracing::field::Empty;
use tracing::{Instrument, info, info_span};

use crate::canonical::loggable;
use crate::names;
use crate::reply::{Reply, ResponseBody};
use crate::request_id;

/// Answers `request` with what `route` replies, the way the webhook listener answers: `route` runs inside
/// one `request` span (`method`, `path`, `delivery_id`, `event`, `status`, `latency_ms`), a
/// `request_answered` event ends it, and the [`Reply`] becomes a JSON response carrying `x-request-id`
/// (the request's valid `X-GitHub-Delivery`, or a generated `edge-...` id).
///
/// For routers served with [`serve_routes`](crate::serve_routes), so every listener's answers and logs
/// look alike:
///
/// ```
/// use booty_edge::{Reply, answer};
/// use hyper::{Request, StatusCode};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let request = Request::get("/nowhere").body(())?;
/// let response = answer(request, |request| async move {
///     Reply::not_found(request.uri().path())
/// })
/// .await;
/// assert_eq!(response.status(), StatusCode::NOT_FOUND);
/// assert!(response.headers()["x-request-id"].to_str()?.starts_with("edge-"));
/// # Ok(())
/// # }
/// ```
pub async fn answer<B, F, Fut>(request: Request<B>, route: F) -> Response<ResponseBody>
where
    F: FnOnce(Request<B>) -> Fut,
    Fut: Future<Output = Reply>,
{
    let started = Instant::now();
    let request_id = request_id::for_request(request.headers());
    let span = info_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
        delivery_id = Empty,
        event = Empty,
        status = Empty,
        latency_ms = Empty,
    );
    if request.headers().get(&names::DELIVERY) == Some(&request_id) {
        span.record("delivery_id", request_id.to_str().unwrap_or_default());
    }
    if let Some(event) = request.headers().get(&names::EVENT).and_then(loggable) {
        span.record("event", event);
    }
    let reply = route(request).instrument(span.clone()).await;
    let status = reply.status_code().as_u16();
    // Microsecond resolution is all a latency needs; more digits are float noise in the log.
    let latency_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
    span.record("status", status);
    span.record("latency_ms", latency_ms);
    span.in_scope(|| info!(status, latency_ms, "request_answered"));
    reply.into_response(request_id)
}
