//! Claims and leases: taking the next runnable job, renewing its lease, recording how an attempt ended,
//! taking back expired or orphaned jobs, and the finished-job retention bound.

use std::sync::Arc;

use sqlx::{Row, SqliteConnection};

use super::connection::Tx;
use super::{SqliteStore, backend, packed};
use crate::job::{Job, JobSnapshot, JobState, MetadataValue};
use crate::query::{CancelTarget, JobCounts, JobQuery, Retried};
use crate::store::sql::{
    self, Claimed, OutputUpdate, SqlStore, apply_statement, bigint, millis, retry_find, snapshot,
    snapshot_columns, timestamp,
};
use crate::store::{LEASE_EXPIRED, Lease, Outcome, RESTARTED, Renewal, StoreError};
use crate::time::Timestamp;

/// [`sql::apply`]'s statement: final jobs numbered after the highest so far (one writer at a time).
const APPLY: &str = apply_statement!(
    "(SELECT coalesce(max(finished_seq), 0) + 1 FROM booty_jobs)",
    ["payload_lz4"]
);

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
        if let Some(claimed) = claimed {
            return Ok(claimed);
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
        output: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.files.check("finish")?;
        let written = async {
            let mut tx = Tx::begin(&self.pool).await?;
            let held: Option<(i64, Option<String>)> = sqlx::query_as(
                "SELECT seq, cancel_reason FROM booty_jobs
                  WHERE job_id = ?1 AND state = 'running' AND lease_owner = ?2 AND attempts = ?3",
            )
            .bind(lease.job_id.as_str())
            .bind(&lease.owner)
            .bind(i64::from(lease.attempt))
            .fetch_optional(tx.connection())
            .await?;
            let Some((seq, cancel_reason)) = held else {
                tx.rollback().await?;
                return Ok(false);
            };
            let outcome = outcome.clone().unless_cancelled(cancel_reason.as_deref());
            sql::apply(
                tx.connection(),
                APPLY,
                seq,
                &outcome,
                now,
                false,
                OutputUpdate::Set(output),
            )
            .await?;
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
    /// The earliest runnable head of a lane, taken in one statement; its payload the stored JSON, unpacked
    /// from `payload_lz4` (or as a job stored before version 5 kept it, in `payload`).
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
    ) -> Result<Option<Claimed>, sqlx::Error> {
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
             RETURNING job_id, dedupe_key, lane, kind, metadata, created_at_ms, attempts,
                       coalesce(payload, '') AS payload, payload_lz4",
        )
        .bind(millis(now))
        .bind(owner)
        .bind(millis(lease_until))
        .fetch_optional(tx.connection())
        .await?;
        // Read before the commit, so a row that cannot be read leaves the job queued; unpacked after it,
        // so the connection is not held for that (a payload that does not unpack fails its job anyway).
        let claimed = match &row {
            Some(row) => Some((sql::claimed(row)?, row.try_get("payload_lz4")?)),
            None => None,
        };
        tx.commit().await?;
        Ok(claimed.map(|(job, packed)| unpacked(job, packed)))
    }

    /// `renew`: extends the lease if the job still runs under it, and says whether its cancellation
    /// was asked for.
    pub(super) async fn renew_lease(
        &self,
        lease: &Lease,
        until: Timestamp,
    ) -> Result<Renewal, StoreError> {
        self.files.check("renew")?;
        let renewed = async {
            let mut tx = Tx::begin(&self.pool).await?;
            let held: Option<(Option<String>,)> = sqlx::query_as(
                "UPDATE booty_jobs SET lease_until_ms = ?4
                  WHERE job_id = ?1 AND state = 'running' AND lease_owner = ?2 AND attempts = ?3
                 RETURNING cancel_reason",
            )
            .bind(lease.job_id.as_str())
            .bind(&lease.owner)
            .bind(i64::from(lease.attempt))
            .bind(millis(until))
            .fetch_optional(tx.connection())
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(held)
        };
        match renewed.await.map_err(|err| backend("renew", err))? {
            Some((None,)) => Ok(Renewal::Extended),
            Some((Some(reason),)) => Ok(Renewal::CancelRequested { reason }),
            None => Err(StoreError::lease_lost(lease)),
        }
    }

    /// `cancel`: cancels the waiting jobs of `target` and marks its running one, in one transaction.
    pub(super) async fn cancel_jobs(
        &self,
        target: &CancelTarget,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        self.files.check("cancel")?;
        let (job_id, lane) = match target {
            CancelTarget::Job(id) => (Some(id.as_str()), None),
            CancelTarget::Lane(lane) => (None, Some(lane.as_str())),
        };
        let cancelled = async {
            let mut tx = Tx::begin(&self.pool).await?;
            let unfinished: Vec<(i64, String)> = sqlx::query_as(
                "SELECT seq, state FROM booty_jobs
                  WHERE (job_id = ?1 OR lane = ?2) AND state IN ('queued', 'running', 'retrying')
                  ORDER BY seq",
            )
            .bind(job_id)
            .bind(lane)
            .fetch_all(tx.connection())
            .await?;
            let mut changed = Vec::with_capacity(unfinished.len());
            for (seq, state) in unfinished {
                let cancelled = sql::cancel_one(tx.connection(), APPLY, (seq, &state), reason, now);
                changed.push(cancelled.await?);
            }
            if changed.iter().any(|job| job.state.is_final()) {
                self.evict_finished(tx.connection()).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(changed)
        };
        cancelled.await.map_err(|err| backend("cancel", err))
    }

    /// `reopen`: runs a failed or cancelled job again, in one transaction, as [`Retried::decide`] rules.
    pub(super) async fn reopen_job(
        &self,
        job_id: &str,
        capacity: usize,
    ) -> Result<Retried, StoreError> {
        self.files.check("reopen")?;
        let reopened = async {
            let mut tx = Tx::begin(&self.pool).await?;
            let found = sqlx::query(retry_find!("", ["payload_lz4"]))
                .bind(job_id)
                .fetch_optional(tx.connection())
                .await?;
            let (job, has_payload) = match found {
                Some(row) => (
                    Some(snapshot(&row)?),
                    row.try_get::<bool, _>("has_payload")?,
                ),
                None => (None, false),
            };
            let waiting: i64 = sqlx::query_scalar(sql::COUNT_WAITING)
                .fetch_one(tx.connection())
                .await?;
            let waiting = usize::try_from(waiting).unwrap_or(usize::MAX);
            let answer = match Retried::decide(job, has_payload, waiting, capacity) {
                Retried::Queued(job) => {
                    let row = sqlx::query(sql::reopen_statement!(
                        "(SELECT max(seq) + 1 FROM booty_jobs)"
                    ))
                    .bind(i64::try_from(job.seq).unwrap_or(i64::MAX))
                    .fetch_one(tx.connection())
                    .await?;
                    Retried::Queued(snapshot(&row)?)
                }
                other => other,
            };
            tx.commit().await?;
            Ok::<_, sqlx::Error>(answer)
        };
        reopened.await.map_err(|err| backend("reopen", err))
    }

    /// `list`: the jobs `query` matches, newest first.
    pub(super) async fn list_jobs(&self, query: &JobQuery) -> Result<Vec<JobSnapshot>, StoreError> {
        let (key, value) = query
            .metadata
            .as_ref()
            .map(|(key, value)| (key.as_str(), value))
            .unzip();
        // `->>` gives a JSON integer as an integer and a string as text: a typed comparison.
        let listing = sqlx::query(concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM booty_jobs
              WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR kind = ?2)
                AND (?3 IS NULL OR lane = ?3) AND (?4 IS NULL OR metadata ->> ?4 = ?5)
                AND (?6 IS NULL OR seq < ?6)
              ORDER BY seq DESC LIMIT ?7"
        ))
        .bind(query.state.map(JobState::as_str))
        .bind(query.kind.as_deref())
        .bind(query.lane.as_deref())
        .bind(key);
        let listing = match value {
            Some(MetadataValue::Integer(number)) => listing.bind(*number),
            Some(MetadataValue::Text(text)) => listing.bind(text.as_str()),
            None => listing.bind(None::<&str>),
        };
        let rows = listing
            .bind(
                query
                    .before
                    .map(|seq| i64::try_from(seq).unwrap_or(i64::MAX)),
            )
            .bind(bigint(query.limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|err| backend("list", err))?;
        rows.iter()
            .map(snapshot)
            .collect::<Result<_, _>>()
            .map_err(|err| backend("list", err))
    }

    /// `count`: jobs by state.
    pub(super) async fn count_jobs(&self) -> Result<JobCounts, StoreError> {
        let rows = sqlx::query_as("SELECT state, count(*) FROM booty_jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(|err| backend("count", err))?;
        sql::counts(rows).map_err(|err| backend("count", err))
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
        let running: Vec<(i64, i64, Option<String>)> = sqlx::query_as(
            "SELECT seq, attempts, cancel_reason FROM booty_jobs
              WHERE state = 'running' AND (?1 IS NULL OR lease_until_ms <= ?1)
              ORDER BY seq",
        )
        .bind(expired_by.map(millis))
        .fetch_all(tx.connection())
        .await?;
        let mut taken = Vec::with_capacity(running.len());
        for (seq, attempts, cancel_reason) in running {
            let attempts = u32::try_from(attempts).unwrap_or(u32::MAX);
            let outcome = Outcome::taken_back(attempts, max_attempts, why)
                .unless_cancelled(cancel_reason.as_deref());
            taken.push(
                sql::apply(
                    tx.connection(),
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
            self.evict_finished(tx.connection()).await?;
        }
        tx.commit().await?;
        Ok(taken)
    }
}

/// A claimed `job` with the JSON `packed` holds as its payload, if it was stored packed.
fn unpacked(mut job: Job<String>, packed: Option<Vec<u8>>) -> Claimed {
    let Some(packed) = packed else {
        return Claimed::Job(job);
    };
    match packed::unpack(&packed) {
        Ok(json) => {
            job.payload = Arc::new(json);
            Claimed::Job(job)
        }
        Err(error) => Claimed::Unreadable(job, error),
    }
}
