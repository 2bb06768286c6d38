//! The webhook listener's routes and the path of one delivery through them.

use std::fmt;
use std::sync::Arc;

use booty_event::PingEvent;
use booty_signature::VerifyError;
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tracing::{Instrument as _, debug, debug_span};

use crate::body::{self, BodyError};
use crate::canonical::{Line, Outcome};
use crate::chain::Chain;
use crate::config::EdgeConfig;
use crate::decode;
use crate::names;
use crate::observer::{Answered, event_name};
use crate::reply::{Reply, ResponseBody};
use crate::server::{Routes, ServeError, serve_routes};
use crate::sink::{Sink, SinkAnswer, Webhook};
use crate::{request_id, traced};

/// Where GitHub posts deliveries.
pub const WEBHOOK_PATH: &str = "/webhooks/github";
/// The liveness probe.
pub const HEALTH_PATH: &str = "/health";

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
        let observer = self
            .config
            .observer
            .as_ref()
            .filter(|_| request.uri().path() == WEBHOOK_PATH);
        let started = std::time::Instant::now();
        let event = observer
            .and(request.headers().get(&names::EVENT))
            .and_then(event_name)
            .map(str::to_owned);
        let response = if request.uri().path() == WEBHOOK_PATH && request.method() == Method::POST {
            self.webhook(request).await
        } else {
            traced::answer(request, |request| async move { route(&request) }).await
        };
        if let Some(observer) = observer {
            let mut answered = Answered::new(response.status(), started.elapsed());
            answered.event = event.as_deref();
            observer.answered(&answered);
        }
        response
    }

    /// One delivery, answered with its `x-request-id` and logged on one line, `webhook_answered` (see
    /// [`Line`]); the steps are `debug` events in a `webhook` span.
    async fn webhook<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body,
        B::Error: fmt::Display,
    {
        let started = std::time::Instant::now();
        let request_id = request_id::for_request(request.headers());
        let mut line = Line::new(started, &request_id, request.headers());
        let span = debug_span!(
            "webhook",
            delivery_id = line.delivery_id(),
            event = line.event()
        );
        let reply = self.receive(request, &mut line).instrument(span).await;
        line.write(reply.status_code());
        reply.into_response(request_id)
    }

    /// One delivery: size, signature over the raw bytes, then decoding, then `pong` for a ping or the sink
    /// for anything else. Reading the body is cut off at the request deadline; the sink is handed the
    /// deadline and waited for up to the backstop past it. Each step either passes its result on or ends
    /// the request with its reply; what it learns goes on the `line`.
    async fn receive<B>(&self, request: Request<B>, line: &mut Line) -> Reply
    where
        B: Body,
        B::Error: fmt::Display,
    {
        let deadline = tokio::time::Instant::now() + self.config.limits.request_timeout;
        let (parts, body) = request.into_parts();
        debug!(
            content_length = body.size_hint().exact(),
            "webhook_received"
        );
        let webhook = async {
            let signature = self.refuse_early(&parts.headers, &body, line)?;
            let body = self.read_body(body, deadline, line).await?;
            self.verify(signature, &body, line)?;
            let webhook =
                decode::decode(&parts.headers, body, deadline).map_err(|undecodable| {
                    line.refused("undecodable", Some(&undecodable.message));
                    refused(undecodable.status, &undecodable.message)
                })?;
            // GitHub's hello when a hook is created: answered here, the protocol's business.
            if webhook.delivery.event() == PingEvent::NAME {
                line.outcome(Outcome::Pong);
                return Err(Reply::status(StatusCode::OK, "pong"));
            }
            Ok(webhook)
        };
        match webhook.await {
            Ok(webhook) => self.deliver(webhook, line).await,
            Err(reply) => reply,
        }
    }

    /// The sink's answer, waited for past the request deadline (a late answer is still the truth about
    /// what was stored) up to the backstop, where the outcome becomes unknown and the answer `503`.
    async fn deliver(&self, webhook: Webhook, line: &mut Line) -> Reply {
        let deadline = webhook.deadline;
        let grace = self.config.limits.sink_overrun_grace;
        // As a duration rather than an instant, so a huge grace saturates instead of overflowing.
        let until_backstop = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .saturating_add(grace);
        let delivered = self.sink.deliver_described(webhook, &mut line.subject);
        match tokio::time::timeout(until_backstop, delivered).await {
            Ok(answer) => {
                let now = tokio::time::Instant::now();
                if now > deadline {
                    let late_ms = u64::try_from((now - deadline).as_millis()).unwrap_or(u64::MAX);
                    debug!(late_ms, "sink_late");
                    line.late(late_ms);
                }
                self.answer(answer, line)
            }
            Err(_elapsed) => {
                let overrun_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
                debug!(overrun_ms, "sink_overran");
                line.outcome(Outcome::Unknown);
                line.error(format!(
                    "the sink did not answer within {overrun_ms} ms past the request deadline; whether the delivery was recorded is unknown"
                ));
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
        line: &mut Line,
    ) -> Result<&'h HeaderValue, Reply> {
        let max = self.config.max_body_bytes;
        if body::announces_more_than(body, max) {
            let message = BodyError::TooLarge { limit: max }.to_string();
            line.refused("too_large", Some(&message));
            return Err(Reply::error(StatusCode::PAYLOAD_TOO_LARGE, &message));
        }
        if let Some(signature) = headers.get(&names::SIGNATURE) {
            return Ok(signature);
        }
        // A hook signing with sha1 alone is signed, just not in a way we accept: 403, not 401.
        if headers.contains_key(&names::LEGACY_SIGNATURE) {
            debug!(reason = "sha1_only", "signature_rejected");
            line.refused("signature_sha1_only", None);
            return Err(Reply::error(
                StatusCode::FORBIDDEN,
                "only the legacy sha1 X-Hub-Signature was sent; X-Hub-Signature-256 is required",
            ));
        }
        debug!(reason = "missing", "signature_rejected");
        line.refused("signature_missing", None);
        Err(Reply::error(
            StatusCode::UNAUTHORIZED,
            &VerifyError::Missing.to_string(),
        ))
    }

    /// The raw body, at most `max_body_bytes` (`413`), whole (`400`) and before the deadline (`408`).
    async fn read_body<B>(
        &self,
        body: B,
        deadline: tokio::time::Instant,
        line: &mut Line,
    ) -> Result<Bytes, Reply>
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
            Ok(Err(err @ BodyError::TooLarge { .. })) => {
                let message = err.to_string();
                line.refused("too_large", Some(&message));
                Err(Reply::error(StatusCode::PAYLOAD_TOO_LARGE, &message))
            }
            Ok(Err(err @ BodyError::Broken { .. })) => {
                let message = err.to_string();
                line.refused("body_broken", Some(&message));
                Err(Reply::error(StatusCode::BAD_REQUEST, &message))
            }
            Err(_elapsed) => {
                let message = format!(
                    "request body not received within {} s",
                    self.config.limits.request_timeout.as_secs_f64()
                );
                line.refused("body_timeout", Some(&message));
                Err(Reply::error(StatusCode::REQUEST_TIMEOUT, &message))
            }
        }
    }

    /// `403` unless the signature verifies over exactly these bytes; the reason logged is safe to log.
    fn verify(&self, signature: &HeaderValue, body: &[u8], line: &mut Line) -> Result<(), Reply> {
        self.config
            .verifier
            .verify(Some(signature.as_bytes()), body)
            .map_err(|err| {
                let reason = match err {
                    VerifyError::Rejected(rejection) => rejection.as_str(),
                    _ => "missing",
                };
                debug!(reason, "signature_rejected");
                line.refused(&format!("signature_{reason}"), None);
                Reply::error(StatusCode::FORBIDDEN, &err.to_string())
            })
    }

    fn answer(&self, answer: SinkAnswer, line: &mut Line) -> Reply {
        match answer {
            SinkAnswer::Accepted { job_id } => {
                debug!(job_id, "trigger_accepted");
                let reply = Reply::job(StatusCode::ACCEPTED, "accepted", &job_id);
                line.outcome(Outcome::Accepted);
                line.job_id(job_id);
                reply
            }
            SinkAnswer::Duplicate { job_id } => {
                debug!(job_id, "trigger_duplicate");
                let reply = Reply::job(StatusCode::OK, "already_processed", &job_id);
                line.outcome(Outcome::Duplicate);
                line.job_id(job_id);
                reply
            }
            SinkAnswer::Cancelled { job_ids } => {
                debug!(job_ids = ?job_ids, "jobs_cancelled");
                let reply = Reply::cancelled(&job_ids);
                line.outcome(Outcome::Cancelled);
                line.job_id(job_ids.join(","));
                reply
            }
            SinkAnswer::Ignored(reason) => {
                debug!(reason, "event_ignored");
                line.outcome(Outcome::Ignored);
                line.reason(&reason);
                Reply::ignored(&reason)
            }
            SinkAnswer::BadRequest(message) => {
                line.refused("bad_payload", Some(&message));
                refused(StatusCode::BAD_REQUEST, &message)
            }
            SinkAnswer::Busy => {
                debug!("sink_busy");
                line.outcome(Outcome::Busy);
                Reply::unavailable(
                    "the job queue is full or shutting down; retry later",
                    self.config.retry_after,
                )
            }
            SinkAnswer::Unavailable(err) => {
                let error = Chain(&*err).to_string();
                debug!(error, "sink_unavailable");
                line.outcome(Outcome::Unavailable);
                line.error(error);
                Reply::unavailable(
                    "the job store is unavailable; retry later",
                    self.config.retry_after,
                )
            }
            SinkAnswer::Failed(err) => {
                let error = Chain(&*err).to_string();
                debug!(error, "sink_failed");
                line.outcome(Outcome::Failed);
                line.error(error);
                Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "storing the job failed")
            }
        }
    }
}

/// Every request but a delivery, answered and logged `request_answered` by [`traced::answer`].
fn route<B>(request: &Request<B>) -> Reply {
    match (request.uri().path(), request.method()) {
        (WEBHOOK_PATH, _) => Reply::method_not_allowed("POST"),
        (HEALTH_PATH, &Method::GET) => Reply::status(StatusCode::OK, "ok"),
        (HEALTH_PATH, _) => Reply::method_not_allowed("GET"),
        (path, _) => Reply::not_found(path),
    }
}

/// A verified delivery refused for what it says (`400`, `415`), logged `webhook_refused`.
fn refused(status: StatusCode, message: &str) -> Reply {
    debug!(status = status.as_u16(), error = %message, "webhook_refused");
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
