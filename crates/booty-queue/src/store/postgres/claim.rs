//! `claim`: the earliest runnable head of a lane, taken with `FOR UPDATE SKIP LOCKED`.

use serde::de::DeserializeOwned;
use sqlx::Row;
use tracing::error;

use super::PostgresStore;
use super::retry::Failure;
use crate::job::Job;
use crate::store::sql::{self, millis, timestamp};
use crate::store::{Claim, Lease, Outcome, StoreError};
use crate::time::Timestamp;
use crate::worker::Chain;

/// What one try of `claim` found.
enum Claimed {
    /// A job, its payload still the stored JSON.
    Job(Job<String>),
    /// Nothing runnable; the earliest retry, if any.
    Idle(Option<Timestamp>),
}

impl PostgresStore {
    /// `claim`: takes the next runnable job and deserializes its payload; a job whose payload does not
    /// deserialize is failed, and the next one taken.
    pub(super) async fn claim_job<P: DeserializeOwned>(
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
            match sql::decode_payload(job) {
                Ok(job) => return Ok(Claim::Job(job)),
                Err(undecodable) => {
                    let (job, error) = *undecodable;
                    self.fail_undecodable(&job, owner, error, now).await;
                }
            }
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
        if row.try_get::<Option<String>, _>("job_id")?.is_none() {
            let next: Option<i64> = row.try_get("next_retry_at_ms")?;
            return Ok(Claimed::Idle(next.map(timestamp)));
        }
        Ok(Claimed::Job(sql::claimed(&row)?))
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
}
