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
//! - **Dedupe is two unique constraints:** `booty_jobs.delivery_id` (a delivery has at most one stored
//!   job) and `booty_deliveries.delivery_id` (the deliveries remembered after their job is gone).
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

mod listen;
mod migrate;
mod options;
mod retry;
mod rows;

use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, PgPool, Postgres, Row, SqlSafeStr, SqlStr,
    Transaction,
};
use tokio::sync::Notify;
use tracing::{error, warn};

use crate::job::{Job, JobId, JobSnapshot, Submitted};
use crate::store::{Claim, Lease, Outcome, Store, StoreError, Wakeups};
use crate::time::Timestamp;
use crate::worker::Chain;

use listen::Listener;
use retry::{Failure, Health, Patience, Retry};
use rows::{bigint, millis, snapshot, snapshot_columns, timestamp};

pub use options::{PostgresError, PostgresOptions};

/// Runs `try` until the retry policy breaks with an answer.
macro_rules! with_retry {
    ($retry:expr, $try:expr) => {{
        let mut retry = $retry;
        loop {
            if let ControlFlow::Break(answer) = retry.judge($try.await).await {
                break answer;
            }
        }
    }};
}

/// The server ends a session that has sat this long inside a transaction. The store's transactions
/// never wait on the client for more than a round trip.
const IDLE_IN_TRANSACTION: &str = "10s";

/// Deliveries older than the dedupe window are deleted once every this many accepted inserts of a
/// process (whether a delivery is still remembered is decided exactly at insert time, whatever is left).
const FORGET_EVERY: u64 = 100;

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
            source: retry::cause(source),
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

    /// One try of `insert`, with the payload already serialized.
    async fn try_insert<P>(
        &self,
        job: &Job<P>,
        payload: &str,
        capacity: usize,
    ) -> Result<Submitted, Failure> {
        let issue_number = job
            .issue_number
            .map(i64::try_from)
            .transpose()
            .map_err(|_| {
                Failure::Store(StoreError::Backend {
                    store: "postgres",
                    operation: "insert",
                    source: format!(
                        "delivery {}: issue number does not fit a BIGINT",
                        job.delivery_id
                    )
                    .into(),
                })
            })?;
        let mut tx = self.pool.begin().await?;
        // Not in a custom `BEGIN`: sqlx would hand a connection whose lock wait timed out back to the
        // pool still inside the failed transaction.
        sqlx::raw_sql(self.insert_lock.clone())
            .execute(&mut *tx)
            .await?;
        let duplicate: Option<String> = sqlx::query_scalar(
            "SELECT job_id FROM (
                 SELECT 1 AS rank, job_id FROM booty_jobs WHERE delivery_id = $1
                 UNION ALL
                 SELECT 2, d.job_id FROM booty_deliveries AS d
                  WHERE d.delivery_id = $1
                    AND (SELECT count(*) FROM (
                             SELECT 1 FROM booty_deliveries AS newer WHERE newer.seq > d.seq LIMIT $3
                         ) AS newer_rows) < $3
                 UNION ALL
                 SELECT 3, job_id FROM booty_jobs WHERE job_id = $2
             ) AS known
             ORDER BY rank LIMIT 1",
        )
        .bind(&job.delivery_id)
        .bind(job.id.as_str())
        .bind(bigint(self.options.dedupe_capacity))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = duplicate {
            tx.rollback().await?;
            return Ok(Submitted::Duplicate(JobId::from(id)));
        }
        // Stores the job if fewer than `capacity` wait, and remembers its delivery (a forgotten row for
        // the same delivery is taken over and moved to the end of the window).
        let stored: i64 = sqlx::query_scalar(
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
        .bind(job.id.as_str())
        .bind(&job.delivery_id)
        .bind(issue_number)
        .bind(job.repository.as_deref())
        .bind(job.ordering_key())
        .bind(payload)
        .bind(millis(job.created_at))
        .bind(bigint(capacity))
        .fetch_one(&mut *tx)
        .await?;
        if stored == 0 {
            tx.rollback().await?;
            return Ok(Submitted::Busy);
        }
        tx.commit().await.map_err(Failure::Commit)?;
        Ok(Submitted::Accepted(job.id.clone()))
    }

    /// Deletes remembered deliveries that are out of the dedupe window and whose job is gone. Only a
    /// bound on the table: `insert` decides whether a delivery is remembered on its own.
    async fn forget_old_deliveries(&self) {
        let forgotten = sqlx::query(
            "DELETE FROM booty_deliveries AS d
              WHERE d.seq <= (SELECT seq FROM booty_deliveries ORDER BY seq DESC OFFSET $1 LIMIT 1)
                AND NOT EXISTS (SELECT 1 FROM booty_jobs AS j WHERE j.delivery_id = d.delivery_id)",
        )
        .bind(bigint(self.options.dedupe_capacity))
        .execute(&self.pool)
        .await;
        if let Err(err) = forgotten {
            warn!(store = "postgres", error = %Chain(&err), "store_cleanup_failed");
        }
    }

    /// One try of `claim`: the job as stored (payload still JSON), or when the next retry falls due.
    async fn try_claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claimed, Failure> {
        // `next` is the earliest runnable head of a lane that no other claimer holds; `claimed` takes it.
        // The outer query answers one row either way, with the earliest retry for the idle case.
        let row = sqlx::query(
            "WITH next AS (
                 SELECT j.seq FROM booty_jobs AS j
                  WHERE (j.state = 'queued' OR (j.state = 'retrying' AND j.retry_at_ms <= $1))
                    AND (j.lane IS NULL OR NOT EXISTS (
                         SELECT 1 FROM booty_jobs AS earlier
                          WHERE earlier.lane = j.lane AND earlier.seq < j.seq
                            AND earlier.state IN ('queued', 'running', 'retrying')))
                  ORDER BY j.seq
                  LIMIT 1
                  FOR UPDATE SKIP LOCKED
             ), claimed AS (
                 UPDATE booty_jobs AS j
                    SET state = 'running', attempts = j.attempts + 1, started_at_ms = $1,
                        retry_at_ms = NULL, lease_owner = $2, lease_until_ms = $3
                   FROM next
                  WHERE j.seq = next.seq
                 RETURNING j.job_id, j.delivery_id, j.issue_number, j.repository, j.created_at_ms,
                           j.attempts, j.payload::text AS payload
             )
             SELECT claimed.*,
                    (SELECT min(retry_at_ms) FROM booty_jobs WHERE state = 'retrying') AS next_retry_at_ms
               FROM (SELECT 1) AS one LEFT JOIN claimed ON true",
        )
        .bind(millis(now))
        .bind(owner)
        .bind(millis(lease_until))
        .fetch_one(&self.pool)
        .await?;
        let Some(job_id) = row.try_get::<Option<String>, _>("job_id")? else {
            let next: Option<i64> = row.try_get("next_retry_at_ms")?;
            return Ok(Claimed::Idle(next.map(timestamp)));
        };
        let attempt: i32 = row.try_get("attempts")?;
        let issue_number: Option<i64> = row.try_get("issue_number")?;
        Ok(Claimed::Job(Job {
            id: JobId::from(job_id),
            delivery_id: row.try_get("delivery_id")?,
            // Written from a u64 by `insert`; a negative number would be a row someone else wrote.
            issue_number: issue_number.and_then(|n| u64::try_from(n).ok()),
            repository: row.try_get("repository")?,
            created_at: timestamp(row.try_get("created_at_ms")?),
            attempt: u32::try_from(attempt).unwrap_or(0),
            payload: Arc::new(row.try_get("payload")?),
        }))
    }

    /// A claimed job whose payload does not deserialize can never run: it fails at once, with the reason.
    async fn fail_undecodable(
        &self,
        job: &Job<String>,
        owner: &str,
        error: String,
        now: Timestamp,
    ) {
        let lease = Lease {
            job_id: job.id.clone(),
            owner: owner.to_owned(),
            attempt: job.attempt,
        };
        error!(job_id = %job.id, issue_number = job.issue_number, delivery_id = job.delivery_id,
            attempt = job.attempt, error, "job_failed");
        let recorded = self.record(&lease, Outcome::Failed { error }, now).await;
        if let Err(err) = recorded {
            error!(job_id = %job.id, issue_number = job.issue_number, delivery_id = job.delivery_id,
                attempt = job.attempt, error = %Chain(&err), "job_not_recorded");
        }
    }

    /// `finish`: records `outcome`, retrying a lost connection without ever recording it twice.
    ///
    /// A try that failed may have been applied anyway (the connection died after the server committed),
    /// and simply running it again would then answer `LeaseLost`, and the job would run again once its
    /// lease expired. So after a failed try, the next one first looks at the job: already showing this
    /// outcome for this lease means it was recorded; still running under the lease means it was not.
    async fn record(
        &self,
        lease: &Lease,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut uncertain = false;
        with_retry!(self.retry("finish", self.patient()), async {
            if uncertain {
                match self.recorded(lease, &outcome).await? {
                    Some(true) => return Ok(()),
                    Some(false) => {}
                    None => return Err(Failure::Store(StoreError::lease_lost(lease))),
                }
            }
            let written = self.write_outcome(lease, &outcome, now).await;
            match written {
                // Checked on the next try, so even a failed COMMIT can be retried safely.
                Err(Failure::Sql(err) | Failure::Commit(err)) => {
                    uncertain = true;
                    Err(Failure::Sql(err))
                }
                other => other,
            }
        })
    }

    /// Whether `outcome` is recorded for `lease` (`Some(true)`), not yet, the job still running under it
    /// (`Some(false)`), or the lease is gone (`None`).
    async fn recorded(&self, lease: &Lease, outcome: &Outcome) -> Result<Option<bool>, Failure> {
        let row =
            sqlx::query("SELECT state, lease_owner, attempts FROM booty_jobs WHERE job_id = $1")
                .bind(lease.job_id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else {
            // Gone: only a final job is ever deleted, so a final outcome was recorded (and the job
            // since dropped by the retention bound).
            let is_final = matches!(outcome, Outcome::Succeeded | Outcome::Failed { .. });
            return Ok(is_final.then_some(true));
        };
        let state: String = row.try_get("state")?;
        let owner: Option<String> = row.try_get("lease_owner")?;
        let attempts: i32 = row.try_get("attempts")?;
        if owner.as_deref() != Some(lease.owner.as_str())
            || i64::from(attempts) != i64::from(lease.attempt)
        {
            return Ok(None);
        }
        let expected = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed { .. } => "failed",
            Outcome::Retry { .. } => "retrying",
            Outcome::Released => "queued",
        };
        Ok(match state.as_str() {
            "running" => Some(false),
            state if state == expected => Some(true),
            _ => None,
        })
    }

    /// One try of writing `outcome`, fenced by the lease.
    async fn write_outcome(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<(), Failure> {
        let attempt = i64::from(lease.attempt);
        let lost = || Failure::Store(StoreError::lease_lost(lease));
        let (state, error) = match outcome {
            Outcome::Succeeded => ("succeeded", None),
            Outcome::Failed { error } => ("failed", Some(error)),
            Outcome::Retry { at, error } => {
                let held = sqlx::query(
                    "UPDATE booty_jobs
                        SET state = 'retrying', retry_at_ms = $4, error = $5, lease_until_ms = NULL
                      WHERE job_id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3",
                )
                .bind(lease.job_id.as_str())
                .bind(&lease.owner)
                .bind(attempt)
                .bind(millis(*at))
                .bind(error)
                .execute(&self.pool)
                .await?;
                return if held.rows_affected() == 1 {
                    Ok(())
                } else {
                    Err(lost())
                };
            }
            Outcome::Released => {
                let held = sqlx::query(
                    "UPDATE booty_jobs SET state = 'queued', lease_until_ms = NULL
                      WHERE job_id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3",
                )
                .bind(lease.job_id.as_str())
                .bind(&lease.owner)
                .bind(attempt)
                .execute(&self.pool)
                .await?;
                return if held.rows_affected() == 1 {
                    Ok(())
                } else {
                    Err(lost())
                };
            }
        };
        let mut tx = self.pool.begin().await?;
        let held = sqlx::query(
            "UPDATE booty_jobs
                SET state = $4, finished_at_ms = $5, error = $6, payload = NULL, lease_until_ms = NULL,
                    retry_at_ms = NULL, finished_seq = nextval('booty_jobs_finished_seq')
              WHERE job_id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3",
        )
        .bind(lease.job_id.as_str())
        .bind(&lease.owner)
        .bind(attempt)
        .bind(state)
        .bind(millis(now))
        .bind(error)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() != 1 {
            tx.rollback().await?;
            return Err(lost());
        }
        self.evict_finished(&mut tx).await?;
        tx.commit().await.map_err(Failure::Commit)
    }

    /// Drops the finished jobs beyond the newest `retained_finished`, in the transaction that made one
    /// final. The cutoff is found without locking the retained rows; of the rows to drop, those another
    /// transaction holds are skipped (it is deleting them, or the next call will). Concurrent finishes
    /// in several processes can each leave one job over the bound until the next finish.
    async fn evict_finished(&self, tx: &mut Transaction<'_, Postgres>) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM booty_jobs WHERE seq IN (
                 SELECT seq FROM booty_jobs
                  WHERE finished_seq <= (SELECT finished_seq FROM booty_jobs WHERE finished_seq IS NOT NULL
                                          ORDER BY finished_seq DESC OFFSET $1 LIMIT 1)
                  FOR UPDATE SKIP LOCKED)",
        )
        .bind(bigint(self.options.retained_finished))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// One try of `reclaim_expired` (and `recover`, which is the same for a shared store).
    async fn try_reclaim(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, Failure> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(concat!(
            "WITH expired AS (
                 SELECT seq FROM booty_jobs
                  WHERE state = 'running' AND lease_until_ms <= $1
                  FOR UPDATE SKIP LOCKED
             ), taken AS (
                 UPDATE booty_jobs AS j
                    SET state = CASE WHEN j.attempts >= $2 THEN 'failed' ELSE 'queued' END,
                        lease_owner = NULL, lease_until_ms = NULL,
                        finished_at_ms = CASE WHEN j.attempts >= $2 THEN $1 END,
                        error = CASE WHEN j.attempts >= $2
                                     THEN format('attempt %s of %s was lost: its lease expired', j.attempts, $2)
                                     ELSE j.error END,
                        payload = CASE WHEN j.attempts >= $2 THEN NULL ELSE j.payload END,
                        finished_seq = CASE WHEN j.attempts >= $2
                                            THEN nextval('booty_jobs_finished_seq') END
                   FROM expired
                  WHERE j.seq = expired.seq
                 RETURNING j.*
             )
             SELECT ",
            snapshot_columns!(),
            " FROM taken ORDER BY seq"
        ))
        .bind(millis(now))
        .bind(i64::from(max_attempts))
        .fetch_all(&mut *tx)
        .await?;
        let taken = rows.iter().map(snapshot).collect::<Result<Vec<_>, _>>()?;
        if taken.iter().any(|job| job.state.is_final()) {
            self.evict_finished(&mut tx).await?;
        }
        tx.commit().await.map_err(Failure::Commit)?;
        Ok(taken)
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

    async fn try_list(&self, limit: usize) -> Result<Vec<JobSnapshot>, Failure> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM booty_jobs ORDER BY seq DESC LIMIT $1"
        ))
        .bind(bigint(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(snapshot).collect::<Result<_, _>>()?)
    }
}

/// The insert lock: the serialisation point the module documentation explains, after which every
/// statement sees every insert committed before. Its key is the pair ("boot" in ASCII, the
/// oid of the `booty_jobs` the search path resolves), so queues in other schemas never wait for this one.
///
/// Waiting for it is bounded by `lock_timeout` (the acquire timeout): a process that stalls while holding
/// it (its sessions also end after [`IDLE_IN_TRANSACTION`]) makes the others' submissions fail with a
/// `503`, not hang.
fn insert_lock(wait: Duration) -> SqlStr {
    let millis = wait.as_millis().max(1);
    AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = {millis}; \
         SELECT pg_advisory_xact_lock(1651470196, 'booty_jobs'::regclass::oid::int)"
    ))
    .into_sql_str()
}

/// The database a connection uses: the one named in the URL, else the user's name (PostgreSQL's rule).
fn database_name(connect: &PgConnectOptions) -> String {
    connect
        .get_database()
        .unwrap_or_else(|| connect.get_username())
        .to_owned()
}

/// What one try of `claim` found.
enum Claimed {
    /// A job, its payload still the stored JSON.
    Job(Job<String>),
    /// Nothing runnable; the earliest retry, if any.
    Idle(Option<Timestamp>),
}

impl<P> Store<P> for PostgresStore
where
    P: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    async fn insert(&self, job: Job<P>, capacity: usize) -> Result<Submitted, StoreError> {
        let payload = serde_json::to_string(&*job.payload).map_err(|err| StoreError::Backend {
            store: "postgres",
            operation: "insert",
            source: format!(
                "delivery {}: the payload does not serialize to JSON: {err}",
                job.delivery_id
            )
            .into(),
        })?;
        let answer = with_retry!(
            self.retry("insert", Patience::Once),
            self.try_insert(&job, &payload, capacity)
        )?;
        if matches!(answer, Submitted::Accepted(_))
            && self.accepted.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1
        {
            self.forget_old_deliveries().await;
        }
        Ok(answer)
    }

    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claim<P>, StoreError> {
        loop {
            let claimed = with_retry!(
                self.retry("claim", self.patient()),
                self.try_claim(owner, now, lease_until)
            )?;
            let job = match claimed {
                Claimed::Job(job) => job,
                Claimed::Idle(next_retry_at) => return Ok(Claim::Idle { next_retry_at }),
            };
            match serde_json::from_str::<P>(&job.payload) {
                Ok(payload) => {
                    return Ok(Claim::Job(Job {
                        id: job.id,
                        delivery_id: job.delivery_id,
                        issue_number: job.issue_number,
                        repository: job.repository,
                        created_at: job.created_at,
                        attempt: job.attempt,
                        payload: Arc::new(payload),
                    }));
                }
                Err(err) => {
                    let error = format!("the stored payload does not deserialize: {err}");
                    self.fail_undecodable(&job, owner, error, now).await;
                }
            }
        }
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<(), StoreError> {
        with_retry!(self.retry("renew", self.patient()), async {
            let held = sqlx::query(
                "UPDATE booty_jobs SET lease_until_ms = $4
                  WHERE job_id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3",
            )
            .bind(lease.job_id.as_str())
            .bind(&lease.owner)
            .bind(i64::from(lease.attempt))
            .bind(millis(until))
            .execute(&self.pool)
            .await?;
            if held.rows_affected() == 1 {
                Ok(())
            } else {
                Err(Failure::Store(StoreError::lease_lost(lease)))
            }
        })
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.record(lease, outcome, now).await
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

    async fn list(&self, limit: usize) -> Result<Vec<JobSnapshot>, StoreError> {
        with_retry!(self.retry("list", Patience::Once), self.try_list(limit))
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
}
