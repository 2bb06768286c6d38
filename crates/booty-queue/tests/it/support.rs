//! Test helpers: a store wrapper that reports what the engine records, and small builders.

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use booty_queue::{
    Admission, Backoff, CancelTarget, Claim, Job, JobCounts, JobId, JobMetadata, JobOutput,
    JobQuery, JobSnapshot, JobState, Lease, MemoryStore, MetadataValue, NewJob, Outcome,
    QueueConfig, Renewal, Retried, Store, StoreError, Submitted, Timestamp, Wakeups,
};
use tokio::sync::mpsc;

use crate::contract::Payload;

/// The real memory store, with every recorded outcome reported on a channel (so tests wait for the
/// engine's writes instead of polling), inserts and finishes that fail on demand (a store outage), and
/// inserts that take their time after admitting a submission (a slow commit).
pub(crate) struct Observed<P> {
    inner: Arc<MemoryStore<P>>,
    recorded: mpsc::UnboundedSender<(JobId, Outcome)>,
    outage: AtomicBool,
    failing_finishes: AtomicUsize,
    slow_commit: Mutex<Option<Duration>>,
}

/// Receives `(job, outcome)` for each attempt the engine recorded, in order.
pub(crate) type Recorded = mpsc::UnboundedReceiver<(JobId, Outcome)>;

impl<P> Observed<P> {
    pub(crate) fn new(inner: Arc<MemoryStore<P>>) -> (Arc<Self>, Recorded) {
        let (recorded, receiver) = mpsc::unbounded_channel();
        let store = Self {
            inner,
            recorded,
            outage: AtomicBool::new(false),
            failing_finishes: AtomicUsize::new(0),
            slow_commit: Mutex::new(None),
        };
        (Arc::new(store), receiver)
    }

    /// While set, `insert` fails as a lost database connection would.
    pub(crate) fn set_outage(&self, down: bool) {
        self.outage.store(down, Ordering::SeqCst);
    }

    /// The next `count` calls of `finish` fail as a full disk would, recording nothing.
    pub(crate) fn fail_finishes(&self, count: usize) {
        self.failing_finishes.store(count, Ordering::SeqCst);
    }

    /// From now on an admitted submission takes `delay` before it is stored.
    pub(crate) fn slow_commits(&self, delay: Duration) {
        *self.slow_commit.lock().unwrap() = Some(delay);
    }
}

impl<P: Send + Sync + 'static> Store<P> for Observed<P> {
    async fn insert(&self, job: Job<P>, capacity: usize) -> Result<Submitted, StoreError> {
        if self.outage.load(Ordering::SeqCst) {
            return Err(StoreError::Backend {
                store: "observed",
                operation: "insert",
                source: "connection refused".into(),
            });
        }
        self.inner.insert(job, capacity).await
    }

    async fn insert_admitted(
        &self,
        job: Job<P>,
        capacity: usize,
        admission: Admission,
    ) -> Result<Submitted, StoreError> {
        if !admission.admit() {
            return Err(StoreError::withdrawn(&job.id));
        }
        let delay = *self.slow_commit.lock().unwrap();
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        self.insert(job, capacity).await
    }

    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claim<P>, StoreError> {
        self.inner.claim(owner, now, lease_until).await
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<Renewal, StoreError> {
        self.inner.renew(lease, until).await
    }

    async fn cancel(
        &self,
        target: &CancelTarget,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        self.inner.cancel(target, reason, now).await
    }

    async fn reopen(&self, job_id: &str, capacity: usize) -> Result<Retried, StoreError> {
        self.inner.reopen(job_id, capacity).await
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let failing =
            self.failing_finishes
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                });
        if failing.is_ok() {
            return Err(StoreError::Backend {
                store: "observed",
                operation: "finish",
                source: "database or disk is full".into(),
            });
        }
        self.inner
            .finish(lease, outcome.clone(), output, now)
            .await?;
        // The receiver may be gone when a test no longer listens.
        let _ = self.recorded.send((lease.job_id.clone(), outcome));
        Ok(())
    }

    async fn reclaim_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        self.inner.reclaim_expired(now, max_attempts).await
    }

    async fn recover(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        self.inner.recover(now, max_attempts).await
    }

    async fn get(&self, job_id: &str) -> Result<Option<JobSnapshot>, StoreError> {
        self.inner.get(job_id).await
    }

    async fn list(&self, query: &JobQuery) -> Result<Vec<JobSnapshot>, StoreError> {
        self.inner.list(query).await
    }

    async fn count(&self) -> Result<JobCounts, StoreError> {
        self.inner.count().await
    }

    async fn close(&self, now: Timestamp) -> Result<Vec<JobSnapshot>, StoreError> {
        self.inner.close(now).await
    }

    fn wakeups(&self) -> Wakeups {
        self.inner.wakeups()
    }

    async fn dedupe_key_job(&self, dedupe_key: &str) -> Result<Option<JobId>, StoreError> {
        self.inner.dedupe_key_job(dedupe_key).await
    }

    async fn bookmark(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        self.inner.bookmark(name).await
    }

    async fn set_bookmark(&self, name: &str, at: Timestamp) -> Result<(), StoreError> {
        self.inner.set_bookmark(name, at).await
    }
}

/// The next recorded outcome.
pub(crate) async fn next_recorded(recorded: &mut Recorded) -> (JobId, Outcome) {
    within("the next recorded outcome", recorded.recv())
        .await
        .expect("the store outlives the test's queue")
}

/// Awaits `future`, failing the test if it takes longer than two minutes (of paused time in paused
/// tests): a regression that loses a wake-up fails instead of hanging. Not a synchronisation.
pub(crate) async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_mins(2), future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not happen within two minutes"))
}

/// A configuration with `workers` workers, room for 1,000 waiting jobs and a 1 s backoff base.
pub(crate) fn config(workers: usize) -> QueueConfig {
    let mut config = QueueConfig::default();
    config.workers = workers;
    config.capacity = 1_000;
    config.backoff = Backoff {
        base: Duration::from_secs(1),
        cap: Duration::from_mins(1),
    };
    config
}

/// The id of the job for `delivery` on issue `issue`, as booty-service makes it.
pub(crate) fn id(issue: u64, delivery: &str) -> JobId {
    job_id(Some(issue), delivery)
}

/// `{issue}-{delivery}`, or the delivery alone for a job without an issue.
pub(crate) fn job_id(issue: Option<u64>, delivery: &str) -> JobId {
    match issue {
        Some(issue) => JobId::new(format!("{issue}-{delivery}")),
        None => JobId::new(delivery),
    }
}

/// Jobs about a GitHub issue, built as booty-service builds them: the tests' jobs, so that what they
/// check is what the service gets.
pub(crate) trait ForIssue {
    /// The job of the delivery this job is deduplicated by, about issue `number` of `repository`: id
    /// `{number}-{delivery}`, lane `{repository}#{number}`, kind `issue`, and the issue number,
    /// repository and delivery id as metadata.
    #[must_use]
    fn for_issue(self, repository: &str, number: u64) -> Self;
}

impl<P> ForIssue for NewJob<P> {
    fn for_issue(mut self, repository: &str, number: u64) -> Self {
        let delivery = self.dedupe_key.clone();
        self.id = id(number, &delivery);
        self.in_lane(format!("{repository}#{number}"))
            .of_kind("issue")
            .with_metadata("issue_number", i64::try_from(number).unwrap())
            .with_metadata("repository", repository)
            .with_metadata("delivery_id", delivery)
    }
}

/// The job for `delivery` (about issue `issue` of `octo/repo`, if any) as the engine hands it to a store.
pub(crate) fn stored_job<P>(
    delivery: &str,
    issue: Option<u64>,
    created_at: Timestamp,
    payload: P,
) -> Job<P> {
    let new = NewJob::new(delivery, payload);
    let new = match issue {
        Some(issue) => new.for_issue("octo/repo", issue),
        None => new,
    };
    Job {
        id: new.id,
        dedupe_key: new.dedupe_key,
        lane: new.lane,
        kind: new.kind,
        metadata: new.metadata,
        created_at,
        attempt: 0,
        payload: Arc::new(new.payload),
        output: JobOutput::default(),
    }
}

/// The issue number a job's metadata names.
pub(crate) fn issue_of(metadata: &JobMetadata) -> u64 {
    match metadata.get("issue_number") {
        Some(MetadataValue::Integer(number)) => u64::try_from(*number).unwrap(),
        other => panic!("no issue number in the metadata: {other:?}"),
    }
}

/// What a database written by the release before generic jobs holds, checked through a store of this
/// release (see `sqlite.rs`'s `version_2_database` and `postgres/startup.rs`'s `version_1_schema`, which
/// write it: `7-waiting` accepted at `created_at` and waiting, `5-done` finished, and the remembered
/// delivery of `3-gone`): each job reads back as booty-service now writes it (the issue in the
/// metadata, its lane as it was), and every delivery the database knew is still a duplicate.
pub(crate) async fn check_previous_release<S: Store<Payload>>(store: &S, created_at: Timestamp) {
    let waiting = store.get("7-waiting").await.unwrap().unwrap();
    let expected = stored_job("waiting", Some(7), created_at, ());
    assert_eq!(
        (waiting.state, waiting.attempts, waiting.created_at),
        (JobState::Queued, 0, created_at)
    );
    assert_eq!(
        (&waiting.dedupe_key, &waiting.lane, &waiting.kind),
        (&expected.dedupe_key, &expected.lane, &expected.kind)
    );
    assert_eq!(waiting.metadata, expected.metadata);
    let done = store.get("5-done").await.unwrap().unwrap();
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 1));
    assert_eq!(
        done.metadata,
        stored_job("done", Some(5), created_at, ()).metadata
    );
    for (delivery, issue) in [("waiting", 7), ("done", 5), ("gone", 3)] {
        let redelivered = stored_job(delivery, Some(issue), created_at, payload(issue));
        assert_eq!(
            store.insert(redelivered, 100).await.unwrap(),
            Submitted::Duplicate(job_id(Some(issue), delivery)),
            "{delivery}"
        );
    }
}

/// The rest of [`check_previous_release`]: the waiting job runs, with its payload, to the end (claimed
/// at `now`), and its delivery stays a duplicate.
pub(crate) async fn run_previous_release_job<S: Store<Payload>>(store: &S, now: Timestamp) {
    let Claim::Job(claimed) = store
        .claim("w1", now, now.saturating_add(Duration::from_secs(30)))
        .await
        .unwrap()
    else {
        panic!("the waiting job is runnable");
    };
    assert_eq!((claimed.id.as_str(), claimed.attempt), ("7-waiting", 1));
    assert_eq!(claimed.payload.text, "waiting");
    assert_eq!(
        claimed.metadata,
        stored_job("waiting", Some(7), now, ()).metadata
    );
    let lease = Lease {
        job_id: claimed.id.clone(),
        owner: "w1".to_owned(),
        attempt: 1,
    };
    store
        .finish(&lease, Outcome::Succeeded, None, now)
        .await
        .unwrap();
    assert_eq!(
        store.get("7-waiting").await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    let redelivered = stored_job("waiting", Some(7), now, payload(7));
    assert_eq!(
        store.insert(redelivered, 100).await.unwrap(),
        Submitted::Duplicate(job_id(Some(7), "waiting"))
    );
}

fn payload(n: u64) -> Payload {
    Payload {
        n,
        text: format!("redelivery {n}"),
    }
}
