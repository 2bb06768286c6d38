//! Leases: renewing them, recording how an attempt ended (once, even across a lost connection), taking
//! back expired ones, and the finished-job retention bound those last two enforce.

use sqlx::{Postgres, Row, Transaction};

use super::PostgresStore;
use super::retry::Failure;
use crate::job::JobSnapshot;
use crate::store::sql::{bigint, millis, snapshot, snapshot_columns};
use crate::store::{Lease, Outcome, StoreError};
use crate::time::Timestamp;

impl PostgresStore {
    /// `renew`: extends the lease if the job still runs under it.
    pub(super) async fn renew_lease(
        &self,
        lease: &Lease,
        until: Timestamp,
    ) -> Result<(), StoreError> {
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

    /// `finish`: records `outcome`, retrying a lost connection without ever recording it twice.
    ///
    /// A try that failed may have been applied anyway (the connection died after the server committed),
    /// and simply running it again would then answer `LeaseLost`, and the job would run again once its
    /// lease expired. So after a failed try, the next one first looks at the job: already showing this
    /// outcome for this lease means it was recorded; still running under the lease means it was not.
    pub(super) async fn record(
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
    pub(super) async fn try_reclaim(
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
}
