//! The accept loop shared by the webhook and admin listeners: connection cap, timeouts, graceful shutdown.
//!
//! Shaped after mini-redis's `run(listener, shutdown)` and hyper-util's `server_graceful.rs`: a semaphore
//! permit is taken before each accept, every connection is watched by [`GracefulShutdown`], and draining
//! is bounded by the shutdown grace period, after which the remaining connections are dropped.

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
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::config::Limits;
use crate::reply::ResponseBody;
use crate::sniff;

/// How long the accept loop pauses after an error that is not about one connection (such as running out
/// of file descriptors), so it does not spin while resources are freed.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// [`serve`](crate::serve) or [`serve_admin`](crate::serve_admin) stopped for a reason other than the
/// shutdown signal.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The listener itself failed (it is not listening, or does not support accepting); retrying would
    /// fail the same way.
    #[error("the listener cannot accept connections")]
    Accept(#[source] io::Error),
    /// The listener's own address could not be read (the admin listener answers requests naming it).
    #[error("cannot read the listener's local address")]
    LocalAddr(#[source] io::Error),
}

/// A request handler the accept loop can serve: the webhook [`Edge`](crate::Edge) or the admin router.
pub(crate) trait Handler: Send + Sync + 'static {
    fn call(
        &self,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<ResponseBody>> + Send;
}

/// Accepts connections on `listener` and serves them with `handler` until `shutdown` completes; then
/// stops accepting, lets in-flight requests finish within `limits.shutdown_grace`, and returns.
pub(crate) async fn run<H: Handler>(
    listener: TcpListener,
    limits: Limits,
    handler: Arc<H>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let builder = connection_builder(&limits);
    // A cap of 0 would never accept anything; it means 1.
    let connections = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    // Connections still reading their first bytes are not hyper connections yet; this tells them to quit.
    let (stopping, stop_signal) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let local_addr = listener
        .local_addr()
        .map_or_else(|_| "unknown".to_owned(), |addr| addr.to_string());

    let result = loop {
        // Wait for room before accepting, so excess clients queue in the kernel's backlog instead of
        // holding sockets we will not serve.
        let permit = tokio::select! {
            biased;
            () = &mut shutdown => break Ok(()),
            permit = Arc::clone(&connections).acquire_owned() => {
                permit.expect("the connection semaphore is never closed")
            }
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
        while let Some(finished) = tasks.try_join_next() {
            if let Err(err) = finished {
                error!(error = %err, "connection_task_failed");
            }
        }

        let connection = serve_connection(
            stream,
            builder.clone(),
            Arc::clone(&handler),
            limits.header_read_timeout,
            stop_signal.clone(),
            // Subscribed here, before any shutdown signal, so the connection cannot miss it.
            graceful.watcher(),
        );
        tasks.spawn(async move {
            connection.await;
            drop(permit);
        });
    };

    drop(listener);
    info!(addr = %local_addr, connections = tasks.len(), "listener_draining");
    let _ = stopping.send(true);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
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
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// The life of one connection: read its first bytes under the header deadline (or give up when the
/// server stops), then hand it to hyper, watched by the graceful shutdown.
async fn serve_connection<H: Handler>(
    stream: TcpStream,
    builder: auto::Builder<TokioExecutor>,
    handler: Arc<H>,
    header_read_timeout: Duration,
    mut stop_signal: watch::Receiver<bool>,
    watcher: Watcher,
) {
    // Small answers go out at once instead of waiting for Nagle's algorithm.
    let _ = stream.set_nodelay(true);
    let sniffed = tokio::select! {
        sniffed = tokio::time::timeout(header_read_timeout, sniff::read_preface(stream)) => sniffed,
        _ = stop_signal.wait_for(|stopping| *stopping) => return,
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
    let service = service_fn(move |request| {
        let handler = Arc::clone(&handler);
        async move { Ok::<_, Infallible>(handler.call(request).await) }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        debug!(error = %err, "connection_closed_with_error");
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
