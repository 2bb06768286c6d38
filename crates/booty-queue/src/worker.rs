//! The engine's running half: workers that claim and run jobs, and the reaper that takes back expired
//! leases.

use std::any::Any;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::field::display;
use tracing::{Instrument, Span, error};

use crate::chain::Chain;
use crate::config::QueueConfig;
use crate::handler::{DynHandler, Handler, HandlerError};
use crate::job::{Job, JobId, JobMetadata, JobOutput, JobSnapshot, JobState, NewJob, Submitted};
use crate::log::{self, JobFields, job_event};
use crate::observer::{
    AttemptFinished, AttemptStarted, Observer, RetryScheduled, SubmissionAnswered,
};
use crate::store::{
    Admission, Claim, DynStore, Lease, Outcome, Renewal, Store, StoreError, Wakeups,
};
use crate::time::Clock;

/// How long a worker waits before asking a failing store again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The longest pause between tries to record an attempt's outcome: short enough that the worker, not
/// the reaper (every half lease), is normally first to write once the store is back.
const RECORD_PAUSE_CAP: Duration = Duration::from_secs(8);

/// Everything the workers share. The [`Queue`](crate::Queue) handle owns the tasks; each task holds an
/// `Arc` of this.
pub(crate) struct Engine<P> {
    pub(crate) store: Arc<dyn DynStore<P>>,
    handler: Arc<dyn DynHandler<P>>,
    /// Told what happens, for metrics ([`Unobserved`](crate::observer::Unobserved) without one).
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) config: QueueConfig,
    pub(crate) clock: Clock,
    /// Lease owners are `{instance}-{worker}`; the instance is unique per process start.
    instance: String,
    /// Signalled when this process made work runnable: a submission, a finished job, a reclaim.
    pub(crate) work: Notify,
    wakeups: Wakeups,
    /// Shutdown, step 1: claim nothing more.
    pub(crate) stop: CancellationToken,
    /// Step 2, after the grace period: the parent of every running job's token.
    pub(crate) cancel: CancellationToken,
    /// Step 3, after `cancel_grace`: drop handlers still running.
    pub(crate) abort: CancellationToken,
    /// Attempts that ended after shutdown began.
    pub(crate) drained: Mutex<Drained>,
}

/// The attempts that ended after shutdown began, for the queue's
/// [`ShutdownReport`](crate::ShutdownReport).
#[derive(Debug, Default)]
pub(crate) struct Drained {
    /// Ended on their own during the grace period.
    pub(crate) finished: Vec<JobId>,
    /// Ended after their cancellation token fired.
    pub(crate) cancelled: Vec<JobId>,
}

/// One attempt of one job on one worker: its lease, and the fields of every log line about it.
struct Attempt {
    lease: Lease,
    metadata: JobMetadata,
    kind: String,
    worker_id: usize,
}

impl Attempt {
    fn job(&self) -> JobFields<'_> {
        JobFields {
            id: &self.lease.job_id,
            metadata: &self.metadata,
        }
    }
}

/// An event about an attempt: the job's fields (`job_id` and its metadata), `worker_id` and `attempt`,
/// then any others given.
macro_rules! attempt_event {
    ($level:ident, $attempt:expr, $message:literal $(, $name:ident = $value:expr)* $(,)?) => {
        job_event!(
            $level,
            $attempt.job(),
            $message,
            worker_id = $attempt.worker_id,
            attempt = $attempt.lease.attempt
            $(, $name = $value)*
        )
    };
}

/// How the handler task of one attempt ended.
enum Ended {
    Returned(Result<(), HandlerError>),
    Panicked(String),
    /// Dropped after ignoring cancellation.
    Dropped,
    /// Another worker holds the job now; nothing may be recorded.
    LeaseLost,
    /// Its cancellation was asked for (and the handler was told): however it ended, it is `cancelled`.
    Cancelled(String),
}

impl<P: Send + Sync + 'static> Engine<P> {
    pub(crate) fn new<S: Store<P>, H: Handler<P>>(
        store: S,
        handler: H,
        config: QueueConfig,
        clock: Clock,
        observer: Arc<dyn Observer>,
    ) -> Self {
        let wakeups = store.wakeups();
        let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        Self {
            store: Arc::new(store),
            handler: Arc::new(handler),
            observer,
            config,
            clock,
            instance: format!("{}.{:08x}", std::process::id(), random >> 32),
            work: Notify::new(),
            wakeups,
            stop: CancellationToken::new(),
            cancel: CancellationToken::new(),
            abort: CancellationToken::new(),
            drained: Mutex::new(Drained::default()),
        }
    }

    /// One worker: claim, run, repeat, until shutdown.
    pub(crate) async fn work(self: Arc<Self>, worker_id: usize) {
        let owner = format!("{}-{worker_id}", self.instance);
        while !self.stop.is_cancelled() {
            let now = self.clock.now();
            let lease_until = now.saturating_add(self.config.lease);
            match self.store.claim(&owner, now, lease_until).await {
                Ok(Claim::Job(job)) => self.run_attempt(job, worker_id, &owner).await,
                Ok(Claim::Idle { next_retry_at }) => {
                    // A retry already due but not claimable (another process holds its row) is left
                    // to the poll interval rather than retried in a busy loop.
                    let due = next_retry_at
                        .filter(|&at| at > now)
                        .map(|at| self.clock.instant_at(at));
                    self.idle(due).await;
                }
                Err(err) => {
                    self.observer.store_failed("claim", &err);
                    error!(worker_id, error = %Chain(&err), "store_failed");
                    self.idle(Some(Instant::now() + STORE_ERROR_PAUSE)).await;
                }
            }
        }
    }

    /// Stores a submission (unless withdrawn first), logs the answer, and wakes a worker for a new job.
    pub(crate) async fn insert(
        &self,
        job: NewJob<P>,
        admission: Admission,
    ) -> Result<Submitted, StoreError> {
        let (metadata, kind) = (job.metadata.clone(), job.kind.clone());
        let submitted = job.id.clone();
        let job = job.into_job(self.clock.now());
        let answer = self
            .store
            .insert_admitted(job, self.config.capacity, admission)
            .await
            .inspect_err(|err| {
                // A withdrawn submission is the submitter's doing, not a failure.
                if matches!(err, StoreError::Backend { .. }) {
                    self.observer.store_failed("insert", err);
                }
            })?;
        self.observer.submitted(&SubmissionAnswered {
            job_id: &submitted,
            kind: &kind,
            answer: &answer,
        });
        match &answer {
            Submitted::Accepted(id) => {
                let job = JobFields {
                    id,
                    metadata: &metadata,
                };
                job_event!(DEBUG, job, "job_accepted");
                self.work.notify_one();
            }
            // Logged under the id of the job it duplicates.
            Submitted::Duplicate(id) => {
                let job = JobFields {
                    id,
                    metadata: &metadata,
                };
                job_event!(DEBUG, job, "duplicate_delivery");
            }
            Submitted::Busy => {
                let job = JobFields {
                    id: &submitted,
                    metadata: &metadata,
                };
                job_event!(DEBUG, job, "queue_busy", reason = "full");
            }
        }
        Ok(answer)
    }

    /// Waits for new work, the next due retry, the store's own signals, or shutdown.
    async fn idle(&self, due: Option<Instant>) {
        // Every store is polled: a job stored without a wake-up reaching this process waits at most this.
        let every = self
            .wakeups
            .poll_interval
            .map_or(self.config.poll_interval, |store| {
                store.min(self.config.poll_interval)
            });
        let poll = Instant::now() + every;
        let wake_at = Some(due.map_or(poll, |due| due.min(poll)));
        tokio::select! {
            () = self.work.notified() => {}
            () = notified(self.wakeups.notify.as_deref()) => {}
            () = sleep_until(wake_at) => {}
            () = self.stop.cancelled() => {}
        }
    }

    /// Runs one attempt of a claimed job and records how it ended.
    async fn run_attempt(&self, mut job: Job<P>, worker_id: usize, owner: &str) {
        job.output = JobOutput::with_limit(self.config.output_bytes);
        let attempt = Attempt {
            lease: Lease {
                job_id: job.id.clone(),
                owner: owner.to_owned(),
                attempt: job.attempt,
            },
            metadata: job.metadata.clone(),
            kind: job.kind.clone(),
            worker_id,
        };
        attempt_event!(INFO, attempt, "job_started");
        self.observer.started(&AttemptStarted {
            job_id: &attempt.lease.job_id,
            kind: &attempt.kind,
            attempt: attempt.lease.attempt,
            waited: self.clock.now().saturating_duration_since(job.created_at),
        });
        let started = Instant::now();
        let span = log::span(
            attempt.job(),
            &[
                ("worker_id", &worker_id),
                ("attempt", &attempt.lease.attempt),
            ],
        );
        let token = self.cancel.child_token();
        let output = job.output.clone();

        let outcome = match self.supervise(job, &attempt, &token, span).await {
            Ended::LeaseLost => return,
            Ended::Cancelled(reason) => Outcome::Cancelled { reason },
            Ended::Returned(Ok(())) => Outcome::Succeeded,
            // An error after cancellation is the cancellation's doing, not the job's.
            Ended::Returned(Err(_)) if token.is_cancelled() => Outcome::Released,
            Ended::Dropped => Outcome::Released,
            Ended::Returned(Err(err)) => self.after_failure(
                attempt.lease.attempt,
                err.is_retryable(),
                err.message().to_owned(),
            ),
            Ended::Panicked(message) => self.after_failure(
                attempt.lease.attempt,
                true,
                format!("handler panicked: {message}"),
            ),
        };

        let recorded = self.record(&attempt, &outcome, output.recorded()).await;
        if recorded.is_ok() {
            self.observe_end(&attempt, &outcome, started.elapsed());
        }
        match (recorded, outcome) {
            (Ok(()), Outcome::Succeeded) => attempt_event!(INFO, attempt, "job_succeeded"),
            (Ok(()), Outcome::Retry { at, error }) => {
                attempt_event!(
                    WARN,
                    attempt,
                    "job_retrying",
                    error = error,
                    retry_at = display(at)
                );
            }
            (Ok(()), Outcome::Failed { error }) => {
                attempt_event!(ERROR, attempt, "job_failed", error = error);
            }
            (Ok(()), Outcome::Released) => attempt_event!(INFO, attempt, "job_released"),
            (Ok(()), Outcome::Cancelled { reason }) => {
                attempt_event!(WARN, attempt, "job_cancelled", reason = reason);
            }
            (Err(err), _) => {
                attempt_event!(
                    ERROR,
                    attempt,
                    "job_not_recorded",
                    error = display(Chain(&err))
                );
            }
        }
        self.work.notify_one();

        if self.stop.is_cancelled() {
            let mut drained = self.drained.lock().unwrap_or_else(PoisonError::into_inner);
            // The shutdown's cancellation, not a job's own.
            let list = if self.cancel.is_cancelled() {
                &mut drained.cancelled
            } else {
                &mut drained.finished
            };
            list.push(attempt.lease.job_id);
        }
    }

    /// Tells the observer how a recorded attempt ended.
    fn observe_end(&self, attempt: &Attempt, outcome: &Outcome, ran: Duration) {
        let (job_id, kind) = (&attempt.lease.job_id, attempt.kind.as_str());
        let number = attempt.lease.attempt;
        if let Some(at) = outcome.retry_at() {
            self.observer.retry_scheduled(&RetryScheduled {
                job_id,
                kind,
                attempt: number,
                at,
            });
        }
        self.observer.finished(&AttemptFinished {
            job_id,
            kind,
            attempt: number,
            outcome,
            ran,
        });
    }

    /// Records how the attempt ended, trying again while the store fails (a full disk, a lost
    /// connection): the worker keeps the job meanwhile, so nobody else takes it for as long as its lease
    /// lasts. It stops once the outcome is written, the lease is lost, or shutdown stops waiting for
    /// handlers; a durable store then runs the job again after a restart (the attempt is counted).
    async fn record(
        &self,
        attempt: &Attempt,
        outcome: &Outcome,
        output: Option<String>,
    ) -> Result<(), StoreError> {
        let mut pause = STORE_ERROR_PAUSE;
        loop {
            let now = self.clock.now();
            let recorded = (self.store)
                .finish(&attempt.lease, outcome.clone(), output.as_deref(), now)
                .await;
            let Err(err @ StoreError::Backend { .. }) = recorded else {
                return recorded;
            };
            self.observer.store_failed("finish", &err);
            attempt_event!(
                WARN,
                attempt,
                "job_not_recorded",
                error = display(Chain(&err)),
                retry_in_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX)
            );
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = self.abort.cancelled() => return Err(err),
            }
            pause = (pause * 2).min(RECORD_PAUSE_CAP);
        }
    }

    /// Runs the handler on its own task (so a panic stays there), renewing the lease while it runs, and
    /// dropping it if shutdown or a lost lease gave up waiting for it.
    async fn supervise(
        &self,
        job: Job<P>,
        attempt: &Attempt,
        token: &CancellationToken,
        span: Span,
    ) -> Ended {
        let handler = Arc::clone(&self.handler);
        let cancel = token.clone();
        let mut task = AbortOnDrop(tokio::spawn(
            async move { handler.handle(job, cancel).await }.instrument(span),
        ));
        let every = self.config.lease / 3;
        let mut renewal = tokio::time::interval_at(Instant::now() + every, every);
        renewal.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut lost = false;
        let mut cancelled = None;
        let mut drop_at = None;
        let mut aborted = false;
        loop {
            tokio::select! {
                joined = &mut task.0 => {
                    return match joined {
                        _ if lost => Ended::LeaseLost,
                        _ if cancelled.is_some() => Ended::Cancelled(cancelled.unwrap_or_default()),
                        Ok(result) => Ended::Returned(result),
                        Err(err) if err.is_panic() => Ended::Panicked(panic_message(&*err.into_panic())),
                        Err(_) => Ended::Dropped,
                    };
                }
                _ = renewal.tick(), if !lost => {
                    let until = self.clock.now().saturating_add(self.config.lease);
                    match self.store.renew(&attempt.lease, until).await {
                        Ok(Renewal::CancelRequested { reason }) if cancelled.is_none() => {
                            attempt_event!(WARN, attempt, "job_cancelling", reason = reason);
                            cancelled = Some(reason);
                            token.cancel();
                            drop_at = Some(Instant::now() + self.config.cancel_grace);
                        }
                        Ok(_) => {}
                        Err(StoreError::LeaseLost { .. }) => {
                            attempt_event!(WARN, attempt, "lease_lost");
                            lost = true;
                            token.cancel();
                            drop_at = Some(Instant::now() + self.config.cancel_grace);
                        }
                        Err(err) => {
                            self.observer.store_failed("renew", &err);
                            attempt_event!(WARN, attempt, "lease_renewal_failed", error = display(Chain(&err)));
                        }
                    }
                }
                () = sleep_until(drop_at), if !aborted => {
                    task.0.abort();
                    aborted = true;
                }
                () = self.abort.cancelled(), if !aborted => {
                    task.0.abort();
                    aborted = true;
                }
            }
        }
    }

    fn after_failure(&self, attempt: u32, retryable: bool, error: String) -> Outcome {
        if retryable && attempt < self.config.max_attempts {
            let delay = self.config.backoff.delay(attempt);
            let at = self.clock.now().saturating_add(delay);
            Outcome::Retry { at, error }
        } else {
            Outcome::Failed { error }
        }
    }

    /// Takes back expired leases, every half lease, until shutdown.
    pub(crate) async fn reap(self: Arc<Self>) {
        let every = self.config.lease / 2;
        loop {
            tokio::select! {
                () = self.stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            let now = self.clock.now();
            match self
                .store
                .reclaim_expired(now, self.config.max_attempts)
                .await
            {
                Ok(jobs) => {
                    for job in &jobs {
                        log_taken_back(job, "lease_expired");
                    }
                    if !jobs.is_empty() {
                        self.work.notify_waiters();
                    }
                }
                Err(err) => {
                    self.observer.store_failed("reclaim_expired", &err);
                    error!(error = %Chain(&err), "store_failed");
                }
            }
        }
    }
}

/// Logs a job a store took back from a lost attempt (`reason`: `lease_expired` or `recovered`).
pub(crate) fn log_taken_back(job: &JobSnapshot, reason: &'static str) {
    let attempt = job.attempts;
    if job.state == JobState::Failed {
        let error = job.error.as_deref().unwrap_or_default();
        job_event!(
            ERROR,
            job,
            "job_failed",
            attempt = attempt,
            reason = reason,
            error = error
        );
    } else {
        job_event!(
            WARN,
            job,
            "job_requeued",
            attempt = attempt,
            reason = reason
        );
    }
}

/// Aborts the task when dropped, so a handler never outlives the worker that started it.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

async fn notified(notify: Option<&Notify>) {
    match notify {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_str_and_string_payloads() {
        assert_eq!(panic_message(&"boom"), "boom");
        assert_eq!(panic_message(&String::from("bang")), "bang");
        assert_eq!(panic_message(&42_u8), "a non-string panic payload");
    }
}
