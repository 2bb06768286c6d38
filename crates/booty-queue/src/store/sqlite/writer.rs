//! The writer task: group commit of concurrent inserts.
//!
//! Every `insert` sends a [`Pending`] job and waits for its answer. The writer takes all that are waiting
//! (up to `max_batch`), writes them in one `BEGIN IMMEDIATE` transaction, one statement each, and answers
//! each once the commit returned. A statement that fails rolls the batch back; its submission is
//! answered with the error, and the others are written again without it. A failed commit fails the
//! whole batch (nothing of it is stored, so each delivery is accepted when GitHub redelivers it).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sqlx::sqlite::Sqlite;
use sqlx::{SqlitePool, Transaction};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::{Counters, backend, cause};
use crate::job::{JobId, Submitted};
use crate::store::StoreError;
use crate::store::sql::bigint;
use crate::worker::Chain;

use super::options::SqliteOptions;

/// Deliveries out of both dedupe windows are deleted once every this many accepted inserts (whether a
/// delivery is still remembered is decided exactly at insert time, whatever is left).
const FORGET_EVERY: u64 = 100;

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

/// Why a batch was not committed.
enum Failed {
    /// The statement of the submission at this index failed.
    One(usize, sqlx::Error),
    /// `BEGIN` or `COMMIT` failed: nothing of the batch is stored.
    All(sqlx::Error),
}

/// The writer task's state.
pub(super) struct Writer {
    pub(super) pool: SqlitePool,
    pub(super) options: SqliteOptions,
    pub(super) stats: Arc<Counters>,
}

impl Writer {
    /// Writes batches until every sender is gone (the store closed or dropped).
    pub(super) async fn run(self, mut queue: mpsc::Receiver<Pending>) {
        let mut batch = Vec::with_capacity(self.options.max_batch);
        let mut accepted = 0_u64;
        while queue.recv_many(&mut batch, self.options.max_batch).await > 0 {
            self.stats
                .received
                .fetch_add(batch.len() as u64, Ordering::SeqCst);
            let before = accepted / FORGET_EVERY;
            accepted += self.write(&mut batch).await;
            if accepted / FORGET_EVERY != before {
                self.forget_old_deliveries().await;
            }
        }
    }

    /// Writes `batch` and answers every submission in it; returns how many were accepted.
    async fn write(&self, batch: &mut Vec<Pending>) -> u64 {
        loop {
            self.stats.transactions.fetch_add(1, Ordering::SeqCst);
            match self.try_write(batch).await {
                Ok(answers) => {
                    let accepted = answers
                        .iter()
                        .filter(|answer| matches!(answer, Submitted::Accepted(_)))
                        .count();
                    self.answer(batch.drain(..).zip(answers.into_iter().map(Ok)));
                    return accepted as u64;
                }
                Err(Failed::One(index, err)) => {
                    let failed = batch.remove(index);
                    self.answer([(failed, Err(backend("insert", err)))]);
                    if batch.is_empty() {
                        return 0;
                    }
                }
                Err(Failed::All(err)) => {
                    let message = Chain(&*cause(err)).to_string();
                    let answers = batch.drain(..).map(|pending| {
                        let err = StoreError::Backend {
                            store: "sqlite",
                            operation: "insert",
                            source: message.clone().into(),
                        };
                        (pending, Err(err))
                    });
                    self.answer(answers);
                    return 0;
                }
            }
        }
    }

    fn answer(&self, answers: impl IntoIterator<Item = (Pending, Result<Submitted, StoreError>)>) {
        for (pending, answer) in answers {
            self.stats.inserts.fetch_add(1, Ordering::SeqCst);
            // A submitter that stopped waiting (its request was cancelled) needs no answer; what was
            // committed stays committed, as GitHub's redelivery will find.
            let _ = pending.reply.send(answer);
        }
    }

    /// One transaction for the whole batch: every answer, or what failed.
    async fn try_write(&self, batch: &[Pending]) -> Result<Vec<Submitted>, Failed> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(Failed::All)?;
        let mut answers = Vec::with_capacity(batch.len());
        for (index, pending) in batch.iter().enumerate() {
            match self.insert(&mut tx, pending).await {
                Ok(answer) => answers.push(answer),
                Err(err) => {
                    // The rollback may fail if SQLite already rolled back; either way nothing is stored.
                    let _ = tx.rollback().await;
                    return Err(Failed::One(index, err));
                }
            }
        }
        tx.commit().await.map_err(Failed::All)?;
        Ok(answers)
    }

    /// Stores one job if it is new and there is room (one statement, which also remembers its delivery
    /// through a trigger); else finds out whether it is a duplicate or the queue is full.
    async fn insert(
        &self,
        tx: &mut Transaction<'static, Sqlite>,
        pending: &Pending,
    ) -> Result<Submitted, sqlx::Error> {
        let job = &pending.job;
        let stored = sqlx::query(
            "INSERT INTO booty_jobs
                 (job_id, delivery_id, issue_number, repository, lane, state, payload, created_at_ms)
             SELECT ?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7
              WHERE NOT EXISTS (SELECT 1 FROM booty_jobs WHERE delivery_id = ?2)
                AND NOT EXISTS (SELECT 1 FROM booty_jobs WHERE job_id = ?1)
                AND NOT EXISTS (SELECT 1 FROM booty_deliveries AS d
                                 WHERE d.delivery_id = ?2
                                   AND (d.seq > (SELECT max(seq) FROM booty_deliveries) - ?9
                                        OR d.accepted_at_ms > ?7 - ?10))
                AND (SELECT waiting FROM booty_counts) < ?8",
        )
        .bind(job.job_id.as_str())
        .bind(&job.delivery_id)
        .bind(job.issue_number)
        .bind(job.repository.as_deref())
        .bind(job.lane.as_deref())
        .bind(&job.payload)
        .bind(job.created_at_ms)
        .bind(pending.capacity)
        .bind(bigint(self.options.dedupe_capacity))
        .bind(retention_ms(&self.options))
        .execute(&mut **tx)
        .await?;
        if stored.rows_affected() == 1 {
            return Ok(Submitted::Accepted(job.job_id.clone()));
        }
        let duplicate: Option<String> = sqlx::query_scalar(
            "SELECT job_id FROM (
                 SELECT 1 AS rank, job_id FROM booty_jobs WHERE delivery_id = ?1
                 UNION ALL
                 SELECT 2, d.job_id FROM booty_deliveries AS d
                  WHERE d.delivery_id = ?1
                    AND (d.seq > (SELECT max(seq) FROM booty_deliveries) - ?4
                         OR d.accepted_at_ms > ?3 - ?5)
                 UNION ALL
                 SELECT 3, job_id FROM booty_jobs WHERE job_id = ?2
             ) ORDER BY rank LIMIT 1",
        )
        .bind(&job.delivery_id)
        .bind(job.job_id.as_str())
        .bind(job.created_at_ms)
        .bind(bigint(self.options.dedupe_capacity))
        .bind(retention_ms(&self.options))
        .fetch_optional(&mut **tx)
        .await?;
        Ok(match duplicate {
            Some(id) => Submitted::Duplicate(JobId::from(id)),
            None => Submitted::Busy,
        })
    }

    /// Deletes remembered deliveries that are out of both dedupe windows and whose job is gone. Only a
    /// bound on the table: `insert` decides whether a delivery is remembered on its own.
    async fn forget_old_deliveries(&self) {
        let newest: Result<Option<i64>, _> =
            sqlx::query_scalar("SELECT max(accepted_at_ms) FROM booty_deliveries")
                .fetch_one(&self.pool)
                .await;
        let forgotten = match newest {
            Ok(newest) => {
                sqlx::query(
                    "DELETE FROM booty_deliveries
                      WHERE seq <= (SELECT max(seq) FROM booty_deliveries) - ?1
                        AND accepted_at_ms <= ?2 - ?3
                        AND NOT EXISTS (SELECT 1 FROM booty_jobs AS j
                                         WHERE j.delivery_id = booty_deliveries.delivery_id)",
                )
                .bind(bigint(self.options.dedupe_capacity))
                .bind(newest.unwrap_or(0))
                .bind(retention_ms(&self.options))
                .execute(&self.pool)
                .await
            }
            Err(err) => Err(err),
        };
        if let Err(err) = forgotten {
            warn!(store = "sqlite", error = %Chain(&err), "store_cleanup_failed");
        }
    }
}

/// The dedupe retention age in milliseconds, saturating.
fn retention_ms(options: &SqliteOptions) -> i64 {
    i64::try_from(options.dedupe_retention.as_millis()).unwrap_or(i64::MAX)
}
