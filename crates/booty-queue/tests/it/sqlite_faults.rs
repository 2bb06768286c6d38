//! The SQLite store on a real file system that fails: a tmpfs filled to the last page, then freed. Every
//! SQL path must fail cleanly while the disk is full (an error, no effect, no job handed out twice) and
//! work again by itself once space returns, without a restart.

use std::time::Duration;

use booty_queue::{
    Claim, Job, JobId, JobQuery, JobState, Lease, Outcome, SqliteOptions, SqliteStore, Store,
    StoreError, Submitted, Timestamp,
};
use booty_testkit::Tmpfs;

use crate::contract::Payload;
use crate::support::{job_id, stored_job};

const T0: u64 = 1_700_000_000_000;
const LEASE: Duration = Duration::from_secs(30);

fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + seconds * 1_000)
}

fn job(delivery: &str, issue: u64) -> Job<Payload> {
    // Some kilobytes, like a webhook, so each insert needs new pages.
    let payload = Payload {
        n: issue,
        text: "x".repeat(8_000),
    };
    stored_job(delivery, Some(issue), at(0), payload)
}

fn lease(job: &Job<Payload>, owner: &str) -> Lease {
    Lease {
        job_id: job.id.clone(),
        owner: owner.to_owned(),
        attempt: job.attempt,
    }
}

async fn claim(
    store: &SqliteStore,
    owner: &str,
    now: Timestamp,
) -> Result<Claim<Payload>, StoreError> {
    store.claim(owner, now, now.saturating_add(LEASE)).await
}

async fn claimed(store: &SqliteStore, owner: &str, now: Timestamp) -> Job<Payload> {
    match claim(store, owner, now).await {
        Ok(Claim::Job(job)) => job,
        other => panic!("expected a job at {now}, got {other:?}"),
    }
}

async fn state(store: &SqliteStore, id: &JobId) -> JobState {
    Store::<Payload>::get(store, id.as_str())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {id} is gone"))
        .state
}

/// Fails the test unless `result` is a backend error; `show` says what came instead.
fn assert_backend<T>(what: &str, result: Result<T, StoreError>, show: impl FnOnce(&T) -> String) {
    match result {
        Err(StoreError::Backend { .. }) => {}
        Err(other) => panic!("{what} on a full disk: expected a backend error, got {other:?}"),
        Ok(value) => panic!(
            "{what} on a full disk: expected a backend error, got {}",
            show(&value)
        ),
    }
}

fn debug(value: &impl std::fmt::Debug) -> String {
    format!("{value:?}")
}

/// A claim's answer, with a job shown by id and attempt (not its payload).
fn short(claim: &Claim<Payload>) -> String {
    match claim {
        Claim::Job(job) => format!("job {} on attempt {}", job.id, job.attempt),
        Claim::Idle { next_retry_at } => format!("idle until {next_retry_at:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_fails_cleanly_on_a_full_disk_and_works_again_once_space_returns() {
    let disk = Tmpfs::mount(16 << 20);
    let store = SqliteStore::open(disk.path().join("booty.db"), SqliteOptions::default())
        .await
        .unwrap();
    for issue in 1..=4 {
        let job = job(&format!("d{issue}"), issue);
        let id = job.id.clone();
        assert_eq!(
            Store::<Payload>::insert(&store, job, 100).await.unwrap(),
            Submitted::Accepted(id)
        );
    }
    let first = claimed(&store, "w1", at(1)).await;
    let second = claimed(&store, "w2", at(1)).await;

    disk.fill();
    assert_backend(
        "insert",
        Store::<Payload>::insert(&store, job("d5", 5), 100).await,
        debug,
    );
    // A claim whose commit failed must not hand out a job: before, it returned job 3 while the
    // database rolled the claim back, so every worker got job 3 again and again.
    for owner in ["w3", "w4", "w5"] {
        assert_backend("claim", claim(&store, owner, at(2)).await, short);
    }
    assert_backend(
        "renew",
        Store::<Payload>::renew(&store, &lease(&second, "w2"), at(40)).await,
        debug,
    );
    assert_backend(
        "finish",
        Store::<Payload>::finish(
            &store,
            &lease(&first, "w1"),
            Outcome::Succeeded,
            None,
            at(3),
        )
        .await,
        debug,
    );
    assert_backend(
        "reclaim_expired",
        Store::<Payload>::reclaim_expired(&store, at(60), 3).await,
        debug,
    );
    assert_backend("checkpoint", store.checkpoint().await, debug);

    disk.free();
    // Everything works again, on the same store, and nothing of the failed calls took effect.
    Store::<Payload>::finish(
        &store,
        &lease(&first, "w1"),
        Outcome::Succeeded,
        None,
        at(61),
    )
    .await
    .unwrap();
    assert_eq!(state(&store, &first.id).await, JobState::Succeeded);
    assert_eq!(state(&store, &second.id).await, JobState::Running);
    let taken = Store::<Payload>::reclaim_expired(&store, at(62), 3)
        .await
        .unwrap();
    let taken: Vec<&JobId> = taken.iter().map(|job| &job.job_id).collect();
    assert_eq!(taken, [&second.id]);
    // Job 2 first (it arrived first), then job 3 on its first attempt: the claims on the full disk
    // counted nothing.
    let again = claimed(&store, "w6", at(63)).await;
    assert_eq!((again.id.clone(), again.attempt), (second.id.clone(), 2));
    let third = claimed(&store, "w7", at(63)).await;
    assert_eq!((third.id.as_str(), third.attempt), ("3-d3", 1));
    Store::<Payload>::renew(&store, &lease(&third, "w7"), at(90))
        .await
        .unwrap();
    assert_eq!(
        Store::<Payload>::insert(&store, job("d5", 5), 100)
            .await
            .unwrap(),
        Submitted::Accepted(job_id(Some(5), "d5"))
    );
    store.checkpoint().await.unwrap();
    assert!(
        Store::<Payload>::close(&store, at(64))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_log_stops_every_write_and_what_it_held_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("booty.db");
    let store = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap();
    for issue in 1..=3 {
        let job = job(&format!("d{issue}"), issue);
        let id = job.id.clone();
        assert_eq!(
            Store::<Payload>::insert(&store, job, 100).await.unwrap(),
            Submitted::Accepted(id)
        );
    }
    let running = claimed(&store, "w1", at(1)).await;

    // Someone removes the log while booty runs (a clean-up script, a careless `rm booty.db*`).
    std::fs::remove_file(dir.path().join("booty.db-wal")).unwrap();
    let err = store.checkpoint().await.unwrap_err().to_string();
    let source = match store.checkpoint().await {
        Err(StoreError::Backend { source, .. }) => source.to_string(),
        other => panic!("a checkpoint after the log was removed: {other:?}"),
    };
    assert_eq!(err, "sqlite store: checkpoint failed");
    assert!(
        source.contains("booty.db-wal was removed while the store had it open")
            && source.contains("restart booty"),
        "{source}"
    );
    assert_backend(
        "insert",
        Store::<Payload>::insert(&store, job("d4", 4), 100).await,
        debug,
    );
    assert_backend("claim", claim(&store, "w2", at(2)).await, short);
    assert_backend(
        "finish",
        Store::<Payload>::finish(
            &store,
            &lease(&running, "w1"),
            Outcome::Succeeded,
            None,
            at(2),
        )
        .await,
        debug,
    );

    // Everything committed before the log went away was folded into the database file itself: a copy of
    // that file alone (what a crash now would leave) holds every job.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&path, copy.path().join("booty.db")).unwrap();
    let store = SqliteStore::open(copy.path().join("booty.db"), SqliteOptions::default())
        .await
        .unwrap();
    let jobs = Store::<Payload>::list(&store, &JobQuery::newest(10))
        .await
        .unwrap();
    let states: Vec<_> = jobs
        .iter()
        .map(|job| (job.job_id.to_string(), job.state))
        .collect();
    assert_eq!(
        states,
        [
            ("3-d3".to_owned(), JobState::Queued),
            ("2-d2".to_owned(), JobState::Queued),
            ("1-d1".to_owned(), JobState::Running),
        ]
    );
}
