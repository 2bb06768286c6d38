//! What the edge is configured with: the verifier, the body limit, and the limits of its listeners.

use std::sync::Arc;
use std::time::Duration;

use booty_signature::Verifier;

use crate::observer::EdgeObserver;

/// GitHub's own cap on a webhook payload (25 MiB); a larger body is answered `413`.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 25 * 1024 * 1024;

/// Everything [`serve`](crate::serve) and [`Edge`](crate::Edge) need besides the sink.
///
/// Built with [`EdgeConfig::new`], which takes the one thing without a default (the verifier); every
/// other field is public and can be changed afterwards.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EdgeConfig {
    /// Checks `X-Hub-Signature-256` against the current and previous secrets.
    pub verifier: Verifier,
    /// The largest body accepted, decided from `Content-Length` and enforced again while reading
    /// (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: u64,
    /// What a `503` asks GitHub (or whoever redelivers) to wait before trying again (default 10 s).
    pub retry_after: Duration,
    /// Connection and time limits of the listener.
    pub limits: Limits,
    /// Told about every webhook request answered (for metrics); none by default.
    pub observer: Option<Arc<dyn EdgeObserver>>,
}

impl EdgeConfig {
    /// A configuration with every default and `verifier` for signatures.
    pub fn new(verifier: Verifier) -> Self {
        Self {
            verifier,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            retry_after: Duration::from_secs(10),
            limits: Limits::default(),
            observer: None,
        }
    }
}

/// The limits a listener keeps: the webhook listener's, and those of any router served with
/// [`serve_routes`](crate::serve_routes) (booty-service's admin listener).
///
/// Slow or idle clients are bounded three times: a connection must send its protocol preface and request
/// headers within `header_read_timeout`; once its headers are in, a request must be read and answered
/// within `request_timeout`; and a connection of either protocol with no request in flight for
/// `idle_timeout` is closed (HTTP/2 with GOAWAY), which also ends an HTTP/2 connection that never finishes
/// its handshake. When all `max_connections` slots are taken, the connection idle the longest gives up
/// its slot to a new client, so one kind of client cannot keep the others (and `GET /health`) out; only
/// when every slot has a request in flight does a new client wait. At shutdown, idle connections close at
/// once; only those with a request in flight get `shutdown_grace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How long a connection may take to send the first bytes and the headers of a request, and how long an
    /// HTTP/1.1 keep-alive connection may sit idle (default 10 s).
    pub header_read_timeout: Duration,
    /// The whole-request deadline, from the end of the headers to the answer: reading the body, verifying it,
    /// and the sink's answer (default 8 s, under GitHub's 10 s so GitHub sees our answer, not its timeout).
    /// The sink gets it as [`Webhook::deadline`](crate::Webhook::deadline); a sink that answers late
    /// is still waited for, up to `sink_overrun_grace`.
    pub request_timeout: Duration,
    /// How long a connection of either protocol may go without a request in flight before it is closed:
    /// HTTP/2 gets GOAWAY, HTTP/1.1 is closed (default 10 s, as `header_read_timeout`). The clock starts
    /// when the connection opens and again when its last request in flight is answered, so an HTTP/2
    /// connection that sends only its preface is closed by the same deadline. A closing connection with no
    /// request in flight is dropped if it has not finished within a second (at once if it never had a
    /// request), so a client that ignores GOAWAY cannot hold it.
    pub idle_timeout: Duration,
    /// How often an HTTP/2 connection is pinged to check that the peer is still there; `None` sends no
    /// pings (default 5 s).
    pub h2_keep_alive_interval: Option<Duration>,
    /// How long an HTTP/2 ping may go unacknowledged before the connection is closed (default 5 s).
    pub h2_keep_alive_timeout: Duration,
    /// Connections served at once; when all are taken, the connection idle the longest is closed for a new
    /// client, and when every one has a request in flight, new clients wait in the listen backlog
    /// (default 1024; 0 counts as 1).
    pub max_connections: usize,
    /// How long shutdown waits for in-flight requests before dropping their connections (default 30 s);
    /// connections with no request in flight are closed at once.
    pub shutdown_grace: Duration,
    /// The largest request head (request line and headers; for HTTP/2 the decoded header list) a
    /// connection reads, and so the most it buffers while reading one (default 64 KiB, many times what
    /// GitHub sends; HTTP/1.1 counts anything under 8 KiB as 8 KiB). A longer head is answered `431
    /// Request Header Fields Too Large` (by hyper, without a JSON body) and its connection closed.
    pub max_header_bytes: usize,
    /// How long past the request deadline the webhook listener still waits for the sink's answer before it
    /// gives up, answers `503` and logs the delivery with `outcome` `unknown` (default 10 s). A late answer is the truth about
    /// what was stored, so it is passed on, not replaced by a `503` (see [`Sink`](crate::Sink)).
    pub sink_overrun_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(8),
            idle_timeout: Duration::from_secs(10),
            h2_keep_alive_interval: Some(Duration::from_secs(5)),
            h2_keep_alive_timeout: Duration::from_secs(5),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            sink_overrun_grace: Duration::from_secs(10),
        }
    }
}
