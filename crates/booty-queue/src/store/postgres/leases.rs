//! Leases: renewing them, recording how an attempt ended (once, even across a lost connection), taking
//! back expired ones, and the finished-job retention bound those last two enforce.

use sqlx::{Postgres, Row, Transaction};

use super::PostgresStore;
use super::retry::Failure;
use crate::job::JobSnapshot;
use crate::query::{CancelTarget, Retried};
use crate::store::sql::{self, OutputUpdate, apply_statement, bigint, millis, retry_find};
use crate::store::{LEASE_EXPIRED, Lease, Outcome, Renewal, StoreError};
use crate::time::Timestamp;

/// [`sql::apply`]'s statement: final jobs numbered by a sequence.
const APPLY: &str = apply_statement!("nextval('booty_jobs_finished_seq')", []);

impl PostgresStore {
    /// `renew`: extends the lease if the job still runs under it, and says whether its cancellation
    /// was asked for.
    pub(super) async fn renew_lease(
        &self,
        lease: &Lease,
        until: Timestamp,
    ) -> Result<Renewal, StoreError> {
        with_retry!(self.retry("renew", self.patient()), async {
            let held: Option<(Option<String>,)> = sqlx::query_as(
                "UPDATE booty_jobs SET lease_until_ms = $4
                  WHERE job_id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3
                 RETURNING cancel_reason",
            )
            .bind(lease.job_id.as_str())
            .bind(&lease.owner)
            .bind(i64::from(lease.attempt))
            .bind(millis(until))
            .fetch_optional(&self.pool)
            .await?;
            match held {
                Some((None,)) => Ok(Renewal::Extended),
                Some((Some(reason),)) => Ok(Renewal::CancelRequested { reason }),
                None => Err(Failure::Store(StoreError::lease_lost(lease))),
            }
        })
    }

    /// One try of `reopen`: runs a failed or cancelled job again, in one transaction, as
    /// [`Retried::decide`] rules. The job's row is locked; the new `seq` is the identity's next value,
    /// so the job runs after every job already stored.
    pub(super) async fn try_reopen(
        &self,
        job_id: &str,
        capacity: usize,
    ) -> Result<Retried, Failure> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query(retry_find!(" FOR UPDATE", []))
            .bind(job_id)
            .fetch_optional(&mut *tx)
            .await?;
        let (job, has_payload) = match found {
            Some(row) => (
                Some(sql::snapshot(&row)?),
                row.try_get::<bool, _>("has_payload")?,
            ),
            None => (None, false),
        };
        let waiting: i64 = sqlx::query_scalar(sql::COUNT_WAITING)
            .fetch_one(&mut *tx)
            .await?;
        let waiting = usize::try_from(waiting).unwrap_or(usize::MAX);
        let answer = match Retried::decide(job, has_payload, waiting, capacity) {
            Retried::Queued(job) => {
                let row = sqlx::query(sql::reopen_statement!("DEFAULT"))
                    .bind(i64::try_from(job.seq).unwrap_or(i64::MAX))
                    .fetch_one(&mut *tx)
                    .await?;
                Retried::Queued(sql::snapshot(&row)?)
            }
            other => other,
        };
        tx.commit().await.map_err(Failure::Commit)?;
        Ok(answer)
    }

    /// One try of `cancel`: cancels the waiting jobs of `target` and marks its running one, in one
    /// transaction. Rows a claim holds are waited for, so a job being claimed is marked once running.
    pub(super) async fn try_cancel(
        &self,
        target: &CancelTarget,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<JobSnapshot>, Failure> {
        let (job_id, lane) = match target {
            CancelTarget::Job(id) => (Some(id.as_str()), None),
            CancelTarget::Lane(lane) => (None, Some(lane.as_str())),
        };
        let mut tx = self.pool.begin().await?;
        let unfinished: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, state FROM booty_jobs
              WHERE (job_id = $1 OR lane = $2) AND state IN ('queued', 'running', 'retrying')
              ORDER BY seq
              FOR UPDATE",
        )
        .bind(job_id)
        .bind(lane)
        .fetch_all(&mut *tx)
        .await?;
        let mut changed = Vec::with_capacity(unfinished.len());
        for (seq, state) in unfinished {
            let cancelled = sql::cancel_one(&mut *tx, APPLY, (seq, &state), reason, now);
            changed.push(cancelled.await?);
        }
        if changed.iter().any(|job| job.state.is_final()) {
            self.evict_finished(&mut tx).await?;
        }
        tx.commit().await.map_err(Failure::Commit)?;
        Ok(changed)
    }

    /// `finish`: records `outcome`, retrying a lost connection without ever recording it twice.
    ///
    /// A try that failed may have been applied anyway (the connection died after the server committed),
    /// and simply running it again would then answer `LeaseLost`, and the job would run again once its
    /// lease expired. So after a failed try, the next one first looks at the job: already showing this
    /// outcome for this lease means it was recorded; still running under the lease means it was not.
    pub(super) async fn finish_job(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut uncertain = false;
        with_retry!(self.retry("finish", self.patient()), async {
            if uncertain {
                match self.recorded(lease, outcome).await? {
                    Some(true) => return Ok(()),
                    Some(false) => {}
                    None => return Err(Failure::Store(StoreError::lease_lost(lease))),
                }
            }
            let written = self.write_outcome(lease, outcome, output, now).await;
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
            return Ok(outcome.is_final().then_some(true));
        };
        let state: String = row.try_get("state")?;
        let owner: Option<String> = row.try_get("lease_owner")?;
        let attempts: i32 = row.try_get("attempts")?;
        if owner.as_deref() != Some(lease.owner.as_str())
            || i64::from(attempts) != i64::from(lease.attempt)
        {
            return Ok(None);
        }
        // A cancellation asked for meanwhile turns a retry or a release into `cancelled`.
        let cancelled = outcome.clone().unless_cancelled(Some("")).state();
        Ok(match state.as_str() {
            "running" => Some(false),
            state if state == outcome.state().as_str() || state == cancelled.as_str() => Some(true),
            _ => None,
        })
    }

    /// One try of writing `outcome`, fenced by the lease.
    async fn write_outcome(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> Result<(), Failure> {
        let mut tx = self.pool.begin().await?;
        let held: Option<(i64, Option<String>)> = sqlx::query_as(
            "SELECT seq, cancel_reason FROM booty_jobs
              WHERE job_id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3
              FOR UPDATE",
        )
        .bind(lease.job_id.as_str())
        .bind(&lease.owner)
        .bind(i64::from(lease.attempt))
        .fetch_optional(&mut *tx)
        .await?;
        let Some((seq, cancel_reason)) = held else {
            tx.rollback().await?;
            return Err(Failure::Store(StoreError::lease_lost(lease)));
        };
        let outcome = outcome.clone().unless_cancelled(cancel_reason.as_deref());
        sql::apply(
            &mut *tx,
            APPLY,
            seq,
            &outcome,
            now,
            false,
            OutputUpdate::Set(output),
        )
        .await?;
        if outcome.is_final() {
            self.evict_finished(&mut tx).await?;
        }
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
        .bind(bigint(self.options.retention.retained_finished))
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
        let expired: Vec<(i64, i32, Option<String>)> = sqlx::query_as(
            "SELECT seq, attempts, cancel_reason FROM booty_jobs
              WHERE state = 'running' AND lease_until_ms <= $1
              ORDER BY seq
              FOR UPDATE SKIP LOCKED",
        )
        .bind(millis(now))
        .fetch_all(&mut *tx)
        .await?;
        let mut taken = Vec::with_capacity(expired.len());
        for (seq, attempts, cancel_reason) in expired {
            let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
            let outcome = Outcome::taken_back(attempts, max_attempts, LEASE_EXPIRED)
                .unless_cancelled(cancel_reason.as_deref());
            taken.push(
                sql::apply(
                    &mut *tx,
                    APPLY,
                    seq,
                    &outcome,
                    now,
                    true,
                    OutputUpdate::Keep,
                )
                .await?,
            );
        }
        if taken.iter().any(|job| job.state.is_final()) {
            self.evict_finished(&mut tx).await?;
        }
        tx.commit().await.map_err(Failure::Commit)?;
        Ok(taken)
    }
}
