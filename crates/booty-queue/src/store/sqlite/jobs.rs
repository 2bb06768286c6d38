//! Claims and leases: taking the next runnable job, renewing its lease, recording how an attempt ended,
//! taking back expired or orphaned jobs, and the finished-job retention bound.

use sqlx::SqliteConnection;

use super::connection::Tx;
use super::{SqliteStore, backend};
use crate::job::{Job, JobSnapshot};
use crate::store::sql::{
    self, Claimed, SqlStore, bigint, millis, snapshot, snapshot_columns, timestamp,
};
use crate::store::{LEASE_EXPIRED, Lease, Outcome, RESTARTED, StoreError};
use crate::time::Timestamp;

impl SqlStore for SqliteStore {
    async fn claim_row(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claimed, StoreError> {
        self.files.check("claim")?;
        let claimed = self
            .try_claim(owner, now, lease_until)
            .await
            .map_err(|err| backend("claim", err))?;
        if let Some(job) = claimed {
            return Ok(Claimed::Job(job));
        }
        let next: Option<i64> =
            sqlx::query_scalar("SELECT min(retry_at_ms) FROM booty_jobs WHERE state = 'retrying'")
                .fetch_one(&self.pool)
                .await
                .map_err(|err| backend("claim", err))?;
        Ok(Claimed::Idle(next.map(timestamp)))
    }

    /// `finish`: records `outcome` if the job still runs under `lease`, in one transaction with the
    /// retention bound when the job becomes final.
    async fn record(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.files.check("finish")?;
        let written = async {
            let mut tx = Tx::begin(&self.pool).await?;
            let held: Option<i64> = sqlx::query_scalar(
                "SELECT seq FROM booty_jobs
                  WHERE job_id = ?1 AND state = 'running' AND lease_owner = ?2 AND attempts = ?3",
            )
            .bind(lease.job_id.as_str())
            .bind(&lease.owner)
            .bind(i64::from(lease.attempt))
            .fetch_optional(tx.connection())
            .await?;
            let Some(seq) = held else {
                tx.rollback().await?;
                return Ok(false);
            };
            apply(tx.connection(), seq, outcome, now, false).await?;
            if outcome.is_final() {
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
}

impl SqliteStore {
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
             RETURNING job_id, dedupe_key, lane, kind, metadata, created_at_ms, attempts, payload",
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

    /// Drops the finished jobs beyond the newest `retained_finished`, in the transaction that made one
    /// final.
    async fn evict_finished(&self, connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        sqlx::query(
            "DELETE FROM booty_jobs
              WHERE finished_seq IS NOT NULL
                AND finished_seq <= (SELECT finished_seq FROM booty_jobs WHERE finished_seq IS NOT NULL
                                      ORDER BY finished_seq DESC LIMIT 1 OFFSET ?1)",
        )
        .bind(bigint(self.options.retention.retained_finished))
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
            Some(_) => LEASE_EXPIRED,
            None => RESTARTED,
        };
        let mut tx = Tx::begin(&self.pool).await?;
        let running: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT seq, attempts FROM booty_jobs
              WHERE state = 'running' AND (?1 IS NULL OR lease_until_ms <= ?1)
              ORDER BY seq",
        )
        .bind(expired_by.map(millis))
        .fetch_all(tx.connection())
        .await?;
        let mut taken = Vec::with_capacity(running.len());
        for (seq, attempts) in running {
            let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
            let outcome = Outcome::taken_back(attempts, max_attempts, why);
            taken.push(apply(tx.connection(), seq, &outcome, now, true).await?);
        }
        if taken.iter().any(|job| job.state.is_final()) {
            self.evict_finished(tx.connection()).await?;
        }
        tx.commit().await?;
        Ok(taken)
    }
}

/// Puts job `seq`, whose attempt is over, in the state `outcome` leads to, and drops its lease (and the
/// owner too when `disown`: a job taken back from a lost attempt). A final job is finished now, numbered
/// in finishing order, its payload dropped.
async fn apply(
    connection: &mut SqliteConnection,
    seq: i64,
    outcome: &Outcome,
    now: Timestamp,
    disown: bool,
) -> Result<JobSnapshot, sqlx::Error> {
    let error = outcome.error_update();
    let row = sqlx::query(concat!(
        "UPDATE booty_jobs
            SET state = ?2, lease_until_ms = NULL,
                lease_owner = CASE WHEN ?3 THEN NULL ELSE lease_owner END,
                error = CASE WHEN ?4 THEN ?5 ELSE error END,
                retry_at_ms = ?6,
                finished_at_ms = CASE WHEN ?7 THEN ?8 END,
                finished_seq = CASE WHEN ?7
                    THEN (SELECT coalesce(max(finished_seq), 0) + 1 FROM booty_jobs) END,
                payload = CASE WHEN ?7 THEN NULL ELSE payload END
          WHERE seq = ?1
         RETURNING ",
        snapshot_columns!()
    ))
    .bind(seq)
    .bind(outcome.state().as_str())
    .bind(disown)
    .bind(error.is_some())
    .bind(error.flatten())
    .bind(outcome.retry_at().map(millis))
    .bind(outcome.is_final())
    .bind(millis(now))
    .fetch_one(connection)
    .await?;
    snapshot(&row)
}
