//! The writer task: group commit of concurrent inserts.
//!
//! Every `insert` sends a [`Pending`] job and waits for its answer. The writer takes all that are waiting
//! (up to `max_batch`) and writes them in one `BEGIN IMMEDIATE` transaction, sent to SQLite as one script
//! (one round trip to sqlx's connection thread, whatever the batch size), and answers each once the
//! commit returned. If a statement or the commit fails, nothing of the batch is stored, and each of its
//! submissions is written again in a transaction of its own: only one that fails again is answered with
//! its error (and leaves no trace, so GitHub's redelivery is accepted later).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Row, SqlitePool};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::warn;

use super::{Counters, backend};
use crate::job::{JobId, Submitted};
use crate::store::StoreError;
use crate::store::sql::bigint;
use crate::worker::Chain;

use super::options::SqliteOptions;

/// Deliveries out of both dedupe windows are deleted once every this many accepted inserts (whether a
/// delivery is still remembered is decided exactly at insert time, whatever is left).
const FORGET_EVERY: u64 = 100;

/// The checkpointer is asked to run once every this many accepted inserts (some 30 MB of log with
/// webhook-sized payloads: fewer, larger checkpoints sync the disk less often).
const CHECKPOINT_EVERY: u64 = 2_000;

/// The oldest remembered deliveries one clean-up looks at.
const FORGET_SCAN: usize = 1_000;

/// A job as the insert statement binds it.
#[derive(Debug)]
pub(super) struct NewJob {
    pub(super) job_id: JobId,
    pub(super) delivery_id: String,
    pub(super) issue_number: Option<i64>,
    pub(super) repository: Option<String>,
    pub(super) lane: Option<String>,
    pub(super) payload: String,
    pub(super) created_at_ms: i64,
}

/// One submission waiting for the writer.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) job: NewJob,
    pub(super) capacity: i64,
    pub(super) reply: oneshot::Sender<Result<Submitted, StoreError>>,
}

/// The writer task's state.
pub(super) struct Writer {
    pool: SqlitePool,
    options: SqliteOptions,
    stats: Arc<Counters>,
    /// [`batch_script`] for 1, 2, 4, ... jobs, up to the batch limit: a batch runs the smallest that
    /// holds it, so SQLite's statement cache keeps a handful of scripts instead of one per batch size.
    scripts: Vec<Arc<str>>,
    /// What each job binds, in order.
    plan: Vec<Param>,
    /// Told when enough has been written since the last checkpoint.
    checkpoint_due: Arc<Notify>,
}

impl Writer {
    pub(super) fn new(
        pool: SqlitePool,
        options: SqliteOptions,
        stats: Arc<Counters>,
        checkpoint_due: Arc<Notify>,
    ) -> Self {
        let (job, plan) = job_statements();
        let slots = options.max_batch.next_power_of_two();
        let scripts = std::iter::successors(Some(1_usize), |&jobs| Some(jobs * 2))
            .take_while(|&jobs| jobs <= slots)
            .map(|jobs| Arc::from(batch_script(&job, jobs)))
            .collect();
        Self {
            pool,
            options,
            stats,
            scripts,
            plan,
            checkpoint_due,
        }
    }

    /// Writes batches until every sender is gone (the store closed or dropped).
    pub(super) async fn run(self, mut queue: mpsc::Receiver<Pending>) {
        let mut batch = Vec::with_capacity(self.options.max_batch);
        let mut accepted = 0_u64;
        while queue.recv_many(&mut batch, self.options.max_batch).await > 0 {
            self.stats
                .received
                .fetch_add(batch.len() as u64, Ordering::SeqCst);
            let before = accepted;
            accepted += self.write(&mut batch).await;
            if accepted / FORGET_EVERY != before / FORGET_EVERY {
                self.forget_old_deliveries().await;
            }
            if accepted / CHECKPOINT_EVERY != before / CHECKPOINT_EVERY {
                self.checkpoint_due.notify_one();
            }
        }
    }

    /// Writes `batch` and answers every submission in it; returns how many were accepted.
    async fn write(&self, batch: &mut Vec<Pending>) -> u64 {
        let answers = match self.try_write(batch).await {
            Ok(answers) => answers.into_iter().map(Ok).collect(),
            // One statement failed (or the commit): nothing of the batch is stored. Each is written
            // again on its own, so only what fails again is answered with an error.
            Err(_) if batch.len() > 1 => {
                let mut answers = Vec::with_capacity(batch.len());
                for pending in batch.iter() {
                    let alone = self.try_write(std::slice::from_ref(pending)).await;
                    answers.push(match alone {
                        Ok(mut answer) => answer.pop().ok_or_else(|| no_answer(pending)),
                        Err(err) => Err(backend("insert", err)),
                    });
                }
                answers
            }
            Err(err) => vec![Err(backend("insert", err))],
        };
        let accepted = answers
            .iter()
            .filter(|answer| matches!(answer, Ok(Submitted::Accepted(_))))
            .count();
        self.answer(batch.drain(..).zip(answers));
        accepted as u64
    }

    fn answer(&self, answers: impl IntoIterator<Item = (Pending, Result<Submitted, StoreError>)>) {
        for (pending, answer) in answers {
            self.stats.inserts.fetch_add(1, Ordering::SeqCst);
            // A submitter that stopped waiting (its request was cancelled) needs no answer; what was
            // committed stays committed, as GitHub's redelivery will find.
            let _ = pending.reply.send(answer);
        }
    }

    /// One transaction for the whole batch, sent to SQLite as one script (see [`batch_script`]): one
    /// answer per submission, or the error that stopped it (then nothing of it is stored).
    async fn try_write(&self, batch: &[Pending]) -> Result<Vec<Submitted>, sqlx::Error> {
        self.stats.transactions.fetch_add(1, Ordering::SeqCst);
        let slots = batch.len().next_power_of_two();
        let script = self
            .scripts
            .get(slots.trailing_zeros() as usize)
            .ok_or_else(|| sqlx::Error::Protocol(format!("no batch script for {slots} jobs")))?;
        let mut connection = self.pool.acquire().await?;
        let mut script = sqlx::query(AssertSqlSafe(Arc::clone(script)));
        let (remembered, retention) = (
            bigint(self.options.dedupe_capacity),
            retention_ms(&self.options),
        );
        for pending in batch {
            let job = &pending.job;
            for param in &self.plan {
                script = match param {
                    Param::JobId => script.bind(job.job_id.as_str()),
                    Param::DeliveryId => script.bind(&job.delivery_id),
                    Param::IssueNumber => script.bind(job.issue_number),
                    Param::Repository => script.bind(job.repository.as_deref()),
                    Param::Lane => script.bind(job.lane.as_deref()),
                    Param::Payload => script.bind(&job.payload),
                    Param::CreatedAt => script.bind(job.created_at_ms),
                    Param::Capacity => script.bind(pending.capacity),
                    Param::Remembered => script.bind(remembered),
                    Param::Retention => script.bind(retention),
                };
            }
        }
        let rows = match script.fetch_all(&mut *connection).await {
            Ok(rows) if rows.len() == slots => rows,
            Ok(rows) => {
                return Err(sqlx::Error::Protocol(format!(
                    "the batch script answered {} rows for {slots} slots",
                    rows.len()
                )));
            }
            Err(err) => {
                // The script stopped at the statement that failed, before its COMMIT. The rollback
                // fails if SQLite already rolled back, which leaves the same state: nothing stored.
                let _ = sqlx::query("ROLLBACK").execute(&mut *connection).await;
                return Err(err);
            }
        };
        rows.iter()
            .zip(batch)
            .map(|(row, pending)| answer(row, pending))
            .collect()
    }

    /// Deletes the oldest remembered deliveries that are out of both dedupe windows: a bound on the
    /// table, not a rule (`insert` decides whether a delivery is remembered on its own, and a stored
    /// job's delivery is a duplicate through `booty_jobs` whatever this table says).
    ///
    /// Only the [`FORGET_SCAN`] oldest rows are looked at, so a clean-up costs the same however large
    /// the table is (a week of deliveries, say); deliveries arrive in time order, so the oldest are the
    /// first to leave the age window, and at most [`FORGET_EVERY`] arrive between clean-ups. "Now" is the
    /// newest delivery's time, the engine's clock as the last insert gave it.
    async fn forget_old_deliveries(&self) {
        let forgotten = sqlx::query(
            "DELETE FROM booty_deliveries WHERE seq IN (
                 SELECT seq FROM (SELECT seq, accepted_at_ms FROM booty_deliveries ORDER BY seq LIMIT ?3)
                  WHERE seq <= (SELECT max(seq) FROM booty_deliveries) - ?1
                    AND accepted_at_ms <= (SELECT accepted_at_ms FROM booty_deliveries
                                            ORDER BY seq DESC LIMIT 1) - ?2)",
        )
        .bind(bigint(self.options.dedupe_capacity))
        .bind(retention_ms(&self.options))
        .bind(bigint(FORGET_SCAN))
        .execute(&self.pool)
        .await;
        if let Err(err) = forgotten {
            warn!(store = "sqlite", error = %Chain(&err), "store_cleanup_failed");
        }
    }
}

/// What a job's statements in a batch script need, in the order their `?` placeholders appear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Param {
    JobId,
    DeliveryId,
    IssueNumber,
    Repository,
    Lane,
    Payload,
    CreatedAt,
    Capacity,
    /// `dedupe_capacity`, the count window.
    Remembered,
    /// `dedupe_retention` in milliseconds, the age window.
    Retention,
}

/// One job's two statements: the `INSERT` (stored only if new and there is room; a trigger remembers the
/// delivery), then its answer (`stored`, and if not, the job the delivery or id is a duplicate of).
/// `{name}` marks a parameter; [`job_statements`] turns each into a `?` and lists them in order.
const JOB_TEMPLATE: &str = "
INSERT INTO booty_jobs
    (job_id, delivery_id, issue_number, repository, lane, state, payload, created_at_ms)
SELECT {job_id}, {delivery_id}, {issue_number}, {repository}, {lane}, 'queued', {payload}, {created_at}
 WHERE {job_id} IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM booty_jobs WHERE delivery_id = {delivery_id})
   AND NOT EXISTS (SELECT 1 FROM booty_jobs WHERE job_id = {job_id})
   AND NOT EXISTS (SELECT 1 FROM booty_deliveries AS d
                    WHERE d.delivery_id = {delivery_id}
                      AND (d.seq > (SELECT max(seq) FROM booty_deliveries) - {remembered}
                           OR d.accepted_at_ms > {created_at} - {retention}))
   AND (SELECT waiting FROM booty_counts) < {capacity};
SELECT changes() AS stored, CASE WHEN changes() = 0 THEN (
    SELECT job_id FROM (
        SELECT 1 AS rank, job_id FROM booty_jobs WHERE delivery_id = {delivery_id}
        UNION ALL
        SELECT 2, d.job_id FROM booty_deliveries AS d
         WHERE d.delivery_id = {delivery_id}
           AND (d.seq > (SELECT max(seq) FROM booty_deliveries) - {remembered}
                OR d.accepted_at_ms > {created_at} - {retention})
        UNION ALL
        SELECT 3, job_id FROM booty_jobs WHERE job_id = {job_id}
    ) ORDER BY rank LIMIT 1) END AS duplicate;
";

/// [`JOB_TEMPLATE`] with `?` placeholders, and what to bind to each, in order.
fn job_statements() -> (String, Vec<Param>) {
    let mut sql = String::with_capacity(JOB_TEMPLATE.len());
    let mut plan = Vec::new();
    let mut rest = JOB_TEMPLATE;
    while let Some(open) = rest.find('{') {
        sql.push_str(&rest[..open]);
        let close = open + rest[open..].find('}').unwrap_or(0);
        let param = match &rest[open + 1..close] {
            "job_id" => Param::JobId,
            "delivery_id" => Param::DeliveryId,
            "issue_number" => Param::IssueNumber,
            "repository" => Param::Repository,
            "lane" => Param::Lane,
            "payload" => Param::Payload,
            "created_at" => Param::CreatedAt,
            "capacity" => Param::Capacity,
            "remembered" => Param::Remembered,
            _ => Param::Retention,
        };
        sql.push('?');
        plan.push(param);
        rest = &rest[close + 1..];
    }
    sql.push_str(rest);
    (sql, plan)
}

/// The script that writes a batch of up to `slots` submissions in one round trip to SQLite:
/// `BEGIN IMMEDIATE`, then [`JOB_TEMPLATE`]'s two statements per slot, then `COMMIT`.
///
/// Its placeholders are plain `?`s, which sqlx numbers through the whole script, so the arguments are
/// each job's parameters in turn. Slots past the batch are left unbound, hence `NULL`: their `INSERT`
/// stores nothing and their answer row is ignored.
fn batch_script(job: &str, slots: usize) -> String {
    let mut script = String::with_capacity(job.len() * slots + 32);
    script.push_str("BEGIN IMMEDIATE;");
    for _ in 0..slots {
        script.push_str(job);
    }
    script.push_str("COMMIT;");
    script
}

/// A job's answer row: stored, a duplicate of the job it names, or no room.
fn answer(row: &SqliteRow, pending: &Pending) -> Result<Submitted, sqlx::Error> {
    let stored: i64 = row.try_get("stored")?;
    let duplicate: Option<String> = row.try_get("duplicate")?;
    Ok(match (stored, duplicate) {
        (1, _) => Submitted::Accepted(pending.job.job_id.clone()),
        (_, Some(id)) => Submitted::Duplicate(JobId::from(id)),
        (_, None) => Submitted::Busy,
    })
}

fn no_answer(pending: &Pending) -> StoreError {
    StoreError::Backend {
        store: "sqlite",
        operation: "insert",
        source: format!(
            "delivery {}: the batch script gave no answer",
            pending.job.delivery_id
        )
        .into(),
    }
}

/// The dedupe retention age in milliseconds, saturating.
fn retention_ms(options: &SqliteOptions) -> i64 {
    i64::try_from(options.dedupe_retention.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_of_the_job_statements_is_planned() {
        let (sql, plan) = job_statements();
        assert!(!sql.contains('{') && !sql.contains('}'), "{sql}");
        assert_eq!(sql.matches('?').count(), plan.len());
        // Every parameter is used, and none fell through to the catch-all by a typo.
        assert_eq!(plan.iter().filter(|p| **p == Param::Retention).count(), 2);
        assert_eq!(plan.iter().filter(|p| **p == Param::Payload).count(), 1);
        assert_eq!(plan.iter().filter(|p| **p == Param::Capacity).count(), 1);
    }
}
