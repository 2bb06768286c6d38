//! The admin listener: read-only job inspection over a trait the queue's owner implements.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::{Serialize, Serializer};
use tokio::net::TcpListener;
use tracing::error;

use crate::config::Limits;
use crate::reply::{Reply, ResponseBody};
use crate::server::{self, Handler, ServeError};
use crate::traced;

/// Jobs listed by `GET /jobs` without `?limit=`.
pub const DEFAULT_JOB_LIMIT: usize = 50;
/// The largest `?limit=` accepted.
pub const MAX_JOB_LIMIT: usize = 500;

const JOBS_PATH: &str = "/jobs";

/// One job as the admin listener shows it. Timestamps are serialised as RFC 3339 in UTC with
/// milliseconds (`2026-11-28T15:51:03.120Z`), or `null` for what has not happened yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    /// `{issue_number}-{delivery_id}`.
    pub job_id: String,
    /// The queue's name for the state: `queued`, `running`, `retrying`, `succeeded`, `failed`, `abandoned`.
    pub state: String,
    /// Attempts started so far.
    pub attempts: u32,
    /// The issue the job is for.
    pub issue_number: u64,
    /// `owner/name` of the issue's repository.
    pub repository: String,
    /// The delivery that created the job.
    pub delivery_id: String,
    /// When the job was stored.
    #[serde(serialize_with = "serialize_time")]
    pub created_at: SystemTime,
    /// When the latest attempt started.
    #[serde(serialize_with = "serialize_optional_time")]
    pub started_at: Option<SystemTime>,
    /// When the job reached a final state.
    #[serde(serialize_with = "serialize_optional_time")]
    pub finished_at: Option<SystemTime>,
    /// The last attempt's error, if it failed.
    pub error: Option<String>,
}

/// Read-only access to jobs, implemented by whoever owns the queue (the binary wires it to booty-queue).
pub trait JobInspector: Send + Sync + 'static {
    /// Why jobs could not be read; logged, and answered `500` without its text.
    type Error: Error + Send + Sync + 'static;

    /// Up to `limit` jobs, newest first.
    fn recent(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<JobView>, Self::Error>> + Send;

    /// The job with this id, or `None` if there is none.
    fn job(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<JobView>, Self::Error>> + Send;
}

/// The admin listener's request handling: `GET /jobs` and `GET /jobs/{job_id}`.
pub struct Admin<J> {
    jobs: Arc<J>,
    limits: Limits,
}

impl<J: JobInspector> Admin<J> {
    /// An admin router over `jobs`; requests are cut off after `limits.request_timeout`.
    pub fn new(jobs: Arc<J>, limits: Limits) -> Self {
        Self { jobs, limits }
    }

    /// Answers one request, with the same JSON, `x-request-id` and span as the webhook listener.
    pub async fn handle<B>(&self, request: Request<B>) -> Response<ResponseBody> {
        traced::answer(request, |request| async move {
            let timeout = self.limits.request_timeout;
            tokio::time::timeout(timeout, self.route(&request))
                .await
                .unwrap_or_else(|_elapsed| {
                    Reply::error(StatusCode::SERVICE_UNAVAILABLE, "reading jobs timed out")
                })
        })
        .await
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
        struct Jobs {
            jobs: Vec<JobView>,
        }
        match self.jobs.recent(limit).await {
            Ok(jobs) => Reply::json(StatusCode::OK, &Jobs { jobs }),
            Err(err) => failed(&err),
        }
    }

    async fn show(&self, job_id: &str) -> Reply {
        match self.jobs.job(job_id).await {
            Ok(Some(job)) => Reply::json(StatusCode::OK, &job),
            Ok(None) => Reply::error(StatusCode::NOT_FOUND, &format!("no job with id {job_id}")),
            Err(err) => failed(&err),
        }
    }
}

fn failed(err: &(dyn Error + 'static)) -> Reply {
    error!(error = %err, "jobs_unreadable");
    Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "reading jobs failed")
}

impl<J> fmt::Debug for Admin<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admin")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<J: JobInspector> Handler for Admin<J> {
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
/// limits and graceful shutdown as [`serve`](crate::serve).
///
/// # Errors
/// [`ServeError::Accept`] if the listener itself stops working.
pub async fn serve_admin<J: JobInspector>(
    listener: TcpListener,
    jobs: Arc<J>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    server::run(
        listener,
        limits,
        Arc::new(Admin::new(jobs, limits)),
        shutdown,
    )
    .await
}

fn serialize_time<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*time))
}

#[expect(
    clippy::ref_option,
    reason = "serde's serialize_with passes the field by reference"
)]
fn serialize_optional_time<S: Serializer>(
    time: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match time {
        Some(time) => serialize_time(time, serializer),
        None => serializer.serialize_none(),
    }
}

/// `SystemTime` as RFC 3339 in UTC with milliseconds, from the civil-from-days algorithm
/// (<https://howardhinnant.github.io/date_algorithms.html>), which spares a date crate for one format.
fn rfc3339(time: SystemTime) -> String {
    let (seconds, millis) = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => (
            i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
            after.subsec_millis(),
        ),
        // Before 1970: step back to the whole second at or before the time.
        Err(before) => {
            let before = before.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_millis() {
                0 => (-whole, 0),
                millis => (-whole - 1, 1000 - millis),
            }
        }
    };
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(seconds: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis)
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(1_700_000_000, 7)), "2023-11-14T22:13:20.007Z");
        // A leap day, the last second of a leap year, and the turn of a century that is a leap year.
        assert_eq!(rfc3339(at(951_782_400, 0)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(at(1_735_689_599, 999)), "2024-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(at(4_107_542_400, 0)), "2100-03-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_millis(1)),
            "1969-12-31T23:59:59.999Z"
        );
    }

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
