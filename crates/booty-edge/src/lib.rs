//! The HTTP edge: a hyper server that answers GitHub correctly under load, bad input and shutdown.
//!
//! [`serve`] runs the webhook listener on a [`TcpListener`](tokio::net::TcpListener) you bound, until a
//! shutdown future completes. It speaks HTTP/1.1 with keep-alive and HTTP/2 over cleartext on one port
//! (hyper-util's auto builder), caps concurrent connections, cuts off clients too slow to send their
//! headers, bounds request heads, closes connections of either protocol idle for too long (HTTP/2 with
//! GOAWAY), lets a new client take the slot of the longest-idle connection when all are taken, puts a
//! deadline on every request, and on shutdown stops accepting, closes idle connections at once, lets
//! in-flight requests finish within a grace period and returns. [`Limits`] has every bound.
//!
//! A delivery (`POST /webhooks/github`) goes through these steps, each with its own status code:
//!
//! 1. size: `413` when `Content-Length` is over [`EdgeConfig::max_body_bytes`], before reading a byte of
//!    the body, and again while reading when there is no length (the buffer never grows past the limit);
//! 2. signature: `401` without `X-Hub-Signature-256`, `403` when it does not verify (checked with
//!    [`booty_signature::Verifier`] on the raw bytes, before anything parses them);
//! 3. decoding with [`booty_event`]: `400` for missing or invalid delivery headers or a form body without a
//!    usable `payload` field, `415` for another content type, `200 pong` for `ping`; the JSON itself is
//!    not parsed here;
//! 4. the [`Sink`]: every other delivery ([`Webhook`]: the delivery headers, the JSON and the request's
//!    deadline) is handed over, and the sink decides what it is. Its [`SinkAnswer`] becomes `202
//!    accepted`, `200 already_processed`, `200 ignored` with a reason, `400` with a message (a payload it
//!    cannot act on: malformed JSON, a trigger without the fields a job needs), `503` with `Retry-After`,
//!    or `500`. A late answer is passed on as it is; only a sink silent for [`Limits::sink_overrun_grace`]
//!    past the deadline is answered `503` for (see [`Sink`]).
//!
//! Every answer is JSON (`{"error": "..."}` for 4xx and 5xx, saying what was wrong) and carries
//! `x-request-id`: the delivery id when the request has a valid one, a generated id otherwise. Each delivery
//! is logged once at `info`, when its answer is known: `webhook_answered` with `delivery_id`, `event`,
//! `action`, `status`, `outcome`, `reason`, `job_id`, `repository`, `issue_number` and `latency_ms` (the
//! last four as the sink reports them through [`Sink::deliver_described`]); the steps that lead there are
//! `debug` events (`webhook_received`, `signature_rejected`, `event_ignored`, ...). Other requests run in a
//! `request` span and end with `request_answered`.
//! Secrets and signature values are never logged; the error behind a `5xx` is, with all its causes. The one
//! answer that is not the edge's is hyper's bodiless `431` for a request head over
//! [`Limits::max_header_bytes`], given before the request reaches the edge.
//!
//! [`Edge::handle`] answers one request without a socket, for tests and fuzzing. The edge does not know
//! the queue, nor which events start a job: booty-service's sink routes each delivery with booty-event's
//! trigger rule and stores the jobs.
//!
//! The listener machinery serves any router: [`serve_routes`] runs a [`Routes`] implementation with the
//! same connection handling and shutdown, [`answer`] gives its [`Reply`]s the JSON, `x-request-id` and
//! request span of the webhook listener, and [`AllowedHosts`] answers only requests that name the
//! listener's address or an allowed host (`421 Misdirected Request` otherwise, against DNS rebinding).
//! booty-service's admin listener (`GET /jobs`) is built from them.
//!
//! ```
//! use std::sync::Arc;
//!
//! use booty_edge::{Edge, EdgeConfig, Sink, SinkAnswer, Webhook};
//! use booty_event::{Decision, TriggerRule};
//! use booty_signature::{Verifier, sign};
//! use http_body_util::{BodyExt, Full};
//!
//! /// Routes with the trigger rule and accepts every trigger; a real sink stores the job before answering.
//! struct Queue(TriggerRule);
//!
//! impl Sink for Queue {
//!     async fn deliver(&self, webhook: Webhook) -> SinkAnswer {
//!         match self.0.decide(webhook.delivery.event(), &webhook.payload) {
//!             Ok(Decision::Trigger(trigger)) => SinkAnswer::Accepted {
//!                 job_id: format!("{}-{}", trigger.issue.number, webhook.delivery.id()),
//!             },
//!             // A real sink cancels the issue's jobs; this one has none.
//!             Ok(Decision::Cancel(_)) => SinkAnswer::Ignored("no_job_to_cancel".to_owned()),
//!             Ok(Decision::Ignored(reason)) => SinkAnswer::Ignored(reason.to_string()),
//!             Err(err) => SinkAnswer::BadRequest(err.to_string()),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = EdgeConfig::new(Verifier::new("webhook secret")?);
//!
//! // Without a socket: one request through the whole path.
//! let body = br#"{"zen":"Design for failure.","hook_id":1}"#;
//! let ping = hyper::Request::post("/webhooks/github")
//!     .header("x-github-event", "ping")
//!     .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
//!     .header("content-type", "application/json")
//!     .header("x-hub-signature-256", sign(b"webhook secret", body))
//!     .body(Full::new(hyper::body::Bytes::from_static(body)))?;
//! let queue = Arc::new(Queue(TriggerRule::default()));
//! let answer = Edge::new(config.clone(), Arc::clone(&queue)).handle(ping).await;
//! assert_eq!(answer.status(), 200);
//! assert_eq!(answer.headers()["x-request-id"], "72d3162e-cc78-11e3-81ab-4c9367dc0958");
//! assert_eq!(answer.into_body().collect().await?.to_bytes(), r#"{"status":"pong"}"#);
//!
//! // On a listener, until the shutdown future completes (here at once).
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! booty_edge::serve(listener, config, queue, std::future::ready(())).await?;
//! # Ok(())
//! # }
//! ```

mod body;
mod canonical;
mod chain;
mod config;
mod decode;
mod edge;
mod hosts;
mod names;
mod observer;
mod reply;
mod request_id;
mod server;
mod sink;
mod slots;
mod sniff;
mod traced;

pub use booty_event::Subject;
pub use config::{DEFAULT_MAX_BODY_BYTES, EdgeConfig, Limits};
pub use edge::{Edge, HEALTH_PATH, WEBHOOK_PATH, serve};
pub use hosts::{AllowedHosts, HostError, check_allowed_host};
pub use observer::{Answered, EdgeObserver};
pub use reply::{REQUEST_ID_HEADER, Reply, ResponseBody};
pub use server::{Routes, ServeError, serve_routes};
pub use sink::{Sink, SinkAnswer, Webhook};
pub use traced::answer;
