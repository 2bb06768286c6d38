//! A job queue that never runs a delivery twice, never loses an accepted one silently, and drains cleanly.
//!
//! - [`Queue`] is the handle: [`Queue::start`] spawns the workers ([`Queue::start_with`] adds an
//!   [`Observer`] for metrics), [`Queue::submit`] answers [`Submitted::Accepted`], [`Submitted::Duplicate`]
//!   or [`Submitted::Busy`], [`Queue::get`], [`Queue::list`], [`Queue::query`] (a [`JobQuery`]) and
//!   [`Queue::counts`] feed an admin view with [`JobSnapshot`]s, [`Queue::cancel`] cancels a job or a lane, [`Queue::retry`] runs a failed or cancelled job again,
//!   and [`Queue::shutdown`] drains and returns a [`ShutdownReport`].
//! - A [`NewJob`] is what its submitter says it is, as in River: an id, a dedupe key, a lane, a kind and
//!   [`JobMetadata`]. The queue gives them no meaning beyond its rules (one job per dedupe key, one job of a
//!   lane at a time); booty-service decides they are an issue and a delivery.
//! - A [`Handler`] (any `Fn(Job<P>, CancellationToken) -> impl Future` closure, or your own type) runs
//!   each attempt and answers ok or a [`HandlerError`], retryable or permanent, and may append what it
//!   prints to [`Job::output`]. A panic fails the attempt, not the worker.
//! - A [`Store`] keeps the jobs. [`MemoryStore`] is here; durable stores implement the same trait, whose
//!   contract is written out in `docs/architecture.md` ("The store contract"). The queue's type names only
//!   the payload, so a store can be chosen at run time.
//!
//! What the queue promises: a dedupe key is marked seen in the same step that stores its job (so a
//! `Busy` answer or a store error leaves no trace); jobs of one lane run one at a time, in arrival order,
//! while others run in parallel; retryable errors back off exponentially with jitter up to
//! `max_attempts`; a cancelled job never runs again; memory stays bounded whatever the traffic. Every state
//! change is a tracing event (`job_accepted`, `duplicate_delivery`, `job_started`, `job_succeeded`,
//! `job_retrying`, `job_failed`, `job_cancelled`, `job_reopened`, `job_abandoned`) with `job_id`, each metadata entry as a
//! field of its own and, from workers, `worker_id` and `attempt`; the handler runs inside a `job` span
//! carrying the same fields.
//!
//! It does not decode webhooks, touch git, or install a tracing subscriber.
//!
//! ```
//! use std::time::Duration;
//! use booty_queue::{
//!     CancellationToken, HandlerError, Job, MemoryStore, NewJob, Queue, QueueConfig, Submitted,
//! };
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
//! let handler = move |job: Job<String>, _cancel: CancellationToken| {
//!     let done = done.clone();
//!     async move {
//!         done.send(format!("{} says {}", job.id, job.payload))
//!             .map_err(HandlerError::permanent)
//!     }
//! };
//! let queue = Queue::start(MemoryStore::default(), handler, QueueConfig::default()).await?;
//!
//! let job = NewJob::new("1347-72d3162e", "hello".to_owned())
//!     .deduped_by("72d3162e")
//!     .in_lane("octo/repo#1347")
//!     .with_metadata("issue_number", 1347);
//! assert_eq!(queue.submit(job.clone()).await?, Submitted::Accepted(job.id.clone()));
//! assert_eq!(queue.submit(job.clone()).await?, Submitted::Duplicate(job.id.clone()));
//! assert_eq!(finished.recv().await.as_deref(), Some("1347-72d3162e says hello"));
//!
//! let report = queue.shutdown(Duration::from_secs(5)).await;
//! assert!(report.abandoned.is_empty());
//! # Ok(())
//! # }
//! ```

mod backoff;
mod chain;
mod config;
mod handler;
mod job;
mod log;
mod observer;
mod query;
mod queue;
mod store;
mod time;
mod worker;

pub use backoff::{Backoff, DEFAULT_RETRY_BASE, DEFAULT_RETRY_CAP};
pub use config::QueueConfig;
pub use handler::{Handler, HandlerError};
pub use job::{
    DEFAULT_KIND, Job, JobId, JobMetadata, JobOutput, JobSnapshot, JobState, MAX_OUTPUT_BYTES,
    MetadataValue, NewJob, Submitted, UnknownState,
};
pub use observer::{AttemptFinished, AttemptStarted, Observer, RetryScheduled, SubmissionAnswered};
pub use query::{CancelTarget, JobCounts, JobQuery, Retried};
pub use queue::{Queue, QueueError, ShutdownReport, StartError};
pub use store::memory::{MemoryStats, MemoryStore};
#[cfg(feature = "postgres")]
pub use store::postgres::{PostgresError, PostgresOptions, PostgresStore};
#[cfg(feature = "sqlite")]
pub use store::sqlite::{
    SqliteError, SqliteOptions, SqliteStats, SqliteStore, Synchronous, UnknownSynchronous,
};
pub use store::{
    Admission, BoxError, Claim, DEFAULT_DEDUPE_CAPACITY, DEFAULT_RETAINED_FINISHED, Exclusive,
    Lease, Outcome, Renewal, Retention, Store, StoreError, Wakeups,
};
pub use time::Timestamp;
pub use tokio_util::sync::CancellationToken;
