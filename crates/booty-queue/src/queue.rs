//! The queue handle: start, submit, inspect, shut down.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::error;

use crate::chain::Chain;
use crate::config::QueueConfig;
use crate::handler::Handler;
use crate::job::{JobId, JobSnapshot, JobState, NewJob, Submitted};
use crate::log::{JobFields, job_event};
use crate::observer::{Observer, SubmissionAnswered, Unobserved};
use crate::query::{CancelTarget, JobCounts, JobQuery, Retried};
use crate::store::{Admission, Exclusive, Store, StoreError};
use crate::time::{Clock, Timestamp};
use crate::worker::{Engine, log_taken_back, sleep_until};

/// Submissions that may be in flight at once. Shutdown takes all of them to wait for the ones in flight
/// and refuse the rest; the number only has to exceed any real concurrency (and fit 32-bit targets).
const ADMISSION_PERMITS: u32 = 1 << 28;

/// A running job queue: workers, a store, and the handle to submit to it.
///
/// Cheap to clone; every clone talks to the same queue. Dropping the last clone without
/// [`shutdown`](Queue::shutdown) stops the workers abruptly (their tasks are aborted).
pub struct Queue<P> {
    inner: Arc<Inner<P>>,
}

struct Inner<P> {
    engine: Arc<Engine<P>>,
    /// One permit per submission in flight; see [`ADMISSION_PERMITS`].
    admission: Arc<Semaphore>,
    /// Workers and the reaper; taken by the first `shutdown`. Dropping the set aborts them.
    tasks: Mutex<Option<JoinSet<()>>>,
}

impl<P> Clone for Queue<P> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P> std::fmt::Debug for Queue<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("config", &self.inner.engine.config)
            .finish_non_exhaustive()
    }
}

impl<P: Send + Sync + 'static> Queue<P> {
    /// Starts a queue on `store` with `handler`: recovers jobs a previous run left running, then spawns
    /// `config.workers` workers and a reaper for expired leases on the current tokio runtime.
    ///
    /// # Errors
    /// [`StartError::Config`] names a setting that cannot work; [`StartError::Recover`] if the store failed
    /// to recover.
    pub async fn start<S, H>(store: S, handler: H, config: QueueConfig) -> Result<Self, StartError>
    where
        S: Store<P>,
        H: Handler<P>,
    {
        Self::start_with(store, handler, config, Unobserved).await
    }

    /// [`Queue::start`], telling `observer` what the queue does (submissions answered, attempts started
    /// and finished, retries scheduled, store failures), for metrics.
    ///
    /// # Errors
    /// As [`Queue::start`].
    pub async fn start_with<S, H, O>(
        store: S,
        handler: H,
        config: QueueConfig,
        observer: O,
    ) -> Result<Self, StartError>
    where
        S: Store<P>,
        H: Handler<P>,
        O: Observer,
    {
        config
            .check()
            .map_err(|(setting, problem)| StartError::Config { setting, problem })?;
        let clock = Clock::start();
        let recovered = store
            .recover(clock.now(), config.max_attempts)
            .await
            .inspect_err(|err| observer.store_failed("recover", err))
            .map_err(StartError::Recover)?;
        for job in &recovered {
            log_taken_back(job, "recovered");
        }
        let workers = config.workers;
        let engine = Arc::new(Engine::new(
            store,
            handler,
            config,
            clock,
            Arc::new(observer),
        ));
        let mut tasks = JoinSet::new();
        for worker_id in 0..workers {
            tasks.spawn(Arc::clone(&engine).work(worker_id));
        }
        tasks.spawn(Arc::clone(&engine).reap());
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                admission: Arc::new(Semaphore::new(ADMISSION_PERMITS as usize)),
                tasks: Mutex::new(Some(tasks)),
            }),
        })
    }

    /// A queue on `store` that only takes submissions and answers questions: no workers, no reaper, and
    /// no jobs taken back at start (they may be another process's). For a one-shot tool that stores jobs
    /// for the queue that runs them (`booty recover`): a durable store keeps them for it. Shut it down as
    /// any queue (a memory store then abandons what it holds).
    ///
    /// # Errors
    /// [`StartError::Config`] names a setting that cannot work.
    pub fn submit_only<S: Store<P>>(store: S, config: QueueConfig) -> Result<Self, StartError> {
        config
            .check()
            .map_err(|(setting, problem)| StartError::Config { setting, problem })?;
        let handler = |_job: crate::job::Job<P>, _cancel: CancellationToken| async {
            Err(crate::handler::HandlerError::permanent(
                "a submit-only queue runs no job",
            ))
        };
        let engine = Arc::new(Engine::new(
            store,
            handler,
            config,
            Clock::start(),
            Arc::new(Unobserved),
        ));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                admission: Arc::new(Semaphore::new(ADMISSION_PERMITS as usize)),
                tasks: Mutex::new(Some(JoinSet::new())),
            }),
        })
    }

    /// Submits a job: `Accepted` once it is stored, `Duplicate` if its dedupe key (or its id) was seen
    /// before, `Busy` if the queue is full or shutting down. Marking the key seen and storing the job are
    /// one step, so `Busy` and errors leave no trace: the same delivery is accepted when GitHub redelivers
    /// it.
    ///
    /// The store's work runs on a task of its own, so a job that is stored is logged (`job_accepted`) and
    /// wakes a worker even if the caller stops waiting; use [`Queue::submit_before`] to stop waiting at a
    /// deadline without leaving that uncertain.
    ///
    /// # Errors
    /// [`QueueError::InvalidJob`] for a job that cannot be stored or logged (an empty id or dedupe key, a
    /// metadata key that is not a field name, ...); [`QueueError::NotRecorded`] if the
    /// store failed (the edge answers `503`).
    pub async fn submit(&self, job: NewJob<P>) -> Result<Submitted, QueueError> {
        self.submit_before(job, None).await
    }

    /// [`Queue::submit`], giving up at `deadline` if the store has not taken the job by then: the
    /// submission is withdrawn and nothing is recorded ([`QueueError::NotRecorded`] with
    /// [`StoreError::Withdrawn`]). Once the store has taken it (it holds the lock that makes its answer
    /// final), its answer is awaited past the deadline, so the answer is always the truth: a job is never
    /// stored behind an error. `None` waits as long as the store takes.
    ///
    /// # Errors
    /// As [`Queue::submit`].
    pub async fn submit_before(
        &self,
        job: NewJob<P>,
        deadline: Option<Instant>,
    ) -> Result<Submitted, QueueError> {
        if let Some(problem) = job.problem() {
            return Err(QueueError::InvalidJob {
                job_id: job.id,
                problem,
            });
        }
        let Ok(in_flight) = Arc::clone(&self.inner.admission).try_acquire_owned() else {
            job_event!(DEBUG, &job, "queue_busy", reason = "shutting_down");
            self.inner.engine.observer.submitted(&SubmissionAnswered {
                job_id: &job.id,
                kind: &job.kind,
                answer: &Submitted::Busy,
            });
            return Ok(Submitted::Busy);
        };
        let engine = Arc::clone(&self.inner.engine);
        let (job_id, metadata) = (job.id.clone(), job.metadata.clone());
        let admission = Admission::new();
        let mut stored = RunToCompletion::new({
            let admission = admission.clone();
            let job_id = job_id.clone();
            async move {
                let answer = engine.insert(job, admission).await;
                drop(in_flight);
                answer.map_err(|source| QueueError::NotRecorded { job_id, source })
            }
        });
        tokio::select! {
            answer = &mut stored => answer,
            () = sleep_until(deadline) => {
                if admission.withdraw() {
                    let job = JobFields { id: &job_id, metadata: &metadata };
                    job_event!(WARN, job, "submission_withdrawn");
                    return Err(QueueError::NotRecorded {
                        source: StoreError::withdrawn(&job_id),
                        job_id,
                    });
                }
                // The store took it: its answer is the truth, however late.
                stored.await
            }
        }
    }

    /// One job, if the store still holds it.
    ///
    /// # Errors
    /// [`QueueError::Inspect`] if the store failed.
    pub async fn get(&self, job_id: &str) -> Result<Option<JobSnapshot>, QueueError> {
        let engine = &self.inner.engine;
        engine
            .store
            .get(job_id)
            .await
            .map_err(|err| self.unreadable("get", err))
    }

    /// Up to `limit` jobs, newest first.
    ///
    /// # Errors
    /// [`QueueError::Inspect`] if the store failed.
    pub async fn list(&self, limit: usize) -> Result<Vec<JobSnapshot>, QueueError> {
        self.query(&JobQuery::newest(limit)).await
    }

    /// The jobs `query` asks for (by state, kind, lane, a metadata entry; before a job), newest first.
    ///
    /// # Errors
    /// [`QueueError::Inspect`] if the store failed.
    pub async fn query(&self, query: &JobQuery) -> Result<Vec<JobSnapshot>, QueueError> {
        let engine = &self.inner.engine;
        engine
            .store
            .list(query)
            .await
            .map_err(|err| self.unreadable("list", err))
    }

    /// How many jobs the store holds in each state.
    ///
    /// # Errors
    /// [`QueueError::Inspect`] if the store failed.
    pub async fn counts(&self) -> Result<JobCounts, QueueError> {
        let engine = &self.inner.engine;
        engine
            .store
            .count()
            .await
            .map_err(|err| self.unreadable("count", err))
    }

    /// Cancels `target` (a job, or every unfinished job of a lane) for `reason`: a waiting job becomes
    /// `cancelled` at once and never runs (logged `job_cancelled`); a running one is told through its
    /// cancellation token at its worker's next lease renewal (logged `job_cancel_requested` now, then
    /// `job_cancelling` and `job_cancelled`), within a third of the lease, in whichever process runs it.
    /// Returns the jobs it changed, in their new state; finished jobs are left alone.
    ///
    /// # Errors
    /// [`QueueError::NotCancelled`] if the store failed; nothing was changed.
    pub async fn cancel(
        &self,
        target: &CancelTarget,
        reason: &str,
    ) -> Result<Vec<JobSnapshot>, QueueError> {
        let engine = &self.inner.engine;
        let changed = engine
            .store
            .cancel(target, reason, engine.clock.now())
            .await
            .map_err(|err| {
                engine.observer.store_failed("cancel", &err);
                QueueError::NotCancelled(err)
            })?;
        for job in &changed {
            if job.state == JobState::Cancelled {
                job_event!(WARN, job, "job_cancelled", reason = reason);
            } else {
                job_event!(INFO, job, "job_cancel_requested", reason = reason);
            }
        }
        // The next job of a cancelled job's lane may run now.
        engine.work.notify_waiters();
        Ok(changed)
    }

    /// The job a dedupe key created, if the store still knows the key: what a submission with that key
    /// would be answered `Duplicate` with, asked without submitting.
    ///
    /// # Errors
    /// [`QueueError::Inspect`] if the store failed.
    pub async fn dedupe_key_job(&self, dedupe_key: &str) -> Result<Option<JobId>, QueueError> {
        let engine = &self.inner.engine;
        engine
            .store
            .dedupe_key_job(dedupe_key)
            .await
            .map_err(|err| self.unreadable("dedupe_key_job", err))
    }

    /// The time last recorded under `name` with [`Queue::set_bookmark`] (kept across restarts by a
    /// durable store, shared by every process of a `PostgreSQL` one).
    ///
    /// # Errors
    /// [`QueueError::Inspect`] if the store failed.
    pub async fn bookmark(&self, name: &str) -> Result<Option<Timestamp>, QueueError> {
        let engine = &self.inner.engine;
        engine
            .store
            .bookmark(name)
            .await
            .map_err(|err| self.unreadable("bookmark", err))
    }

    /// Records `at` under `name`, replacing what was there.
    ///
    /// # Errors
    /// [`QueueError::NotBookmarked`] if the store failed; the bookmark is as it was.
    pub async fn set_bookmark(&self, name: &str, at: Timestamp) -> Result<(), QueueError> {
        let engine = &self.inner.engine;
        engine.store.set_bookmark(name, at).await.map_err(|err| {
            engine.observer.store_failed("set_bookmark", &err);
            QueueError::NotBookmarked {
                name: name.to_owned(),
                source: err,
            }
        })
    }

    /// The right to do `name` alone among the processes sharing the store, or `None` while another
    /// process holds it ([`Store::try_exclusive`]). Release it when done.
    ///
    /// # Errors
    /// [`QueueError::Inspect`] if the store failed.
    pub async fn try_exclusive(&self, name: &str) -> Result<Option<Exclusive>, QueueError> {
        let engine = &self.inner.engine;
        engine
            .store
            .try_exclusive(name)
            .await
            .map_err(|err| self.unreadable("try_exclusive", err))
    }

    /// Runs a `failed` or `cancelled` job again, as an operator asks: it goes back to `queued`, after the
    /// jobs already waiting (in its lane too), and its attempts continue (the next is `attempts + 1`; a job that had used all its
    /// attempts gets this one, and retries of its own only if attempts are left). Logged `job_reopened`
    /// and told to the observer ([`Observer::requeued`]) when it did. Answers what happened:
    /// [`Retried::Queued`], or why not (not found, not failed or cancelled, its payload no longer kept,
    /// the queue full), in which case nothing changed.
    ///
    /// # Errors
    /// [`QueueError::NotRetried`] if the store failed; nothing was changed.
    pub async fn retry(&self, job_id: &str) -> Result<Retried, QueueError> {
        let engine = &self.inner.engine;
        let capacity = engine.config.capacity;
        let retried = engine.store.reopen(job_id, capacity).await.map_err(|err| {
            engine.observer.store_failed("reopen", &err);
            QueueError::NotRetried(err)
        })?;
        if let Retried::Queued(job) = &retried {
            job_event!(INFO, job, "job_reopened", attempt = job.attempts);
            engine.observer.requeued(job);
            engine.work.notify_waiters();
        }
        Ok(retried)
    }

    /// A failed read, told to the observer.
    fn unreadable(&self, operation: &'static str, err: StoreError) -> QueueError {
        self.inner.engine.observer.store_failed(operation, &err);
        QueueError::Inspect(err)
    }

    /// Stops the queue: from now on submissions are `Busy`; workers claim nothing more; running jobs get
    /// `grace` to finish, then their cancellation tokens fire, and handlers still running `cancel_grace`
    /// later are dropped. Then the store closes; jobs it cannot keep (memory) are `abandoned` and logged as
    /// `job_abandoned`.
    ///
    /// Waits for every task the queue spawned. The first call does the work; later calls return an empty
    /// report at once.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let tasks = self
            .inner
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut tasks) = tasks else {
            return ShutdownReport::default();
        };
        let engine = &self.inner.engine;
        // Wait for submissions in flight; later ones find no permit and answer Busy.
        if let Ok(all) = self.inner.admission.acquire_many(ADMISSION_PERMITS).await {
            all.forget();
        }
        engine.stop.cancel();
        if !drain(&mut tasks, Some(grace)).await {
            engine.cancel.cancel();
            if !drain(&mut tasks, Some(engine.config.cancel_grace)).await {
                engine.abort.cancel();
                drain(&mut tasks, None).await;
            }
        }

        let drained = std::mem::take(
            &mut *engine
                .drained
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let mut report = ShutdownReport {
            finished: drained.finished,
            cancelled: drained.cancelled,
            abandoned: Vec::new(),
        };
        match engine.store.close(engine.clock.now()).await {
            Ok(lost) => {
                for job in lost {
                    job_event!(WARN, &job, "job_abandoned", attempt = job.attempts);
                    report.abandoned.push(job.job_id);
                }
            }
            Err(err) => {
                engine.observer.store_failed("close", &err);
                error!(error = %Chain(&err), "store_close_failed");
            }
        }
        report
    }
}

/// A future that, if dropped before it finished, is handed to the runtime to finish there: a submission
/// whose caller stopped waiting (a client that hung up) is still stored or refused in full, logged, and
/// wakes a worker. Costs nothing more than a box while the caller waits.
struct RunToCompletion<F: Future<Output: Send> + Send + 'static>(Option<Pin<Box<F>>>);

impl<F: Future<Output: Send> + Send + 'static> RunToCompletion<F> {
    fn new(future: F) -> Self {
        Self(Some(Box::pin(future)))
    }
}

impl<F: Future<Output: Send> + Send + 'static> Future for RunToCompletion<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let future = self
            .0
            .as_mut()
            .expect("a finished RunToCompletion is not polled again");
        let output = std::task::ready!(future.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(output)
    }
}

impl<F: Future<Output: Send> + Send + 'static> Drop for RunToCompletion<F> {
    fn drop(&mut self) {
        if let Some(future) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(future);
        }
    }
}

/// Joins tasks until none is left (`true`) or `within` runs out (`false`).
async fn drain(tasks: &mut JoinSet<()>, within: Option<Duration>) -> bool {
    let all = async {
        while let Some(joined) = tasks.join_next().await {
            if let Err(err) = joined
                && err.is_panic()
            {
                error!("queue_task_panicked");
            }
        }
    };
    if let Some(within) = within {
        tokio::time::timeout(within, all).await.is_ok()
    } else {
        all.await;
        true
    }
}

/// What became of the work in hand when the queue shut down. A job can be in two lists: cut off
/// (`cancelled`) and then lost (`abandoned`), or finished an attempt with a retry due and then lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Attempts that ended on their own during the grace period (in whatever outcome).
    pub finished: Vec<JobId>,
    /// Attempts whose cancellation token fired because the grace period ran out.
    pub cancelled: Vec<JobId>,
    /// Unfinished jobs the store could not keep (memory store only), oldest first.
    pub abandoned: Vec<JobId>,
}

/// [`Queue::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting of [`QueueConfig`] cannot work.
    #[error("queue setting `{setting}` {problem}")]
    Config {
        /// The field of `QueueConfig`.
        setting: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The store could not take back the jobs a previous run left running.
    #[error("could not recover the jobs a previous run left running")]
    Recover(#[source] StoreError),
}

/// A submission or an inspection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The job cannot be stored or logged as it is: an empty id, dedupe key, kind or lane, or metadata
    /// [`JobMetadata::check`](crate::JobMetadata::check) refuses.
    #[error("job {job_id} cannot be submitted: {problem}")]
    InvalidJob {
        /// The job's id.
        job_id: JobId,
        /// What is wrong with it.
        problem: String,
    },
    /// The store failed to record the job. Nothing was recorded, so a redelivery can be accepted once
    /// the store is back; the edge answers `503`.
    #[error("job {job_id} could not be recorded")]
    NotRecorded {
        /// The job.
        job_id: JobId,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The store failed to answer `get`, `list`, `query` or `counts`.
    #[error("the job store could not be read")]
    Inspect(#[source] StoreError),
    /// The store failed to record a cancellation; nothing was cancelled.
    #[error("the cancellation could not be recorded")]
    NotCancelled(#[source] StoreError),
    /// The store failed to record a bookmark; it is as it was.
    #[error("bookmark {name} could not be recorded")]
    NotBookmarked {
        /// The bookmark's name.
        name: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The store failed to record a retry; nothing was changed.
    #[error("the retry could not be recorded")]
    NotRetried(#[source] StoreError),
}
