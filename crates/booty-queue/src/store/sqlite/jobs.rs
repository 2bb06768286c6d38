//! Claims and leases: taking the next runnable job, renewing its lease, recording how an attempt ended,
//! taking back expired or orphaned jobs, and the finished-job retention bound.

use serde::de::DeserializeOwned;
use sqlx::SqliteConnection;
use tracing::error;

use super::connection::Tx;
use super::{SqliteStore, backend};
use crate::job::{Job, JobSnapshot};
use crate::store::sql::{self, bigint, millis, snapshot, snapshot_columns, timestamp};
use crate::store::{Claim, Lease, Outcome, StoreError};
use crate::time::Timestamp;
use crate::worker::Chain;

impl SqliteStore {
    /// `claim`: takes the next runnable job and deserializes its payload; a job whose payload does not
    /// deserialize is failed, and the next one taken.
    pub(super) async fn claim_job<P: DeserializeOwned>(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claim<P>, StoreError> {
        loop {
            self.files.check("claim")?;
            let claimed = self
                .try_claim(owner, now, lease_until)
                .await
                .map_err(|err| backend("claim", err))?;
            let Some(job) = claimed else {
                let next: Option<i64> = sqlx::query_scalar(
                    "SELECT min(retry_at_ms) FROM booty_jobs WHERE state = 'retrying'",
                )
                .fetch_one(&self.pool)
                .await
                .map_err(|err| backend("claim", err))?;
                return Ok(Claim::Idle {
                    next_retry_at: next.map(timestamp),
                });
            };
            match sql::decode_payload(job) {
                Ok(job) => return Ok(Claim::Job(job)),
                Err(undecodable) => {
                    let (job, error) = *undecodable;
                    self.fail_undecodable(&job, owner, error, now).await;
                }
            }
        }
    }

    /// The earliest runnable head of a lane, taken in one statement; its payload still the stored JSON.
    ///
    /// In a transaction of its own, so the claim counts only once `COMMIT` said so: on its own, the
    /// statement would commit when sqlx resets it after the first row, and a commit that fails there
    /// (a full disk) goes unreported, so the job was handed out while the database still had it
    /// `queued`, and every worker claimed it again.
    async fn try_claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Option<Job<String>>, sqlx::Error> {
        let mut tx = Tx::begin(&self.pool).await?;
        let row = sqlx::query(
            "UPDATE booty_jobs
                SET state = 'running', attempts = attempts + 1, started_at_ms = ?1,
                    retry_at_ms = NULL, lease_owner = ?2, lease_until_ms = ?3
              WHERE seq = (
                    SELECT j.seq FROM booty_jobs AS j
                     WHERE j.state IN ('queued', 'retrying')
                       AND (j.state = 'queued' OR j.retry_at_ms <= ?1)
                       AND (j.lane IS NULL OR NOT EXISTS (
                            SELECT 1 FROM booty_jobs AS earlier
                             WHERE earlier.state IN ('queued', 'running', 'retrying')
                               AND earlier.lane = j.lane AND earlier.seq < j.seq))
                     ORDER BY j.seq
                     LIMIT 1)
             RETURNING job_id, delivery_id, issue_number, repository, created_at_ms, attempts, payload",
        )
        .bind(millis(now))
        .bind(owner)
        .bind(millis(lease_until))
        .fetch_optional(tx.connection())
        .await?;
        let job = row.as_ref().map(sql::claimed).transpose()?;
        tx.commit().await?;
        Ok(job)
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
        let recorded = self.record(&lease, &Outcome::Failed { error }, now).await;
        if let Err(err) = recorded {
            error!(job_id = %job.id, issue_number = job.issue_number, delivery_id = job.delivery_id,
                attempt = job.attempt, error = %Chain(&err), "job_not_recorded");
        }
    }

    /// `renew`: extends the lease if the job still runs under it.
    pub(super) async fn renew_lease(
        &self,
        lease: &Lease,
        until: Timestamp,
    ) -> Result<(), StoreError> {
        self.files.check("renew")?;
        let renewed = async {
            let mut tx = Tx::begin(&self.pool).await?;
            let held = sqlx::query(
                "UPDATE booty_jobs SET lease_until_ms = ?4
                  WHERE job_id = ?1 AND state = 'running' AND lease_owner = ?2 AND attempts = ?3",
            )
            .bind(lease.job_id.as_str())
            .bind(&lease.owner)
            .bind(i64::from(lease.attempt))
            .bind(millis(until))
            .execute(tx.connection())
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(held.rows_affected())
        };
        if renewed.await.map_err(|err| backend("renew", err))? == 1 {
            Ok(())
        } else {
            Err(StoreError::lease_lost(lease))
        }
    }

    /// `finish`: records `outcome` if the job still runs under `lease`, in one transaction with the
    /// retention bound when the job becomes final.
    pub(super) async fn record(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let (state, error, retry_at) = match outcome {
            Outcome::Succeeded => ("succeeded", None, None),
            Outcome::Failed { error } => ("failed", Some(error.as_str()), None),
            Outcome::Retry { at, error } => ("retrying", Some(error.as_str()), Some(millis(*at))),
            Outcome::Released => ("queued", None, None),
        };
        let is_final = matches!(outcome, Outcome::Succeeded | Outcome::Failed { .. });
        self.files.check("finish")?;
        let written = async {
            let mut tx = Tx::begin(&self.pool).await?;
            // Final: finished now, numbered in finishing order, payload dropped. Retry: `retrying`
            // until `retry_at`, error kept. Released: back to `queued`, error as it was.
            let held = sqlx::query(
                "UPDATE booty_jobs
                    SET state = ?4, lease_until_ms = NULL,
                        error = CASE WHEN ?4 = 'queued' THEN error ELSE ?5 END,
                        retry_at_ms = ?6,
                        finished_at_ms = CASE WHEN ?7 THEN ?8 END,
                        finished_seq = CASE WHEN ?7
                            THEN (SELECT coalesce(max(finished_seq), 0) + 1 FROM booty_jobs) END,
                        payload = CASE WHEN ?7 THEN NULL ELSE payload END
                  WHERE job_id = ?1 AND state = 'running' AND lease_owner = ?2 AND attempts = ?3",
            )
            .bind(lease.job_id.as_str())
            .bind(&lease.owner)
            .bind(i64::from(lease.attempt))
            .bind(state)
            .bind(error)
            .bind(retry_at)
            .bind(is_final)
            .bind(millis(now))
            .execute(tx.connection())
            .await?;
            if held.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            if is_final {
                self.evict_finished(tx.connection()).await?;
            }
            tx.commit().await?;
            Ok(true)
        };
        match written.await {
            Ok(true) => Ok(()),
            Ok(false) => Err(StoreError::lease_lost(lease)),
            Err(err) => Err(backend("finish", err)),
        }
    }

    /// Drops the finished jobs beyond the newest `retained_finished`, in the transaction that made one
    /// final.
    async fn evict_finished(&self, connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM booty_jobs
              WHERE finished_seq IS NOT NULL
                AND finished_seq <= (SELECT finished_seq FROM booty_jobs WHERE finished_seq IS NOT NULL
                                      ORDER BY finished_seq DESC LIMIT 1 OFFSET ?1)",
        )
        .bind(bigint(self.options.retained_finished))
        .execute(connection)
        .await?;
        Ok(())
    }

    /// `reclaim_expired` (leases ended by `expired_by`) and `recover` (every running job, `None`): each
    /// goes back to `queued`, or fails if it had used `max_attempts`. Returns them in their new state.
    pub(super) async fn take_back(
        &self,
        expired_by: Option<Timestamp>,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, sqlx::Error> {
        let why = match expired_by {
            Some(_) => "its lease expired",
            None => "the queue restarted",
        };
        let mut tx = Tx::begin(&self.pool).await?;
        let running: Vec<i64> = sqlx::query_scalar(
            "SELECT seq FROM booty_jobs
              WHERE state = 'running' AND (?1 IS NULL OR lease_until_ms <= ?1)
              ORDER BY seq",
        )
        .bind(expired_by.map(millis))
        .fetch_all(tx.connection())
        .await?;
        let mut taken = Vec::with_capacity(running.len());
        for seq in running {
            let row = sqlx::query(concat!(
                "UPDATE booty_jobs
                    SET state = CASE WHEN attempts >= ?2 THEN 'failed' ELSE 'queued' END,
                        lease_owner = NULL, lease_until_ms = NULL,
                        finished_at_ms = CASE WHEN attempts >= ?2 THEN ?3 END,
                        error = CASE WHEN attempts >= ?2
                                     THEN 'attempt ' || attempts || ' of ' || ?2 || ' was lost: ' || ?4
                                     ELSE error END,
                        payload = CASE WHEN attempts >= ?2 THEN NULL ELSE payload END,
                        finished_seq = CASE WHEN attempts >= ?2
                            THEN (SELECT coalesce(max(finished_seq), 0) + 1 FROM booty_jobs) END
                  WHERE seq = ?1
                 RETURNING ",
                snapshot_columns!()
            ))
            .bind(seq)
            .bind(i64::from(max_attempts))
            .bind(millis(now))
            .bind(why)
            .fetch_one(tx.connection())
            .await?;
            taken.push(snapshot(&row)?);
        }
        if taken.iter().any(|job| job.state.is_final()) {
            self.evict_finished(tx.connection()).await?;
        }
        tx.commit().await?;
        Ok(taken)
    }
}
