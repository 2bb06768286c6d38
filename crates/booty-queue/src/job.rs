//! Jobs: what is submitted, what a handler gets, and what the admin view shows.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;

use crate::time::Timestamp;

/// A job's id: `{issue_number}-{delivery_id}`, or the delivery id alone for a job without an issue.
///
/// GitHub gives one event the same delivery id on every hook and every redelivery, so the id is stable
/// across redeliveries and a duplicate answers with the id of the job it duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// The id of the job for `delivery_id`, about issue `issue_number` if it has one.
    pub fn new(issue_number: Option<u64>, delivery_id: &str) -> Self {
        match issue_number {
            Some(number) => Self(format!("{number}-{delivery_id}")),
            None => Self(delivery_id.to_owned()),
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// For stores that read ids back from their own storage.
impl From<String> for JobId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl AsRef<str> for JobId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by `JobId` be searched with the `&str` an HTTP route hands over.
impl Borrow<str> for JobId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life: `queued → running → succeeded | failed`, `retrying` between attempts, and
/// `abandoned` for work a store could not keep when the queue shut down (only the memory store loses any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker (or for the job before it on the same issue).
    Queued,
    /// A worker holds its lease and runs the handler.
    Running,
    /// An attempt failed with a retryable error; the next one starts at `retry_at`.
    Retrying,
    /// The handler returned ok. Final.
    Succeeded,
    /// A permanent error, or a retryable one on the last attempt. Final.
    Failed,
    /// Lost at shutdown by a store that does not persist jobs. Final.
    Abandoned,
}

impl JobState {
    /// The lowercase name used in JSON, logs and SQL columns: `queued`, `running`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Abandoned => "abandoned",
        }
    }

    /// Whether the job is done for good (`succeeded`, `failed` or `abandoned`).
    pub fn is_final(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Abandoned)
    }

    /// Whether the job waits to be claimed (`queued` or `retrying`): what a queue's capacity counts.
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Queued | Self::Retrying)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads the names [`JobState::as_str`] writes, for stores that keep the state as text.
impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            Self::Queued,
            Self::Running,
            Self::Retrying,
            Self::Succeeded,
            Self::Failed,
            Self::Abandoned,
        ]
        .into_iter()
        .find(|state| state.as_str() == name)
        .ok_or_else(|| UnknownState(name.to_owned()))
    }
}

/// A stored state name that is not one of [`JobState`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state `{0}`")]
pub struct UnknownState(String);

/// A job to submit: the delivery it came from, what it is about, and the embedder's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob<P> {
    /// The dedupe key: GitHub's `X-GitHub-Delivery`. Must not be empty.
    pub delivery_id: String,
    /// The issue the job is about. Jobs with the same repository and issue run one at a time, in arrival
    /// order; a job without an issue has no ordering constraint.
    pub issue_number: Option<u64>,
    /// The repository (`owner/name`) of that issue.
    pub repository: Option<String>,
    /// Whatever the handler needs; the queue never looks inside.
    pub payload: P,
}

impl<P> NewJob<P> {
    /// A job for `delivery_id`, not tied to any issue yet.
    pub fn new(delivery_id: impl Into<String>, payload: P) -> Self {
        Self {
            delivery_id: delivery_id.into(),
            issue_number: None,
            repository: None,
            payload,
        }
    }

    /// Ties the job to issue `number` of `repository` (`owner/name`), which orders it after every earlier
    /// job of that issue.
    #[must_use]
    pub fn for_issue(mut self, repository: impl Into<String>, number: u64) -> Self {
        self.repository = Some(repository.into());
        self.issue_number = Some(number);
        self
    }

    /// The id the job gets: `{issue_number}-{delivery_id}`.
    pub fn job_id(&self) -> JobId {
        JobId::new(self.issue_number, &self.delivery_id)
    }

    /// The job as stores receive it: accepted at `created_at`, no attempt yet.
    pub(crate) fn into_job(self, created_at: Timestamp) -> Job<P> {
        Job {
            id: self.job_id(),
            delivery_id: self.delivery_id,
            issue_number: self.issue_number,
            repository: self.repository,
            created_at,
            attempt: 0,
            payload: Arc::new(self.payload),
        }
    }
}

/// A stored job as a worker sees it: its identity, what it is about, which attempt this is, and the
/// payload. Stores build one on insert (attempt 0) and on every claim.
#[derive(Debug)]
pub struct Job<P> {
    /// `{issue_number}-{delivery_id}`.
    pub id: JobId,
    /// The delivery the job came from (its dedupe key).
    pub delivery_id: String,
    /// The issue the job is about, if any.
    pub issue_number: Option<u64>,
    /// The repository of that issue, if known.
    pub repository: Option<String>,
    /// When the queue accepted it.
    pub created_at: Timestamp,
    /// Which attempt this is, from 1; 0 before the first claim.
    pub attempt: u32,
    /// The embedder's payload, shared rather than copied: the memory store keeps the same `Arc`.
    pub payload: Arc<P>,
}

impl<P> Job<P> {
    /// The key of the lane this job waits in: jobs with the same key run one at a time, in arrival order.
    ///
    /// `Some("{repository}#{issue_number}")` (an empty repository when it is unknown) for a job about an
    /// issue, `None` otherwise. Every store derives the key through this method, so they agree on it.
    pub fn ordering_key(&self) -> Option<String> {
        self.issue_number.map(|number| {
            format!(
                "{}#{number}",
                self.repository.as_deref().unwrap_or_default()
            )
        })
    }
}

/// Written by hand so that a `Job<P>` clones without `P: Clone`: the payload is an `Arc`.
impl<P> Clone for Job<P> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            delivery_id: self.delivery_id.clone(),
            issue_number: self.issue_number,
            repository: self.repository.clone(),
            created_at: self.created_at,
            attempt: self.attempt,
            payload: Arc::clone(&self.payload),
        }
    }
}

/// What the admin view shows of a job, without its payload. Serializes to the JSON object of design.md
/// (`job_id`, `state`, `attempts`, `issue_number`, `repository`, `delivery_id`, `created_at`, `started_at`,
/// `finished_at`, `error`) plus `retry_at`; timestamps as RFC 3339, absent values as `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobSnapshot {
    /// `{issue_number}-{delivery_id}`.
    pub job_id: JobId,
    /// Where the job is in its life.
    pub state: JobState,
    /// Attempts started so far (an attempt cut off by a crash or shutdown counts).
    pub attempts: u32,
    /// The issue the job is about, if any.
    pub issue_number: Option<u64>,
    /// The repository of that issue, if known.
    pub repository: Option<String>,
    /// The delivery the job came from.
    pub delivery_id: String,
    /// When the queue accepted the job.
    pub created_at: Timestamp,
    /// When the latest attempt started.
    pub started_at: Option<Timestamp>,
    /// When the job reached a final state.
    pub finished_at: Option<Timestamp>,
    /// When the next attempt may start, while `retrying`.
    pub retry_at: Option<Timestamp>,
    /// The last attempt's error, while `retrying` and once `failed` or `abandoned`.
    pub error: Option<String>,
}

impl JobSnapshot {
    /// The snapshot of `job` just accepted: queued, no attempt yet.
    pub fn queued<P>(job: &Job<P>) -> Self {
        Self {
            job_id: job.id.clone(),
            state: JobState::Queued,
            attempts: 0,
            issue_number: job.issue_number,
            repository: job.repository.clone(),
            delivery_id: job.delivery_id.clone(),
            created_at: job.created_at,
            started_at: None,
            finished_at: None,
            retry_at: None,
            error: None,
        }
    }
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Submitted {
    /// Stored under this id; it will run. (`202` at the edge.)
    Accepted(JobId),
    /// The delivery was seen before; this is the id of the job it created. (`200 already_processed`.)
    Duplicate(JobId),
    /// Capacity reached or shutting down. Nothing was recorded, so a redelivery is accepted later.
    /// (`503` with `Retry-After`.)
    Busy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_is_issue_then_delivery() {
        let job = NewJob::new("72d3162e", ()).for_issue("octo/repo", 1347);
        assert_eq!(job.job_id().as_str(), "1347-72d3162e");
        assert_eq!(NewJob::new("72d3162e", ()).job_id().as_str(), "72d3162e");
    }

    #[test]
    fn state_names_round_trip_and_unknown_names_are_named() {
        for state in [
            JobState::Queued,
            JobState::Running,
            JobState::Retrying,
            JobState::Succeeded,
            JobState::Failed,
            JobState::Abandoned,
        ] {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        let err = "Queued".parse::<JobState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown job state `Queued`");
    }

    #[test]
    fn snapshot_serializes_to_the_admin_json() {
        let snapshot = JobSnapshot {
            job_id: JobId::new(Some(1347), "72d3162e"),
            state: JobState::Retrying,
            attempts: 2,
            issue_number: Some(1347),
            repository: Some("octo/repo".to_owned()),
            delivery_id: "72d3162e".to_owned(),
            created_at: Timestamp::from_unix_millis(1_700_000_000_000),
            started_at: Some(Timestamp::from_unix_millis(1_700_000_001_500)),
            finished_at: None,
            retry_at: Some(Timestamp::from_unix_millis(1_700_000_011_500)),
            error: Some("clone timed out".to_owned()),
        };
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "job_id": "1347-72d3162e",
                "state": "retrying",
                "attempts": 2,
                "issue_number": 1347,
                "repository": "octo/repo",
                "delivery_id": "72d3162e",
                "created_at": "2023-11-14T22:13:20.000Z",
                "started_at": "2023-11-14T22:13:21.500Z",
                "finished_at": null,
                "retry_at": "2023-11-14T22:13:31.500Z",
                "error": "clone timed out",
            })
        );
    }

    #[test]
    fn ordering_key_is_repository_and_issue() {
        let job = |repo: Option<&str>, issue| Job {
            id: JobId::new(issue, "d"),
            delivery_id: "d".to_owned(),
            issue_number: issue,
            repository: repo.map(str::to_owned),
            created_at: Timestamp::EPOCH,
            attempt: 0,
            payload: Arc::new(()),
        };
        assert_eq!(
            job(Some("octo/a"), Some(7)).ordering_key().as_deref(),
            Some("octo/a#7")
        );
        assert_ne!(
            job(Some("octo/a"), Some(7)).ordering_key(),
            job(Some("octo/b"), Some(7)).ordering_key()
        );
        assert_eq!(job(None, Some(7)).ordering_key().as_deref(), Some("#7"));
        assert_eq!(job(Some("octo/a"), None).ordering_key(), None);
    }
}
