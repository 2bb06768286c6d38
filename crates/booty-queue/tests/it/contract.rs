//! The store contract (docs/architecture.md, "The store contract"), written once and run against every
//! store.
//!
//! Each check is a generic async function taking a [`StoreFactory`] (an async closure from [`Limits`] to a
//! fresh, empty store) and the store's [`Kind`]. A store runs the whole suite with one macro call in its
//! own test module:
//!
//! ```ignore
//! crate::contract::store_contract_tests!(
//!     |limits: Limits| async move { SqliteStore::open_fresh(limits).await },
//!     Kind { durable: true, shared: false }
//! );
//! ```
//!
//! The factory must configure exactly the bounds in [`Limits`] (no age floor for dedupe memory) and give
//! every call its own empty store (its own file, schema or database). Time is passed explicitly, so nothing
//! here sleeps.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use booty_queue::{
    CancelTarget, Claim, Job, JobCounts, JobId, JobQuery, JobSnapshot, JobState, Lease,
    MetadataValue, Outcome, Renewal, Retried, Store, StoreError, Submitted, Timestamp,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Barrier;

use crate::support::{issue_of, job_id, stored_job};

/// The bounds a factory must give the store it makes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Deliveries remembered beyond stored jobs.
    pub(crate) dedupe_capacity: usize,
    /// Final jobs kept for inspection.
    pub(crate) retained_finished: usize,
}

impl Limits {
    /// The store's retention with exactly these bounds.
    pub(crate) fn retention(self) -> booty_queue::Retention {
        booty_queue::Retention::new(self.dedupe_capacity, self.retained_finished)
    }
}

/// What the contract may expect of a store at start-up and close.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    /// Keeps unfinished jobs across `close` (`SQLite`, `PostgreSQL`); the memory store abandons them.
    pub(crate) durable: bool,
    /// Used by several processes at once (`PostgreSQL`): `recover` takes back only expired leases.
    pub(crate) shared: bool,
}

/// The payload every store must carry unchanged. Serializable, as SQL stores need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Payload {
    pub(crate) n: u64,
    pub(crate) text: String,
}

/// A store and what must live as long as it (its schema, its directory): dropped together when the
/// check is done with them.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) struct Guarded<S, G> {
    pub(crate) store: S,
    pub(crate) _guard: G,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl<S: Store<Payload>, G: Send + Sync + 'static> Store<Payload> for Guarded<S, G> {
    fn insert(
        &self,
        job: Job<Payload>,
        capacity: usize,
    ) -> impl Future<Output = Result<Submitted, StoreError>> + Send {
        self.store.insert(job, capacity)
    }

    fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Claim<Payload>, StoreError>> + Send {
        self.store.claim(owner, now, lease_until)
    }

    fn renew(
        &self,
        lease: &Lease,
        until: Timestamp,
    ) -> impl Future<Output = Result<Renewal, StoreError>> + Send {
        self.store.renew(lease, until)
    }

    fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store.finish(lease, outcome, output, now)
    }

    fn cancel(
        &self,
        target: &CancelTarget,
        reason: &str,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        self.store.cancel(target, reason, now)
    }

    fn reclaim_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        self.store.reclaim_expired(now, max_attempts)
    }

    fn recover(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        self.store.recover(now, max_attempts)
    }

    fn get(
        &self,
        job_id: &str,
    ) -> impl Future<Output = Result<Option<JobSnapshot>, StoreError>> + Send {
        self.store.get(job_id)
    }

    fn list(
        &self,
        query: &JobQuery,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        self.store.list(query)
    }

    fn count(&self) -> impl Future<Output = Result<JobCounts, StoreError>> + Send {
        self.store.count()
    }

    fn close(
        &self,
        now: Timestamp,
    ) -> impl Future<Output = Result<Vec<JobSnapshot>, StoreError>> + Send {
        self.store.close(now)
    }

    fn reopen(
        &self,
        job_id: &str,
        capacity: usize,
    ) -> impl Future<Output = Result<Retried, StoreError>> + Send {
        self.store.reopen(job_id, capacity)
    }

    fn wakeups(&self) -> booty_queue::Wakeups {
        self.store.wakeups()
    }

    fn dedupe_key_job(
        &self,
        dedupe_key: &str,
    ) -> impl Future<Output = Result<Option<JobId>, StoreError>> + Send {
        self.store.dedupe_key_job(dedupe_key)
    }

    fn bookmark(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send {
        self.store.bookmark(name)
    }

    fn set_bookmark(
        &self,
        name: &str,
        at: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store.set_bookmark(name, at)
    }

    fn try_exclusive(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<booty_queue::Exclusive>, StoreError>> + Send {
        self.store.try_exclusive(name)
    }
}

/// Makes a fresh, empty store with the given bounds.
pub(crate) trait StoreFactory {
    type Store: Store<Payload>;
    fn make(&self, limits: Limits) -> impl Future<Output = Self::Store>;
}

impl<F, Fut, S> StoreFactory for F
where
    F: Fn(Limits) -> Fut,
    Fut: Future<Output = S>,
    S: Store<Payload>,
{
    type Store = S;
    fn make(&self, limits: Limits) -> impl Future<Output = S> {
        self(limits)
    }
}

/// Runs every contract check as its own `#[tokio::test]` in a `contract` module.
///
/// Attributes after the kind go on every test. A store that needs a server the machine may not have uses
/// them to mark its tests ignored without it, so that they show as `ignored`, never as passed (the
/// PostgreSQL store: `#[cfg_attr(not(booty_postgres_tests), ignore = "...")]`, the cfg set by `build.rs`;
/// `cargo xtask ci` also says loudly which servers were missing).
macro_rules! store_contract_tests {
    ($factory:expr, $kind:expr $(, #[$attr:meta])*) => {
        $crate::contract::store_contract_tests!(@each { $(#[$attr])* }, $factory, $kind;
            insert_then_claim_round_trips_the_job_and_its_payload,
            one_delivery_is_stored_once_under_concurrent_inserts,
            busy_leaves_no_trace_and_running_jobs_do_not_count,
            retrying_jobs_count_against_capacity,
            a_stored_job_stays_a_duplicate_beyond_the_dedupe_window,
            forgotten_deliveries_are_accepted_again,
            one_lane_runs_one_job_at_a_time_in_arrival_order,
            concurrent_claims_take_each_job_once_and_one_per_lane,
            runnable_jobs_are_claimed_in_arrival_order,
            a_retrying_job_waits_for_retry_at_and_holds_its_lane,
            an_expired_lease_is_reclaimed_as_a_new_attempt,
            losing_the_last_attempt_fails_the_job_and_frees_the_lane,
            recover_takes_back_jobs_left_running,
            a_released_job_goes_back_first_in_line,
            failures_and_successes_are_recorded_with_their_times,
            finished_jobs_are_retained_up_to_the_bound,
            list_is_newest_first_and_honours_the_limit,
            close_abandons_or_keeps_unfinished_jobs,
            counts_are_by_state,
            list_filters_by_state_kind_lane_and_metadata_and_pages_newest_first,
            a_cancelled_waiting_job_is_final_at_once_and_frees_its_lane,
            a_running_job_asked_to_cancel_learns_it_at_renewal_and_ends_cancelled,
            cancelling_a_lane_cancels_its_waiting_jobs_and_marks_its_running_one,
            a_running_job_asked_to_cancel_whose_lease_expires_is_cancelled_not_requeued,
            the_output_of_an_attempt_is_recorded_with_its_outcome,
            dedupe_keys_are_looked_up_without_inserting_and_bookmarks_are_kept,
            a_failed_or_cancelled_job_reopens_with_its_payload_and_attempts_continue,
            reopen_refuses_unknown_and_unfinished_jobs_and_a_full_queue_and_queues_behind_the_lane,
            a_reopened_job_leaves_the_retention_bound_until_it_finishes_again
        );
    };
    // The attributes travel as one token tree: a repetition cannot be nested inside the one over checks.
    (@each $attrs:tt, $factory:expr, $kind:expr; $($check:ident),+ $(,)?) => {
        mod contract {
            #[allow(clippy::wildcard_imports, reason = "the factory expression is written in the parent")]
            use super::*;
            $(
                $crate::contract::store_contract_tests!(@test $attrs, $factory, $kind, $check);
            )+
        }
    };
    (@test { $(#[$attr:meta])* }, $factory:expr, $kind:expr, $check:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        $(#[$attr])*
        async fn $check() {
            $crate::contract::$check($factory, $kind).await;
        }
    };
}
pub(crate) use store_contract_tests;

/// An arbitrary fixed "now"; each check counts seconds from it.
const T0: u64 = 1_700_000_000_000;
const ROOMY: usize = 1_000;
const LEASE: Duration = Duration::from_secs(30);
const WIDE: Limits = Limits {
    dedupe_capacity: 1_000,
    retained_finished: 1_000,
};

fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + seconds * 1_000)
}

/// The job for `delivery`, about issue `issue` of `octo/repo` if any, as booty-service builds it.
fn job(delivery: &str, issue: Option<u64>, n: u64) -> Job<Payload> {
    let payload = Payload {
        n,
        text: format!("payload {n}: \"quoted\", ünïcödé, {{braces}}"),
    };
    stored_job(delivery, issue, at(0), payload)
}

async fn insert(store: &impl Store<Payload>, job: Job<Payload>) -> Submitted {
    store.insert(job, ROOMY).await.unwrap()
}

async fn accept(store: &impl Store<Payload>, job: Job<Payload>) -> JobId {
    let id = job.id.clone();
    assert_eq!(insert(store, job).await, Submitted::Accepted(id.clone()));
    id
}

/// Claims as `owner` at `now` with a 30 s lease.
async fn claim_as(store: &impl Store<Payload>, owner: &str, now: Timestamp) -> Claim<Payload> {
    store
        .claim(owner, now, now.saturating_add(LEASE))
        .await
        .unwrap()
}

/// Claims as `w1` and expects a job.
async fn claim(store: &impl Store<Payload>, now: Timestamp) -> (Job<Payload>, Lease) {
    match claim_as(store, "w1", now).await {
        Claim::Job(job) => {
            let lease = lease(&job, "w1");
            (job, lease)
        }
        Claim::Idle { .. } => panic!("nothing to claim at {now}"),
    }
}

fn lease(job: &Job<Payload>, owner: &str) -> Lease {
    Lease {
        job_id: job.id.clone(),
        owner: owner.to_owned(),
        attempt: job.attempt,
    }
}

async fn idle(store: &impl Store<Payload>, now: Timestamp) -> Option<Timestamp> {
    match claim_as(store, "w1", now).await {
        Claim::Idle { next_retry_at } => next_retry_at,
        Claim::Job(job) => panic!("claimed {} at {now}, expected nothing", job.id),
    }
}

async fn state(store: &impl Store<Payload>, id: &JobId) -> JobSnapshot {
    store
        .get(id.as_str())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {id} is not stored"))
}

async fn succeed(store: &impl Store<Payload>, lease: &Lease, now: Timestamp) {
    store
        .finish(lease, Outcome::Succeeded, None, now)
        .await
        .unwrap();
}

fn assert_lease_lost<T: std::fmt::Debug>(result: Result<T, StoreError>, lease: &Lease) {
    match result {
        Err(StoreError::LeaseLost { job_id, attempt }) => {
            assert_eq!((&job_id, attempt), (&lease.job_id, lease.attempt));
        }
        other => panic!("expected LeaseLost for {lease:?}, got {other:?}"),
    }
}

fn ids(jobs: &[JobSnapshot]) -> Vec<&str> {
    jobs.iter().map(|job| job.job_id.as_str()).collect()
}

pub(crate) async fn insert_then_claim_round_trips_the_job_and_its_payload(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let sent = job("d-1", Some(7), 42);
    let id = accept(&store, sent.clone()).await;
    assert_eq!(id.as_str(), "7-d-1");
    let queued = state(&store, &id).await;
    assert_eq!(
        queued,
        JobSnapshot {
            seq: queued.seq,
            job_id: id.clone(),
            state: JobState::Queued,
            attempts: 0,
            dedupe_key: "d-1".to_owned(),
            lane: Some("octo/repo#7".to_owned()),
            kind: "issue".to_owned(),
            metadata: [
                ("issue_number", MetadataValue::from(7)),
                ("repository", MetadataValue::from("octo/repo")),
                ("delivery_id", MetadataValue::from("d-1")),
            ]
            .into_iter()
            .collect(),
            created_at: at(0),
            started_at: None,
            finished_at: None,
            retry_at: None,
            error: None,
            output: None,
        }
    );
    assert!(store.get("7-d-2").await.unwrap().is_none());

    let (claimed, _) = claim(&store, at(1)).await;
    assert_eq!(claimed.id, id);
    assert_eq!(claimed.dedupe_key, "d-1");
    assert_eq!(claimed.lane.as_deref(), Some("octo/repo#7"));
    assert_eq!(claimed.kind, "issue");
    assert_eq!(claimed.metadata, queued.metadata);
    assert_eq!(claimed.created_at, at(0));
    assert_eq!(claimed.attempt, 1);
    assert_eq!(*claimed.payload, *sent.payload);

    let running = state(&store, &id).await;
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.attempts, 1);
    assert_eq!(running.started_at, Some(at(1)));
    assert_eq!(idle(&store, at(2)).await, None);
}

pub(crate) async fn one_delivery_is_stored_once_under_concurrent_inserts(
    factory: impl StoreFactory,
    _: Kind,
) {
    const TASKS: usize = 64;
    let store = Arc::new(factory.make(WIDE).await);
    let start = Arc::new(Barrier::new(TASKS));
    let mut tasks = Vec::new();
    for n in 0..TASKS {
        let (store, start) = (Arc::clone(&store), Arc::clone(&start));
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            insert(&*store, job("same", Some(1), n as u64)).await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Submitted::Accepted(id) | Submitted::Duplicate(id) if id.as_str() != "1-same" => {
                panic!("answered with {id}")
            }
            Submitted::Accepted(_) => accepted += 1,
            Submitted::Duplicate(_) => {}
            Submitted::Busy => panic!("busy with room to spare"),
        }
    }
    assert_eq!(accepted, 1);
    assert_eq!(
        ids(&store.list(&JobQuery::newest(100)).await.unwrap()),
        ["1-same"]
    );
}

pub(crate) async fn busy_leaves_no_trace_and_running_jobs_do_not_count(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    for delivery in ["a", "b"] {
        let answer = store.insert(job(delivery, None, 0), 2).await.unwrap();
        assert_eq!(answer, Submitted::Accepted(job_id(None, delivery)));
    }
    assert_eq!(
        store.insert(job("c", None, 0), 2).await.unwrap(),
        Submitted::Busy
    );
    assert!(store.get("c").await.unwrap().is_none());
    assert_eq!(
        ids(&store.list(&JobQuery::newest(10)).await.unwrap()),
        ["b", "a"]
    );

    // Claiming `a` leaves one job waiting; `c` was not remembered, so it is accepted, not a duplicate.
    let (claimed, _) = claim(&store, at(1)).await;
    assert_eq!(claimed.id.as_str(), "a");
    assert_eq!(
        store.insert(job("c", None, 0), 2).await.unwrap(),
        Submitted::Accepted(job_id(None, "c"))
    );
    assert_eq!(
        store.insert(job("d", None, 0), 2).await.unwrap(),
        Submitted::Busy
    );
}

pub(crate) async fn retrying_jobs_count_against_capacity(factory: impl StoreFactory, _: Kind) {
    let store = factory.make(WIDE).await;
    assert!(matches!(
        store.insert(job("a", None, 0), 1).await.unwrap(),
        Submitted::Accepted(_)
    ));
    let (_, lease) = claim(&store, at(1)).await;
    let retry = Outcome::Retry {
        at: at(100),
        error: "flaky".to_owned(),
    };
    store.finish(&lease, retry, None, at(2)).await.unwrap();
    assert_eq!(
        store.insert(job("b", None, 0), 1).await.unwrap(),
        Submitted::Busy
    );
}

pub(crate) async fn a_stored_job_stays_a_duplicate_beyond_the_dedupe_window(
    factory: impl StoreFactory,
    _: Kind,
) {
    let limits = Limits {
        dedupe_capacity: 2,
        retained_finished: 100,
    };
    let store = factory.make(limits).await;
    for (n, delivery) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
        accept(&store, job(delivery, Some(9), n as u64)).await;
    }
    assert_eq!(
        insert(&store, job("a", Some(9), 0)).await,
        Submitted::Duplicate(job_id(Some(9), "a"))
    );
}

pub(crate) async fn forgotten_deliveries_are_accepted_again(factory: impl StoreFactory, _: Kind) {
    let limits = Limits {
        dedupe_capacity: 3,
        retained_finished: 1,
    };
    let store = factory.make(limits).await;
    for n in 0..6 {
        accept(&store, job(&format!("d{n}"), None, n)).await;
        let (_, lease) = claim(&store, at(n)).await;
        succeed(&store, &lease, at(n)).await;
    }
    // d5's job is still held; d3 and d4 are remembered; d0..d2 are gone with their jobs.
    assert_eq!(
        ids(&store.list(&JobQuery::newest(10)).await.unwrap()),
        ["d5"]
    );
    for delivery in ["d5", "d4", "d3"] {
        assert_eq!(
            insert(&store, job(delivery, None, 0)).await,
            Submitted::Duplicate(job_id(None, delivery)),
            "{delivery}"
        );
    }
    assert_eq!(
        insert(&store, job("d0", None, 0)).await,
        Submitted::Accepted(job_id(None, "d0"))
    );
}

pub(crate) async fn one_lane_runs_one_job_at_a_time_in_arrival_order(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let a1 = accept(&store, job("a1", Some(1), 1)).await;
    let a2 = accept(&store, job("a2", Some(1), 2)).await;
    let b1 = accept(&store, job("b1", Some(2), 3)).await;
    let a3 = accept(&store, job("a3", Some(1), 4)).await;

    let (first, first_lease) = claim(&store, at(1)).await;
    let (second, second_lease) = claim(&store, at(1)).await;
    assert_eq!((&first.id, &second.id), (&a1, &b1));
    assert_eq!(idle(&store, at(1)).await, None);

    succeed(&store, &first_lease, at(2)).await;
    let (third, third_lease) = claim(&store, at(2)).await;
    assert_eq!(third.id, a2);
    succeed(&store, &second_lease, at(3)).await;
    assert_eq!(idle(&store, at(3)).await, None, "a3 waits for a2");
    succeed(&store, &third_lease, at(4)).await;
    let (fourth, _) = claim(&store, at(4)).await;
    assert_eq!(fourth.id, a3);

    // The same issue number in another repository is another lane.
    let mut other = job("x1", Some(1), 5);
    other.lane = Some("octo/other#1".to_owned());
    accept(&store, other).await;
    let (fifth, _) = claim(&store, at(5)).await;
    assert_eq!(fifth.id.as_str(), "1-x1");
}

pub(crate) async fn concurrent_claims_take_each_job_once_and_one_per_lane(
    factory: impl StoreFactory,
    _: Kind,
) {
    const LANES: u64 = 5;
    const CLAIMERS: usize = 16;
    let store = Arc::new(factory.make(WIDE).await);
    for n in 0..4 * LANES {
        accept(&*store, job(&format!("d{n}"), Some(n % LANES), n)).await;
    }
    let start = Arc::new(Barrier::new(CLAIMERS));
    let mut claimers = Vec::new();
    for worker in 0..CLAIMERS {
        let (store, start) = (Arc::clone(&store), Arc::clone(&start));
        claimers.push(tokio::spawn(async move {
            start.wait().await;
            claim_as(&*store, &format!("w{worker}"), at(1)).await
        }));
    }
    let mut claimed = Vec::new();
    for claimer in claimers {
        if let Claim::Job(job) = claimer.await.unwrap() {
            claimed.push((Some(issue_of(&job.metadata)), job.id));
        }
    }
    claimed.sort();
    // Exactly the head of each lane, each once.
    let heads: Vec<_> = (0..LANES)
        .map(|lane| (Some(lane), job_id(Some(lane), &format!("d{lane}"))))
        .collect();
    assert_eq!(claimed, heads);
}

pub(crate) async fn runnable_jobs_are_claimed_in_arrival_order(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let mut sent = Vec::new();
    for (n, issue) in [Some(5), None, Some(3), Some(9), None, Some(1)]
        .into_iter()
        .enumerate()
    {
        sent.push(accept(&store, job(&format!("d{n}"), issue, n as u64)).await);
    }
    let mut claimed = Vec::new();
    for _ in 0..sent.len() {
        claimed.push(claim(&store, at(1)).await.0.id);
    }
    assert_eq!(claimed, sent);
}

pub(crate) async fn a_retrying_job_waits_for_retry_at_and_holds_its_lane(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let a1 = accept(&store, job("a1", Some(1), 1)).await;
    let a2 = accept(&store, job("a2", Some(1), 2)).await;
    let (_, lease) = claim(&store, at(1)).await;
    let retry = Outcome::Retry {
        at: at(60),
        error: "connection reset".to_owned(),
    };
    store.finish(&lease, retry, None, at(2)).await.unwrap();

    let retrying = state(&store, &a1).await;
    assert_eq!(retrying.state, JobState::Retrying);
    assert_eq!(retrying.retry_at, Some(at(60)));
    assert_eq!(retrying.error.as_deref(), Some("connection reset"));
    assert_eq!(retrying.attempts, 1);
    assert_eq!(retrying.finished_at, None);

    assert_eq!(
        idle(&store, at(59)).await,
        Some(at(60)),
        "a2 must wait for a1"
    );
    let (again, lease) = claim(&store, at(60)).await;
    assert_eq!((&again.id, again.attempt), (&a1, 2));
    let running = state(&store, &a1).await;
    assert_eq!(running.retry_at, None);
    assert_eq!(running.started_at, Some(at(60)));

    succeed(&store, &lease, at(61)).await;
    let done = state(&store, &a1).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.error, None);
    assert_eq!(claim(&store, at(61)).await.0.id, a2);
}

pub(crate) async fn an_expired_lease_is_reclaimed_as_a_new_attempt(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let id = accept(&store, job("a", Some(1), 1)).await;
    let (_, stale) = claim(&store, at(0)).await;
    assert!(store.reclaim_expired(at(29), 3).await.unwrap().is_empty());
    store.renew(&stale, at(60)).await.unwrap();
    assert!(store.reclaim_expired(at(59), 3).await.unwrap().is_empty());

    let taken = store.reclaim_expired(at(60), 3).await.unwrap();
    assert_eq!(ids(&taken), [id.as_str()]);
    assert_eq!(taken[0].state, JobState::Queued);
    assert_eq!(taken[0].attempts, 1);
    assert_eq!(state(&store, &id).await.state, JobState::Queued);

    // The stale worker is fenced off, before and after someone else claims the job.
    assert_lease_lost(store.renew(&stale, at(90)).await, &stale);
    assert_lease_lost(
        store.finish(&stale, Outcome::Succeeded, None, at(61)).await,
        &stale,
    );
    let Claim::Job(taken_over) = claim_as(&store, "w2", at(61)).await else {
        panic!("the reclaimed job is runnable");
    };
    assert_eq!(taken_over.attempt, 2);
    assert_lease_lost(
        store.finish(&stale, Outcome::Succeeded, None, at(62)).await,
        &stale,
    );
    let wrong_owner = lease(&taken_over, "w1");
    assert_lease_lost(
        store
            .finish(&wrong_owner, Outcome::Succeeded, None, at(62))
            .await,
        &wrong_owner,
    );
    assert_eq!(state(&store, &id).await.state, JobState::Running);
    succeed(&store, &lease(&taken_over, "w2"), at(63)).await;
    assert_eq!(state(&store, &id).await.state, JobState::Succeeded);
}

pub(crate) async fn losing_the_last_attempt_fails_the_job_and_frees_the_lane(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let id = accept(&store, job("a", Some(1), 1)).await;
    let next = accept(&store, job("b", Some(1), 2)).await;
    claim(&store, at(0)).await;
    let first = store.reclaim_expired(at(30), 2).await.unwrap();
    assert_eq!(first[0].state, JobState::Queued);
    let (second, _) = claim(&store, at(31)).await;
    assert_eq!((&second.id, second.attempt), (&id, 2));

    let last = store.reclaim_expired(at(61), 2).await.unwrap();
    assert_eq!(ids(&last), [id.as_str()]);
    let failed = state(&store, &id).await;
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.attempts, 2);
    assert_eq!(failed.finished_at, Some(at(61)));
    assert!(
        failed
            .error
            .as_deref()
            .is_some_and(|error| error.contains("attempt 2 of 2")),
        "{failed:?}"
    );
    assert_eq!(last[0], failed);
    assert_eq!(claim(&store, at(62)).await.0.id, next);
}

pub(crate) async fn recover_takes_back_jobs_left_running(factory: impl StoreFactory, kind: Kind) {
    let store = factory.make(WIDE).await;
    let live = accept(&store, job("live", Some(1), 1)).await;
    let dead = accept(&store, job("dead", Some(2), 2)).await;
    let queued = accept(&store, job("waiting", Some(3), 3)).await;
    // `live` keeps a lease until 30 s, `dead` only until 5 s.
    claim(&store, at(0)).await;
    let Claim::Job(_) = store.claim("old-process", at(0), at(5)).await.unwrap() else {
        panic!("`dead` is runnable");
    };

    let taken = store.recover(at(10), 3).await.unwrap();
    let expected = if kind.shared {
        vec![dead.as_str()]
    } else {
        vec![live.as_str(), dead.as_str()]
    };
    let mut taken_ids = ids(&taken);
    taken_ids.sort_unstable();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort_unstable();
    assert_eq!(taken_ids, expected_sorted);
    assert!(taken.iter().all(|job| job.state == JobState::Queued));

    let live_state = state(&store, &live).await.state;
    let expected_live = if kind.shared {
        JobState::Running
    } else {
        JobState::Queued
    };
    assert_eq!(live_state, expected_live);
    // Taken-back jobs keep their place: they arrived before `waiting`.
    let mut claimed = Vec::new();
    for _ in 0..=expected.len() {
        let (job, _) = claim(&store, at(11)).await;
        assert_eq!(job.attempt, if job.id == queued { 1 } else { 2 });
        claimed.push(job.id);
    }
    let mut in_order: Vec<&JobId> = [&live, &dead]
        .into_iter()
        .filter(|id| expected.contains(&id.as_str()))
        .collect();
    in_order.push(&queued);
    assert_eq!(claimed.iter().collect::<Vec<_>>(), in_order);
}

pub(crate) async fn a_released_job_goes_back_first_in_line(factory: impl StoreFactory, _: Kind) {
    let store = factory.make(WIDE).await;
    let a1 = accept(&store, job("a1", Some(1), 1)).await;
    accept(&store, job("a2", Some(1), 2)).await;
    let (_, lease) = claim(&store, at(1)).await;
    store
        .finish(&lease, Outcome::Released, None, at(2))
        .await
        .unwrap();
    let released = state(&store, &a1).await;
    assert_eq!((released.state, released.attempts), (JobState::Queued, 1));
    let (again, _) = claim(&store, at(3)).await;
    assert_eq!((&again.id, again.attempt), (&a1, 2));
}

pub(crate) async fn failures_and_successes_are_recorded_with_their_times(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let bad = accept(&store, job("bad", Some(1), 1)).await;
    let good = accept(&store, job("good", Some(2), 2)).await;
    let (_, bad_lease) = claim(&store, at(1)).await;
    let (_, good_lease) = claim(&store, at(2)).await;
    let failed = Outcome::Failed {
        error: "exit status 3".to_owned(),
    };
    store.finish(&bad_lease, failed, None, at(5)).await.unwrap();
    succeed(&store, &good_lease, at(6)).await;

    let bad = state(&store, &bad).await;
    assert_eq!(bad.state, JobState::Failed);
    assert_eq!(bad.error.as_deref(), Some("exit status 3"));
    assert_eq!(
        (bad.started_at, bad.finished_at),
        (Some(at(1)), Some(at(5)))
    );
    assert_eq!((bad.attempts, bad.retry_at), (1, None));
    let good = state(&store, &good).await;
    assert_eq!(good.state, JobState::Succeeded);
    assert_eq!(good.error, None);
    assert_eq!(
        (good.started_at, good.finished_at),
        (Some(at(2)), Some(at(6)))
    );
    // A finished job's lease is gone.
    assert_lease_lost(
        store
            .finish(&good_lease, Outcome::Succeeded, None, at(7))
            .await,
        &good_lease,
    );
}

pub(crate) async fn finished_jobs_are_retained_up_to_the_bound(
    factory: impl StoreFactory,
    _: Kind,
) {
    let limits = Limits {
        dedupe_capacity: 100,
        retained_finished: 2,
    };
    let store = factory.make(limits).await;
    let mut leases = Vec::new();
    for n in 0..4 {
        accept(&store, job(&format!("j{n}"), Some(n), n)).await;
        leases.push(claim(&store, at(n)).await.1);
    }
    let waiting = accept(&store, job("j4", Some(4), 4)).await;
    // Finished in the order j2, j0, j3, j1: the two finished last are kept.
    for (second, n) in [2_usize, 0, 3, 1].into_iter().enumerate() {
        let outcome = if n % 2 == 0 {
            Outcome::Succeeded
        } else {
            Outcome::Failed {
                error: "no".to_owned(),
            }
        };
        store
            .finish(&leases[n], outcome, None, at(10 + second as u64))
            .await
            .unwrap();
    }
    let listed = store.list(&JobQuery::newest(10)).await.unwrap();
    assert_eq!(ids(&listed), [waiting.as_str(), "3-j3", "1-j1"]);
    assert!(store.get("2-j2").await.unwrap().is_none());
    assert!(store.get("0-j0").await.unwrap().is_none());
}

pub(crate) async fn list_is_newest_first_and_honours_the_limit(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    for n in 0..5 {
        accept(&store, job(&format!("d{n}"), None, n)).await;
    }
    claim(&store, at(1)).await;
    assert_eq!(
        ids(&store.list(&JobQuery::newest(3)).await.unwrap()),
        ["d4", "d3", "d2"]
    );
    assert_eq!(
        ids(&store.list(&JobQuery::newest(100)).await.unwrap()),
        ["d4", "d3", "d2", "d1", "d0"]
    );
    assert!(store.list(&JobQuery::newest(0)).await.unwrap().is_empty());
}

pub(crate) async fn close_abandons_or_keeps_unfinished_jobs(
    factory: impl StoreFactory,
    kind: Kind,
) {
    let store = factory.make(WIDE).await;
    let done = accept(&store, job("done", Some(1), 1)).await;
    let retrying = accept(&store, job("retrying", Some(2), 2)).await;
    let queued = accept(&store, job("queued", Some(3), 3)).await;
    let behind = accept(&store, job("behind", Some(2), 4)).await;
    let (_, lease) = claim(&store, at(1)).await;
    succeed(&store, &lease, at(2)).await;
    let (_, lease) = claim(&store, at(3)).await;
    let retry = Outcome::Retry {
        at: at(100),
        error: "timeout".to_owned(),
    };
    store.finish(&lease, retry, None, at(4)).await.unwrap();

    let lost = store.close(at(50)).await.unwrap();
    if kind.durable {
        assert!(lost.is_empty(), "{lost:?}");
        assert_eq!(state(&store, &retrying).await.state, JobState::Retrying);
        assert_eq!(state(&store, &queued).await.state, JobState::Queued);
    } else {
        assert_eq!(
            ids(&lost),
            [retrying.as_str(), queued.as_str(), behind.as_str()]
        );
        for job in &lost {
            assert_eq!(job.state, JobState::Abandoned);
            assert_eq!(job.finished_at, Some(at(50)));
            assert_eq!(state(&store, &job.job_id).await, *job);
        }
    }
    assert_eq!(state(&store, &done).await.state, JobState::Succeeded);
}

async fn cancel(
    store: &impl Store<Payload>,
    target: CancelTarget,
    now: Timestamp,
) -> Vec<JobSnapshot> {
    store.cancel(&target, "issue closed", now).await.unwrap()
}

fn states(jobs: &[JobSnapshot]) -> Vec<(&str, JobState)> {
    jobs.iter()
        .map(|job| (job.job_id.as_str(), job.state))
        .collect()
}

pub(crate) async fn counts_are_by_state(factory: impl StoreFactory, _: Kind) {
    let store = factory.make(WIDE).await;
    assert_eq!(store.count().await.unwrap(), JobCounts::default());
    for (n, delivery) in ["s", "f", "r", "running", "c", "q"].into_iter().enumerate() {
        accept(&store, job(delivery, Some(n as u64), n as u64)).await;
    }
    let mut leases = Vec::new();
    for second in 0..4 {
        leases.push(claim(&store, at(second)).await.1);
    }
    succeed(&store, &leases[0], at(5)).await;
    let failed = Outcome::Failed {
        error: "no".to_owned(),
    };
    store.finish(&leases[1], failed, None, at(5)).await.unwrap();
    let retry = Outcome::Retry {
        at: at(100),
        error: "later".to_owned(),
    };
    store.finish(&leases[2], retry, None, at(5)).await.unwrap();
    cancel(&store, CancelTarget::Job(job_id(Some(4), "c")), at(6)).await;

    let counts = store.count().await.unwrap();
    let by_state: Vec<(JobState, u64)> = JobState::ALL
        .into_iter()
        .map(|state| (state, counts.of(state)))
        .collect();
    assert_eq!(
        by_state,
        [
            (JobState::Queued, 1),
            (JobState::Running, 1),
            (JobState::Retrying, 1),
            (JobState::Succeeded, 1),
            (JobState::Failed, 1),
            (JobState::Cancelled, 1),
            (JobState::Abandoned, 0),
        ]
    );
    assert_eq!(counts.total(), 6);
}

pub(crate) async fn list_filters_by_state_kind_lane_and_metadata_and_pages_newest_first(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    accept(&store, job("d0", Some(1), 0)).await;
    accept(&store, job("d1", Some(2), 1)).await;
    accept(&store, job("d2", None, 2)).await;
    accept(&store, job("d3", Some(1), 3)).await;
    let mut other = job("d4", Some(7), 4);
    other.lane = Some("octo/other#7".to_owned());
    other.metadata.insert("repository", "octo/other");
    accept(&store, other).await;
    claim(&store, at(1)).await;
    let list = |query: JobQuery| {
        let store = &store;
        async move { store.list(&query).await.unwrap() }
    };

    let queued = list(JobQuery::newest(10).in_state(JobState::Queued)).await;
    assert_eq!(ids(&queued), ["7-d4", "1-d3", "d2", "2-d1"]);
    let running = list(JobQuery::newest(10).in_state(JobState::Running)).await;
    assert_eq!(ids(&running), ["1-d0"]);
    let issues = list(JobQuery::newest(10).of_kind("issue")).await;
    assert_eq!(ids(&issues), ["7-d4", "1-d3", "2-d1", "1-d0"]);
    assert_eq!(
        ids(&list(JobQuery::newest(10).of_kind("job")).await),
        ["d2"]
    );
    let lane = list(JobQuery::newest(10).in_lane("octo/repo#1")).await;
    assert_eq!(ids(&lane), ["1-d3", "1-d0"]);
    let repository = list(JobQuery::newest(10).with_metadata("repository", "octo/other")).await;
    assert_eq!(ids(&repository), ["7-d4"]);
    let issue = list(JobQuery::newest(10).with_metadata("issue_number", 1)).await;
    assert_eq!(ids(&issue), ["1-d3", "1-d0"]);
    // Typed: the text "1" is not the integer 1.
    let text = list(JobQuery::newest(10).with_metadata("issue_number", "1")).await;
    assert!(text.is_empty(), "{text:?}");
    let both = list(
        JobQuery::newest(1)
            .of_kind("issue")
            .in_state(JobState::Queued),
    )
    .await;
    assert_eq!(ids(&both), ["7-d4"]);

    // Pages of two, newest first, each after the last job of the one before.
    let query = JobQuery::newest(2);
    let first = list(query.clone()).await;
    assert_eq!(ids(&first), ["7-d4", "1-d3"]);
    let query = query.after_page(&first).unwrap();
    assert_eq!(query.before, Some(first[1].seq));
    let second = list(query.clone()).await;
    assert_eq!(ids(&second), ["d2", "2-d1"]);
    let query = query.after_page(&second).unwrap();
    let third = list(query.clone()).await;
    assert_eq!(ids(&third), ["1-d0"]);
    assert_eq!(query.after_page(&third), None);
    assert!(first[0].seq > first[1].seq && first[1].seq > second[0].seq);
}

pub(crate) async fn a_cancelled_waiting_job_is_final_at_once_and_frees_its_lane(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    accept(&store, job("a1", Some(1), 1)).await;
    let a2 = accept(&store, job("a2", Some(1), 2)).await;
    let a3 = accept(&store, job("a3", Some(1), 3)).await;
    let b1 = accept(&store, job("b1", Some(2), 4)).await;
    let (_, running) = claim(&store, at(1)).await;
    let (_, retried) = claim(&store, at(1)).await;
    let retry = Outcome::Retry {
        at: at(100),
        error: "flaky".to_owned(),
    };
    store.finish(&retried, retry, None, at(2)).await.unwrap();

    let cancelled = cancel(&store, CancelTarget::Job(a2.clone()), at(5)).await;
    assert_eq!(states(&cancelled), [(a2.as_str(), JobState::Cancelled)]);
    let a2_now = state(&store, &a2).await;
    assert_eq!(a2_now, cancelled[0]);
    assert_eq!(a2_now.finished_at, Some(at(5)));
    assert_eq!(a2_now.error.as_deref(), Some("issue closed"));
    assert_eq!(a2_now.attempts, 0);
    // A retrying job is cancelled at once too, and its retry never comes.
    let cancelled = cancel(&store, CancelTarget::Job(b1.clone()), at(6)).await;
    assert_eq!(states(&cancelled), [(b1.as_str(), JobState::Cancelled)]);
    // Final jobs and unknown ids are left alone.
    assert!(
        cancel(&store, CancelTarget::Job(a2.clone()), at(7))
            .await
            .is_empty()
    );
    assert!(
        cancel(&store, CancelTarget::Job(JobId::new("9-none")), at(7))
            .await
            .is_empty()
    );
    assert_eq!(state(&store, &a2).await.finished_at, Some(at(5)));

    // a3 runs after a1, skipping the cancelled a2; b1 never runs again.
    assert_eq!(idle(&store, at(8)).await, None);
    succeed(&store, &running, at(9)).await;
    assert_eq!(claim(&store, at(10)).await.0.id, a3);
    assert_eq!(idle(&store, at(200)).await, None);
}

pub(crate) async fn a_running_job_asked_to_cancel_learns_it_at_renewal_and_ends_cancelled(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let a = accept(&store, job("a", Some(1), 1)).await;
    let behind = accept(&store, job("behind", Some(1), 2)).await;
    let done = accept(&store, job("done", Some(2), 3)).await;
    let (_, lease) = claim(&store, at(0)).await;
    let (_, finishing) = claim(&store, at(0)).await;
    assert_eq!(
        store.renew(&lease, at(40)).await.unwrap(),
        Renewal::Extended
    );

    let marked = cancel(&store, CancelTarget::Job(a.clone()), at(5)).await;
    assert_eq!(states(&marked), [(a.as_str(), JobState::Running)]);
    assert_eq!(
        store.renew(&lease, at(50)).await.unwrap(),
        Renewal::CancelRequested {
            reason: "issue closed".to_owned()
        }
    );
    // Still leased: the lease was extended, so nobody takes it back meanwhile.
    store.renew(&finishing, at(60)).await.unwrap();
    assert!(store.reclaim_expired(at(45), 3).await.unwrap().is_empty());
    // An outcome that would run it again is recorded as the cancellation.
    let retry = Outcome::Retry {
        at: at(100),
        error: "interrupted".to_owned(),
    };
    store.finish(&lease, retry, None, at(11)).await.unwrap();
    let ended = state(&store, &a).await;
    assert_eq!(
        (ended.state, ended.error.as_deref(), ended.finished_at),
        (JobState::Cancelled, Some("issue closed"), Some(at(11)))
    );
    assert_eq!(claim(&store, at(12)).await.0.id, behind);

    // A job that finished its work before it heard of the cancellation succeeded.
    cancel(&store, CancelTarget::Job(done.clone()), at(13)).await;
    succeed(&store, &finishing, at(14)).await;
    assert_eq!(state(&store, &done).await.state, JobState::Succeeded);
}

pub(crate) async fn cancelling_a_lane_cancels_its_waiting_jobs_and_marks_its_running_one(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let a1 = accept(&store, job("a1", Some(1), 1)).await;
    let b1 = accept(&store, job("b1", Some(2), 2)).await;
    let a2 = accept(&store, job("a2", Some(1), 3)).await;
    let a3 = accept(&store, job("a3", Some(1), 4)).await;
    let (_, a_lease) = claim(&store, at(0)).await;
    let (_, b_lease) = claim(&store, at(0)).await;

    let changed = cancel(&store, CancelTarget::Lane("octo/repo#1".to_owned()), at(5)).await;
    assert_eq!(
        states(&changed),
        [
            (a1.as_str(), JobState::Running),
            (a2.as_str(), JobState::Cancelled),
            (a3.as_str(), JobState::Cancelled),
        ]
    );
    assert!(matches!(
        store.renew(&a_lease, at(40)).await.unwrap(),
        Renewal::CancelRequested { .. }
    ));
    assert_eq!(
        store.renew(&b_lease, at(40)).await.unwrap(),
        Renewal::Extended
    );
    assert_eq!(state(&store, &b1).await.state, JobState::Running);
    assert!(
        cancel(&store, CancelTarget::Lane("octo/repo#9".to_owned()), at(6))
            .await
            .is_empty()
    );
}

pub(crate) async fn a_running_job_asked_to_cancel_whose_lease_expires_is_cancelled_not_requeued(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let id = accept(&store, job("a", Some(1), 1)).await;
    claim(&store, at(0)).await;
    cancel(&store, CancelTarget::Job(id.clone()), at(5)).await;
    let taken = store.reclaim_expired(at(30), 3).await.unwrap();
    assert_eq!(states(&taken), [(id.as_str(), JobState::Cancelled)]);
    assert_eq!(taken[0].error.as_deref(), Some("issue closed"));
    assert_eq!(idle(&store, at(31)).await, None);
}

pub(crate) async fn the_output_of_an_attempt_is_recorded_with_its_outcome(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let id = accept(&store, job("a", Some(1), 1)).await;
    let quiet = accept(&store, job("quiet", Some(2), 2)).await;
    let (_, lease) = claim(&store, at(0)).await;
    let first = "cloning…\nfailed: \"timeout\"\n";
    let retry = Outcome::Retry {
        at: at(10),
        error: "timeout".to_owned(),
    };
    store
        .finish(&lease, retry, Some(first), at(1))
        .await
        .unwrap();
    assert_eq!(state(&store, &id).await.output.as_deref(), Some(first));

    // A lost attempt leaves the output of the last one that ended.
    let (_, quiet_lease) = claim(&store, at(2)).await;
    store
        .finish(&quiet_lease, Outcome::Succeeded, None, at(3))
        .await
        .unwrap();
    assert_eq!(state(&store, &quiet).await.output, None);
    claim(&store, at(10)).await;
    store.reclaim_expired(at(40), 3).await.unwrap();
    assert_eq!(state(&store, &id).await.output.as_deref(), Some(first));

    // The next attempt's output replaces it, whole (the engine keeps it to 64 KiB).
    let (again, lease) = claim(&store, at(41)).await;
    assert_eq!(again.attempt, 3);
    let long = "é".repeat(booty_queue::MAX_OUTPUT_BYTES / 2);
    succeed_with(&store, &lease, &long, at(42)).await;
    let done = state(&store, &id).await;
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.output.as_deref(), Some(long.as_str()));
}

async fn succeed_with(store: &impl Store<Payload>, lease: &Lease, output: &str, now: Timestamp) {
    store
        .finish(lease, Outcome::Succeeded, Some(output), now)
        .await
        .unwrap();
}

/// What a submitter that reads work from elsewhere relies on: it can ask whether a dedupe key is known
/// (and by which job) without storing anything, and keep how far it got under a name of its own.
pub(crate) async fn dedupe_keys_are_looked_up_without_inserting_and_bookmarks_are_kept(
    factory: impl StoreFactory,
    _kind: Kind,
) {
    let store = factory.make(WIDE).await;
    let id = accept(&store, job("known", Some(1), 1)).await;
    assert_eq!(
        store.dedupe_key_job("known").await.unwrap(),
        Some(id.clone())
    );
    assert_eq!(store.dedupe_key_job("unknown").await.unwrap(), None);
    // Asking stored nothing: the unknown key is accepted, and the known one still a duplicate.
    assert!(matches!(
        insert(&store, job("unknown", Some(2), 2)).await,
        Submitted::Accepted(_)
    ));
    assert_eq!(
        insert(&store, job("known", Some(1), 3)).await,
        Submitted::Duplicate(id)
    );

    assert_eq!(store.bookmark("app").await.unwrap(), None);
    store.set_bookmark("app", at(5)).await.unwrap();
    store
        .set_bookmark("repos/octo/repo/hooks/1", at(7))
        .await
        .unwrap();
    assert_eq!(store.bookmark("app").await.unwrap(), Some(at(5)));
    store.set_bookmark("app", at(9)).await.unwrap();
    assert_eq!(store.bookmark("app").await.unwrap(), Some(at(9)));
    assert_eq!(
        store.bookmark("repos/octo/repo/hooks/1").await.unwrap(),
        Some(at(7))
    );

    // Whoever holds the right may hold it again once released.
    let held = store.try_exclusive("recovery").await.unwrap();
    assert!(held.is_some());
    held.unwrap().release().await;
    assert!(store.try_exclusive("recovery").await.unwrap().is_some());
}

async fn reopen(store: &impl Store<Payload>, id: &str) -> Retried {
    store.reopen(id, ROOMY).await.unwrap()
}

pub(crate) async fn a_failed_or_cancelled_job_reopens_with_its_payload_and_attempts_continue(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    let failed = accept(&store, job("f", Some(1), 1)).await;
    let cancelled = accept(&store, job("c", Some(2), 2)).await;
    let (first, lease) = claim(&store, at(1)).await;
    assert_eq!(first.id, failed);
    let outcome = Outcome::Failed {
        error: "exit status 1".to_owned(),
    };
    store
        .finish(&lease, outcome, Some("it broke"), at(2))
        .await
        .unwrap();
    cancel(&store, CancelTarget::Job(cancelled.clone()), at(3)).await;

    // The failed job: queued again, first in line, its attempt still counted, error and output kept.
    let Retried::Queued(reopened) = reopen(&store, failed.as_str()).await else {
        panic!("a failed job is reopened");
    };
    assert_eq!(reopened, state(&store, &failed).await);
    assert_eq!(reopened.state, JobState::Queued);
    assert_eq!(reopened.attempts, 1);
    assert_eq!(reopened.finished_at, None);
    assert_eq!(reopened.retry_at, None);
    assert_eq!(reopened.error.as_deref(), Some("exit status 1"));
    assert_eq!(reopened.output.as_deref(), Some("it broke"));
    assert_eq!(store.count().await.unwrap().queued, 1);
    let (again, lease) = claim(&store, at(4)).await;
    assert_eq!(again.id, failed);
    assert_eq!(again.attempt, 2, "attempts continue");
    assert_eq!(*again.payload, *job("f", Some(1), 1).payload);
    succeed(&store, &lease, at(5)).await;
    let done = state(&store, &failed).await;
    assert_eq!((done.state, done.error), (JobState::Succeeded, None));
    // A succeeded job is not run again.
    assert!(matches!(
        reopen(&store, failed.as_str()).await,
        Retried::NotRetryable(job) if job.state == JobState::Succeeded
    ));

    // The cancelled job never ran: it reopens with no attempt counted and runs its first.
    let Retried::Queued(reopened) = reopen(&store, cancelled.as_str()).await else {
        panic!("a cancelled job is reopened");
    };
    assert_eq!((reopened.state, reopened.attempts), (JobState::Queued, 0));
    let (again, lease) = claim(&store, at(6)).await;
    assert_eq!((again.id.clone(), again.attempt), (cancelled.clone(), 1));
    assert_eq!(*again.payload, *job("c", Some(2), 2).payload);
    // Its old cancellation does not stop the new attempt.
    assert_eq!(
        store
            .renew(&lease, at(7).saturating_add(LEASE))
            .await
            .unwrap(),
        Renewal::Extended
    );
}

pub(crate) async fn reopen_refuses_unknown_and_unfinished_jobs_and_a_full_queue_and_queues_behind_the_lane(
    factory: impl StoreFactory,
    _: Kind,
) {
    let store = factory.make(WIDE).await;
    assert_eq!(reopen(&store, "9-none").await, Retried::NotFound);
    let a1 = accept(&store, job("a1", Some(1), 1)).await;
    let a2 = accept(&store, job("a2", Some(1), 2)).await;
    let (_, lease) = claim(&store, at(1)).await;
    // Running and queued jobs are not reopened.
    match reopen(&store, a1.as_str()).await {
        Retried::NotRetryable(job) => assert_eq!(job.state, JobState::Running),
        other => panic!("a running job: {other:?}"),
    }
    match reopen(&store, a2.as_str()).await {
        Retried::NotRetryable(job) => assert_eq!(job.state, JobState::Queued),
        other => panic!("a queued job: {other:?}"),
    }
    let failure = Outcome::Failed {
        error: "no".to_owned(),
    };
    store.finish(&lease, failure, None, at(2)).await.unwrap();
    // a2 now runs in a1's lane.
    let (running, lease) = claim(&store, at(3)).await;
    assert_eq!(running.id, a2);
    let before = state(&store, &a1).await;
    // A full queue refuses, and nothing changes: one job waits (b), and the capacity is one.
    let b = accept(&store, job("b", Some(2), 3)).await;
    assert_eq!(store.reopen(a1.as_str(), 1).await.unwrap(), Retried::Busy);
    assert_eq!(state(&store, &a1).await, before, "nothing changed");
    // With room, a1 is queued behind every job stored, so behind a2 in its lane: it waits for a2.
    let Retried::Queued(reopened) = store.reopen(a1.as_str(), 2).await.unwrap() else {
        panic!("a failed job with room in the queue is reopened");
    };
    let newest = store.list(&JobQuery::newest(1)).await.unwrap();
    assert_eq!(ids(&newest), [a1.as_str()], "it is the newest job now");
    assert!(reopened.seq > state(&store, &b).await.seq);
    assert_eq!(claim(&store, at(4)).await.0.id, b);
    assert_eq!(idle(&store, at(5)).await, None, "a1 waits for a2");
    succeed(&store, &lease, at(6)).await;
    assert_eq!(claim(&store, at(7)).await.0.id, a1);
}

pub(crate) async fn a_reopened_job_leaves_the_retention_bound_until_it_finishes_again(
    factory: impl StoreFactory,
    _: Kind,
) {
    let limits = Limits {
        dedupe_capacity: 100,
        retained_finished: 1,
    };
    let store = factory.make(limits).await;
    let old = accept(&store, job("old", Some(1), 1)).await;
    let (_, lease) = claim(&store, at(1)).await;
    let failure = Outcome::Failed {
        error: "no".to_owned(),
    };
    store.finish(&lease, failure, None, at(2)).await.unwrap();
    assert!(matches!(
        reopen(&store, old.as_str()).await,
        Retried::Queued(_)
    ));
    let (again, running) = claim(&store, at(3)).await;
    assert_eq!(again.id, old);
    // Two other jobs finish: the bound of one finished job must not drop the reopened one.
    for (n, delivery) in ["x", "y"].into_iter().enumerate() {
        let id = accept(&store, job(delivery, Some(10 + n as u64), 10)).await;
        let (claimed, lease) = claim(&store, at(4 + n as u64)).await;
        assert_eq!(claimed.id, id);
        succeed(&store, &lease, at(4 + n as u64)).await;
    }
    assert_eq!(state(&store, &old).await.state, JobState::Running);
    assert!(
        store.get("10-x").await.unwrap().is_none(),
        "the bound still holds"
    );
    // Finished again, it counts again: the last one finished is the one kept.
    succeed(&store, &running, at(9)).await;
    let listed = store.list(&JobQuery::newest(10)).await.unwrap();
    assert_eq!(ids(&listed), [old.as_str()]);
}
