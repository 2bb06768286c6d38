//! The writer task: group commit of concurrent inserts.
//!
//! Every `insert` sends a [`Pending`] job and waits for its answer. The writer takes all that are waiting
//! (up to `max_batch`) and writes them in one `BEGIN IMMEDIATE` transaction, in two round trips to sqlx's
//! connection thread whatever the batch size (see [`Scripts`]), and answers each once the commit
//! returned. If a statement or the commit fails, nothing of the batch is stored, and each of its
//! submissions is written again in a transaction of its own: only one that fails again is answered with
//! its error (and leaves no trace, so GitHub's redelivery is accepted later).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sqlx::{AssertSqlSafe, Row, SqliteConnection, SqlitePool};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::warn;

use super::connection::Held;
use super::files::{self, Files};
use super::{Counters, backend};
use crate::chain::Chain;
use crate::job::{JobId, Submitted};
use crate::store::sql::bigint;
use crate::store::{Admission, StoreError};

use super::checkpoint::WriteGate;
use super::options::SqliteOptions;

/// Dedupe keys out of both dedupe windows are deleted once every this many accepted inserts (whether a
/// key is still remembered is decided exactly at insert time, whatever is left).
const FORGET_EVERY: u64 = 100;

/// The checkpointer is asked to run once every this many accepted inserts (some 30 MB of log with
/// webhook-sized payloads: fewer, larger checkpoints sync the disk less often).
const CHECKPOINT_EVERY: u64 = 2_000;

/// The oldest remembered dedupe keys one clean-up looks at.
const FORGET_SCAN: usize = 1_000;

/// A job as the insert statement binds it.
#[derive(Debug)]
pub(super) struct NewJob {
    pub(super) job_id: JobId,
    pub(super) dedupe_key: String,
    pub(super) lane: Option<String>,
    pub(super) kind: String,
    pub(super) metadata: String,
    /// The payload's JSON, packed (`packed.rs`).
    pub(super) payload: Vec<u8>,
    pub(super) created_at_ms: i64,
}

/// One submission waiting for the writer.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) job: NewJob,
    pub(super) capacity: i64,
    /// Admitted once the batch holds the write lock; a submission withdrawn before is left out.
    pub(super) admission: Admission,
    pub(super) reply: oneshot::Sender<Result<Submitted, StoreError>>,
}

/// The writer task's state.
pub(super) struct Writer {
    pool: SqlitePool,
    options: SqliteOptions,
    stats: Arc<Counters>,
    /// [`Scripts`] for 1, 2, 4, ... jobs, up to the batch limit: a batch runs the smallest that holds
    /// it, so SQLite's statement cache keeps a handful of scripts instead of one per batch size.
    scripts: Vec<Scripts>,
    /// Told when enough has been written since the last checkpoint.
    checkpoint_due: Arc<Notify>,
    /// Held while a batch is written (see [`WriteGate`]).
    gate: WriteGate,
    /// Inserts are refused once the database or its log was replaced under the store.
    files: Arc<Files>,
}

impl Writer {
    pub(super) fn new(
        pool: SqlitePool,
        options: SqliteOptions,
        stats: Arc<Counters>,
        checkpoint_due: Arc<Notify>,
        gate: WriteGate,
        files: Arc<Files>,
    ) -> Self {
        let slots = options.max_batch.next_power_of_two();
        let scripts = std::iter::successors(Some(1_usize), |&jobs| Some(jobs * 2))
            .take_while(|&jobs| jobs <= slots)
            .map(Scripts::new)
            .collect();
        Self {
            pool,
            options,
            stats,
            scripts,
            checkpoint_due,
            gate,
            files,
        }
    }

    /// Writes batches until every sender is gone (the store closed or dropped).
    pub(super) async fn run(self, mut queue: mpsc::Receiver<Pending>) {
        let mut batch = Vec::with_capacity(self.options.max_batch);
        let mut accepted = 0_u64;
        while queue.recv_many(&mut batch, self.options.max_batch).await > 0 {
            gather(&mut queue, &mut batch, self.options.max_batch).await;
            self.stats
                .received
                .fetch_add(batch.len() as u64, Ordering::SeqCst);
            let before = accepted;
            let checkpoint_waits = self.gate.lock().await;
            accepted += self.write(&mut batch).await;
            drop(checkpoint_waits);
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
        if let Err(reason) = self.files.refusal() {
            let answers: Vec<_> = batch
                .iter()
                .map(|_| Err(files::refused("insert", reason)))
                .collect();
            self.answer(batch.drain(..).zip(answers));
            return 0;
        }
        let answers: Vec<_> = match self.try_write(batch).await {
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
        let answers: Vec<_> = batch
            .iter()
            .zip(answers)
            .map(|(pending, answer)| {
                answer.and_then(|decided| {
                    decided.ok_or_else(|| StoreError::withdrawn(&pending.job.job_id))
                })
            })
            .collect();
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

    /// One transaction for the whole batch, in two round trips to SQLite (see [`Scripts`]): one answer
    /// per submission (`None`: withdrawn by its submitter, not stored), or the error that stopped it (then
    /// nothing of it is stored).
    async fn try_write(&self, batch: &[Pending]) -> Result<Vec<Option<Submitted>>, sqlx::Error> {
        self.stats.transactions.fetch_add(1, Ordering::SeqCst);
        let mut connection = Held::acquire(&self.pool).await?;
        // A script stops at the statement that failed, before its COMMIT, in a transaction SQLite may or
        // may not have rolled back by itself: the connection is then closed, not reused (see
        // `connection.rs`), which leaves nothing of the batch stored either way.
        let answers = self
            .write_in_transaction(connection.connection(), batch)
            .await?;
        connection.release();
        Ok(answers)
    }

    async fn write_in_transaction(
        &self,
        connection: &mut SqliteConnection,
        batch: &[Pending],
    ) -> Result<Vec<Option<Submitted>>, sqlx::Error> {
        let scripts = self.scripts_for(batch.len())?;
        let mut lookup = sqlx::query(AssertSqlSafe(Arc::clone(&scripts.lookup)))
            .bind(bigint(self.options.retention.dedupe_capacity))
            .bind(retention_ms(&self.options));
        for pending in batch {
            lookup = lookup
                .bind(pending.job.job_id.as_str())
                .bind(&pending.job.dedupe_key)
                .bind(pending.job.created_at_ms);
        }
        // `fetch_all`, not `fetch_one`: sqlx stops a script at the row `fetch_one` wants.
        let rows = lookup.fetch_all(&mut *connection).await?;
        let [row] = rows.as_slice() else {
            return Err(sqlx::Error::Protocol(format!(
                "the lookup answered {} rows, not one",
                rows.len()
            )));
        };
        let waiting: i64 = row.try_get("waiting")?;
        let known: String = row.try_get("known")?;
        let known: Vec<Option<(u8, String)>> = serde_json::from_str(&known).map_err(|err| {
            sqlx::Error::Protocol(format!("the lookup's answer {known:?}: {err}"))
        })?;
        // The write lock is held: from here on the batch's answers are final, so this is where each
        // submission is admitted, or left out if its submitter stopped waiting.
        let admitted: Vec<bool> = batch
            .iter()
            .map(|pending| pending.admission.admit())
            .collect();
        let answers = decide(batch, &known, &admitted, waiting)?;

        let stored: Vec<&Pending> = batch
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| matches!(answer, Some(Submitted::Accepted(_))))
            .map(|(pending, _)| pending)
            .collect();
        if stored.is_empty() {
            sqlx::query("COMMIT").execute(&mut *connection).await?;
            return Ok(answers);
        }
        let store = &self.scripts_for(stored.len())?.store;
        let mut store = sqlx::query(AssertSqlSafe(Arc::clone(store)));
        for pending in &stored {
            let job = &pending.job;
            store = store
                .bind(job.job_id.as_str())
                .bind(&job.dedupe_key)
                .bind(job.lane.as_deref())
                .bind(&job.kind)
                .bind(&job.metadata)
                .bind(&job.payload)
                .bind(job.created_at_ms);
        }
        store.execute(&mut *connection).await?;
        Ok(answers)
    }

    fn scripts_for(&self, jobs: usize) -> Result<&Scripts, sqlx::Error> {
        let slots = jobs.next_power_of_two();
        self.scripts
            .get(slots.trailing_zeros() as usize)
            .ok_or_else(|| sqlx::Error::Protocol(format!("no batch script for {slots} jobs")))
    }

    /// Deletes the oldest remembered dedupe keys whose job is gone and that are out of both dedupe
    /// windows: a bound on the table, not a rule (`insert` decides whether a key is remembered on
    /// its own). The key of a stored job is kept: it is how `insert` finds the job.
    ///
    /// Only the [`FORGET_SCAN`] oldest rows are looked at, so a clean-up costs the same however large
    /// the table is (a week of deliveries, say); deliveries arrive in time order, so the oldest are the
    /// first to leave the age window, and at most [`FORGET_EVERY`] arrive between clean-ups. "Now" is the
    /// newest delivery's time, the engine's clock as the last insert gave it.
    async fn forget_old_deliveries(&self) {
        let forgotten = sqlx::query(
            "DELETE FROM booty_dedupe_keys WHERE seq IN (
                 SELECT seq FROM (SELECT seq, job_id, accepted_at_ms FROM booty_dedupe_keys
                                   ORDER BY seq LIMIT ?3) AS d
                  WHERE NOT EXISTS (SELECT 1 FROM booty_jobs AS j WHERE j.job_id = d.job_id)
                    AND seq <= (SELECT max(seq) FROM booty_dedupe_keys) - ?1
                    AND accepted_at_ms <= (SELECT accepted_at_ms FROM booty_dedupe_keys
                                            ORDER BY seq DESC LIMIT 1) - ?2)",
        )
        .bind(bigint(self.options.retention.dedupe_capacity))
        .bind(retention_ms(&self.options))
        .bind(bigint(FORGET_SCAN))
        .execute(&self.pool)
        .await;
        if let Err(err) = forgotten {
            warn!(store = "sqlite", error = %Chain(&err), "store_cleanup_failed");
        }
    }
}

/// Lets the tasks that are about to submit do so before the batch is written, and takes what they
/// sent: yields to the runtime as long as each yield brought more submissions, up to `max_batch`.
///
/// Without this, group commit would rarely group on a busy core: the writer would hand each submission
/// to SQLite's thread the moment it arrived, and that thread would run (and commit it alone) before the
/// runtime got back to the connections whose deliveries are already being verified. When nothing else
/// is ready to run, the one yield returns at once.
async fn gather(queue: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>, max_batch: usize) {
    while batch.len() < max_batch {
        tokio::task::yield_now().await;
        let before = batch.len();
        while batch.len() < max_batch {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        if batch.len() == before {
            break;
        }
    }
}

/// What a job a submission is a duplicate of was found by, best first (the rank in [`Scripts`]'
/// lookup): a stored job with its dedupe key, a remembered key, a stored job with its id.
const BY_DEDUPE_KEY: u8 = 1;
const BY_JOB_ID: u8 = 3;

/// The two scripts that write a batch of up to `slots` submissions in one transaction.
///
/// SQLite does the least work for a plain multi-row `INSERT` without triggers: the rows go straight
/// into the table, with nothing copied to a temporary table first and no statement journal (`OR
/// ROLLBACK`: a constraint that fails ends the transaction, and the batch is written again job by
/// job). So the decisions are made in between, by [`decide`]:
///
/// 1. `lookup` begins the transaction (`IMMEDIATE`: the write lock is taken now, so nothing changes
///    until the commit) and answers in one row the waiting count and, for every slot, the best of what
///    the submission is already known as: `[rank, job id]` or `null`.
/// 2. `store` inserts the accepted jobs, remembers their dedupe keys, adds them to the waiting count and
///    commits. Only the jobs are bound: the new rows are the newest `changes()` of `booty_jobs` (an
///    `INTEGER PRIMARY KEY` takes the largest plus one), and `changes()` counts them for the count.
///
/// Placeholders are plain `?`s, which sqlx numbers through the whole script. Slots past the batch are
/// left unbound, hence `NULL`, and skipped.
#[derive(Debug)]
struct Scripts {
    lookup: Arc<str>,
    store: Arc<str>,
}

impl Scripts {
    fn new(slots: usize) -> Self {
        let rows = |row: &str| {
            (0..slots)
                .map(|slot| row.replace("{slot}", &slot.to_string()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let lookup = format!(
            "BEGIN IMMEDIATE;
             WITH bounds (remembered, retention_ms) AS (VALUES (?, ?)),
                  batch (slot, job_id, dedupe_key, created_at_ms) AS (VALUES {}),
                  newest (seq) AS (SELECT max(seq) FROM booty_dedupe_keys)
             SELECT (SELECT waiting FROM booty_counts) AS waiting,
                    json_group_array(json((
                        SELECT json_array(rank, job_id) FROM (
                            SELECT {BY_DEDUPE_KEY} AS rank, d.job_id FROM booty_dedupe_keys AS d
                             WHERE d.dedupe_key = b.dedupe_key
                               AND EXISTS (SELECT 1 FROM booty_jobs AS j WHERE j.job_id = d.job_id)
                            UNION ALL
                            SELECT 2, d.job_id FROM booty_dedupe_keys AS d, bounds AS w, newest AS n
                             WHERE d.dedupe_key = b.dedupe_key
                               AND (d.seq > n.seq - w.remembered
                                    OR d.accepted_at_ms > b.created_at_ms - w.retention_ms)
                            UNION ALL
                            SELECT {BY_JOB_ID}, j.job_id FROM booty_jobs AS j WHERE j.job_id = b.job_id
                        ) ORDER BY rank LIMIT 1)) ORDER BY b.slot) AS known
               FROM batch AS b;",
            rows("({slot}, ?, ?, ?)")
        );
        let store = format!(
            "INSERT OR ROLLBACK INTO booty_jobs
                 (job_id, dedupe_key, lane, kind, metadata, state, payload_lz4, created_at_ms)
             SELECT column1, column2, column3, column4, column5, 'queued', column6, column7
               FROM (VALUES {}) WHERE column1 IS NOT NULL;
             INSERT OR REPLACE INTO booty_dedupe_keys (job_id, dedupe_key, accepted_at_ms)
             SELECT job_id, dedupe_key, created_at_ms FROM (
                 SELECT seq, job_id, dedupe_key, created_at_ms FROM booty_jobs
                  ORDER BY seq DESC LIMIT changes())
              ORDER BY seq;
             UPDATE booty_counts SET waiting = waiting + changes();
             COMMIT;",
            rows("(?, ?, ?, ?, ?, ?, ?)")
        );
        Self {
            lookup: lookup.into(),
            store: store.into(),
        }
    }
}

/// Each submission's answer, in order, as if each were written alone after the ones before it: a
/// duplicate of what it is `known` as, or of an earlier submission of the batch, else busy if the
/// `waiting` jobs (the batch's accepted ones included) fill its capacity, else accepted. A submission
/// that was not `admitted` gets no answer and counts for nothing.
fn decide(
    batch: &[Pending],
    known: &[Option<(u8, String)>],
    admitted: &[bool],
    mut waiting: i64,
) -> Result<Vec<Option<Submitted>>, sqlx::Error> {
    if known.len() < batch.len() {
        return Err(sqlx::Error::Protocol(format!(
            "the lookup answered {} of {} submissions",
            known.len(),
            batch.len()
        )));
    }
    let mut answers = Vec::with_capacity(batch.len());
    for (index, (pending, known)) in batch.iter().zip(known).enumerate() {
        if !admitted.get(index).copied().unwrap_or(false) {
            answers.push(None);
            continue;
        }
        let job = &pending.job;
        let earlier = batch[..index]
            .iter()
            .zip(&answers)
            .filter(|(_, answer)| matches!(answer, Some(Submitted::Accepted(_))))
            .map(|(earlier, _)| &earlier.job)
            .find_map(|earlier| {
                if earlier.dedupe_key == job.dedupe_key {
                    Some((BY_DEDUPE_KEY, earlier.job_id.as_str()))
                } else if earlier.job_id == job.job_id {
                    Some((BY_JOB_ID, earlier.job_id.as_str()))
                } else {
                    None
                }
            });
        let stored = known.as_ref().map(|(rank, id)| (*rank, id.as_str()));
        let duplicate = match (stored, earlier) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        answers.push(Some(match duplicate {
            Some((_, id)) => Submitted::Duplicate(JobId::from(id.to_owned())),
            None if waiting >= pending.capacity => Submitted::Busy,
            None => {
                waiting += 1;
                Submitted::Accepted(job.job_id.clone())
            }
        }));
    }
    Ok(answers)
}

fn no_answer(pending: &Pending) -> StoreError {
    StoreError::Backend {
        store: "sqlite",
        operation: "insert",
        source: format!(
            "job {}: the batch script gave no answer",
            pending.job.job_id
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
    fn the_scripts_bind_every_column_of_every_slot() {
        for slots in [1, 2, 8] {
            let scripts = Scripts::new(slots);
            assert_eq!(scripts.lookup.matches('?').count(), 2 + 3 * slots);
            assert_eq!(scripts.store.matches('?').count(), 7 * slots);
            assert!(scripts.lookup.contains(&format!("({}, ?", slots - 1)));
        }
    }

    fn pending(job_id: &str, delivery_id: &str, capacity: i64) -> Pending {
        Pending {
            job: NewJob {
                job_id: JobId::new(job_id),
                dedupe_key: delivery_id.to_owned(),
                lane: None,
                kind: "test".to_owned(),
                metadata: "{}".to_owned(),
                payload: crate::store::sqlite::packed::pack(&serde_json::json!({})).expect("packs"),
                created_at_ms: 0,
            },
            capacity,
            admission: Admission::new(),
            reply: oneshot::channel().0,
        }
    }

    fn id(job_id: &str) -> JobId {
        JobId::from(job_id.to_owned())
    }

    #[test]
    fn a_batch_is_decided_as_if_each_were_written_after_the_ones_before_it() {
        let batch = [
            pending("1-a", "a", 3),
            pending("1-a2", "a", 3), // the delivery of the job just accepted
            pending("1-b", "b", 3),  // known to the database
            pending("1-c", "c", 3),
            pending("1-a", "other", 3), // the id of an accepted job
            pending("1-d", "d", 3),     // the capacity is full
            pending("1-e", "e", 5),     // a larger capacity has room
        ];
        let known = [
            None,
            None,
            Some((2, "0-b".to_owned())),
            None,
            None,
            None,
            None,
        ];
        let answers = decide(&batch, &known, &[true; 7], 1).expect("decided");
        assert_eq!(
            answers,
            [
                Some(Submitted::Accepted(id("1-a"))),
                Some(Submitted::Duplicate(id("1-a"))),
                Some(Submitted::Duplicate(id("0-b"))),
                Some(Submitted::Accepted(id("1-c"))),
                Some(Submitted::Duplicate(id("1-a"))),
                Some(Submitted::Busy),
                Some(Submitted::Accepted(id("1-e"))),
            ]
        );
    }

    #[test]
    fn a_stored_delivery_outranks_an_earlier_job_with_the_same_id() {
        let batch = [pending("1-a", "a", 10), pending("1-a", "b", 10)];
        // The database knows delivery `b` as job `0-b`; the batch's first job has the same id.
        let known = [None, Some((BY_DEDUPE_KEY, "0-b".to_owned()))];
        let answers = decide(&batch, &known, &[true; 2], 0).expect("decided");
        assert_eq!(answers[1], Some(Submitted::Duplicate(id("0-b"))));
        // And a delivery earlier in the batch outranks a stored job with the same id.
        let known = [None, Some((BY_JOB_ID, "1-a".to_owned()))];
        let batch = [pending("2-b", "b", 10), pending("1-a", "b", 10)];
        let answers = decide(&batch, &known, &[true; 2], 0).expect("decided");
        assert_eq!(answers[1], Some(Submitted::Duplicate(id("2-b"))));
    }

    #[test]
    fn a_lookup_that_answers_too_few_submissions_is_an_error() {
        let batch = [pending("1-a", "a", 10), pending("1-b", "b", 10)];
        assert!(decide(&batch, &[None], &[true; 2], 0).is_err());
    }

    #[test]
    fn a_withdrawn_submission_gets_no_answer_and_takes_no_room() {
        // `a` was withdrawn: `a2` (same delivery) is not its duplicate, and the one free place goes to it.
        let batch = [
            pending("1-a", "a", 1),
            pending("1-a2", "a", 1),
            pending("1-b", "b", 1),
        ];
        let answers =
            decide(&batch, &[None, None, None], &[false, true, true], 0).expect("decided");
        assert_eq!(
            answers,
            [
                None,
                Some(Submitted::Accepted(id("1-a2"))),
                Some(Submitted::Busy)
            ]
        );
    }
}
