//! The webhook listener's routes and the path of one delivery through them.

use std::fmt;
use std::sync::Arc;

use booty_event::{EVENT_HEADER, PingEvent};
use booty_signature::{HEADER_NAME as SIGNATURE_HEADER, VerifyError};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::body::{self, BodyError};
use crate::chain::Chain;
use crate::config::EdgeConfig;
use crate::decode;
use crate::observer::{Answered, event_name};
use crate::reply::{Reply, ResponseBody};
use crate::server::{Routes, ServeError, serve_routes};
use crate::sink::{Sink, SinkAnswer, Webhook};
use crate::traced;

/// Where GitHub posts deliveries.
pub const WEBHOOK_PATH: &str = "/webhooks/github";
/// The liveness probe.
pub const HEALTH_PATH: &str = "/health";

/// GitHub's legacy HMAC-SHA1 header, sent next to `X-Hub-Signature-256`.
const LEGACY_SIGNATURE_HEADER: &str = "x-hub-signature";

/// The webhook listener's request handling, usable with or without a socket.
///
/// [`serve`] runs it on a listener; [`Edge::handle`] answers one request, which is how tests and fuzzers
/// drive the whole request path without a network.
pub struct Edge<S> {
    config: EdgeConfig,
    sink: Arc<S>,
}

impl<S: Sink> Edge<S> {
    /// An edge that verifies with `config` and hands verified deliveries to `sink`.
    pub fn new(config: EdgeConfig, sink: Arc<S>) -> Self {
        Self { config, sink }
    }

    /// Answers one request: routing, limits, signature, decoding the headers and the payload's envelope,
    /// the sink, and the JSON answer with its `x-request-id`. Never fails: every problem is an HTTP status
    /// with a message.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body,
        B::Error: fmt::Display,
    {
        let Some(observer) = self
            .config
            .observer
            .as_ref()
            .filter(|_| request.uri().path() == WEBHOOK_PATH)
        else {
            return traced::answer(request, |request| self.route(request)).await;
        };
        let started = std::time::Instant::now();
        let event = request
            .headers()
            .get(EVENT_HEADER)
            .and_then(event_name)
            .map(str::to_owned);
        let response = traced::answer(request, |request| self.route(request)).await;
        let mut answered = Answered::new(response.status(), started.elapsed());
        answered.event = event.as_deref();
        observer.answered(&answered);
        response
    }

    async fn route<B>(&self, request: Request<B>) -> Reply
    where
        B: Body,
        B::Error: fmt::Display,
    {
        match (request.uri().path(), request.method()) {
            (WEBHOOK_PATH, &Method::POST) => self.webhook(request).await,
            (WEBHOOK_PATH, _) => Reply::method_not_allowed("POST"),
            (HEALTH_PATH, &Method::GET) => Reply::status(StatusCode::OK, "ok"),
            (HEALTH_PATH, _) => Reply::method_not_allowed("GET"),
            (path, _) => Reply::not_found(path),
        }
    }

    /// One delivery: size, signature over the raw bytes, then decoding, then `pong` for a ping or the sink
    /// for anything else. Reading the body is cut off at the request deadline; the sink is handed the
    /// deadline and waited for up to the backstop past it. Each step either passes its result on or ends
    /// the request with its reply.
    async fn webhook<B>(&self, request: Request<B>) -> Reply
    where
        B: Body,
        B::Error: fmt::Display,
    {
        let deadline = tokio::time::Instant::now() + self.config.limits.request_timeout;
        let (parts, body) = request.into_parts();
        info!(
            content_length = body.size_hint().exact(),
            "webhook_received"
        );
        let webhook = async {
            let signature = self.refuse_early(&parts.headers, &body)?;
            let body = self.read_body(body, deadline).await?;
            self.verify(signature, &body)?;
            let webhook = decode::decode(&parts.headers, body, deadline)
                .map_err(|undecodable| refused(undecodable.status, &undecodable.message))?;
            // GitHub's hello when a hook is created: answered here, the protocol's business.
            if webhook.delivery.event() == PingEvent::NAME {
                return Err(Reply::status(StatusCode::OK, "pong"));
            }
            Ok(webhook)
        };
        match webhook.await {
            Ok(webhook) => self.deliver(webhook).await,
            Err(reply) => reply,
        }
    }

    /// The sink's answer, waited for past the request deadline (a late answer is still the truth about
    /// what was stored) up to the backstop, where the outcome becomes unknown and the answer `503`.
    async fn deliver(&self, webhook: Webhook) -> Reply {
        let deadline = webhook.deadline;
        let grace = self.config.limits.sink_overrun_grace;
        // As a duration rather than an instant, so a huge grace saturates instead of overflowing.
        let until_backstop = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .saturating_add(grace);
        match tokio::time::timeout(until_backstop, self.sink.deliver(webhook)).await {
            Ok(answer) => {
                let now = tokio::time::Instant::now();
                if now > deadline {
                    let late_ms = u64::try_from((now - deadline).as_millis()).unwrap_or(u64::MAX);
                    warn!(late_ms, "sink_late");
                }
                self.answer(answer)
            }
            Err(_elapsed) => {
                let overrun_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
                error!(overrun_ms, outcome = "unknown", "sink_overran");
                Reply::unavailable(
                    "timed out waiting for the job store; retry later",
                    self.config.retry_after,
                )
            }
        }
    }

    /// The refusals that need only the headers, so the client is not made to send a body we will not
    /// read: `413` from `Content-Length`, `401` without a signature (`403` with only the sha1 one).
    fn refuse_early<'h>(
        &self,
        headers: &'h HeaderMap,
        body: &impl Body,
    ) -> Result<&'h HeaderValue, Reply> {
        let max = self.config.max_body_bytes;
        if body::announces_more_than(body, max) {
            let message = BodyError::TooLarge { limit: max }.to_string();
            return Err(Reply::error(StatusCode::PAYLOAD_TOO_LARGE, &message));
        }
        if let Some(signature) = headers.get(SIGNATURE_HEADER) {
            return Ok(signature);
        }
        // A hook signing with sha1 alone is signed, just not in a way we accept: 403, not 401.
        if headers.contains_key(LEGACY_SIGNATURE_HEADER) {
            warn!(reason = "sha1_only", "signature_rejected");
            return Err(Reply::error(
                StatusCode::FORBIDDEN,
                "only the legacy sha1 X-Hub-Signature was sent; X-Hub-Signature-256 is required",
            ));
        }
        warn!(reason = "missing", "signature_rejected");
        Err(Reply::error(
            StatusCode::UNAUTHORIZED,
            &VerifyError::Missing.to_string(),
        ))
    }

    /// The raw body, at most `max_body_bytes` (`413`), whole (`400`) and before the deadline (`408`).
    async fn read_body<B>(&self, body: B, deadline: tokio::time::Instant) -> Result<Bytes, Reply>
    where
        B: Body,
        B::Error: fmt::Display,
    {
        match tokio::time::timeout_at(
            deadline,
            body::read_limited(body, self.config.max_body_bytes),
        )
        .await
        {
            Ok(Ok(body)) => Ok(body),
            Ok(Err(err @ BodyError::TooLarge { .. })) => Err(Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &err.to_string(),
            )),
            Ok(Err(err @ BodyError::Broken { .. })) => {
                Err(Reply::error(StatusCode::BAD_REQUEST, &err.to_string()))
            }
            Err(_elapsed) => {
                let message = format!(
                    "request body not received within {} s",
                    self.config.limits.request_timeout.as_secs_f64()
                );
                Err(Reply::error(StatusCode::REQUEST_TIMEOUT, &message))
            }
        }
    }

    /// `403` unless the signature verifies over exactly these bytes; the reason logged is safe to log.
    fn verify(&self, signature: &HeaderValue, body: &[u8]) -> Result<(), Reply> {
        self.config
            .verifier
            .verify(Some(signature.as_bytes()), body)
            .map_err(|err| {
                let reason = match err {
                    VerifyError::Rejected(rejection) => rejection.as_str(),
                    _ => "missing",
                };
                warn!(reason, "signature_rejected");
                Reply::error(StatusCode::FORBIDDEN, &err.to_string())
            })
    }

    fn answer(&self, answer: SinkAnswer) -> Reply {
        match answer {
            SinkAnswer::Accepted { job_id } => {
                info!(job_id, "trigger_accepted");
                Reply::job(StatusCode::ACCEPTED, "accepted", &job_id)
            }
            SinkAnswer::Duplicate { job_id } => {
                info!(job_id, "trigger_duplicate");
                Reply::job(StatusCode::OK, "already_processed", &job_id)
            }
            SinkAnswer::Cancelled { job_ids } => {
                info!(job_ids = ?job_ids, "jobs_cancelled");
                Reply::cancelled(&job_ids)
            }
            SinkAnswer::Ignored(reason) => {
                info!(reason, "event_ignored");
                Reply::ignored(&reason)
            }
            SinkAnswer::BadRequest(message) => refused(StatusCode::BAD_REQUEST, &message),
            SinkAnswer::Busy => {
                warn!("sink_busy");
                Reply::unavailable(
                    "the job queue is full or shutting down; retry later",
                    self.config.retry_after,
                )
            }
            SinkAnswer::Unavailable(err) => {
                error!(error = %Chain(&*err), "sink_unavailable");
                Reply::unavailable(
                    "the job store is unavailable; retry later",
                    self.config.retry_after,
                )
            }
            SinkAnswer::Failed(err) => {
                error!(error = %Chain(&*err), "sink_failed");
                Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "storing the job failed")
            }
        }
    }
}

/// A verified delivery refused for what it says (`400`, `415`), logged `webhook_refused`.
fn refused(status: StatusCode, message: &str) -> Reply {
    warn!(status = status.as_u16(), error = %message, "webhook_refused");
    Reply::error(status, message)
}

impl<S> fmt::Debug for Edge<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Edge")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Sink> Routes for Edge<S> {
    async fn call(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        self.handle(request).await
    }
}

/// Serves GitHub webhooks on `listener` until `shutdown` completes, then drains in-flight requests within
/// `config.limits.shutdown_grace` and returns.
///
/// Bind the listener yourself (tests use `127.0.0.1:0`). HTTP/1.1 with keep-alive and HTTP/2 over
/// cleartext (prior knowledge) are served on the same port.
///
/// # Errors
/// [`ServeError::Accept`] if the listener itself stops working; errors of single connections are logged
/// and do not stop the server.
pub async fn serve<S: Sink>(
    listener: TcpListener,
    config: EdgeConfig,
    sink: Arc<S>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let limits = config.limits;
    serve_routes(
        listener,
        limits,
        Arc::new(Edge::new(config, sink)),
        shutdown,
    )
    .await
}
