//! The PostgreSQL store: one queue shared by every booty process that connects to the same database
//! and schema.
//!
//! The tables are in `migrations/postgres/`. How the contract's rules hold across processes:
//!
//! - **Inserts are serialised.** Each `insert` is one transaction that first takes a transaction-scoped
//!   advisory lock keyed by the `booty_jobs` table, then checks dedupe and capacity and inserts. Two
//!   consequences matter. The capacity check is exact across processes (under `READ COMMITTED`, two
//!   unserialised inserts could both count `capacity - 1` waiting jobs and both insert). And a job's
//!   arrival number (`seq`) is taken and committed inside the lock, so jobs become visible in `seq`
//!   order: a job can never appear *before* one already visible in its lane. Without that, a job with
//!   a smaller `seq` committing late could become the head of a lane whose later job is already
//!   running, and two jobs of one issue would run at once. The price is that inserts do not run in
//!   parallel, which the `store_insert` benchmark measures.
//! - **Dedupe is two unique constraints:** `booty_jobs.dedupe_key` (a key has at most one stored job) and
//!   `booty_dedupe_keys.dedupe_key` (the keys remembered after their job is gone).
//! - **Claims use `FOR UPDATE SKIP LOCKED` on the head of each lane.** A job is runnable when no job of
//!   its lane with a smaller `seq` is unfinished. A claimer that skips a head another claimer has
//!   locked still sees that head as unfinished, so it does not take the job behind it either; and
//!   since lanes only grow at the tail (above), the head a claim sees stays the head until it finishes.
//!   A row that changed after the claim's snapshot is re-checked by PostgreSQL when it is locked, so a
//!   job another process claimed or finished meanwhile is passed over.
//! - **Leases** are `lease_owner`, `attempts` and `lease_until_ms`; `renew` and `finish` only touch a row
//!   that still matches all three. `recover` takes back only expired leases, like `reclaim_expired`,
//!   because the other processes are alive.
//! - **Wake-ups**: a trigger notifies `booty_jobs` when work may have become runnable, a task `LISTEN`s
//!   (see `listen.rs`), and idle workers also poll every [`PostgresOptions::poll_interval`].
//! - **Lost connections** are retried as `retry.rs` describes; a submission fails within one acquire
//!   timeout while the database is unreachable, so the edge answers `503` and nothing is recorded.

/// Runs `try` until the retry policy breaks with an answer.
macro_rules! with_retry {
    ($retry:expr, $try:expr) => {{
        let mut retry = $retry;
        loop {
            if let ::std::ops::ControlFlow::Break(answer) = retry.judge($try.await).await {
                break answer;
            }
        }
    }};
}

mod claim;
mod insert;
mod leases;
mod listen;
mod migrate;
mod options;
mod retry;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, SqlStr};
use tokio::sync::Notify;

use crate::job::{Job, JobId, JobSnapshot, JobState, MetadataValue, Submitted};
use crate::query::{CancelTarget, JobCounts, JobQuery, Retried};
use crate::store::{
    Admission, Claim, Exclusive, Lease, Outcome, Renewal, Store, StoreError, Wakeups,
};
use crate::time::Timestamp;

use crate::store::sql::{self, SqlStore, bigint, snapshot, snapshot_columns};
use insert::insert_lock;
use listen::Listener;
use retry::{Failure, Health, Patience, Retry};

pub use options::{PostgresError, PostgresOptions};

/// The server ends a session that has sat this long inside a transaction. The store's transactions
/// never wait on the client for more than a round trip.
const IDLE_IN_TRANSACTION: &str = "10s";

/// Keeps jobs in PostgreSQL, so that several processes share one queue: each delivery creates one job
/// whichever process receives it, jobs of one issue never run in two processes at once, and a job whose
/// process died is taken over by another once its lease expires.
///
/// [`PostgresStore::connect`] applies the embedded migrations (under an advisory lock, so processes may
/// start together), opens a connection pool and starts listening for notifications. Payloads are stored
/// as JSON: the store needs `P: Serialize + DeserializeOwned`. A stored payload that no longer
/// deserializes (say, after a change to `P`) fails its job when claimed, with an error saying so.
///
/// Jobs are durable: [`Store::close`] keeps unfinished ones for the next start of any process.
pub struct PostgresStore {
    pool: PgPool,
    /// The schema the tables are in, as notifications name it.
    schema: String,
    options: PostgresOptions,
    wake: Arc<Notify>,
    listener: Listener,
    health: Health,
    /// Accepted inserts so far, to pace [`PostgresStore::forget_old_deliveries`].
    accepted: AtomicU64,
    /// The first statements of every insert transaction: see [`insert_lock`].
    insert_lock: SqlStr,
}

impl fmt::Debug for PostgresStore {
    /// Written by hand: the pool's connect options hold the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.schema)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, with any of
    /// sqlx's query parameters such as `sslmode`), brings its tables up to date and starts listening.
    ///
    /// # Errors
    /// [`PostgresError`] names what failed: the URL, an option, the connection, or the migrations.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, PostgresError> {
        options.check()?;
        let mut connect =
            PgConnectOptions::from_str(url).map_err(|err| PostgresError::Url(Box::new(err)))?;
        if connect.get_application_name().is_none() {
            connect = connect.application_name("booty");
        }
        // A session whose client vanished in the middle of a transaction would keep its locks (the
        // insert lock among them) until TCP noticed; the server ends it after this instead.
        connect = connect.options([("idle_in_transaction_session_timeout", IDLE_IN_TRANSACTION)]);
        if let Some(schema) = &options.schema {
            connect = connect.options([("search_path", schema)]);
        }
        let failed = |source: sqlx::Error| PostgresError::Connect {
            host: connect.get_host().to_owned(),
            port: connect.get_port(),
            database: database_name(&connect),
            source: sql::cause(source, retry::CODE),
        };

        // A connection of its own first: its error says what is wrong (refused, authentication, no such
        // database), where a pool would only report that it timed out.
        let probe = connect.connect().await.map_err(failed)?;
        // The server answered; a failure to say goodbye politely changes nothing.
        let _ = probe.close().await;
        let migrating = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(failed)?;
        migrate::run(migrating, options.schema.as_deref())
            .await
            .map_err(|source| PostgresError::Migrate {
                database: database_name(&connect),
                source: Box::new(source),
            })?;

        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(failed)?;
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .map_err(failed)?;
        let wake = Arc::new(Notify::new());
        let listener = Listener::start(&pool, schema.clone(), Arc::clone(&wake))
            .await
            .map_err(failed)?;
        Ok(Self {
            pool,
            schema,
            wake,
            listener,
            health: Health::default(),
            accepted: AtomicU64::new(0),
            insert_lock: insert_lock(options.acquire_timeout),
            options,
        })
    }

    fn retry(&self, operation: &'static str, patience: Patience) -> Retry<'_> {
        Retry::new(&self.health, operation, patience)
    }

    fn patient(&self) -> Patience {
        Patience::For(self.options.retry_for)
    }

    async fn try_get(&self, job_id: &str) -> Result<Option<JobSnapshot>, Failure> {
        let row = sqlx::query(concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM booty_jobs WHERE job_id = $1"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(snapshot).transpose()?)
    }

    async fn try_list(&self, query: &JobQuery) -> Result<Vec<JobSnapshot>, Failure> {
        let (key, value) = query
            .metadata
            .as_ref()
            .map(|(key, value)| (key.as_str(), metadata_json(value)))
            .unzip();
        // Compared as `jsonb`, so the integer 7 is not the text "7".
        let rows = sqlx::query(concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM booty_jobs
              WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2)
                AND ($3::text IS NULL OR lane = $3)
                AND ($4::text IS NULL OR metadata::jsonb -> $4 = $5::jsonb)
                AND ($6::bigint IS NULL OR seq < $6)
              ORDER BY seq DESC LIMIT $7"
        ))
        .bind(query.state.map(JobState::as_str))
        .bind(query.kind.as_deref())
        .bind(query.lane.as_deref())
        .bind(key)
        .bind(value)
        .bind(
            query
                .before
                .map(|seq| i64::try_from(seq).unwrap_or(i64::MAX)),
        )
        .bind(bigint(query.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(snapshot).collect::<Result<_, _>>()?)
    }

    async fn try_count(&self) -> Result<JobCounts, Failure> {
        let rows = sqlx::query_as("SELECT state, count(*) FROM booty_jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        Ok(sql::counts(rows)?)
    }
}

/// A metadata value as a listing's filter binds it: JSON text, compared as `jsonb`.
fn metadata_json(value: &MetadataValue) -> String {
    match value {
        MetadataValue::Text(text) => serde_json::Value::from(text.as_str()).to_string(),
        MetadataValue::Integer(number) => number.to_string(),
    }
}

/// The database a connection uses: the one named in the URL, else the user's name (PostgreSQL's rule).
fn database_name(connect: &PgConnectOptions) -> String {
    connect
        .get_database()
        .unwrap_or_else(|| connect.get_username())
        .to_owned()
}

impl<P> Store<P> for PostgresStore
where
    P: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    async fn insert(&self, job: Job<P>, capacity: usize) -> Result<Submitted, StoreError> {
        self.insert_job(job, capacity, &Admission::new()).await
    }

    /// Admits the job once its transaction holds the insert lock (see `insert.rs`).
    async fn insert_admitted(
        &self,
        job: Job<P>,
        capacity: usize,
        admission: Admission,
    ) -> Result<Submitted, StoreError> {
        self.insert_job(job, capacity, &admission).await
    }

    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claim<P>, StoreError> {
        sql::claim(self, owner, now, lease_until).await
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<Renewal, StoreError> {
        self.renew_lease(lease, until).await
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        SqlStore::record(self, lease, &outcome, output, now).await
    }

    async fn cancel(
        &self,
        target: &CancelTarget,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        with_retry!(
            self.retry("cancel", Patience::Once),
            self.try_cancel(target, reason, now)
        )
    }

    async fn reopen(&self, job_id: &str, capacity: usize) -> Result<Retried, StoreError> {
        with_retry!(
            self.retry("reopen", Patience::Once),
            self.try_reopen(job_id, capacity)
        )
    }

    async fn reclaim_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        with_retry!(
            self.retry("reclaim_expired", self.patient()),
            self.try_reclaim(now, max_attempts)
        )
    }

    /// Other processes may be running jobs right now: only expired leases are taken back.
    async fn recover(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        with_retry!(
            self.retry("recover", self.patient()),
            self.try_reclaim(now, max_attempts)
        )
    }

    async fn get(&self, job_id: &str) -> Result<Option<JobSnapshot>, StoreError> {
        with_retry!(self.retry("get", Patience::Once), self.try_get(job_id))
    }

    async fn list(&self, query: &JobQuery) -> Result<Vec<JobSnapshot>, StoreError> {
        with_retry!(self.retry("list", Patience::Once), self.try_list(query))
    }

    async fn count(&self) -> Result<JobCounts, StoreError> {
        with_retry!(self.retry("count", Patience::Once), self.try_count())
    }

    /// Unfinished jobs stay in the database for the next start; this only stops listening.
    async fn close(&self, _now: Timestamp) -> Result<Vec<JobSnapshot>, StoreError> {
        self.listener.stop().await;
        Ok(Vec::new())
    }

    fn wakeups(&self) -> Wakeups {
        Wakeups {
            notify: Some(Arc::clone(&self.wake)),
            poll_interval: Some(self.options.poll_interval),
        }
    }

    async fn dedupe_key_job(&self, dedupe_key: &str) -> Result<Option<JobId>, StoreError> {
        with_retry!(
            self.retry("dedupe_key_job", Patience::Once),
            self.try_dedupe_key_job(dedupe_key)
        )
    }

    async fn bookmark(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        with_retry!(
            self.retry("bookmark", Patience::Once),
            self.try_bookmark(name)
        )
    }

    async fn set_bookmark(&self, name: &str, at: Timestamp) -> Result<(), StoreError> {
        with_retry!(
            self.retry("set_bookmark", Patience::Once),
            self.try_set_bookmark(name, at)
        )
    }

    /// A session-level advisory lock keyed by `name`, on a connection of its own that is closed when the
    /// [`Exclusive`] is released or dropped: a process that dies lets go with its connection.
    async fn try_exclusive(&self, name: &str) -> Result<Option<Exclusive>, StoreError> {
        with_retry!(
            self.retry("try_exclusive", Patience::Once),
            self.try_lock_named(name)
        )
    }
}

impl PostgresStore {
    async fn try_dedupe_key_job(&self, dedupe_key: &str) -> Result<Option<JobId>, Failure> {
        // The dedupe table holds the key of every stored job and of the remembered ones.
        let job_id: Option<String> = sqlx::query_scalar(
            "SELECT job_id FROM booty_dedupe_keys WHERE dedupe_key = $1
             UNION ALL SELECT job_id FROM booty_jobs WHERE dedupe_key = $1 LIMIT 1",
        )
        .bind(dedupe_key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(job_id.map(JobId::from))
    }

    async fn try_bookmark(&self, name: &str) -> Result<Option<Timestamp>, Failure> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT at_ms FROM booty_bookmarks WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        Ok(at.map(sql::timestamp))
    }

    async fn try_set_bookmark(&self, name: &str, at: Timestamp) -> Result<(), Failure> {
        sqlx::query(
            "INSERT INTO booty_bookmarks (name, at_ms) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET at_ms = excluded.at_ms",
        )
        .bind(name)
        .bind(sql::millis(at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn try_lock_named(&self, name: &str) -> Result<Option<Exclusive>, Failure> {
        // A connection of its own, out of the pool and outside any transaction (the server ends sessions
        // idle in one): the lock lives as long as the session, so a process that dies lets go with it.
        let mut connection = self.pool.acquire().await?.detach();
        // The same class as the insert lock's, keyed by the schema and the name: stores in other
        // schemas of the database are other queues.
        let held: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(1651470196, hashtext(current_schema() || ':' || $1))",
        )
        .bind(name)
        .fetch_one(&mut connection)
        .await?;
        if !held {
            let _ = connection.close().await;
            return Ok(None);
        }
        Ok(Some(Exclusive::held_until(move || async move {
            // Closing the session ends its locks, whether or not the unlock got through first.
            let _ = connection.close().await;
        })))
    }
}
