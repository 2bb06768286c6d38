//! The queue's observer: events an embedder can hang metrics on, without the queue knowing a metrics
//! crate.

use std::time::Duration;

use crate::job::{JobId, JobSnapshot, Submitted};
use crate::store::{Outcome, StoreError};
use crate::time::Timestamp;

/// Watches what the queue does, for metrics: register one with
/// [`Queue::start_with`](crate::Queue::start_with).
///
/// Every method does nothing by default, so an observer implements only what it counts, and new events
/// can be added without breaking it (as ripgrep's `Sink` grows). The queue calls them on its own tasks,
/// as things happen, and waits for them: keep them cheap (bump a counter, record a histogram sample) and
/// never block.
pub trait Observer: Send + Sync + 'static {
    /// A submission was answered: accepted, duplicate of a job, or busy (full or shutting down).
    fn submitted(&self, _submission: &SubmissionAnswered<'_>) {}

    /// An attempt started, `waited` after its job was accepted.
    fn started(&self, _attempt: &AttemptStarted<'_>) {}

    /// An attempt ended and its outcome was recorded, after running `ran`.
    fn finished(&self, _attempt: &AttemptFinished<'_>) {}

    /// An attempt failed with attempts left: the next one starts at `at`. (Its `finished` comes too.)
    fn retry_scheduled(&self, _retry: &RetryScheduled<'_>) {}

    /// An operator ran a failed or cancelled job again ([`Queue::retry`](crate::Queue::retry)); `job` is
    /// in its new state (`queued`).
    fn requeued(&self, _job: &JobSnapshot) {}

    /// A store operation (`insert`, `claim`, `renew`, `finish`, `reclaim_expired`, `get`, `list`,
    /// `count`, `cancel`, `reopen`, `close`) failed. The queue retries what it must; this reports each failure.
    fn store_failed(&self, _operation: &'static str, _error: &StoreError) {}
}

/// What [`Observer::submitted`] is told.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct SubmissionAnswered<'a> {
    /// The submitted job's id.
    pub job_id: &'a JobId,
    /// Its kind.
    pub kind: &'a str,
    /// The answer: `Accepted`, `Duplicate` (with the id of the job it duplicates) or `Busy`.
    pub answer: &'a Submitted,
}

/// What [`Observer::started`] is told.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AttemptStarted<'a> {
    /// The job.
    pub job_id: &'a JobId,
    /// Its kind.
    pub kind: &'a str,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// How long since the job was accepted (for a later attempt, earlier attempts and waits included).
    pub waited: Duration,
}

/// What [`Observer::finished`] is told.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AttemptFinished<'a> {
    /// The job.
    pub job_id: &'a JobId,
    /// Its kind.
    pub kind: &'a str,
    /// Which attempt, from 1.
    pub attempt: u32,
    /// How it ended, as recorded.
    pub outcome: &'a Outcome,
    /// How long the attempt ran.
    pub ran: Duration,
}

/// What [`Observer::retry_scheduled`] is told.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RetryScheduled<'a> {
    /// The job.
    pub job_id: &'a JobId,
    /// Its kind.
    pub kind: &'a str,
    /// The attempt that failed.
    pub attempt: u32,
    /// When the next one may start.
    pub at: Timestamp,
}

/// The observer of a queue started without one.
pub(crate) struct Unobserved;

impl Observer for Unobserved {}
