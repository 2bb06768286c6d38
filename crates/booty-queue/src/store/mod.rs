//! The store seam: what the engine asks of a place that keeps jobs, and the stores that implement it.
//!
//! The full contract, with the reasons behind it, is in `docs/architecture.md` ("The store contract");
//! the shared test suite in `tests/it/contract.rs` checks it against every store.

mod admission;
mod dynamic;
mod exclusive;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod retention;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
pub(crate) mod sqlite;

use std::error::Error;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::job::{Job, JobId, JobSnapshot, JobState, Submitted};
use crate::query::{CancelTarget, JobCounts, JobQuery, Retried};
use crate::time::Timestamp;

pub use admission::Admission;
pub(crate) use dynamic::DynStore;
pub use exclusive::Exclusive;
pub use retention::{DEFAULT_DEDUPE_CAPACITY, DEFAULT_RETAINED_FINISHED, Retention};

/// Where jobs live: the memory store, or a database shared by several processes.
///
/// The engine is the only caller. It passes the time (`now`) to every method that needs it, so a store never
/// reads a clock: tests drive time, and every process judges leases by the same rules. Each method is one
/// atomic step; a method that returns an error must have changed nothing (`insert` above all: a failed
/// insert leaves no trace, so the delivery is accepted when GitHub redelivers it).
///
/// A store is generic over the payload type `P` and states what it needs of it: the memory store keeps
/// the `Arc<P>` it is given and needs nothing, a SQL store needs `P: Serialize + DeserializeOwned`.
/// Methods are `async` (SQL stores do I/O) and return `Send` futures so workers can run on any thread;
/// implement them with plain `async fn`.
pub trait Store<P>: Send + Sync + 'static {
    /// Dedupe, capacity check and insert, as one atomic step.
    ///
    /// - `Duplicate(id)` if a stored job has `job.id`, or if `job.dedupe_key` is a stored job's or among
    ///   the keys the store still remembers (at least the most recent `dedupe_capacity` accepted ones,
    ///   however the store configures it); `id` is the id of the job that key created.
    /// - else `Busy` if `capacity` jobs or more are waiting (`queued` or `retrying`; running jobs do not
    ///   count). Nothing is recorded.
    /// - else the job is stored `queued` with 0 attempts, its dedupe key remembered, and `Accepted(job.id)`.
    fn insert(
        &self,
        job: Job<P>,
        capacity: usize,
    ) -> impl Future<Output = Result<Submitted, StoreError>> + Send;

    /// [`Store::insert`] for a submitter that may stop waiting: the store calls [`Admission::admit`] at
    /// the last moment before anything of the job can be committed, under whatever makes its answer final,
    /// and if the submitter withdrew first it stores nothing and answers [`StoreError::Withdrawn`].
    ///
    /// The default admits before calling `insert`: right for a store whose insert never waits (the memory
    /// store). A store that can wait for a lock or a disk admits once it holds the lock.
    fn insert_admitted(
        &self,
        job: Job<P>,
        capacity: usize,
        admission: Admission,
    ) -> impl Future<Output = Result<Submitted, StoreError>> + Send {
        // Decided when called, not when first polled: the caller awaits at once.
        let insert = if admission.admit() {
            Ok(self.insert(job, capacity))
        } else {
            Err(StoreError::withdrawn(&job.id))
        };
        async move { insert?.await }
    }

    /// Takes the next runnable job, marks it `running` under a lease held by `owner` until `lease_until`,
    /// counts the attempt (`attempts + 1`, which is the returned job's `attempt`) and sets `started_at`.
    ///
    /// Runnable means `queued`, or `retrying` with `retry_at <= now`, and first in its lane: no job with
    /// the same [`Job::lane`] that arrived earlier is unfinished (a retrying head blocks its lane
    /// until it finishes). Among runnable jobs, the one that arrived first. With none, `Idle` says when the
    /// earliest retry falls due, so the engine can sleep until then (a time not after `now` is ignored:
    /// the engine then waits for a wake-up or the poll interval).
    fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Claim<P>, StoreError>> + Send;

    /// Extends the lease of a running job to `until`, and says whether its cancellation was asked for
    /// ([`Store::cancel`]): then the engine stops the attempt.
    ///
    /// [`StoreError::LeaseLost`] unless the job is `running` under this exact lease (same owner, same
    /// attempt): its lease expired and the job was reclaimed, or it was recovered.
    fn renew(
        &self,
        lease: &Lease,
        until: Timestamp,
    ) -> impl Future<Output = Result<Renewal, StoreError>> + Send;

    /// Records how an attempt ended, and what it printed (`output`, replacing the job's), and releases
    /// its lease ([`StoreError::LeaseLost`] as for `renew`).
    ///
    /// The job goes to [`Outcome::state`], except that for a job whose cancellation was asked for while
    /// the attempt ran, an outcome that would run it again becomes `Cancelled`
    /// ([`Outcome::unless_cancelled`]). A final state sets `finished_at = now`, drops the payload unless
    /// the job may be retried ([`JobState::is_retryable`]),
    /// makes the lane's next job runnable, and counts against the finished-job retention bound (oldest
    /// finished dropped first). `Retry` keeps the job first in its lane, `retrying` until `at`. `Released`
    /// puts it back to `queued`, first in its lane, its attempt still counted.
    fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Cancels `target` (one job, or every unfinished job of a lane) for `reason`, in one step: a
    /// `queued` or `retrying` job becomes `cancelled` at once (final, `finished_at = now`, `error =
    /// reason`); a `running` one is marked, so its next renewal answers [`Renewal::CancelRequested`] and
    /// its outcome becomes `Cancelled`. Final jobs are left alone. Returns the jobs it changed, oldest
    /// first, in their new state (marked ones still `running`).
    fn cancel(
        &self,
        target: &CancelTarget,
        reason: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send;

    /// Runs job `job_id` again if an operator asks, in one step, as [`Retried::decide`] rules from what
    /// the store finds: the job, whether its payload is still held, and how many jobs wait against
    /// `capacity`. When it answers [`Retried::Queued`], the job is `queued` again with a new `seq`
    /// (after every job stored, so it runs after the jobs already waiting in its lane), its attempts
    /// kept, `finished_at`, `retry_at`, its lease and any cancellation mark cleared, its error and output
    /// kept, and it no longer counts as finished for retention. Any other answer changed nothing.
    fn reopen(
        &self,
        job_id: &str,
        capacity: usize,
    ) -> impl Future<Output = Result<Retried, StoreError>> + Send;

    /// Takes back jobs whose lease expired (`lease_until <= now`): their worker died or lost contact.
    ///
    /// Each goes back to `queued` at the head of its lane, its lost attempt counted; one that had used
    /// `max_attempts` becomes `failed` instead, so a job that kills its process cannot loop forever.
    /// Returns the jobs in their new state.
    fn reclaim_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send;

    /// Called once at start-up, before any claim: takes back jobs a previous process left `running`,
    /// exactly as `reclaim_expired` does.
    ///
    /// A store used by one process at a time (memory, `SQLite`) takes back every running job, whatever its
    /// lease says. A store shared by several processes (`PostgreSQL`) must not steal from live ones: it
    /// takes back only expired leases, like `reclaim_expired`.
    fn recover(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send;

    /// One job, if the store still holds it.
    fn get(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<JobSnapshot>, StoreError>> + Send;

    /// The jobs matching `query` ([`JobQuery::matches`]), newest first (reverse arrival order), at most
    /// `query.limit`.
    fn list(
        &self,
        query: &JobQuery,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send;

    /// How many jobs the store holds in each state.
    fn count(&self) -> impl Future<Output = Result<JobCounts, StoreError>> + Send;

    /// The engine has stopped: every worker is done and nothing will be inserted or claimed.
    ///
    /// A store that cannot keep unfinished jobs (memory) marks each `abandoned` with `finished_at = now`
    /// and returns them, oldest first. A durable store keeps them for the next start and returns nothing.
    fn close(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send;

    /// How the engine learns about work it did not cause itself. The engine already wakes its workers on
    /// its own submissions, finished jobs and due retries; a store shared by several processes adds a
    /// [`Notify`] (fed by `LISTEN`) and a poll interval. The default is neither.
    fn wakeups(&self) -> Wakeups {
        Wakeups::default()
    }

    /// The job a dedupe key created, if the store still knows the key (a stored job's, or one remembered
    /// after its job was dropped): what [`Store::insert`] would answer `Duplicate` with, without inserting.
    fn dedupe_key_job(
        &self,
        dedupe_key: &str,
    ) -> impl Future<Output = Result<Option<JobId>, StoreError>> + Send;

    /// The time last recorded under `name` by [`Store::set_bookmark`], if any: how far a submitter that
    /// reads work from elsewhere (booty's recovery of missed webhooks) has got, kept across restarts by a
    /// durable store.
    fn bookmark(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send;

    /// Records `at` under `name`, replacing what was there.
    fn set_bookmark(
        &self,
        name: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The right to do `name` alone among the processes sharing this store, or `None` if another process
    /// holds it now. The default suits a store used by one process at a time (memory, `SQLite`): it is
    /// always granted, and the process keeps to one holder itself.
    fn try_exclusive(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Exclusive>, StoreError>> + Send {
        let _ = name;
        async { Ok(Some(Exclusive::in_process())) }
    }
}

/// The result of [`Store::claim`].
#[derive(Debug)]
pub enum Claim<P> {
    /// This job is now `running` under the caller's lease.
    Job(Job<P>),
    /// Nothing is runnable now.
    Idle {
        /// When the earliest `retrying` job falls due, if there is one.
        next_retry_at: Option<Timestamp>,
    },
}

/// Who holds a running job: the lease `owner` for its `attempt`. The pair fences a stale worker off: once
/// a job is reclaimed and claimed again, the old lease no longer matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job.
    pub job_id: JobId,
    /// The claiming worker (unique per process and worker).
    pub owner: String,
    /// The attempt the lease was granted for.
    pub attempt: u32,
}

/// How an attempt ended, as [`Store::finish`] records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The handler returned ok: `succeeded`.
    Succeeded,
    /// A retryable error with attempts left: `retrying` until `at`, `error` kept.
    Retry {
        /// When the next attempt may start.
        at: Timestamp,
        /// The attempt's error.
        error: String,
    },
    /// A permanent error, or a retryable one on the last attempt: `failed`.
    Failed {
        /// The attempt's error.
        error: String,
    },
    /// Cut off by shutdown: back to `queued`, to run again after a restart (durable stores) or to be
    /// abandoned when the store closes (memory).
    Released,
    /// Stopped because its cancellation was asked for: `cancelled`, `error = reason`.
    Cancelled {
        /// Why, as the canceller said.
        reason: String,
    },
}

impl Outcome {
    /// The state a job is in once this outcome is recorded: `succeeded`, `failed`, `retrying` or
    /// `queued`. Every store records the state this says; it is the one place that decides it.
    pub fn state(&self) -> JobState {
        match self {
            Self::Succeeded => JobState::Succeeded,
            Self::Failed { .. } => JobState::Failed,
            Self::Retry { .. } => JobState::Retrying,
            Self::Released => JobState::Queued,
            Self::Cancelled { .. } => JobState::Cancelled,
        }
    }

    /// The outcome to record for a job whose cancellation was asked for (`cancel_reason`) while its
    /// attempt ran: one that would run it again (`Retry`, `Released`) becomes `Cancelled`; the others
    /// stand. Every store calls this in `finish` and when it takes a job back from a lost attempt.
    #[must_use]
    pub fn unless_cancelled(self, cancel_reason: Option<&str>) -> Self {
        match (cancel_reason, self) {
            (Some(reason), Self::Retry { .. } | Self::Released) => Self::Cancelled {
                reason: reason.to_owned(),
            },
            (_, outcome) => outcome,
        }
    }

    /// Whether the job is done for good once this is recorded.
    pub fn is_final(&self) -> bool {
        self.state().is_final()
    }

    /// When the next attempt may start (`Retry` only).
    pub fn retry_at(&self) -> Option<Timestamp> {
        match self {
            Self::Retry { at, .. } => Some(*at),
            _ => None,
        }
    }

    /// What becomes of the job's `error`: `Some(error)` replaces it (`Some(None)` clears it, on success),
    /// `None` keeps it as it was (`Released`: the last attempt's error still explains the job).
    pub fn error_update(&self) -> Option<Option<&str>> {
        match self {
            Self::Succeeded => Some(None),
            Self::Failed { error } | Self::Retry { error, .. } => Some(Some(error)),
            Self::Cancelled { reason } => Some(Some(reason)),
            Self::Released => None,
        }
    }

    /// What becomes of a running job whose attempt was lost (`why`: its lease expired, the queue
    /// restarted): `Released` back to the head of its lane, or `Failed` with an error naming the lost
    /// attempt if it was the `max_attempts`th, so a job that kills its process cannot loop forever.
    pub(crate) fn taken_back(attempts: u32, max_attempts: u32, why: &str) -> Self {
        if attempts >= max_attempts {
            Self::Failed {
                error: format!("attempt {attempts} of {max_attempts} was lost: {why}"),
            }
        } else {
            Self::Released
        }
    }
}

/// What [`Store::renew`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Renewal {
    /// The lease is extended; carry on.
    Extended,
    /// The lease is extended, and the job's cancellation was asked for: stop the attempt.
    CancelRequested {
        /// Why, as the canceller said.
        reason: String,
    },
}

/// Why a store takes back a running job in [`Store::reclaim_expired`].
pub(crate) const LEASE_EXPIRED: &str = "its lease expired";

/// Why a store takes back a running job in [`Store::recover`].
pub(crate) const RESTARTED: &str = "the queue restarted";

/// Extra ways a store can wake the engine's idle workers; see [`Store::wakeups`].
#[derive(Debug, Clone, Default)]
pub struct Wakeups {
    /// Signalled (`notify_waiters` or `notify_one`) when another process made work runnable.
    pub notify: Option<Arc<Notify>>,
    /// Idle workers look again at least this often.
    pub poll_interval: Option<Duration>,
}

/// Any error a store's backend can produce.
pub type BoxError = Box<dyn Error + Send + Sync + 'static>;

/// A store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not do it (I/O, a lost connection, a failed query, a payload that does not decode).
    /// The operation had no effect; the edge answers a failed insert with `503`.
    #[error("{store} store: {operation} failed")]
    Backend {
        /// Which store (`memory`, `sqlite`, `postgres`).
        store: &'static str,
        /// Which operation (`insert`, `claim`, ...).
        operation: &'static str,
        /// What went wrong underneath.
        #[source]
        source: BoxError,
    },
    /// The submitter withdrew the submission before the store took it ([`Store::insert_admitted`]):
    /// nothing was recorded.
    #[error("job {job_id} was withdrawn before the store took it; nothing was recorded")]
    Withdrawn {
        /// The job that was not stored.
        job_id: JobId,
    },
    /// The lease no longer holds: the job is not `running` under this owner and attempt any more.
    #[error("job {job_id}: attempt {attempt} no longer holds its lease")]
    LeaseLost {
        /// The job.
        job_id: JobId,
        /// The attempt whose lease was lost.
        attempt: u32,
    },
}

impl StoreError {
    /// The [`StoreError::Withdrawn`] for job `job_id`.
    pub fn withdrawn(job_id: &JobId) -> Self {
        Self::Withdrawn {
            job_id: job_id.clone(),
        }
    }

    /// The [`StoreError::LeaseLost`] for `lease`.
    pub fn lease_lost(lease: &Lease) -> Self {
        Self::LeaseLost {
            job_id: lease.job_id.clone(),
            attempt: lease.attempt,
        }
    }
}

/// A shared store is a store: keep an `Arc` to inspect it while the queue runs.
impl<P, S: Store<P>> Store<P> for Arc<S> {
    fn insert(
        &self,
        job: Job<P>,
        capacity: usize,
    ) -> impl Future<Output = Result<Submitted, StoreError>> + Send {
        S::insert(self, job, capacity)
    }

    fn insert_admitted(
        &self,
        job: Job<P>,
        capacity: usize,
        admission: Admission,
    ) -> impl Future<Output = Result<Submitted, StoreError>> + Send {
        S::insert_admitted(self, job, capacity, admission)
    }

    fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Claim<P>, StoreError>> + Send {
        S::claim(self, owner, now, lease_until)
    }

    fn renew(
        &self,
        lease: &Lease,
        until: Timestamp,
    ) -> impl Future<Output = Result<Renewal, StoreError>> + Send {
        S::renew(self, lease, until)
    }

    fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        S::finish(self, lease, outcome, output, now)
    }

    fn cancel(
        &self,
        target: &CancelTarget,
        reason: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        S::cancel(self, target, reason, now)
    }

    fn reopen(
        &self,
        job_id: &str,
        capacity: usize,
    ) -> impl Future<Output = Result<Retried, StoreError>> + Send {
        S::reopen(self, job_id, capacity)
    }

    fn reclaim_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        S::reclaim_expired(self, now, max_attempts)
    }

    fn recover(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        S::recover(self, now, max_attempts)
    }

    fn get(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<JobSnapshot>, StoreError>> + Send {
        S::get(self, job_id)
    }

    fn list(
        &self,
        query: &JobQuery,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        S::list(self, query)
    }

    fn count(&self) -> impl Future<Output = Result<JobCounts, StoreError>> + Send {
        S::count(self)
    }

    fn close(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        S::close(self, now)
    }

    fn wakeups(&self) -> Wakeups {
        S::wakeups(self)
    }

    fn dedupe_key_job(
        &self,
        dedupe_key: &str,
    ) -> impl Future<Output = Result<Option<JobId>, StoreError>> + Send {
        S::dedupe_key_job(self, dedupe_key)
    }

    fn bookmark(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send {
        S::bookmark(self, name)
    }

    fn set_bookmark(
        &self,
        name: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        S::set_bookmark(self, name, at)
    }

    fn try_exclusive(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Exclusive>, StoreError>> + Send {
        S::try_exclusive(self, name)
    }
}
