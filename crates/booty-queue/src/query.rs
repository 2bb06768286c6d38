//! Questions about the jobs a store holds: which ones (a filtered, paged listing), how many in each
//! state, and which to cancel.

use crate::job::{JobId, JobSnapshot, JobState, MetadataValue};

/// Which jobs a listing returns: those matching every filter given, newest first (by arrival), at most
/// `limit`, arrived before `before` if set. Start from [`JobQuery::newest`].
///
/// Pages: the next page of a listing is the same query with `before` set to the `seq` of the last job
/// listed ([`JobQuery::after_page`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobQuery {
    /// Only jobs in this state.
    pub state: Option<JobState>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// Only jobs in this lane.
    pub lane: Option<String>,
    /// Only jobs whose metadata has this key with this value (of the same type: the integer 7 is not
    /// the text `"7"`).
    pub metadata: Option<(String, MetadataValue)>,
    /// Only jobs that arrived before the job with this `seq` ([`JobSnapshot::seq`]).
    pub before: Option<u64>,
    /// At most this many jobs.
    pub limit: usize,
}

impl JobQuery {
    /// The newest `limit` jobs, in any state.
    pub fn newest(limit: usize) -> Self {
        Self {
            state: None,
            kind: None,
            lane: None,
            metadata: None,
            before: None,
            limit,
        }
    }

    /// Only jobs in `state`.
    #[must_use]
    pub fn in_state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }

    /// Only jobs of `kind`.
    #[must_use]
    pub fn of_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = Some(kind.into());
        self
    }

    /// Only jobs in `lane`.
    #[must_use]
    pub fn in_lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }

    /// Only jobs whose metadata entry `key` is `value`.
    #[must_use]
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<MetadataValue>,
    ) -> Self {
        self.metadata = Some((key.into(), value.into()));
        self
    }

    /// Only jobs that arrived before job number `seq`.
    #[must_use]
    pub fn before(mut self, seq: u64) -> Self {
        self.before = Some(seq);
        self
    }

    /// The query for the page after `page` (a page this query returned): `None` when `page` was the
    /// last one (it held fewer than `limit` jobs).
    pub fn after_page(&self, page: &[JobSnapshot]) -> Option<Self> {
        let last = page.last()?;
        (page.len() >= self.limit).then(|| self.clone().before(last.seq))
    }

    /// Whether `job` passes every filter except `limit` (what the memory store checks, and the
    /// reference the SQL stores' queries follow).
    pub fn matches(&self, job: &JobSnapshot) -> bool {
        self.state.is_none_or(|state| job.state == state)
            && self.kind.as_ref().is_none_or(|kind| job.kind == *kind)
            && self
                .lane
                .as_ref()
                .is_none_or(|lane| job.lane.as_ref() == Some(lane))
            && self
                .metadata
                .as_ref()
                .is_none_or(|(key, value)| job.metadata.get(key) == Some(value))
            && self.before.is_none_or(|before| job.seq < before)
    }
}

/// How many jobs a store holds in each state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobCounts {
    /// Waiting to run.
    pub queued: u64,
    /// Running now.
    pub running: u64,
    /// Waiting for their next attempt.
    pub retrying: u64,
    /// Succeeded (those the store still keeps).
    pub succeeded: u64,
    /// Failed (those the store still keeps).
    pub failed: u64,
    /// Cancelled (those the store still keeps).
    pub cancelled: u64,
    /// Abandoned at shutdown (those the store still keeps).
    pub abandoned: u64,
}

impl JobCounts {
    /// The count of `state`.
    pub fn of(&self, state: JobState) -> u64 {
        match state {
            JobState::Queued => self.queued,
            JobState::Running => self.running,
            JobState::Retrying => self.retrying,
            JobState::Succeeded => self.succeeded,
            JobState::Failed => self.failed,
            JobState::Cancelled => self.cancelled,
            JobState::Abandoned => self.abandoned,
        }
    }

    /// Every job the store holds.
    pub fn total(&self) -> u64 {
        JobState::ALL.into_iter().map(|state| self.of(state)).sum()
    }

    /// Adds `count` jobs in `state` (for stores).
    pub fn add(&mut self, state: JobState, count: u64) {
        let slot = match state {
            JobState::Queued => &mut self.queued,
            JobState::Running => &mut self.running,
            JobState::Retrying => &mut self.retrying,
            JobState::Succeeded => &mut self.succeeded,
            JobState::Failed => &mut self.failed,
            JobState::Cancelled => &mut self.cancelled,
            JobState::Abandoned => &mut self.abandoned,
        };
        *slot += count;
    }
}

/// Which jobs to cancel: one, or every unfinished job of a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelTarget {
    /// The job with this id.
    Job(JobId),
    /// Every unfinished job in this lane (booty-service's `{repository}#{issue}`).
    Lane(String),
}

/// What asking to run a finished job again ([`Queue::retry`](crate::Queue::retry)) did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retried {
    /// The job is `queued` again, numbered after every job stored (so it runs after the jobs already
    /// waiting in its lane), its attempts still counted (the next one is `attempts + 1`), `finished_at`
    /// cleared; it keeps the last attempt's error and output until its next attempt ends. The job in its
    /// new state.
    Queued(JobSnapshot),
    /// No job with this id is stored (never was, or it was dropped by the retention bound).
    NotFound,
    /// The job is not `failed` or `cancelled` ([`JobState::is_retryable`]); nothing changed. The job as
    /// it is.
    NotRetryable(JobSnapshot),
    /// The store no longer holds the job's payload (a job that finished before stores kept the payloads
    /// of failed and cancelled jobs), so it cannot run again. Nothing changed.
    PayloadGone(JobSnapshot),
    /// The queue is full (as many jobs waiting as its capacity); nothing changed. Try again later.
    Busy,
}

impl Retried {
    /// Decides a retry from what the store found: the job (`None`: not stored), whether its payload is
    /// still held, and how many jobs wait (`queued` or `retrying`) against `capacity`. Every store calls
    /// this, so the rule is written once; `Queued` carries the job as found, which the store then
    /// updates.
    pub fn decide(
        job: Option<JobSnapshot>,
        has_payload: bool,
        waiting: usize,
        capacity: usize,
    ) -> Self {
        let Some(job) = job else {
            return Self::NotFound;
        };
        if !job.state.is_retryable() {
            return Self::NotRetryable(job);
        }
        if !has_payload {
            return Self::PayloadGone(job);
        }
        if waiting >= capacity {
            return Self::Busy;
        }
        Self::Queued(job)
    }
}
