//! `insert`: dedupe, capacity and the job, in one transaction under the insert lock.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};
use tracing::warn;

use super::PostgresStore;
use super::retry::{Failure, Patience};
use crate::chain::Chain;
use crate::job::{Job, JobId, Submitted};
use crate::store::sql::{self, bigint, millis};
use crate::store::{Admission, StoreError};

/// Dedupe keys older than the dedupe window are deleted once every this many accepted inserts of a
/// process (whether a key is still remembered is decided exactly at insert time, whatever is left).
const FORGET_EVERY: u64 = 100;

impl PostgresStore {
    /// `insert`: serializes the payload, then tries (once more after a dropped connection).
    pub(super) async fn insert_job<P: Serialize>(
        &self,
        job: Job<P>,
        capacity: usize,
        admission: &Admission,
    ) -> Result<Submitted, StoreError> {
        let (payload, metadata) = encode(&job)?;
        let answer = with_retry!(
            self.retry("insert", Patience::Once),
            self.try_insert(&job, (&payload, &metadata), capacity, admission)
        )?;
        if matches!(answer, Submitted::Accepted(_))
            && self.accepted.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1
        {
            self.forget_old_deliveries().await;
        }
        Ok(answer)
    }

    /// One try of `insert`, with the payload and metadata already serialized.
    async fn try_insert<P>(
        &self,
        job: &Job<P>,
        (payload, metadata): (&str, &str),
        capacity: usize,
        admission: &Admission,
    ) -> Result<Submitted, Failure> {
        let mut tx = self.pool.begin().await?;
        // Not in a custom `BEGIN`: sqlx would hand a connection whose lock wait timed out back to the
        // pool still inside the failed transaction.
        sqlx::raw_sql(self.insert_lock.clone())
            .execute(&mut *tx)
            .await?;
        // The lock is held: the answer is final from here, so this is where the submission is admitted,
        // or given up if its submitter stopped waiting.
        if !admission.admit() {
            tx.rollback().await?;
            return Err(Failure::Store(StoreError::withdrawn(&job.id)));
        }
        let duplicate: Option<String> = sqlx::query_scalar(
            "SELECT job_id FROM (
                 SELECT 1 AS rank, job_id FROM booty_jobs WHERE dedupe_key = $1
                 UNION ALL
                 SELECT 2, d.job_id FROM booty_dedupe_keys AS d
                  WHERE d.dedupe_key = $1
                    AND (SELECT count(*) FROM (
                             SELECT 1 FROM booty_dedupe_keys AS newer WHERE newer.seq > d.seq LIMIT $3
                         ) AS newer_rows) < $3
                 UNION ALL
                 SELECT 3, job_id FROM booty_jobs WHERE job_id = $2
             ) AS known
             ORDER BY rank LIMIT 1",
        )
        .bind(&job.dedupe_key)
        .bind(job.id.as_str())
        .bind(bigint(self.options.retention.dedupe_capacity))
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(id) = duplicate {
            tx.rollback().await?;
            return Ok(Submitted::Duplicate(JobId::from(id)));
        }
        // Stores the job if fewer than `capacity` wait, and remembers its dedupe key (a forgotten row for
        // the same key is taken over and moved to the end of the window).
        let stored: i64 = sqlx::query_scalar(
            "WITH job AS (
                 INSERT INTO booty_jobs
                     (job_id, dedupe_key, lane, kind, metadata, state, payload, created_at_ms)
                 SELECT $1, $2, $3, $4, $5::json, 'queued', $6::json, $7
                  WHERE (SELECT count(*) FROM (
                             SELECT 1 FROM booty_jobs WHERE state IN ('queued', 'retrying') LIMIT $8
                         ) AS waiting) < $8
                 RETURNING job_id, dedupe_key
             ), remembered AS (
                 INSERT INTO booty_dedupe_keys (dedupe_key, job_id)
                 SELECT dedupe_key, job_id FROM job
                 ON CONFLICT (dedupe_key) DO UPDATE SET job_id = EXCLUDED.job_id, seq = DEFAULT
             )
             SELECT count(*) FROM job",
        )
        .bind(job.id.as_str())
        .bind(&job.dedupe_key)
        .bind(job.lane.as_deref())
        .bind(&job.kind)
        .bind(metadata)
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

    /// Deletes remembered dedupe keys that are out of the dedupe window and whose job is gone. Only a
    /// bound on the table: `insert` decides whether a key is remembered on its own.
    async fn forget_old_deliveries(&self) {
        let forgotten = sqlx::query(
            "DELETE FROM booty_dedupe_keys AS d
              WHERE d.seq <= (SELECT seq FROM booty_dedupe_keys ORDER BY seq DESC OFFSET $1 LIMIT 1)
                AND NOT EXISTS (SELECT 1 FROM booty_jobs AS j WHERE j.dedupe_key = d.dedupe_key)",
        )
        .bind(bigint(self.options.retention.dedupe_capacity))
        .execute(&self.pool)
        .await;
        if let Err(err) = forgotten {
            warn!(store = "postgres", error = %Chain(&err), "store_cleanup_failed");
        }
    }
}

/// The insert lock: the serialisation point `postgres.rs` explains, after which every statement sees
/// every insert committed before. Its key is the pair ("boot" in ASCII, the oid of the `booty_jobs` the
/// search path resolves), so queues in other schemas never wait for this one.
///
/// Waiting for it is bounded by `lock_timeout` (the acquire timeout): a process that stalls while
/// holding it (the server ends its session after [`IDLE_IN_TRANSACTION`](super::IDLE_IN_TRANSACTION))
/// makes the others' submissions fail with a `503`, not hang.
pub(super) fn insert_lock(wait: Duration) -> SqlStr {
    let millis = wait.as_millis().max(1);
    AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = {millis}; \
         SELECT pg_advisory_xact_lock(1651470196, 'booty_jobs'::regclass::oid::int)"
    ))
    .into_sql_str()
}

/// A job's payload and metadata as the JSON PostgreSQL keeps, or the store's error naming the job.
fn encode<P: Serialize>(job: &Job<P>) -> Result<(String, String), StoreError> {
    let payload = serde_json::to_string(&*job.payload).map_err(|err| {
        sql::unstorable(
            "postgres",
            &job.id,
            &format!("the payload does not serialize to JSON: {err}"),
        )
    })?;
    Ok((payload, sql::encode_metadata("postgres", job)?))
}
