//! `claim`: the earliest runnable head of a lane, taken with `FOR UPDATE SKIP LOCKED`, and the store's
//! side of the claim loop the SQL stores share (`sql::claim`).

use sqlx::Row;

use super::PostgresStore;
use super::retry::Failure;
use crate::store::sql::{self, Claimed, SqlStore, millis, timestamp};
use crate::store::{Lease, Outcome, StoreError};
use crate::time::Timestamp;

impl SqlStore for PostgresStore {
    async fn claim_row(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claimed, StoreError> {
        with_retry!(
            self.retry("claim", self.patient()),
            self.try_claim(owner, now, lease_until)
        )
    }

    async fn record(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.finish_job(lease, outcome, output, now).await
    }
}

impl PostgresStore {
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
                 RETURNING j.job_id, j.dedupe_key, j.lane, j.kind, j.metadata::text AS metadata,
                           j.created_at_ms, j.attempts, j.payload::text AS payload
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
        if row.try_get::<Option<String>, _>("job_id")?.is_none() {
            let next: Option<i64> = row.try_get("next_retry_at_ms")?;
            return Ok(Claimed::Idle(next.map(timestamp)));
        }
        Ok(Claimed::Job(sql::claimed(&row)?))
    }
}
