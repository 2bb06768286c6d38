//! The webhook listener's routes and the path of one delivery through them.

use std::fmt;
use std::sync::Arc;

use booty_signature::{HEADER_NAME as SIGNATURE_HEADER, VerifyError};
use hyper::body::{Body, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::body::{self, BodyError};
use crate::config::EdgeConfig;
use crate::decode::{self, Decoded};
use crate::reply::{Reply, ResponseBody};
use crate::server::{self, Handler, ServeError};
use crate::sink::{Sink, SinkAnswer};
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
    /// An edge that verifies with `config` and hands triggers to `sink`.
    pub fn new(config: EdgeConfig, sink: Arc<S>) -> Self {
        Self { config, sink }
    }

    /// Answers one request: routing, limits, signature, decoding, the sink, and the JSON answer with its
    /// `x-request-id`. Never fails: every problem is an HTTP status with a message.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody>
    where
        B: Body,
        B::Error: fmt::Display,
    {
        traced::answer(request, |request| self.route(request)).await
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

    /// One delivery: size, signature over the raw bytes, then decoding, then the sink, all under the
    /// request deadline.
    async fn webhook<B>(&self, request: Request<B>) -> Reply
    where
        B: Body,
        B::Error: fmt::Display,
    {
        let deadline = tokio::time::Instant::now() + self.config.limits.request_timeout;
        let (parts, body) = request.into_parts();
        let max = self.config.max_body_bytes;
        info!(
            content_length = body.size_hint().exact(),
            "webhook_received"
        );

        // Both refusals need only the headers, so the client is not made to send a body we will not read.
        if body::announces_more_than(&body, max) {
            return Reply::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &BodyError::TooLarge { limit: max }.to_string(),
            );
        }
        let Some(signature) = parts.headers.get(SIGNATURE_HEADER) else {
            // A hook signing with sha1 alone is signed, just not in a way we accept: 403, not 401.
            if parts.headers.contains_key(LEGACY_SIGNATURE_HEADER) {
                warn!(reason = "sha1_only", "signature_rejected");
                return Reply::error(
                    StatusCode::FORBIDDEN,
                    "only the legacy sha1 X-Hub-Signature was sent; X-Hub-Signature-256 is required",
                );
            }
            warn!(reason = "missing", "signature_rejected");
            return Reply::error(StatusCode::UNAUTHORIZED, &VerifyError::Missing.to_string());
        };

        let body = match tokio::time::timeout_at(deadline, body::read_limited(body, max)).await {
            Ok(Ok(body)) => body,
            Ok(Err(err @ BodyError::TooLarge { .. })) => {
                return Reply::error(StatusCode::PAYLOAD_TOO_LARGE, &err.to_string());
            }
            Ok(Err(err @ BodyError::Broken { .. })) => {
                return Reply::error(StatusCode::BAD_REQUEST, &err.to_string());
            }
            Err(_elapsed) => {
                let message = format!(
                    "request body not received within {} s",
                    self.config.limits.request_timeout.as_secs_f64()
                );
                return Reply::error(StatusCode::REQUEST_TIMEOUT, &message);
            }
        };

        if let Err(err) = self
            .config
            .verifier
            .verify(Some(signature.as_bytes()), &body)
        {
            let reason = match err {
                VerifyError::Rejected(rejection) => rejection.as_str(),
                _ => "missing",
            };
            warn!(reason, "signature_rejected");
            return Reply::error(StatusCode::FORBIDDEN, &err.to_string());
        }

        let submission = match decode::decode(&parts.headers, body, &self.config.trigger) {
            Ok(Decoded::Pong) => return Reply::status(StatusCode::OK, "pong"),
            Ok(Decoded::Ignored(reason)) => {
                info!(reason, "event_ignored");
                return Reply::ignored(&reason);
            }
            Ok(Decoded::Trigger(submission)) => submission,
            Err(undecodable) => {
                warn!(status = undecodable.status.as_u16(), error = %undecodable.message, "webhook_refused");
                return Reply::error(undecodable.status, &undecodable.message);
            }
        };

        let Ok(answer) = tokio::time::timeout_at(deadline, self.sink.submit(*submission)).await
        else {
            warn!("sink_timed_out");
            return Reply::unavailable(
                "timed out waiting for the job store; retry later",
                self.config.retry_after,
            );
        };
        self.answer(answer)
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
            SinkAnswer::Busy => {
                warn!("sink_busy");
                Reply::unavailable(
                    "the job queue is full or shutting down; retry later",
                    self.config.retry_after,
                )
            }
            SinkAnswer::Unavailable(err) => {
                error!(error = %err, "sink_unavailable");
                Reply::unavailable(
                    "the job store is unavailable; retry later",
                    self.config.retry_after,
                )
            }
            SinkAnswer::Failed(err) => {
                error!(error = %err, "sink_failed");
                Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "storing the job failed")
            }
        }
    }
}

impl<S> fmt::Debug for Edge<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Edge")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: Sink> Handler for Edge<S> {
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
    server::run(
        listener,
        limits,
        Arc::new(Edge::new(config, sink)),
        shutdown,
    )
    .await
}
