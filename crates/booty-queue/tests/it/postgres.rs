//! The PostgreSQL store against the real server named by `BOOTY_TEST_POSTGRES_URL` (built without it,
//! every test that needs it is `ignored`, see `build.rs`; `cargo xtask ci` then says so loudly). Each test
//! works in a schema of its own, dropped when the test ends, and its connections carry the schema's name
//! as `application_name`, so a test can terminate its own connections without touching anyone else's.
//!
//! The shared contract runs here; the submodules check what only a shared store has to keep: several
//! processes at once, leases taken over, notifications, start-up, and a database that goes away.

mod concurrency;
mod outage;
mod startup;
mod takeover;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use booty_queue::{Job, PostgresOptions, PostgresStore, Timestamp};
use sqlx::{Connection, PgConnection};

use crate::contract::{Guarded, Kind, Limits, Payload};
use crate::support::stored_job;

crate::contract::store_contract_tests!(
    |limits: Limits| async move {
        let schema = TestSchema::new();
        let mut options = schema.options();
        options.retention = limits.retention();
        let store = schema.connect(options).await;
        Guarded {
            store,
            _guard: schema,
        }
    },
    Kind {
        durable: true,
        shared: true,
    },
    #[cfg_attr(not(booty_postgres_tests), ignore = "BOOTY_TEST_POSTGRES_URL is not set")]
);

/// The server the tests use, `BOOTY_TEST_POSTGRES_URL`. Tests that call this are ignored when the variable
/// was unset at build time (`build.rs`); should it be unset now all the same (the test binary run by hand,
/// or `--include-ignored`), the test fails saying so, rather than passing without having run.
pub(crate) fn url() -> String {
    std::env::var("BOOTY_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .expect("BOOTY_TEST_POSTGRES_URL is not set, and this test needs its server")
}

/// A uniquely named schema (created by the first store that connects to it), dropped with everything
/// in it when this is dropped, even if the test panicked.
pub(crate) struct TestSchema {
    pub(crate) name: String,
    base_url: String,
}

impl TestSchema {
    /// A new name on the server at [`url`].
    pub(crate) fn new() -> Self {
        Self::on(url())
    }

    /// A new schema on the server at `base_url`.
    pub(crate) fn on(base_url: String) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let name = format!(
            "booty_test_{}_{}_{}",
            std::process::id(),
            since_epoch.subsec_nanos(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Self { name, base_url }
    }

    /// The server's URL with `application_name` set to the schema's name.
    pub(crate) fn url(&self) -> String {
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!("{}{separator}application_name={}", self.base_url, self.name)
    }

    /// Options for a store in this schema, with a small pool (the server's 100 connections are shared by
    /// every test running at once).
    pub(crate) fn options(&self) -> PostgresOptions {
        let mut options = PostgresOptions::default();
        options.schema = Some(self.name.clone());
        options.max_connections = 4;
        options
    }

    pub(crate) async fn connect(&self, options: PostgresOptions) -> PostgresStore {
        PostgresStore::connect(&self.url(), options).await.unwrap()
    }

    /// A plain connection (no schema set) for the test's own queries.
    pub(crate) async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.base_url).await.unwrap()
    }

    /// Terminates every server connection of this schema's stores; returns how many there were.
    pub(crate) async fn terminate_connections(&self) -> i64 {
        let mut admin = self.admin().await;
        sqlx::query_scalar(
            "SELECT count(*) FROM (
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1
             ) AS terminated",
        )
        .bind(&self.name)
        .fetch_one(&mut admin)
        .await
        .unwrap()
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (url, name) = (self.base_url.clone(), self.name.clone());
        // Drop cannot await, and may run inside the test's runtime: use a thread with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async move {
                    let mut admin = PgConnection::connect(&url).await?;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {name} CASCADE"
                    )))
                    .execute(&mut admin)
                    .await
                    .map(drop)
                })
        })
        .join();
        // A test that failed may have left the server down; its own failure is the one to report.
        if !std::thread::panicking() {
            dropped.unwrap().unwrap();
        }
    }
}

/// The job for `delivery` on issue `issue` of `octo/repo`, as the engine would hand it to a store.
pub(crate) fn job(delivery: &str, issue: Option<u64>, n: u64) -> Job<Payload> {
    let payload = Payload {
        n,
        text: format!("payload {n}"),
    };
    stored_job(delivery, issue, now(), payload)
}

/// The wall clock, as the engine reads it.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// `now() + by`.
pub(crate) fn later(by: Duration) -> Timestamp {
    now().saturating_add(by)
}
