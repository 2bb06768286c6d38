//! The admin listener: read-only job inspection over a trait the queue's owner implements, served with
//! the edge's accept loop, host check and JSON answers.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use booty_edge::{
    AllowedHosts, HostError, Limits, Reply, ResponseBody, Routes, ServeError, serve_routes,
};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::error;

use crate::chain::error_chain;

/// Jobs listed by `GET /jobs` without `?limit=`.
pub const DEFAULT_JOB_LIMIT: usize = 50;
/// The largest `?limit=` accepted.
pub const MAX_JOB_LIMIT: usize = 500;

const JOBS_PATH: &str = "/jobs";

/// Read-only access to jobs, implemented by whoever owns the queue ([`QueueInspector`](crate::QueueInspector)
/// for booty-queue's).
///
/// The admin listener serialises the views as they are: `GET /jobs` answers `{"jobs": [view, ...]}` and
/// `GET /jobs/{job_id}` the view itself. [`QueueInspector`](crate::QueueInspector)'s views serialise as the
/// admin JSON of the design (`job_id`, `state`, `attempts`, `issue_number`, `repository`, `delivery_id`,
/// `created_at`, `started_at`, `finished_at`, `error`).
pub trait JobInspector: Send + Sync + 'static {
    /// One job as the admin listener shows it.
    type View: Serialize + Send;
    /// Why jobs could not be read; logged, and answered `500` without its text.
    type Error: Error + Send + Sync + 'static;

    /// Up to `limit` jobs, newest first.
    fn recent(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Self::View>, Self::Error>> + Send;

    /// The job with this id, or `None` if there is none.
    fn job(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<Self::View>, Self::Error>> + Send;
}

/// The admin listener's request handling: `GET /jobs` and `GET /jobs/{job_id}`.
///
/// It answers only requests that name a host it was told about ([`Admin::listening_on`],
/// [`Admin::allow_hosts`]) in their `Host` header (or HTTP/2 `:authority`); any other is answered `421
/// Misdirected Request` with the refused host in the JSON error, before anything is read. That keeps a
/// page on another site from reading the jobs through DNS rebinding: its browser sends the attacker's
/// name, never the listener's address. [`Admin::serve`] and [`serve_admin`] add the listener's address
/// themselves; an `Admin` driven through [`Admin::handle`] alone answers only what it is told.
pub struct Admin<J> {
    jobs: Arc<J>,
    limits: Limits,
    hosts: AllowedHosts,
}

impl<J: JobInspector> Admin<J> {
    /// An admin router over `jobs`; requests are cut off after `limits.request_timeout`. It answers no
    /// host until given its address ([`Admin::listening_on`], which [`Admin::serve`] does) or names.
    pub fn new(jobs: Arc<J>, limits: Limits) -> Self {
        Self {
            jobs,
            limits,
            hosts: AllowedHosts::default(),
        }
    }

    /// Also answers requests naming one of `hosts`: `name` (any port) or `name:port`, compared without
    /// case; IP addresses (`10.0.0.5:9090`, `[fd00::5]`) work too. For a listener behind a proxy that
    /// passes the public name on, or one bound to `0.0.0.0` and reached by name.
    ///
    /// # Errors
    /// [`HostError::Invalid`] naming the first entry that is not a host name, IPv4 address or bracketed
    /// IPv6 address with an optional port.
    pub fn allow_hosts<I>(mut self, hosts: I) -> Result<Self, HostError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        for host in hosts {
            self.hosts.allow(host.as_ref())?;
        }
        Ok(self)
    }

    /// Answers requests naming `addr`, the address the listener is bound to: `IP:PORT`, and for a loopback
    /// address also `localhost:PORT` and the other loopback addresses (`[::1]:PORT`); for an unspecified
    /// address (`0.0.0.0`, `[::]`) any IP address and `localhost` on that port. [`Admin::serve`] calls it
    /// with the listener's address.
    #[must_use]
    pub fn listening_on(mut self, addr: SocketAddr) -> Self {
        self.hosts.listen_on(addr);
        self
    }

    /// Answers one request, with the same JSON, `x-request-id` and span as the webhook listener: `421` for
    /// a host it does not answer to, otherwise the route's answer.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody> {
        booty_edge::answer(request, |request| async move {
            if let Err(refused) = self.hosts.check(&request) {
                return refused;
            }
            let timeout = self.limits.request_timeout;
            tokio::time::timeout(timeout, self.route(&request))
                .await
                .unwrap_or_else(|_elapsed| {
                    let seconds = timeout.as_secs_f64();
                    error!(error = %format_args!("no answer within {seconds} s"), "jobs_unreadable");
                    Reply::error(StatusCode::SERVICE_UNAVAILABLE, "reading jobs timed out")
                })
        })
        .await
    }

    /// Serves the admin routes on `listener` until `shutdown` completes, answering requests that name the
    /// listener's address (see [`Admin::listening_on`]) as well as the hosts already allowed, with the
    /// same connection handling, limits and graceful shutdown as the webhook listener
    /// ([`booty_edge::serve_routes`]).
    ///
    /// # Errors
    /// [`ServeError::LocalAddr`] if the listener's address cannot be read; [`ServeError::Accept`] if the
    /// listener itself stops working.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServeError> {
        let addr = listener.local_addr().map_err(ServeError::LocalAddr)?;
        let admin = self.listening_on(addr);
        let limits = admin.limits;
        serve_routes(listener, limits, Arc::new(admin), shutdown).await
    }

    async fn route<B>(&self, request: &Request<B>) -> Reply {
        let path = request.uri().path();
        let is_get = request.method() == Method::GET;
        if path == JOBS_PATH {
            if !is_get {
                return Reply::method_not_allowed("GET");
            }
            return match parse_limit(request.uri().query()) {
                Ok(limit) => self.list(limit).await,
                Err(message) => Reply::error(StatusCode::BAD_REQUEST, &message),
            };
        }
        match path
            .strip_prefix(JOBS_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(job_id) if !job_id.is_empty() && !job_id.contains('/') => {
                if is_get {
                    self.show(job_id).await
                } else {
                    Reply::method_not_allowed("GET")
                }
            }
            _ => Reply::not_found(path),
        }
    }

    async fn list(&self, limit: usize) -> Reply {
        #[derive(Serialize)]
        struct Jobs<V> {
            jobs: Vec<V>,
        }
        match self.jobs.recent(limit).await {
            Ok(jobs) => shown(&Jobs { jobs }),
            Err(err) => failed(&err),
        }
    }

    async fn show(&self, job_id: &str) -> Reply {
        match self.jobs.job(job_id).await {
            Ok(Some(job)) => shown(&job),
            Ok(None) => Reply::error(StatusCode::NOT_FOUND, &format!("no job with id {job_id}")),
            Err(err) => failed(&err),
        }
    }
}

/// `200` with `view` as JSON, or the `500` of [`failed`] if it does not serialise.
fn shown(view: &impl Serialize) -> Reply {
    Reply::json(StatusCode::OK, view).unwrap_or_else(|err| failed(&err))
}

fn failed(err: &(dyn Error + 'static)) -> Reply {
    error!(error = %error_chain(err), "jobs_unreadable");
    Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "reading jobs failed")
}

impl<J> fmt::Debug for Admin<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("limits", &self.limits)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl<J: JobInspector> Routes for Admin<J> {
    async fn call(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        self.handle(request).await
    }
}

/// `?limit=N` (1 to [`MAX_JOB_LIMIT`]); other query parameters are refused so a typo is not silently
/// ignored.
fn parse_limit(query: Option<&str>) -> Result<usize, String> {
    let mut limit = DEFAULT_JOB_LIMIT;
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != "limit" {
            return Err(format!(
                "unknown query parameter {key:?}; only limit is accepted"
            ));
        }
        limit = value
            .parse()
            .ok()
            .filter(|limit| (1..=MAX_JOB_LIMIT).contains(limit))
            .ok_or_else(|| {
                format!("limit must be a whole number from 1 to {MAX_JOB_LIMIT}, not {value:?}")
            })?;
    }
    Ok(limit)
}

/// Serves the admin routes on `listener` until `shutdown` completes, with the same connection handling,
/// limits and graceful shutdown as the webhook listener. Only requests naming the listener's address
/// are answered (see [`Admin`]); [`Admin::allow_hosts`] with [`Admin::serve`] adds names.
///
/// # Errors
/// [`ServeError::LocalAddr`] if the listener's address cannot be read; [`ServeError::Accept`] if the
/// listener itself stops working.
pub async fn serve_admin<J: JobInspector>(
    listener: TcpListener,
    jobs: Arc<J>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    Admin::new(jobs, limits).serve(listener, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(parse_limit(None), Ok(DEFAULT_JOB_LIMIT));
        assert_eq!(parse_limit(Some("")), Ok(DEFAULT_JOB_LIMIT));
        assert_eq!(parse_limit(Some("limit=1")), Ok(1));
        assert_eq!(parse_limit(Some("limit=500")), Ok(MAX_JOB_LIMIT));
        for bad in ["limit=0", "limit=501", "limit=-1", "limit=ten", "limit="] {
            let err = parse_limit(Some(bad)).unwrap_err();
            assert!(
                err.starts_with("limit must be a whole number from 1 to 500"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            parse_limit(Some("limt=5")).unwrap_err(),
            "unknown query parameter \"limt\"; only limit is accepted"
        );
    }
}
