//! Two stores on one schema, as two booty processes behind one load balancer: one job per delivery
//! whichever receives it, one running job per lane across both, arrival order kept, capacity exact.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use booty_queue::{Claim, JobId, JobQuery, Outcome, PostgresStore, Store, Submitted};
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::contract::Payload;
use crate::postgres::{TestSchema, job, later, now};
use crate::support::{issue_of, job_id};

async fn two_stores(schema: &TestSchema) -> (Arc<PostgresStore>, Arc<PostgresStore>) {
    let first = schema.connect(schema.options()).await;
    let second = schema.connect(schema.options()).await;
    (Arc::new(first), Arc::new(second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn a_delivery_received_by_two_processes_at_once_creates_one_job() {
    const DELIVERIES: u64 = 100;
    let schema = TestSchema::new();
    let (first, second) = two_stores(&schema).await;
    for n in 0..DELIVERIES {
        let delivery = format!("d{n}");
        let (a, b) = tokio::join!(
            first.insert(job(&delivery, Some(n % 7), n), 1_000),
            second.insert(job(&delivery, Some(n % 7), n), 1_000),
        );
        let expected = job_id(Some(n % 7), &delivery);
        let mut answers = [a.unwrap(), b.unwrap()];
        answers.sort_by_key(|answer| matches!(answer, Submitted::Duplicate(_)));
        assert_eq!(
            answers,
            [
                Submitted::Accepted(expected.clone()),
                Submitted::Duplicate(expected)
            ],
            "{delivery}"
        );
    }
    let stored = Store::<Payload>::list(&*first, &JobQuery::newest(1_000))
        .await
        .unwrap();
    assert_eq!(stored.len() as u64, DELIVERIES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn capacity_holds_across_processes_inserting_at_once() {
    const ROUNDS: usize = 4;
    const ROOM_PER_ROUND: usize = 10;
    const TASKS: usize = 40;
    let schema = TestSchema::new();
    let (first, second) = two_stores(&schema).await;
    // Each round raises the capacity by ten and races forty new deliveries through both stores: exactly
    // ten more may be stored. One race can miss an unserialised count by luck; four rarely all do.
    for round in 1..=ROUNDS {
        let capacity = round * ROOM_PER_ROUND;
        let start = Arc::new(Barrier::new(TASKS));
        let mut inserts = JoinSet::new();
        for n in 0..TASKS {
            let store = Arc::clone(if n % 2 == 0 { &first } else { &second });
            let start = Arc::clone(&start);
            inserts.spawn(async move {
                start.wait().await;
                store
                    .insert(job(&format!("r{round}-d{n}"), None, n as u64), capacity)
                    .await
                    .unwrap()
            });
        }
        let answers = inserts.join_all().await;
        let accepted = answers
            .iter()
            .filter(|answer| matches!(answer, Submitted::Accepted(_)))
            .count();
        let busy = answers
            .iter()
            .filter(|answer| **answer == Submitted::Busy)
            .count();
        assert_eq!(
            (accepted, busy),
            (ROOM_PER_ROUND, TASKS - ROOM_PER_ROUND),
            "round {round}"
        );
        let stored = Store::<Payload>::list(&*first, &JobQuery::newest(1_000))
            .await
            .unwrap();
        assert_eq!(stored.len(), capacity, "round {round}");
    }
}

/// What the claimers saw, shared between them.
#[derive(Default)]
struct Seen {
    /// Lanes with a job running right now, in either store.
    running: HashSet<u64>,
    /// Jobs in the order they started, per lane.
    started: BTreeMap<u64, Vec<JobId>>,
    /// Lanes found running twice at once.
    overlaps: Vec<(u64, JobId)>,
}

/// Claims and runs jobs on `store` until `total` jobs have finished across all claimers.
async fn claimer(
    store: Arc<PostgresStore>,
    owner: String,
    seen: Arc<Mutex<Seen>>,
    finished: Arc<std::sync::atomic::AtomicUsize>,
    total: usize,
) {
    use std::sync::atomic::Ordering;
    let wake = Store::<Payload>::wakeups(&*store).notify.unwrap();
    while finished.load(Ordering::SeqCst) < total {
        let claimed =
            Store::<Payload>::claim(&*store, &owner, now(), later(Duration::from_mins(1)))
                .await
                .unwrap();
        let job = match claimed {
            Claim::Job(job) => job,
            Claim::Idle { .. } => {
                // Woken by the other store's notifications; the timeout is only a poll.
                let _ = tokio::time::timeout(Duration::from_millis(20), wake.notified()).await;
                continue;
            }
        };
        let lane = issue_of(&job.metadata);
        {
            let mut seen = seen.lock().unwrap();
            if !seen.running.insert(lane) {
                seen.overlaps.push((lane, job.id.clone()));
            }
            seen.started.entry(lane).or_default().push(job.id.clone());
        }
        // The job's work: long enough for the other claimers to try the same lane meanwhile.
        tokio::time::sleep(Duration::from_millis(2)).await;
        // Out of the set before the job is finished in the database: after that, another claimer may
        // rightly start the lane's next job.
        seen.lock().unwrap().running.remove(&lane);
        let lease = booty_queue::Lease {
            job_id: job.id.clone(),
            owner: owner.clone(),
            attempt: job.attempt,
        };
        Store::<Payload>::finish(&*store, &lease, Outcome::Succeeded, None, now())
            .await
            .unwrap();
        finished.fetch_add(1, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn claimers_in_two_processes_run_one_job_per_lane_at_a_time_in_arrival_order() {
    const LANES: u64 = 4;
    const PER_STORE: u64 = 60;
    const CLAIMERS_PER_STORE: usize = 3;
    let schema = TestSchema::new();
    let (first, second) = two_stores(&schema).await;
    let total = usize::try_from(2 * PER_STORE).unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let finished = Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let mut tasks = JoinSet::new();
    // Both stores insert into the same lanes while the claimers run, so claims race with inserts that
    // commit in either process.
    for (which, store) in [&first, &second].into_iter().enumerate() {
        let store = Arc::clone(store);
        tasks.spawn(async move {
            for n in 0..PER_STORE {
                let delivery = format!("s{which}-{n}");
                let answer = store
                    .insert(job(&delivery, Some(n % LANES), n), 1_000)
                    .await
                    .unwrap();
                assert!(matches!(answer, Submitted::Accepted(_)), "{answer:?}");
            }
        });
    }
    for (which, store) in [&first, &second].into_iter().enumerate() {
        for worker in 0..CLAIMERS_PER_STORE {
            tasks.spawn(claimer(
                Arc::clone(store),
                format!("store{which}-{worker}"),
                Arc::clone(&seen),
                Arc::clone(&finished),
                total,
            ));
        }
    }
    tokio::time::timeout(Duration::from_mins(2), tasks.join_all())
        .await
        .expect("every job finished");

    let seen = Arc::into_inner(seen).unwrap().into_inner().unwrap();
    assert!(
        seen.overlaps.is_empty(),
        "lanes ran twice at once: {:?}",
        seen.overlaps
    );
    // Arrival order is the order `list` reports (newest first), per lane.
    let stored = Store::<Payload>::list(&*first, &JobQuery::newest(1_000))
        .await
        .unwrap();
    assert_eq!(stored.len(), total);
    let mut arrived: BTreeMap<u64, Vec<JobId>> = BTreeMap::new();
    for snapshot in stored.iter().rev() {
        assert_eq!(snapshot.attempts, 1, "{snapshot:?}");
        arrived
            .entry(issue_of(&snapshot.metadata))
            .or_default()
            .push(snapshot.job_id.clone());
    }
    assert_eq!(seen.started, arrived);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn a_process_stalled_inside_an_insert_makes_the_others_refuse_not_hang() {
    let schema = TestSchema::new();
    // The default acquire timeout (2 s) bounds the wait for the lock too: the refusal takes that long.
    let store = schema.connect(schema.options()).await;

    // Another process took the insert lock and stopped answering (the key is `insert_lock`'s).
    let mut stalled = schema.admin().await;
    let mut holding = sqlx::Connection::begin(&mut stalled).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT pg_advisory_xact_lock(1651470196, '{}.booty_jobs'::regclass::oid::int)",
        schema.name
    )))
    .execute(&mut *holding)
    .await
    .unwrap();

    let refused = store.insert(job("d-1", Some(1), 1), 100).await;
    match &refused {
        Err(booty_queue::StoreError::Backend {
            store: "postgres",
            operation: "insert",
            source,
        }) => assert!(source.to_string().contains("lock timeout"), "{source}"),
        other => panic!("expected the insert to give up waiting, got {other:?}"),
    }
    holding.rollback().await.unwrap();
    // Nothing of the refused insert was kept: the redelivery is accepted.
    assert_eq!(
        store.insert(job("d-1", Some(1), 1), 100).await.unwrap(),
        Submitted::Accepted(job_id(Some(1), "d-1"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn one_process_at_a_time_holds_an_exclusive_right_and_shares_its_bookmark() {
    let schema = TestSchema::new();
    let (first, second) = two_stores(&schema).await;
    let exclusive = |store: Arc<PostgresStore>| async move {
        Store::<Payload>::try_exclusive(&*store, "recovery:app")
            .await
            .unwrap()
    };
    let held = exclusive(Arc::clone(&first)).await.expect("granted");
    assert!(exclusive(Arc::clone(&second)).await.is_none());
    // Another name is another right.
    let other = Store::<Payload>::try_exclusive(&*second, "recovery:orgs/octo/hooks/1")
        .await
        .unwrap();
    assert!(other.is_some());
    // A bookmark one process sets is the other's.
    Store::<Payload>::set_bookmark(&*first, "recovery:app", later(Duration::from_secs(5)))
        .await
        .unwrap();
    let seen = Store::<Payload>::bookmark(&*second, "recovery:app")
        .await
        .unwrap()
        .unwrap();
    assert!(seen > now(), "{seen}");
    held.release().await;
    let taken = exclusive(Arc::clone(&second))
        .await
        .expect("granted once released");
    // A holder that goes away without releasing (a dropped guard: its connection closes) frees it too.
    drop(taken);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(again) = exclusive(Arc::clone(&first)).await {
            again.release().await;
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never freed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The same name in another schema is another queue's right.
    let elsewhere = TestSchema::new();
    let foreign = elsewhere.connect(elsewhere.options()).await;
    let held = exclusive(Arc::clone(&first)).await.expect("granted");
    assert!(
        Store::<Payload>::try_exclusive(&foreign, "recovery:app")
            .await
            .unwrap()
            .is_some()
    );
    held.release().await;
}
