//! Connecting: processes that start together, errors that never show the password, and what a process
//! finds when another version of the payload was stored before it.

use std::error::Error;
use std::sync::Arc;
use std::time::Duration;

use booty_queue::{
    Claim, JobQuery, JobState, PostgresError, PostgresOptions, PostgresStore, Store, Submitted,
};
use serde::{Deserialize, Serialize};
use sqlx::Connection;
use tokio::sync::Barrier;
use tokio::task::JoinSet;

use crate::contract::Payload;
use crate::postgres::{TestSchema, job, later, now, url};
use crate::support::{check_previous_release, run_previous_release_job, stored_job};

/// The error and all its sources, as a log line would show them.
fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(err) = source {
        text.push_str(": ");
        text.push_str(&err.to_string());
        source = err.source();
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn processes_starting_together_migrate_once_and_all_work() {
    const PROCESSES: usize = 6;
    let schema = Arc::new(TestSchema::new());
    let start = Arc::new(Barrier::new(PROCESSES));
    let mut starting = JoinSet::new();
    for _ in 0..PROCESSES {
        let (schema, start) = (Arc::clone(&schema), Arc::clone(&start));
        starting.spawn(async move {
            let mut options = schema.options();
            options.max_connections = 2;
            start.wait().await;
            PostgresStore::connect(&schema.url(), options).await
        });
    }
    let stores: Vec<PostgresStore> = starting
        .join_all()
        .await
        .into_iter()
        .map(|store| store.map_err(|err| chain(&err)).unwrap())
        .collect();

    let mut admin = schema.admin().await;
    let versions: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {}.booty_queue_migrations WHERE success ORDER BY version",
        schema.name
    )))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(versions, [1, 2, 3], "each migration applied once");

    // Every one of them sees the same queue.
    for (n, store) in stores.iter().enumerate() {
        let answer = store
            .insert(job(&format!("d{n}"), None, n as u64), 100)
            .await
            .unwrap();
        assert!(matches!(answer, Submitted::Accepted(_)), "{answer:?}");
    }
    for store in &stores {
        let listed = Store::<Payload>::list(store, &JobQuery::newest(100))
            .await
            .unwrap();
        assert_eq!(listed.len(), PROCESSES);
    }
    // A later start finds nothing to migrate.
    schema.connect(schema.options()).await;
}

#[tokio::test]
async fn a_bad_url_or_an_unreachable_server_is_named_without_the_password() {
    let not_a_port = "postgres://booty:hunter2-secret@localhost:notaport/booty";
    let err = PostgresStore::connect(not_a_port, PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, PostgresError::Url(_)), "{err:?}");
    assert!(!chain(&err).contains("hunter2"), "{}", chain(&err));

    // Port 9 (discard) on loopback: nothing listens there, so the connection is refused at once.
    let nobody_home = "postgres://booty:hunter2-secret@127.0.0.1:9/booty";
    let err = PostgresStore::connect(nobody_home, PostgresOptions::default())
        .await
        .unwrap_err();
    let text = chain(&err);
    assert!(
        text.starts_with("could not connect to PostgreSQL database `booty` at 127.0.0.1:9"),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    let mut options = PostgresOptions::default();
    options.schema = Some("Booty".to_owned());
    let err = PostgresStore::connect(nobody_home, options)
        .await
        .unwrap_err();
    assert!(
        chain(&err).starts_with("PostgreSQL schema `Booty` may only hold"),
        "{}",
        chain(&err)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn the_store_never_shows_its_password() {
    let base = url();
    // The test server trusts local connections (.ci/run's setup), so it ignores the password we add.
    let (protocol, rest) = base.split_once("://").unwrap();
    let (user_info, server) = rest.split_once('@').expect("the test URL names a user");
    let user = user_info.split(':').next().unwrap();
    let with_password = format!("{protocol}://{user}:hunter2-secret@{server}");
    let schema = TestSchema::on(with_password);
    let store = schema.connect(schema.options()).await;
    let shown = format!("{store:?}");
    assert!(shown.contains(&schema.name), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

/// A schema as the release before generic jobs (schema version 1, commit 7c4c701) left it: migration 1
/// applied as it records it, and the rows its statements (quoted from its `insert.rs` and `leases.rs`)
/// write: a job waiting (`7-waiting`), one that succeeded (`5-done`), and the remembered delivery of one
/// whose job was dropped since (`3-gone`).
async fn version_1_schema(schema: &TestSchema, created_at_ms: i64) {
    let mut connection = schema.admin().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA {0}; SET search_path TO {0}",
        schema.name
    )))
    .execute(&mut connection)
    .await
    .unwrap();
    let mut migrator =
        sqlx::migrate::Migrator::with_migrations(vec![sqlx::migrate::Migration::new(
            1,
            "jobs".into(),
            sqlx::migrate::MigrationType::Simple,
            sqlx::SqlSafeStr::into_sql_str(include_str!(
                "../../../migrations/postgres/0001_jobs.sql"
            )),
            false,
        )]);
    migrator.dangerous_set_table_name("booty_queue_migrations");
    migrator.run(&mut connection).await.unwrap();
    for (job_id, delivery, issue, payload) in [
        ("5-done", "done", 5_i64, r#"{"n":5,"text":"done"}"#),
        ("7-waiting", "waiting", 7, r#"{"n":7,"text":"waiting"}"#),
    ] {
        sqlx::query(
            "WITH job AS (
                 INSERT INTO booty_jobs
                     (job_id, delivery_id, issue_number, repository, lane, state, payload, created_at_ms)
                 SELECT $1, $2, $3, $4, $5, 'queued', $6::json, $7
                  WHERE (SELECT count(*) FROM (
                             SELECT 1 FROM booty_jobs WHERE state IN ('queued', 'retrying') LIMIT $8
                         ) AS waiting) < $8
                 RETURNING job_id, delivery_id
             ), remembered AS (
                 INSERT INTO booty_deliveries (delivery_id, job_id)
                 SELECT delivery_id, job_id FROM job
                 ON CONFLICT (delivery_id) DO UPDATE SET job_id = EXCLUDED.job_id, seq = DEFAULT
             )
             SELECT count(*) FROM job",
        )
        .bind(job_id)
        .bind(delivery)
        .bind(issue)
        .bind("octo/repo")
        .bind(format!("octo/repo#{issue}"))
        .bind(payload)
        .bind(created_at_ms)
        .bind(100_i64)
        .execute(&mut connection)
        .await
        .unwrap();
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE booty_jobs
            SET state = 'running', attempts = attempts + 1, started_at_ms = {at},
                retry_at_ms = NULL, lease_owner = 'old-worker', lease_until_ms = {at} + 30000
          WHERE job_id = '5-done';
         UPDATE booty_jobs
            SET state = 'succeeded', finished_at_ms = {at}, error = NULL, payload = NULL,
                lease_until_ms = NULL, retry_at_ms = NULL, finished_seq = nextval('booty_jobs_finished_seq')
          WHERE job_id = '5-done';
         INSERT INTO booty_deliveries (delivery_id, job_id) VALUES ('gone', '3-gone');",
        at = created_at_ms + 1_000,
    )))
    .execute(&mut connection)
    .await
    .unwrap();
    connection.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn a_database_written_by_the_previous_release_opens_and_runs() {
    let schema = TestSchema::new();
    let created_at = now();
    version_1_schema(&schema, i64::try_from(created_at.as_unix_millis()).unwrap()).await;
    let store = schema.connect(schema.options()).await;

    check_previous_release(&store, created_at).await;
    run_previous_release_job(&store, now()).await;
}

/// What an older version of the embedder stored.
#[derive(Serialize, Deserialize)]
struct OldPayload {
    title: String,
}

/// What the current version expects.
#[derive(Debug, Serialize, Deserialize)]
struct NewPayload {
    number: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn a_payload_that_no_longer_deserializes_fails_its_job_and_the_queue_moves_on() {
    let schema = TestSchema::new();
    let store = schema.connect(schema.options()).await;
    let old = job("old", Some(1), 0);
    let old_payload = OldPayload {
        title: "written by the previous release".to_owned(),
    };
    let old_job = stored_job("old", Some(1), old.created_at, old_payload);
    assert!(matches!(
        store.insert(old_job, 10).await.unwrap(),
        Submitted::Accepted(_)
    ));
    let next = stored_job("new", Some(1), now(), serde_json::json!({ "number": 5 }));
    assert!(matches!(
        store.insert(next, 10).await.unwrap(),
        Submitted::Accepted(_)
    ));

    let claimed: Claim<NewPayload> = store
        .claim("w1", now(), later(Duration::from_secs(30)))
        .await
        .unwrap();
    let Claim::Job(claimed) = claimed else {
        panic!("the decodable job behind the failed one is runnable");
    };
    assert_eq!(claimed.id.as_str(), "1-new");
    let failed = Store::<NewPayload>::get(&store, "1-old")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((failed.state, failed.attempts), (JobState::Failed, 1));
    let error = failed.error.unwrap();
    assert!(
        error.starts_with("the stored payload does not deserialize: missing field `number`"),
        "{error}"
    );
}
