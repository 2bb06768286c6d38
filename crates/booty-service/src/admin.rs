//! The admin listener: jobs listed, shown, retried and cancelled over a trait the queue's owner
//! implements, and the metrics, served with the edge's accept loop, host check and JSON answers, behind
//! the admin token.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use booty_edge::{
    AllowedHosts, HostError, Limits, Reply, ResponseBody, Routes, ServeError, serve_routes,
};
use booty_queue::JobState;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

use crate::auth::{self, AdminToken};
use crate::chain::error_chain;
use crate::page;

/// Jobs listed by `GET /jobs` without `?limit=`.
pub const DEFAULT_JOB_LIMIT: usize = 50;
/// The largest `?limit=` accepted.
pub const MAX_JOB_LIMIT: usize = 500;

const JOBS_PATH: &str = "/jobs";
const PAGE_PATH: &str = "/";
const METRICS_PATH: &str = "/metrics";
/// What a `503` for a full queue asks the operator to wait, in seconds.
const BUSY_RETRY_AFTER: &str = "10";
/// Prometheus' text format's content type (version 0.0.4), which every scraper reads.
const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Access to jobs for the admin listener, implemented by whoever owns the queue
/// ([`QueueInspector`](crate::QueueInspector) for booty-queue's).
///
/// The admin listener serialises the views as they are: `GET /jobs` answers `{"jobs": [view, ...]}`,
/// `GET /jobs/{job_id}` the view itself, and `POST /jobs/{job_id}/retry` and `/cancel` the view after
/// the change. [`QueueInspector`](crate::QueueInspector)'s views serialise as the admin JSON of the
/// design (`job_id`, `state`, `attempts`, `issue_number`, `repository`, `delivery_id`, `created_at`,
/// `started_at`, `finished_at`, `error`, ...).
pub trait JobInspector: Send + Sync + 'static {
    /// One job as the admin listener shows it.
    type View: Serialize + Send;
    /// Why jobs could not be read or changed; logged, and answered `500` without its text.
    type Error: Error + Send + Sync + 'static;

    /// The jobs `filter` asks for (at most `filter.limit`), newest first.
    fn recent(
        &self,
        filter: &JobFilter,
    ) -> impl Future<Output = Result<Vec<Self::View>, Self::Error>> + Send;

    /// The job with this id, or `None` if there is none.
    fn job(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<Self::View>, Self::Error>> + Send;

    /// Runs a failed or cancelled job again (`POST /jobs/{job_id}/retry`).
    fn retry(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Action<Self::View>, Self::Error>> + Send;

    /// Cancels a waiting or running job (`POST /jobs/{job_id}/cancel`).
    fn cancel(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Action<Self::View>, Self::Error>> + Send;
}

/// Which jobs `GET /jobs` lists: `?limit=` (default [`DEFAULT_JOB_LIMIT`]), `?state=` and
/// `?repository=` (`owner/name`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobFilter {
    /// At most this many jobs.
    pub limit: usize,
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this repository (`owner/name`).
    pub repository: Option<String>,
}

impl Default for JobFilter {
    fn default() -> Self {
        Self {
            limit: DEFAULT_JOB_LIMIT,
            state: None,
            repository: None,
        }
    }
}

/// What a retry or cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action<V> {
    /// Done; the job after the change (`200`).
    Done(V),
    /// No job has this id (`404`).
    NotFound,
    /// The job is in no state to be changed so, and was not (`409` with this message, which names the
    /// job and why).
    Refused(String),
    /// Not now: the queue is full (`503` with this message and `Retry-After`).
    Busy(String),
}

/// The admin listener's request handling: `GET /jobs` (`?limit=`, `?state=`, `?repository=`),
/// `GET /jobs/{job_id}`, `POST /jobs/{job_id}/retry`, `POST /jobs/{job_id}/cancel` and `GET /metrics`.
///
/// With a token ([`Admin::with_token`]) every request must carry it, or is answered `401` (metrics
/// may be left open). A `POST` from another site's page is refused `403` (`Sec-Fetch-Site`, `Origin`),
/// and the changing routes answer nothing but `POST`.
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
    token: Option<AdminToken>,
    metrics: Option<Arc<dyn MetricsSource>>,
    metrics_public: bool,
    issues_at: Option<String>,
}

impl<J: JobInspector> Admin<J> {
    /// An admin router over `jobs`; requests are cut off after `limits.request_timeout`. It answers no
    /// host until given its address ([`Admin::listening_on`], which [`Admin::serve`] does) or names.
    pub fn new(jobs: Arc<J>, limits: Limits) -> Self {
        Self {
            jobs,
            limits,
            hosts: AllowedHosts::default(),
            token: None,
            metrics: None,
            metrics_public: false,
            issues_at: None,
        }
    }

    /// Links each job's issue on the jobs page to `{url}/{owner}/{name}/issues/{number}` (`url`: the
    /// GitHub host, `https://github.com` or a GitHub Enterprise Server's).
    #[must_use]
    pub fn link_issues_to(mut self, url: impl Into<String>) -> Self {
        self.issues_at = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Requires `token` on every request (see [`AdminToken`]); without it, answered `401` before the
    /// request is routed. Without a token the listener asks nobody who they are: keep it on loopback
    /// (the `booty` binary refuses any other address then).
    #[must_use]
    pub fn with_token(mut self, token: AdminToken) -> Self {
        self.token = Some(token);
        self
    }

    /// Serves `GET /metrics` from `metrics` (the Prometheus text format); `public` leaves that one
    /// route open without the token, as scrapers expect.
    #[must_use]
    pub fn with_metrics(mut self, metrics: Arc<dyn MetricsSource>, public: bool) -> Self {
        self.metrics = Some(metrics);
        self.metrics_public = public;
        self
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
            if let Some(token) = &self.token
                && !(self.metrics_public && is_metrics(&request))
                && !token.admits(request.headers())
            {
                warn!(path = %request.uri().path(), "admin_unauthorized");
                return auth::unauthorized();
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
        let method = request.method();
        if path == METRICS_PATH {
            if method != Method::GET {
                return Reply::method_not_allowed("GET");
            }
            return match &self.metrics {
                Some(metrics) => {
                    Reply::body(StatusCode::OK, METRICS_CONTENT_TYPE, metrics.render().await)
                }
                None => Reply::not_found(path),
            };
        }
        if path == PAGE_PATH {
            if method != Method::GET {
                return Reply::method_not_allowed("GET");
            }
            return match parse_filter(request.uri().query()) {
                Ok(filter) => self.list_page(&filter).await,
                Err(message) => html(
                    StatusCode::BAD_REQUEST,
                    page::message("Bad filter", &message, PAGE_PATH),
                ),
            };
        }
        if path == JOBS_PATH {
            if method != Method::GET {
                return Reply::method_not_allowed("GET");
            }
            return match parse_filter(request.uri().query()) {
                Ok(filter) => self.list(&filter).await,
                Err(message) => Reply::error(StatusCode::BAD_REQUEST, &message),
            };
        }
        let Some(rest) = path
            .strip_prefix(JOBS_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return Reply::not_found(path);
        };
        let (job_id, action) = match rest.split_once('/') {
            Some((job_id, action)) => (job_id, Some(action)),
            None => (rest, None),
        };
        if job_id.is_empty() {
            return Reply::not_found(path);
        }
        match action {
            None if method == Method::GET && wants_html(request) => self.job_page(job_id).await,
            None if method == Method::GET => self.show(job_id).await,
            None => Reply::method_not_allowed("GET"),
            Some(action @ ("retry" | "cancel")) => {
                if method != Method::POST {
                    return Reply::method_not_allowed("POST");
                }
                if let Some(refused) = auth::cross_site(request) {
                    warn!(job_id = %job_id, action = %action, error = %refused, "admin_cross_site_refused");
                    return Reply::error(StatusCode::FORBIDDEN, &refused);
                }
                if is_form(request) {
                    return self.act_from_page(job_id, action).await;
                }
                self.act(job_id, action).await
            }
            Some(_) => Reply::not_found(path),
        }
    }

    async fn list(&self, filter: &JobFilter) -> Reply {
        #[derive(Serialize)]
        struct Jobs<V> {
            jobs: Vec<V>,
        }
        match self.jobs.recent(filter).await {
            Ok(jobs) => shown(&Jobs { jobs }),
            Err(err) => failed(&err),
        }
    }

    async fn show(&self, job_id: &str) -> Reply {
        match self.jobs.job(job_id).await {
            Ok(Some(job)) => shown(&job),
            Ok(None) => no_job(job_id),
            Err(err) => failed(&err),
        }
    }

    async fn list_page(&self, filter: &JobFilter) -> Reply {
        match self.jobs.recent(filter).await {
            Ok(jobs) => match jobs
                .iter()
                .map(serde_json::to_value)
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(jobs) => html(
                    StatusCode::OK,
                    page::list(&jobs, filter, self.issues_at.as_deref()),
                ),
                Err(err) => failed(&err),
            },
            Err(err) => failed(&err),
        }
    }

    async fn job_page(&self, job_id: &str) -> Reply {
        match self.jobs.job(job_id).await {
            Ok(Some(job)) => match serde_json::to_value(&job) {
                Ok(job) => html(StatusCode::OK, page::job(&job, self.issues_at.as_deref())),
                Err(err) => failed(&err),
            },
            Ok(None) => html(
                StatusCode::NOT_FOUND,
                page::message(
                    "No such job",
                    &format!("no job with id {job_id}"),
                    PAGE_PATH,
                ),
            ),
            Err(err) => failed(&err),
        }
    }

    /// A retry or cancel from the page's buttons (a form `POST`): `303` back to the job's page when
    /// done, a page saying why not otherwise.
    async fn act_from_page(&self, job_id: &str, action: &str) -> Reply {
        let reply = self.act(job_id, action).await;
        let status = reply.status_code();
        if status == StatusCode::OK {
            let location = format!("/jobs/{job_id}");
            return match HeaderValue::from_str(&location) {
                Ok(location) => Reply::body(StatusCode::SEE_OTHER, page::HTML, "")
                    .with_header(header::LOCATION, location),
                Err(_) => html(status, page::message("Done", "done", PAGE_PATH)),
            };
        }
        let why = serde_json::from_slice::<serde_json::Value>(reply.body_bytes())
            .ok()
            .and_then(|body| body["error"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let title = if action == "retry" {
            "Not retried"
        } else {
            "Not cancelled"
        };
        html(
            status,
            page::message(title, &why, &format!("/jobs/{job_id}")),
        )
    }

    async fn act(&self, job_id: &str, action: &str) -> Reply {
        let done = if action == "retry" {
            self.jobs.retry(job_id).await
        } else {
            self.jobs.cancel(job_id).await
        };
        match done {
            Ok(Action::Done(job)) => {
                info!(job_id = %job_id, action = %action, "admin_job_changed");
                shown(&job)
            }
            Ok(Action::NotFound) => no_job(job_id),
            Ok(Action::Refused(why)) => Reply::error(StatusCode::CONFLICT, &why),
            Ok(Action::Busy(why)) => Reply::error(StatusCode::SERVICE_UNAVAILABLE, &why)
                .with_header(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(BUSY_RETRY_AFTER),
                ),
            Err(err) => {
                error!(job_id = %job_id, action = %action, error = %error_chain(&err), "admin_job_unchanged");
                Reply::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("job {job_id}: the {action} could not be recorded"),
                )
            }
        }
    }
}

fn html(status: StatusCode, page: String) -> Reply {
    Reply::body(status, page::HTML, page)
        .with_header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

/// Whether a browser asks for the page (`Accept: text/html`) rather than the JSON.
fn wants_html<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

/// Whether a `POST` comes from the page's form (form-encoded, or a browser asking for a page back).
fn is_form<B>(request: &Request<B>) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"))
        || wants_html(request)
}

fn no_job(job_id: &str) -> Reply {
    Reply::error(StatusCode::NOT_FOUND, &format!("no job with id {job_id}"))
}

/// Whether `request` asks for the metrics (the one route that may be left open).
fn is_metrics<B>(request: &Request<B>) -> bool {
    request.method() == Method::GET && request.uri().path() == METRICS_PATH
}

/// What `GET /metrics` serves: the current numbers in Prometheus' text format (booty's
/// [`Metrics`](crate::Metrics) with the queue depth read at each scrape, in [`Service`](crate::Service)).
pub trait MetricsSource: Send + Sync + 'static {
    /// The exposition, in Prometheus' text format, version 0.0.4.
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>>;
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
            .field("token", &self.token)
            .field("metrics_public", &self.metrics_public)
            .finish_non_exhaustive()
    }
}

impl<J: JobInspector> Routes for Admin<J> {
    async fn call(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        self.handle(request).await
    }
}

/// `?limit=N` (1 to [`MAX_JOB_LIMIT`]), `?state=` (a job state's name) and `?repository=owner/name`
/// (percent-encoded or not); other query parameters are refused so a typo is not silently ignored. An
/// empty `state` or `repository` means no filter (what an HTML form sends for "any").
fn parse_filter(query: Option<&str>) -> Result<JobFilter, String> {
    let mut filter = JobFilter::default();
    for pair in query
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)
            .ok_or_else(|| format!("the value of {key:?} is not valid percent-encoded UTF-8"))?;
        match key {
            "limit" => {
                filter.limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=MAX_JOB_LIMIT).contains(limit))
                    .ok_or_else(|| {
                        format!(
                            "limit must be a whole number from 1 to {MAX_JOB_LIMIT}, not {value:?}"
                        )
                    })?;
            }
            "state" if value.is_empty() => filter.state = None,
            "state" => {
                filter.state = Some(value.parse().map_err(|_unknown| {
                    let states: Vec<&str> =
                        JobState::ALL.iter().map(|state| state.as_str()).collect();
                    format!("state must be one of {}, not {value:?}", states.join(", "))
                })?);
            }
            "repository" if value.is_empty() => filter.repository = None,
            "repository" => {
                let valid = value.split_once('/').is_some_and(|(owner, name)| {
                    !owner.is_empty() && !name.is_empty() && !name.contains('/')
                });
                if !valid {
                    return Err(format!("repository must be owner/name, not {value:?}"));
                }
                filter.repository = Some(value);
            }
            _ => {
                return Err(format!(
                    "unknown query parameter {key:?}; only limit, state and repository are accepted"
                ));
            }
        }
    }
    Ok(filter)
}

/// `value` with `+` as a space and `%XX` escapes decoded, or `None` if an escape or the UTF-8 is bad.
pub(crate) fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        match byte {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes.get(index + 1..index + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                index += 2;
            }
            other => decoded.push(other),
        }
        index += 1;
    }
    String::from_utf8(decoded).ok()
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
        let limit = |query| parse_filter(query).map(|filter| filter.limit);
        assert_eq!(limit(None), Ok(DEFAULT_JOB_LIMIT));
        assert_eq!(limit(Some("")), Ok(DEFAULT_JOB_LIMIT));
        assert_eq!(limit(Some("limit=1")), Ok(1));
        assert_eq!(limit(Some("limit=500")), Ok(MAX_JOB_LIMIT));
        for bad in ["limit=0", "limit=501", "limit=-1", "limit=ten", "limit="] {
            let err = limit(Some(bad)).unwrap_err();
            assert!(
                err.starts_with("limit must be a whole number from 1 to 500"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            limit(Some("limt=5")).unwrap_err(),
            "unknown query parameter \"limt\"; only limit, state and repository are accepted"
        );
    }

    #[test]
    fn state_and_repository_filter_and_bad_ones_say_why() {
        let filter = parse_filter(Some("state=failed&repository=octo%2Frepo&limit=5")).unwrap();
        assert_eq!(
            filter,
            JobFilter {
                limit: 5,
                state: Some(JobState::Failed),
                repository: Some("octo/repo".to_owned()),
            }
        );
        assert_eq!(
            parse_filter(Some("state=&repository=")).unwrap(),
            JobFilter::default()
        );
        assert_eq!(
            parse_filter(Some("state=done")).unwrap_err(),
            "state must be one of queued, running, retrying, succeeded, failed, cancelled, \
             abandoned, not \"done\""
        );
        for bad in ["repository=octo", "repository=%2Frepo", "repository=a/b/c"] {
            let err = parse_filter(Some(bad)).unwrap_err();
            assert!(
                err.starts_with("repository must be owner/name"),
                "{bad}: {err}"
            );
        }
        assert!(parse_filter(Some("repository=%zz")).is_err());
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a+b%2Fc%C3%BC").as_deref(), Some("a b/cü"));
        assert_eq!(percent_decode("%2"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
