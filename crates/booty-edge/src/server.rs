//! The accept loop every listener shares: connection slots, timeouts, graceful shutdown.
//!
//! Shaped after mini-redis's `run(listener, shutdown)` and hyper-util's `server_graceful.rs`: a slot is
//! taken before each accept, every connection watches the shutdown signal, and draining is bounded by the
//! shutdown grace period, after which the remaining connections are dropped. Unlike hyper-util's
//! `GracefulShutdown`, each connection's task also knows whether it has a request in flight
//! ([`crate::slots`]), so it can close when idle too long, give its slot to a waiting client, and at
//! shutdown close at once instead of waiting the grace when it has nothing to finish.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use crate::config::Limits;
use crate::reply::ResponseBody;
use crate::slots::{Activity, Room, Slot, Slots};
use crate::sniff;

/// How long the accept loop pauses after an error that is not about one connection (such as running out
/// of file descriptors), so it does not spin while resources are freed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// [`serve`](crate::serve) or [`serve_routes`] stopped for a reason other than the shutdown signal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listener itself failed (it is not listening, or does not support accepting); retrying would
    /// fail the same way.
    #[error("the listener cannot accept connections")]
    Accept(#[source] io::Error),
    /// The listener's own address could not be read (a listener that answers only requests naming it, such
    /// as one checking [`AllowedHosts`](crate::AllowedHosts), needs it).
    #[error("cannot read the listener's local address")]
    LocalAddr(#[source] io::Error),
}

/// What a listener answers requests with, for [`serve_routes`]: the webhook [`Edge`](crate::Edge), or
/// any router of your own (booty-service's admin listener is one).
///
/// An implementation answers every request, whatever is wrong with it, with a response; the accept loop
/// around it owns the connection. [`answer`](crate::answer) gives a router the JSON answers, the
/// `x-request-id` and the request span the webhook listener has.
pub trait Routes: Send + Sync + 'static {
    /// Answers one request.
    fn call(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send;
}

/// Serves `routes` on `listener` until `shutdown` completes, with the connection handling of the webhook
/// listener: HTTP/1.1 with keep-alive and h2c on one port, [`Limits::max_connections`] slots (the
/// longest-idle connection making room for a new client), the header, idle and HTTP/2 keep-alive
/// timeouts and the bound on request heads. On shutdown it stops accepting, closes idle connections at
/// once, lets in-flight requests finish within [`Limits::shutdown_grace`], and returns.
///
/// `limits.request_timeout` is not applied to `routes`: a router bounds its own requests (the webhook
/// listener's deadline is the sink's too, see [`Sink`](crate::Sink)).
///
/// # Errors
/// [`ServeError::Accept`] if the listener itself stops working; errors of single connections are logged
/// and do not stop the server.
pub async fn serve_routes<R: Routes>(
    listener: TcpListener,
    limits: Limits,
    routes: Arc<R>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let builder = connection_builder(&limits);
    let slots = Slots::new(limits.max_connections);
    // Tells every connection, whatever phase it is in, that the server stops.
    let (stopping, stop_signal) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let local_addr = listener
        .local_addr()
        .map_or_else(|_| "unknown".to_owned(), |addr| addr.to_string());

    let result = loop {
        // Accept only when the client can be served soon: a slot is free, or an idle connection can give
        // up its slot. While every slot has a request in flight, clients queue in the kernel's backlog
        // instead of holding sockets we will not serve.
        let room = tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            room = slots.room() => room,
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(err) if is_fatal(&err) => break Err(ServeError::Accept(err)),
                Err(err) => {
                    warn!(error = %err, "accept_failed");
                    if !is_per_connection(&err) {
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
        };
        let permit = match room {
            Room::Free(permit) => permit,
            Room::Idle => tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                permit = slots.make_room() => permit,
            },
        };
        while let Some(finished) = tasks.try_join_next() {
            if let Err(err) = finished {
                error!(error = %err, "connection_task_failed");
            }
        }
        tasks.spawn(serve_connection(
            stream,
            slots.open(permit),
            builder.clone(),
            Arc::clone(&routes),
            limits,
            stop_signal.clone(),
        ));
    };

    drop(listener);
    info!(addr = %local_addr, connections = tasks.len(), "listener_draining");
    let _ = stopping.send(true);
    let drained = async {
        while let Some(finished) = tasks.join_next().await {
            if let Err(err) = finished {
                error!(error = %err, "connection_task_failed");
            }
        }
    };
    if tokio::time::timeout(limits.shutdown_grace, drained)
        .await
        .is_err()
    {
        warn!(
            grace_secs = limits.shutdown_grace.as_secs_f64(),
            connections = tasks.len(),
            "listener_grace_expired"
        );
    }
    // Whatever is left outlived the grace period: drop it, and wait until it is gone.
    tasks.shutdown().await;
    info!(addr = %local_addr, "listener_closed");
    result
}

/// The smallest read buffer hyper's HTTP/1.1 accepts (it panics below it).
const MIN_HTTP1_BUFFER: usize = 8 * 1024;

/// HTTP/1.1 and h2c on one port, with hyper's timers on tokio.
fn connection_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        // A client that shuts down its sending side after the request still waits for the answer.
        .half_close(true)
        // The read buffer holds a whole head, so this bounds the head (`431` past it) and the memory a
        // connection that never finishes one can hold.
        .max_buf_size(limits.max_header_bytes.max(MIN_HTTP1_BUFFER));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        // A peer that stops acknowledging pings is gone: close its connection.
        .keep_alive_interval(limits.h2_keep_alive_interval)
        .keep_alive_timeout(limits.h2_keep_alive_timeout);
    builder
}

/// Why a connection was asked to close, for the log.
#[derive(Debug, Clone, Copy)]
enum Closing {
    /// The server is shutting down.
    Shutdown,
    /// A new client needs its slot and it was the longest idle.
    Evicted,
    /// No request in flight for `idle_timeout`.
    IdleTimeout,
}

impl Closing {
    fn as_str(self) -> &'static str {
        match self {
            Self::Shutdown => "shutdown",
            Self::Evicted => "evicted",
            Self::IdleTimeout => "idle_timeout",
        }
    }
}

/// The life of one connection: read its first bytes under the header deadline (or give up when the
/// server stops or the slot is wanted), then hand it to hyper and close it gracefully (HTTP/2 GOAWAY,
/// HTTP/1.1 no more keep-alive) when the server stops, when its slot is wanted, or when it has been idle
/// for `idle_timeout`. Once closing, a connection with no request in flight gets its [`linger`] to say
/// goodbye, then is dropped, so an unresponsive client cannot hold it.
async fn serve_connection<R: Routes>(
    stream: TcpStream,
    slot: Slot,
    builder: auto::Builder<TokioExecutor>,
    routes: Arc<R>,
    limits: Limits,
    mut stop_signal: watch::Receiver<bool>,
) {
    let activity = Arc::clone(slot.activity());
    // Small answers go out at once instead of waiting for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let sniffed = tokio::select! {
        sniffed = tokio::time::timeout(limits.header_read_timeout, sniff::read_preface(stream)) => sniffed,
        _ = stop_signal.wait_for(|stopping| *stopping) => return,
        () = closing_requested(&activity) => {
            debug!(reason = Closing::Evicted.as_str(), "connection_closing");
            return;
        }
    };
    let io = match sniffed {
        Ok(Ok(io)) => io,
        Ok(Err(err)) => {
            debug!(error = %err, "connection_failed");
            return;
        }
        Err(_elapsed) => {
            debug!("connection_idle_timeout");
            return;
        }
    };
    let requests = Arc::clone(&activity);
    let service = service_fn(move |request| {
        let routes = Arc::clone(&routes);
        let in_flight = requests.request_started();
        async move {
            let response = routes.call(request).await;
            drop(in_flight);
            Ok::<_, Infallible>(response)
        }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    let mut closing_since: Option<Instant> = None;
    // One timer for the connection's life, moved rather than made anew. Requests starting and ending do
    // not wake this task (only closing does, see `InFlight`), so a busy connection costs no wakeup and no
    // timer per request: the timer fires at the deadline worked out when it was last set, and whether the
    // connection has really been idle that long is looked at then.
    let mut timer = std::pin::pin!(tokio::time::sleep(limits.idle_timeout));
    loop {
        if closing_since.is_none() {
            let reason = if *stop_signal.borrow() {
                Some(Closing::Shutdown)
            } else if activity.is_closing() {
                Some(Closing::Evicted)
            } else {
                None
            };
            if let Some(reason) = reason {
                begin_closing(&activity, reason);
                connection.as_mut().graceful_shutdown();
                closing_since = Some(Instant::now());
            }
        }
        // When to look again: when the idle time runs out (the idle timeout while open, the linger once
        // closing). With a request in flight nothing runs out: an open connection looks again an idle
        // timeout from now, a closing one when the request ends (which wakes it).
        let wake_at = expiry(&activity, closing_since, &limits).or_else(|| {
            closing_since
                .is_none()
                .then(|| Instant::now().checked_add(limits.idle_timeout))
                .flatten()
        });
        if let Some(wake_at) = wake_at
            && timer.deadline() != wake_at
        {
            timer.as_mut().reset(wake_at);
        }
        tokio::select! {
            biased;
            result = connection.as_mut() => {
                if let Err(err) = result {
                    debug!(error = %err, "connection_closed_with_error");
                }
                return;
            }
            () = activity.changed() => {}
            _ = stop_signal.wait_for(|stopping| *stopping), if closing_since.is_none() => {}
            () = timer.as_mut(), if wake_at.is_some() => {
                // Requests may have come and gone since the deadline was worked out; look again.
                if expiry(&activity, closing_since, &limits).is_none_or(|at| at > Instant::now()) {
                    continue;
                }
                if closing_since.is_some() {
                    debug!("connection_dropped_after_linger");
                    return;
                }
                begin_closing(&activity, Closing::IdleTimeout);
                connection.as_mut().graceful_shutdown();
                closing_since = Some(Instant::now());
            }
        }
    }
}

/// When the connection's idle time runs out: `idle_timeout` after its last request ended (or it opened)
/// while open, its [`linger`] after it was both closing and idle once closing. `None` while a request is
/// in flight, or for an idle timeout too large to add.
fn expiry(activity: &Activity, closing_since: Option<Instant>, limits: &Limits) -> Option<Instant> {
    let idle_since = activity.idle_since()?;
    match closing_since {
        None => idle_since.checked_add(limits.idle_timeout),
        Some(closing_since) => Some(idle_since.max(closing_since) + linger(activity)),
    }
}

/// How long a closing connection with no request in flight may take to finish its goodbye (HTTP/2's
/// GOAWAY, its ping round trip and the final GOAWAY) before it is dropped. A client that answers takes a
/// round trip; one that never answers is cut off here.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

/// [`CLOSE_LINGER`] for a connection that had requests; none for one that never had any (such as an HTTP/2
/// connection that never finished its handshake, which cannot close gracefully at all): it has nothing
/// to finish, and a client waiting for its slot should not wait for it.
fn linger(activity: &Activity) -> Duration {
    if activity.had_request() {
        CLOSE_LINGER
    } else {
        Duration::ZERO
    }
}

/// Marks the connection as closing and says why; the caller then starts hyper's graceful close (HTTP/2
/// sends GOAWAY, HTTP/1.1 stops keep-alive and an idle one closes at once).
fn begin_closing(activity: &Activity, reason: Closing) {
    debug!(reason = reason.as_str(), "connection_closing");
    activity.close();
}

/// Completes when the connection is asked to close (a new client needs its slot).
async fn closing_requested(activity: &Activity) {
    while !activity.is_closing() {
        activity.changed().await;
    }
}

/// Errors about the listener itself, which no retry can fix.
fn is_fatal(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
    )
}

/// Errors about one connection that went away while it was being accepted: accept the next one at once.
fn is_per_connection(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
