//! The SQLite store on real database files in temporary directories: the shared contract, then what only
//! a durable single-process store has to keep (restarts, recovery, group commit, dedupe by age) and the
//! ways opening a file can fail.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use booty_queue::{
    CancellationToken, Claim, Job, JobId, JobQuery, JobState, NewJob, Outcome, Queue, QueueConfig,
    QueueError, Retention, SqliteError, SqliteOptions, SqliteStore, Store, StoreError, Submitted,
    Timestamp,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};
use tempfile::TempDir;

use crate::contract::{Guarded, Kind, Limits, Payload};
use crate::support::{
    ForIssue, check_previous_release, job_id, run_previous_release_job, stored_job,
};

crate::contract::store_contract_tests!(
    |limits: Limits| async move {
        let dir = tempfile::tempdir().unwrap();
        let mut options = SqliteOptions::default();
        options.retention = limits.retention();
        options.dedupe_retention = Duration::ZERO;
        let store = SqliteStore::open(dir.path().join("booty.db"), options)
            .await
            .unwrap();
        Guarded { store, _guard: dir }
    },
    Kind {
        durable: true,
        shared: false,
    }
);

const T0: u64 = 1_700_000_000_000;
const ROOMY: usize = 1_000;

fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + seconds * 1_000)
}

fn job(delivery: &str, issue: u64, created_at: Timestamp) -> Job<Payload> {
    let payload = Payload {
        n: issue,
        text: format!("issue {issue}"),
    };
    stored_job(delivery, Some(issue), created_at, payload)
}

/// A directory with a database path in it (the file is created by the first open).
fn database() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("booty.db");
    (dir, path)
}

async fn open(path: &Path, options: SqliteOptions) -> SqliteStore {
    SqliteStore::open(path, options).await.unwrap()
}

/// Options with the count window and retention given, everything else default.
fn options(dedupe_capacity: usize, retention: Duration, retained_finished: usize) -> SqliteOptions {
    let mut options = SqliteOptions::default();
    options.retention = Retention::new(dedupe_capacity, retained_finished);
    options.dedupe_retention = retention;
    options
}

async fn insert(store: &SqliteStore, job: Job<Payload>) -> Submitted {
    Store::<Payload>::insert(store, job, ROOMY).await.unwrap()
}

async fn accept(store: &SqliteStore, job: Job<Payload>) {
    let id = job.id.clone();
    assert_eq!(insert(store, job).await, Submitted::Accepted(id));
}

async fn claim(store: &SqliteStore, now: Timestamp) -> Job<Payload> {
    match store
        .claim("w1", now, now.saturating_add(Duration::from_secs(30)))
        .await
    {
        Ok(Claim::Job(job)) => job,
        other => panic!("expected a job at {now}, got {other:?}"),
    }
}

async fn finish(store: &SqliteStore, job: &Job<Payload>, now: Timestamp) {
    let lease = booty_queue::Lease {
        job_id: job.id.clone(),
        owner: "w1".to_owned(),
        attempt: job.attempt,
    };
    Store::<Payload>::finish(store, &lease, Outcome::Succeeded, None, now)
        .await
        .unwrap();
}

async fn state(store: &SqliteStore, id: &str) -> Option<JobState> {
    Store::<Payload>::get(store, id)
        .await
        .unwrap()
        .map(|job| job.state)
}

/// Closes the store as the engine does at shutdown and drops it, releasing the file.
async fn close(store: SqliteStore, now: Timestamp) {
    let kept = Store::<Payload>::close(&store, now).await.unwrap();
    assert!(
        kept.is_empty(),
        "a durable store abandons nothing: {kept:?}"
    );
}

/// A connection of the test's own to the store's file (SQLite's locking lets it in next to the store).
async fn side_connection(path: &Path) -> SqliteConnection {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(5))
        .connect()
        .await
        .unwrap()
}

/// A side connection holding SQLite's write lock (`BEGIN IMMEDIATE`) until it commits.
async fn write_lock(path: &Path) -> SqliteConnection {
    let mut blocker = side_connection(path).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut blocker)
        .await
        .unwrap();
    blocker
}

/// Waits until `count` submissions wait for their answer (the writer is blocked on the side
/// connection's lock).
async fn wait_for_pending_inserts(store: &SqliteStore, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.stats().pending_inserts < count as u64 {
        assert!(
            Instant::now() < deadline,
            "{count} inserts never queued up: {:?}",
            store.stats()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn jobs_and_remembered_deliveries_survive_a_restart() {
    let (_dir, path) = database();
    let limits = options(1, Duration::ZERO, 1);
    let store = open(&path, limits.clone()).await;
    for (n, delivery) in ["done-1", "done-2", "waiting"].into_iter().enumerate() {
        assert!(matches!(
            insert(&store, job(delivery, n as u64 + 1, at(0))).await,
            Submitted::Accepted(_)
        ));
    }
    // done-1 and done-2 finish; done-1 is then dropped by the retention bound (1 finished job kept),
    // but its delivery stays remembered: done-2 and `waiting` came after it, yet both are stored jobs.
    for second in 1..=2 {
        let running = claim(&store, at(second)).await;
        finish(&store, &running, at(second)).await;
    }
    assert_eq!(state(&store, "1-done-1").await, None);
    close(store, at(3)).await;

    let store = open(&path, limits).await;
    assert_eq!(state(&store, "2-done-2").await, Some(JobState::Succeeded));
    assert_eq!(state(&store, "3-waiting").await, Some(JobState::Queued));
    for (delivery, issue) in [("done-2", 2), ("waiting", 3)] {
        assert_eq!(
            insert(&store, job(delivery, issue, at(4))).await,
            Submitted::Duplicate(job_id(Some(issue), delivery)),
            "{delivery}"
        );
    }
    let next = claim(&store, at(5)).await;
    assert_eq!((next.id.as_str(), next.payload.n), ("3-waiting", 3));
}

#[tokio::test]
async fn a_restart_takes_back_every_job_left_running_whatever_its_lease() {
    let (_dir, path) = database();
    let store = open(&path, SqliteOptions::default()).await;
    for (n, delivery) in ["a", "b", "c"].into_iter().enumerate() {
        accept(&store, job(delivery, n as u64 + 1, at(0))).await;
    }
    // `a` ran twice already (its first attempt was lost), `b` once; `c` never started.
    claim(&store, at(1)).await;
    Store::<Payload>::reclaim_expired(&store, at(100), 2)
        .await
        .unwrap();
    claim(&store, at(101)).await;
    claim(&store, at(101)).await;
    // The process dies: no close, the lease of both is far in the future.
    drop(store);

    let store = open(&path, SqliteOptions::default()).await;
    let taken = Store::<Payload>::recover(&store, at(102), 2).await.unwrap();
    let summary: Vec<(&str, JobState, u32)> = taken
        .iter()
        .map(|job| (job.job_id.as_str(), job.state, job.attempts))
        .collect();
    assert_eq!(
        summary,
        [("1-a", JobState::Failed, 2), ("2-b", JobState::Queued, 1)]
    );
    assert!(
        taken[0]
            .error
            .as_deref()
            .is_some_and(|error| error.contains("attempt 2 of 2 was lost: the queue restarted")),
        "{taken:?}"
    );
    let again = claim(&store, at(103)).await;
    assert_eq!((again.id.as_str(), again.attempt), ("2-b", 2));
    assert_eq!(claim(&store, at(103)).await.id.as_str(), "3-c");
}

#[tokio::test]
async fn deliveries_are_remembered_by_age_beyond_the_count() {
    let (_dir, path) = database();
    let hour = Duration::from_hours(1);
    let store = open(&path, options(1, hour, 1)).await;
    for n in 0..4 {
        let delivery = format!("d{n}");
        accept(&store, job(&delivery, n, at(n))).await;
        let running = claim(&store, at(n)).await;
        finish(&store, &running, at(n)).await;
    }
    // d0's job is gone and three deliveries came after it (count window 1), but it is 30 minutes old.
    assert_eq!(state(&store, "0-d0").await, None);
    assert_eq!(
        insert(&store, job("d0", 0, at(30 * 60))).await,
        Submitted::Duplicate(job_id(Some(0), "d0"))
    );
    // Two hours later it is out of both windows, and accepted again.
    assert_eq!(
        insert(&store, job("d0", 0, at(2 * 60 * 60))).await,
        Submitted::Accepted(job_id(Some(0), "d0"))
    );
}

#[tokio::test]
async fn concurrent_submissions_share_one_transaction() {
    const SUBMISSIONS: usize = 20;
    let (_dir, path) = database();
    let store = Arc::new(open(&path, SqliteOptions::default()).await);
    // Hold SQLite's write lock from outside, so the writer waits in its `BEGIN IMMEDIATE` while every
    // submission arrives.
    let mut blocker = write_lock(&path).await;
    let mut tasks = Vec::new();
    for n in 0..SUBMISSIONS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            insert(&store, job(&format!("g{n}"), n as u64, at(0))).await
        }));
    }
    // The writer took what had arrived when it started, and waits for the lock; the rest wait for it.
    wait_for_pending_inserts(&store, SUBMISSIONS).await;
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    for task in tasks {
        assert!(matches!(task.await.unwrap(), Submitted::Accepted(_)));
    }
    let stats = store.stats();
    assert_eq!(stats.inserts, SUBMISSIONS as u64);
    assert!(
        stats.insert_transactions <= 2,
        "{SUBMISSIONS} submissions took {} transactions",
        stats.insert_transactions
    );
    let listed = Store::<Payload>::list(&*store, &JobQuery::newest(100))
        .await
        .unwrap();
    assert_eq!(listed.len(), SUBMISSIONS);
}

#[tokio::test]
async fn a_failing_insert_leaves_no_trace_and_takes_no_one_down() {
    const SUBMISSIONS: usize = 10;
    let (_dir, path) = database();
    let store = Arc::new(open(&path, SqliteOptions::default()).await);
    let mut side = side_connection(&path).await;
    // A real failure inside the batch: SQLite aborts the statement that stores `poison`.
    sqlx::raw_sql(
        "CREATE TRIGGER poison BEFORE INSERT ON booty_jobs WHEN NEW.dedupe_key = 'poison'
         BEGIN SELECT RAISE(ABORT, 'poisoned delivery'); END;
         BEGIN IMMEDIATE;",
    )
    .execute(&mut side)
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for n in 0..SUBMISSIONS {
        let store = Arc::clone(&store);
        let delivery = if n == SUBMISSIONS / 2 {
            "poison".to_owned()
        } else {
            format!("ok{n}")
        };
        tasks.push(tokio::spawn(async move {
            let answer = Store::<Payload>::insert(&*store, job(&delivery, 1, at(0)), ROOMY).await;
            (delivery, answer)
        }));
    }
    wait_for_pending_inserts(&store, SUBMISSIONS).await;
    sqlx::query("COMMIT").execute(&mut side).await.unwrap();

    for task in tasks {
        let (delivery, answer) = task.await.unwrap();
        if delivery == "poison" {
            match answer {
                Err(StoreError::Backend {
                    store,
                    operation,
                    source,
                }) => {
                    assert_eq!((store, operation), ("sqlite", "insert"));
                    assert!(source.to_string().contains("poisoned delivery"), "{source}");
                }
                other => panic!("poison: {other:?}"),
            }
        } else {
            assert_eq!(
                answer.unwrap(),
                Submitted::Accepted(job_id(Some(1), &delivery))
            );
        }
    }
    assert_eq!(state(&store, "1-poison").await, None);
    let listed = Store::<Payload>::list(&*store, &JobQuery::newest(100))
        .await
        .unwrap();
    assert_eq!(listed.len(), SUBMISSIONS - 1);

    // Nothing of it was remembered: once the fault is gone, GitHub's redelivery is accepted.
    sqlx::query("DROP TRIGGER poison")
        .execute(&mut side)
        .await
        .unwrap();
    assert_eq!(
        insert(&store, job("poison", 1, at(1))).await,
        Submitted::Accepted(job_id(Some(1), "poison"))
    );
}

#[tokio::test]
async fn a_payload_that_is_not_json_is_refused_with_the_job_and_why() {
    // serde_json writes only maps whose keys are strings.
    type Keyed = std::collections::BTreeMap<Vec<u8>, u8>;
    let (_dir, path) = database();
    let store = open(&path, SqliteOptions::default()).await;
    let unwritable = Keyed::from([(vec![1], 1)]);
    match Store::<Keyed>::insert(&store, stored_job("bad", Some(1), at(0), unwritable), ROOMY).await
    {
        Err(StoreError::Backend {
            store,
            operation,
            source,
        }) => {
            assert_eq!((store, operation), ("sqlite", "insert"));
            assert_eq!(
                source.to_string(),
                "job 1-bad: the payload does not serialize to JSON: key must be a string"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(state(&store, "1-bad").await, None);

    // Nothing of it was remembered: the same delivery with a payload that serializes is accepted.
    let writable = Keyed::new();
    assert_eq!(
        Store::<Keyed>::insert(&store, stored_job("bad", Some(1), at(1), writable), ROOMY)
            .await
            .unwrap(),
        Submitted::Accepted(job_id(Some(1), "bad"))
    );
}

#[tokio::test]
async fn a_second_opener_of_the_same_file_is_refused_with_the_path() {
    let (_dir, path) = database();
    let first = open(&path, SqliteOptions::default()).await;
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SqliteError::InUse { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("in use by another process"), "{message}");
    // Once the first is gone, the file opens.
    close(first, at(0)).await;
    open(&path, SqliteOptions::default()).await;
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_a_clear_error() {
    let (_dir, path) = database();
    std::fs::write(&path, vec![0x5a_u8; 8_192]).unwrap();
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SqliteError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("corrupt"),
        "{message}"
    );
}

#[tokio::test]
async fn a_damaged_database_is_found_at_start_up() {
    let (_dir, path) = database();
    let store = open(&path, SqliteOptions::default()).await;
    for n in 0..200 {
        accept(&store, job(&format!("d{n}"), n, at(0))).await;
    }
    close(store, at(1)).await;
    // Overwrite a page in the middle of the file (not the header): SQLite opens it, the check fails.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4 * 4_096, "{} bytes", bytes.len());
    for byte in &mut bytes[2 * 4_096..3 * 4_096] {
        *byte = 0xa5;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SqliteError::Corrupt { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[tokio::test]
async fn a_database_locked_by_another_connection_is_a_clear_error() {
    let (_dir, path) = database();
    // Another program holds an exclusive lock on a (rollback-journal) database file.
    let mut other = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE theirs (x INTEGER); BEGIN EXCLUSIVE; INSERT INTO theirs VALUES (1);",
    )
    .execute(&mut other)
    .await
    .unwrap();
    let mut options = SqliteOptions::default();
    options.busy_timeout = Duration::from_millis(100);
    let err = SqliteStore::open(&path, options).await.unwrap_err();
    assert!(matches!(err, SqliteError::Locked { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("locked"),
        "{message}"
    );
    other.close().await.unwrap();
}

#[tokio::test]
async fn a_path_that_cannot_be_written_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // The tests may run as root, whom permissions do not stop: put the file under a regular file.
    let not_a_dir = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, "").unwrap();
    let path = not_a_dir.join("booty.db");
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SqliteError::Open { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()) && message.contains("cannot open"),
        "{message}"
    );
}

#[tokio::test]
async fn a_database_from_a_newer_booty_is_refused() {
    let (_dir, path) = database();
    close(open(&path, SqliteOptions::default()).await, at(0)).await;
    let mut side = side_connection(&path).await;
    sqlx::query(
        "INSERT INTO booty_queue_migrations (version, description, success, checksum, execution_time)
         VALUES (99, 'from the future', 1, x'00', 0)",
    )
    .execute(&mut side)
    .await
    .unwrap();
    side.close().await.unwrap();
    let err = SqliteStore::open(&path, SqliteOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, SqliteError::Migrate { .. }), "{err:?}");
    assert!(err.to_string().contains(&path.display().to_string()));
}

/// The store's migrations up to `version`, as an earlier release shipped them.
const MIGRATIONS: [(&str, &str); 2] = [
    (
        "jobs",
        include_str!("../../migrations/sqlite/0001_jobs.sql"),
    ),
    (
        "cheaper inserts",
        include_str!("../../migrations/sqlite/0002_cheaper_inserts.sql"),
    ),
];

/// A new database file at `path` with the schema of `version`, recorded as the store records it.
async fn database_at_version(path: &Path, version: usize) -> SqliteConnection {
    let mut connection = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .connect()
        .await
        .unwrap();
    let migrations = (1..)
        .zip(&MIGRATIONS[..version])
        .map(|(number, (description, sql))| {
            sqlx::migrate::Migration::new(
                number,
                (*description).into(),
                sqlx::migrate::MigrationType::Simple,
                sqlx::SqlSafeStr::into_sql_str(*sql),
                false,
            )
        })
        .collect();
    let mut migrator = sqlx::migrate::Migrator::with_migrations(migrations);
    migrator.dangerous_set_table_name("booty_queue_migrations");
    migrator.run(&mut connection).await.unwrap();
    connection
}

/// A file written by a booty whose schema was version 1 (rows remembered and counted by triggers).
async fn version_1_database(path: &Path) {
    let mut connection = database_at_version(path, 1).await;
    // A job stored as version 1 stored it: the triggers remember its delivery and count it.
    sqlx::query(
        "INSERT INTO booty_jobs (job_id, delivery_id, issue_number, repository, lane, state, payload,
                                 created_at_ms)
         VALUES ('1-old', 'old', 1, 'octo/repo', 'octo/repo#1', 'queued', '{\"n\":1,\"text\":\"old\"}', ?)",
    )
    .bind(i64::try_from(at(0).as_unix_millis()).unwrap())
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_version_1_database_is_upgraded_with_its_jobs_and_deliveries() {
    let (_dir, path) = database();
    version_1_database(&path).await;
    let store = open(&path, options(ROOMY, Duration::ZERO, 10)).await;

    // The job stored before the upgrade is still a duplicate, counted, and runs first.
    assert_eq!(
        insert(&store, job("old", 1, at(1))).await,
        Submitted::Duplicate(JobId::from("1-old".to_owned()))
    );
    accept(&store, job("new", 1, at(1))).await;
    assert_eq!(
        Store::<Payload>::insert(&store, job("third", 2, at(1)), 2)
            .await
            .unwrap(),
        Submitted::Busy,
        "two jobs wait: the one from before the upgrade is counted once, the new one once"
    );
    let mut side = side_connection(&path).await;
    let (waiting,): (i64,) = sqlx::query_as("SELECT waiting FROM booty_counts")
        .fetch_one(&mut side)
        .await
        .unwrap();
    let remembered: Vec<(String, String)> =
        sqlx::query_as("SELECT dedupe_key, job_id FROM booty_dedupe_keys ORDER BY seq")
            .fetch_all(&mut side)
            .await
            .unwrap();
    side.close().await.unwrap();
    assert_eq!(waiting, 2);
    assert_eq!(
        remembered,
        [
            ("old".to_owned(), "1-old".to_owned()),
            ("new".to_owned(), "1-new".to_owned())
        ]
    );
    let first = claim(&store, at(2)).await;
    assert_eq!(first.id.as_str(), "1-old");
    assert_eq!(first.payload.text, "old");
    close(store, at(3)).await;
}

/// A file as the release before generic jobs (schema version 2, commit 7c4c701) left it: the rows written
/// by that release's statements, quoted from its `writer.rs` (insert) and `jobs.rs` (claim, finish): a job
/// waiting (`7-waiting`), one that succeeded (`5-done`), and the remembered delivery of one whose job was
/// dropped since (`3-gone`).
async fn version_2_database(path: &Path) {
    let mut connection = database_at_version(path, 2).await;
    let millis = |at: Timestamp| i64::try_from(at.as_unix_millis()).unwrap();
    for (job_id, delivery, issue, payload) in [
        ("5-done", "done", 5, r#"{"n":5,"text":"done"}"#),
        ("7-waiting", "waiting", 7, r#"{"n":7,"text":"waiting"}"#),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "BEGIN IMMEDIATE;
             INSERT OR ROLLBACK INTO booty_jobs
                 (job_id, delivery_id, issue_number, repository, lane, state, payload, created_at_ms)
             SELECT column1, column2, column3, column4, column5, 'queued', column6, column7
               FROM (VALUES ('{job_id}', '{delivery}', {issue}, 'octo/repo', 'octo/repo#{issue}',
                             '{payload}', {created})) WHERE column1 IS NOT NULL;
             INSERT OR REPLACE INTO booty_deliveries (job_id, delivery_id, accepted_at_ms)
             SELECT job_id, delivery_id, created_at_ms FROM (
                 SELECT seq, job_id, delivery_id, created_at_ms FROM booty_jobs
                  ORDER BY seq DESC LIMIT changes())
              ORDER BY seq;
             UPDATE booty_counts SET waiting = waiting + changes();
             COMMIT;",
            created = millis(at(0)),
        )))
        .execute(&mut connection)
        .await
        .unwrap();
    }
    sqlx::query(
        "UPDATE booty_jobs
            SET state = 'running', attempts = attempts + 1, started_at_ms = ?1,
                retry_at_ms = NULL, lease_owner = 'old-worker', lease_until_ms = ?1 + 30000
          WHERE job_id = '5-done'",
    )
    .bind(millis(at(1)))
    .execute(&mut connection)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE booty_jobs
            SET state = 'succeeded', lease_until_ms = NULL, error = NULL, retry_at_ms = NULL,
                finished_at_ms = ?1,
                finished_seq = (SELECT coalesce(max(finished_seq), 0) + 1 FROM booty_jobs),
                payload = NULL
          WHERE job_id = '5-done'",
    )
    .bind(millis(at(2)))
    .execute(&mut connection)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO booty_deliveries (delivery_id, job_id, accepted_at_ms) VALUES ('gone', '3-gone', ?1)",
    )
    .bind(millis(at(0)))
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
}

#[tokio::test]
async fn a_database_written_by_the_previous_release_opens_and_runs() {
    let (_dir, path) = database();
    version_2_database(&path).await;
    let store = open(&path, options(ROOMY, Duration::ZERO, 10)).await;

    check_previous_release(&store, at(0)).await;
    assert_eq!(
        Store::<Payload>::get(&store, "5-done")
            .await
            .unwrap()
            .unwrap()
            .finished_at,
        Some(at(2))
    );
    // The waiting job is counted: capacity 1 is full.
    assert_eq!(
        Store::<Payload>::insert(&store, job("new", 8, at(3)), 1)
            .await
            .unwrap(),
        Submitted::Busy
    );
    run_previous_release_job(&store, at(4)).await;
    close(store, at(7)).await;
}

#[tokio::test]
async fn an_upgraded_database_knows_its_old_deliveries_and_keeps_bookmarks_across_restarts() {
    let (_dir, path) = database();
    version_2_database(&path).await;
    let store = open(&path, options(ROOMY, Duration::ZERO, 10)).await;
    // What recovery asks before it fetches a delivery: the old file's deliveries are known, by job.
    let known = |key: &'static str| Store::<Payload>::dedupe_key_job(&store, key);
    assert_eq!(
        known("waiting").await.unwrap(),
        Some(JobId::from("7-waiting"))
    );
    assert_eq!(known("done").await.unwrap(), Some(JobId::from("5-done")));
    assert_eq!(known("gone").await.unwrap(), Some(JobId::from("3-gone")));
    assert_eq!(known("never").await.unwrap(), None);
    assert_eq!(
        Store::<Payload>::bookmark(&store, "recovery:app")
            .await
            .unwrap(),
        None
    );
    Store::<Payload>::set_bookmark(&store, "recovery:app", at(9))
        .await
        .unwrap();
    close(store, at(10)).await;

    let store = open(&path, options(ROOMY, Duration::ZERO, 10)).await;
    assert_eq!(
        Store::<Payload>::bookmark(&store, "recovery:app")
            .await
            .unwrap(),
        Some(at(9))
    );
    close(store, at(11)).await;
}

/// How many deliveries the file remembers, read beside the store.
async fn remembered_deliveries(path: &Path) -> i64 {
    let mut side = side_connection(path).await;
    let (remembered,): (i64,) = sqlx::query_as("SELECT count(*) FROM booty_dedupe_keys")
        .fetch_one(&mut side)
        .await
        .unwrap();
    side.close().await.unwrap();
    remembered
}

#[tokio::test]
async fn the_clean_up_keeps_the_delivery_of_a_stored_job() {
    let (_dir, path) = database();
    let store = open(&path, options(2, Duration::ZERO, 10)).await;
    accept(&store, job("held", 1, at(0))).await;
    // Enough deliveries for the clean-up to run (it runs every 100 accepted jobs).
    for n in 0..250 {
        accept(&store, job(&format!("later-{n}"), 2, at(1))).await;
    }
    let remembered = remembered_deliveries(&path).await;
    // Nothing forgotten: every job is still stored (the clean-up only forgets deliveries whose job is
    // gone), and the held job's delivery is how a redelivery finds it (by its delivery: this one
    // names another issue, so its job id differs).
    assert_eq!(remembered, 251);
    assert_eq!(
        insert(&store, job("held", 7, at(2))).await,
        Submitted::Duplicate(job_id(Some(1), "held"))
    );
    // Once the jobs are gone, the clean-up forgets all but the newest two deliveries it looks at.
    let mut side = side_connection(&path).await;
    sqlx::query("DELETE FROM booty_jobs WHERE dedupe_key <> 'held'")
        .execute(&mut side)
        .await
        .unwrap();
    side.close().await.unwrap();
    for n in 0..100 {
        accept(&store, job(&format!("last-{n}"), 3, at(3))).await;
    }
    let remembered = remembered_deliveries(&path).await;
    assert!(remembered < 200, "{remembered} deliveries remembered");
    assert_eq!(
        insert(&store, job("held", 7, at(4))).await,
        Submitted::Duplicate(job_id(Some(1), "held"))
    );
    close(store, at(5)).await;
}

/// A submission for `issue` of `octo/repo`.
fn new_job(delivery: &str, issue: u64) -> NewJob<Payload> {
    let payload = Payload {
        n: issue,
        text: format!("issue {issue}"),
    };
    NewJob::new(delivery, payload).for_issue("octo/repo", issue)
}

/// A queue on `store` whose handler reports each job it runs, polling the store only once an hour (so a
/// job runs soon only if its submission woke a worker).
async fn reporting_queue(
    store: Arc<SqliteStore>,
) -> (Queue<Payload>, tokio::sync::mpsc::UnboundedReceiver<JobId>) {
    let (ran, runs) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |job: Job<Payload>, _: CancellationToken| {
        let _ = ran.send(job.id);
        async { Ok(()) }
    };
    let mut config = QueueConfig::default();
    config.poll_interval = Duration::from_hours(1);
    (Queue::start(store, handler, config).await.unwrap(), runs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_stored_after_its_submitter_stopped_waiting_still_wakes_a_worker() {
    let (_dir, path) = database();
    let store = Arc::new(open(&path, SqliteOptions::default()).await);
    let (queue, mut runs) = reporting_queue(Arc::clone(&store)).await;
    let mut blocker = write_lock(&path).await;
    // The submitter (a webhook request whose client hung up) is dropped while the writer waits.
    let submitter = tokio::spawn({
        let queue = queue.clone();
        async move { queue.submit(new_job("cut-off", 1)).await }
    });
    wait_for_pending_inserts(&store, 1).await;
    submitter.abort();
    assert!(submitter.await.unwrap_err().is_cancelled());
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();

    let ran = tokio::time::timeout(Duration::from_secs(30), runs.recv())
        .await
        .expect("the stored job woke no worker");
    assert_eq!(ran, Some(job_id(Some(1), "cut-off")));
    queue.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_whose_deadline_passes_before_the_store_takes_it_stores_nothing() {
    let (_dir, path) = database();
    let store = Arc::new(open(&path, SqliteOptions::default()).await);
    let (queue, mut runs) = reporting_queue(Arc::clone(&store)).await;
    let mut blocker = write_lock(&path).await;
    let job = || new_job("late", 2);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    let answer = queue.submit_before(job(), Some(deadline)).await;
    match answer {
        Err(QueueError::NotRecorded {
            job_id: submitted,
            source: StoreError::Withdrawn { job_id: withdrawn },
        }) => {
            assert_eq!(submitted, job_id(Some(2), "late"));
            assert_eq!(withdrawn, job_id(Some(2), "late"));
        }
        other => panic!("expected a withdrawn submission, got {other:?}"),
    }
    // The writer gets the lock only now, and leaves the withdrawn job out.
    sqlx::query("COMMIT").execute(&mut blocker).await.unwrap();
    while store.stats().pending_inserts > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(queue.get("2-late").await.unwrap(), None);
    // So GitHub's redelivery is accepted, and runs once.
    assert_eq!(
        queue.submit(job()).await.unwrap(),
        Submitted::Accepted(job_id(Some(2), "late"))
    );
    assert_eq!(runs.recv().await, Some(job_id(Some(2), "late")));
    queue.shutdown(Duration::from_secs(5)).await;
}

/// A job whose payload is a real 12 KB webhook, in a lane of its own.
fn webhook_job(delivery: &str, issue: u64, created_at: Timestamp) -> Job<Payload> {
    let payload = Payload {
        n: issue,
        text: include_str!("../../../booty-event/tests/fixtures/issues.labeled.json").to_owned(),
    };
    stored_job(delivery, Some(issue), created_at, payload)
}

/// Records that `job`'s attempt failed for good (a failed job keeps its payload).
async fn fail(store: &SqliteStore, job: &Job<Payload>, now: Timestamp) {
    let lease = booty_queue::Lease {
        job_id: job.id.clone(),
        owner: "w1".to_owned(),
        attempt: job.attempt,
    };
    let outcome = Outcome::Failed {
        error: "boom".to_owned(),
    };
    Store::<Payload>::finish(store, &lease, outcome, None, now)
        .await
        .unwrap();
}

/// Whether retrying `job_id` queued it again.
async fn requeued(store: &SqliteStore, job_id: &str) -> bool {
    matches!(
        Store::<Payload>::reopen(store, job_id, ROOMY)
            .await
            .unwrap(),
        booty_queue::Retried::Queued(_)
    )
}

/// How `job_id`'s payload is stored: whether `payload` holds it, and the length of `payload_lz4`.
async fn stored_payload(path: &Path, job_id: &str) -> (bool, Option<i64>) {
    let mut side = side_connection(path).await;
    let row = sqlx::query_as(
        "SELECT payload IS NOT NULL, length(payload_lz4) FROM booty_jobs WHERE job_id = ?1",
    )
    .bind(job_id)
    .fetch_one(&mut side)
    .await
    .unwrap();
    side.close().await.unwrap();
    row
}

#[tokio::test]
async fn payloads_are_stored_compressed_and_dropped_with_their_final_job() {
    let (_dir, path) = database();
    let store = open(&path, options(ROOMY, Duration::ZERO, 10)).await;
    let done = webhook_job("done", 1, at(0));
    let failed = webhook_job("failed", 2, at(0));
    let json_length = serde_json::to_string(&*done.payload).unwrap().len();
    accept(&store, done.clone()).await;
    accept(&store, failed.clone()).await;

    let (in_text, packed) = stored_payload(&path, "1-done").await;
    assert!(!in_text, "a new job leaves `payload` empty");
    let packed = packed.expect("a new job's payload is in payload_lz4");
    assert!(
        usize::try_from(packed).unwrap() * 3 < json_length,
        "{json_length} bytes of JSON stored in {packed}"
    );

    let claimed = claim(&store, at(1)).await;
    assert_eq!(claimed.id.as_str(), "1-done");
    assert_eq!(*claimed.payload, *done.payload, "read back byte for byte");
    finish(&store, &claimed, at(2)).await;
    assert_eq!(stored_payload(&path, "1-done").await, (false, None));

    // A failed job keeps its payload, so it can run again.
    let claimed = claim(&store, at(3)).await;
    assert_eq!(claimed.id.as_str(), "2-failed");
    fail(&store, &claimed, at(4)).await;
    assert_eq!(
        stored_payload(&path, "2-failed").await,
        (false, Some(packed))
    );
    assert!(requeued(&store, "2-failed").await);
    let again = claim(&store, at(5)).await;
    assert_eq!(again.id.as_str(), "2-failed");
    assert_eq!(*again.payload, *failed.payload);
    close(store, at(6)).await;
}

#[tokio::test]
async fn a_payload_stored_as_text_by_an_earlier_version_is_still_read_and_retried() {
    let (_dir, path) = database();
    let store = open(&path, options(ROOMY, Duration::ZERO, 10)).await;
    let earlier = webhook_job("earlier", 1, at(0));
    accept(&store, earlier.clone()).await;
    close(store, at(1)).await;
    // As version 4 stored every job: the JSON in `payload`, no `payload_lz4`.
    let mut side = side_connection(&path).await;
    sqlx::query("UPDATE booty_jobs SET payload = ?1, payload_lz4 = NULL")
        .bind(serde_json::to_string(&*earlier.payload).unwrap())
        .execute(&mut side)
        .await
        .unwrap();
    side.close().await.unwrap();

    let store = open(&path, options(ROOMY, Duration::ZERO, 10)).await;
    let claimed = claim(&store, at(2)).await;
    assert_eq!(*claimed.payload, *earlier.payload);
    fail(&store, &claimed, at(3)).await;
    assert!(
        requeued(&store, "1-earlier").await,
        "a payload in `payload` counts as held"
    );
    assert_eq!(*claim(&store, at(4)).await.payload, *earlier.payload);
    close(store, at(5)).await;
}

#[tokio::test]
async fn a_stored_payload_that_does_not_decompress_fails_its_job_and_the_next_one_runs() {
    let (_dir, path) = database();
    let store = open(&path, options(ROOMY, Duration::ZERO, 10)).await;
    accept(&store, webhook_job("damaged", 1, at(0))).await;
    accept(&store, webhook_job("sound", 2, at(0))).await;
    let mut side = side_connection(&path).await;
    // Cut in half: the length before it promises more than the rest holds.
    sqlx::query(
        "UPDATE booty_jobs SET payload_lz4 = substr(payload_lz4, 1, length(payload_lz4) / 2)
          WHERE job_id = '1-damaged'",
    )
    .execute(&mut side)
    .await
    .unwrap();
    side.close().await.unwrap();

    let claimed = claim(&store, at(1)).await;
    assert_eq!(claimed.id.as_str(), "2-sound");
    let damaged = Store::<Payload>::get(&store, "1-damaged")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(damaged.state, JobState::Failed);
    let error = damaged.error.unwrap_or_default();
    assert!(
        error.starts_with("the stored payload does not decompress"),
        "{error}"
    );
    close(store, at(2)).await;
}
