//! What the SQL stores (SQLite, PostgreSQL) share: timestamps as unix milliseconds, counts as 64-bit
//! integers, rows read as [`JobSnapshot`]s, and payloads as JSON.
//!
//! Both stores lay their `booty_jobs` table out alike (the same column names and meanings, see their
//! migrations), so one reader serves both.

use std::future::Future;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use sqlx::database::Database;
use sqlx::encode::Encode;
use sqlx::{ColumnIndex, Decode, Executor, IntoArguments, Row, Type};
use tracing::field::display;

use crate::chain::Chain;
use crate::job::{Job, JobId, JobMetadata, JobOutput, JobSnapshot, JobState};
use crate::log::job_event;
use crate::query::JobCounts;
use crate::store::{BoxError, Claim, Lease, Outcome, StoreError};
use crate::time::Timestamp;

/// What one claim found: a job, its payload still the stored JSON; a job whose stored payload cannot be
/// read back, and why (its payload empty); or nothing runnable and when the earliest retry falls due.
pub(super) enum Claimed {
    Job(Job<String>),
    Unreadable(Job<String>, String),
    Idle(Option<Timestamp>),
}

/// The part of claiming and recording each SQL store writes in its own dialect; [`claim`] is the rest,
/// written once for both.
pub(super) trait SqlStore: Sync {
    /// Takes the earliest runnable head of a lane, as `Store::claim` describes, without decoding it.
    fn claim_row(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> impl Future<Output = Result<Claimed, StoreError>> + Send;

    /// `Store::finish`.
    fn record(
        &self,
        lease: &Lease,
        outcome: &Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// `Store::claim` for a SQL store: takes the next runnable job and deserializes its payload; a job whose
/// payload does not deserialize (say, after a change to `P`) can never run, so it fails at once with the
/// reason as its error, and the next one is taken.
pub(super) async fn claim<P: DeserializeOwned, S: SqlStore>(
    store: &S,
    owner: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> Result<Claim<P>, StoreError> {
    loop {
        let (job, error) = match store.claim_row(owner, now, lease_until).await? {
            Claimed::Job(job) => match decode_payload(job) {
                Ok(job) => return Ok(Claim::Job(job)),
                Err(undecodable) => *undecodable,
            },
            Claimed::Unreadable(job, error) => (job, error),
            Claimed::Idle(next_retry_at) => return Ok(Claim::Idle { next_retry_at }),
        };
        let lease = Lease {
            job_id: job.id.clone(),
            owner: owner.to_owned(),
            attempt: job.attempt,
        };
        job_event!(
            ERROR,
            &job,
            "job_failed",
            attempt = job.attempt,
            error = error
        );
        if let Err(err) = store
            .record(&lease, &Outcome::Failed { error }, None, now)
            .await
        {
            let error = display(Chain(&err));
            job_event!(
                ERROR,
                &job,
                "job_not_recorded",
                attempt = job.attempt,
                error = error
            );
        }
    }
}

/// The columns [`snapshot`] reads, for `SELECT` and `RETURNING` lists.
macro_rules! snapshot_columns {
    () => {
        "seq, job_id, state, attempts, dedupe_key, lane, kind, CAST(metadata AS TEXT) AS metadata, \
         created_at_ms, started_at_ms, finished_at_ms, retry_at_ms, error, output"
    };
}
pub(super) use snapshot_columns;

/// The statement [`apply`] runs, with `$finished_seq` the store's way of numbering a job that becomes
/// final, and `$payload`s the names of the store's payload columns besides `payload` (cleared with
/// it). (`$N` parameters: sqlx numbers them so for SQLite too.)
macro_rules! apply_statement {
    ($finished_seq:literal, [$($payload:literal),*]) => {
        concat!(
            "UPDATE booty_jobs
                SET state = $2, lease_until_ms = NULL,
                    lease_owner = CASE WHEN $3 THEN NULL ELSE lease_owner END,
                    error = CASE WHEN $4 THEN $5 ELSE error END,
                    retry_at_ms = $6,
                    finished_at_ms = CASE WHEN $7 THEN $8 END,
                    finished_seq = CASE WHEN $7 THEN ",
            $finished_seq,
            " END,
                    payload = CASE WHEN $7 AND $2 NOT IN ('failed', 'cancelled') THEN NULL
                                   ELSE payload END,",
            $(" ", $payload, " = CASE WHEN $7 AND $2 NOT IN ('failed', 'cancelled') THEN NULL ELSE ",
              $payload, " END,",)*
            "
                    output = CASE WHEN $9 THEN $10 ELSE output END
              WHERE seq = $1
             RETURNING ",
            $crate::store::sql::snapshot_columns!()
        )
    };
}
pub(super) use apply_statement;

/// Puts job `seq` in the state `outcome` leads to, and drops its lease (and the owner too when
/// `disown`: a job taken back from a lost attempt, or cancelled while waiting; a recorded outcome keeps
/// it, so a retried PostgreSQL `finish` can tell its own write); `output` says what becomes of its
/// output. A final job is finished now, numbered in finishing order, its payload dropped unless it may be
/// retried ([`JobState::is_retryable`]: the same states the statement names). `statement`
/// is the store's [`apply_statement!`].
#[allow(
    clippy::too_many_arguments,
    reason = "each argument is one thing the update binds, named at the call"
)]
pub(super) async fn apply<'c, DB, E>(
    executor: E,
    statement: &'static str,
    seq: i64,
    outcome: &Outcome,
    now: Timestamp,
    disown: bool,
    output: OutputUpdate<'_>,
) -> Result<JobSnapshot, sqlx::Error>
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
{
    let error = outcome.error_update();
    let (set_output, output) = output.parts();
    let row = sqlx::query(statement)
        .bind(seq)
        .bind(outcome.state().as_str())
        .bind(disown)
        .bind(error.is_some())
        .bind(error.flatten())
        .bind(outcome.retry_at().map(millis))
        .bind(outcome.is_final())
        .bind(millis(now))
        .bind(set_output)
        .bind(output)
        .fetch_one(executor)
        .await?;
    snapshot(&row)
}

/// `Store::reopen`'s first look: the job, and whether its payload is still held in `payload` or any of
/// the store's other payload columns, the `$payload`s (`$1`: the job id), with `$lock` after it
/// (PostgreSQL's `FOR UPDATE`).
macro_rules! retry_find {
    ($lock:literal, [$($payload:literal),*]) => {
        concat!(
            "SELECT ",
            $crate::store::sql::snapshot_columns!(),
            ", (payload IS NOT NULL",
            $(" OR ", $payload, " IS NOT NULL",)*
            ") AS has_payload FROM booty_jobs WHERE job_id = $1",
            $lock
        )
    };
}
pub(super) use retry_find;

/// `Store::reopen`'s update once [`Retried::decide`](crate::Retried::decide) said `Queued` (`$1`: the
/// job's `seq`): back to `queued` under the new `seq` `$new_seq` (after every job stored), no longer
/// finished, leased or marked for cancellation.
macro_rules! reopen_statement {
    ($new_seq:literal) => {
        concat!(
            "UPDATE booty_jobs
                SET seq = ",
            $new_seq,
            ", state = 'queued', finished_at_ms = NULL, finished_seq = NULL, retry_at_ms = NULL,
                    lease_owner = NULL, lease_until_ms = NULL, cancel_reason = NULL
              WHERE seq = $1
             RETURNING ",
            $crate::store::sql::snapshot_columns!()
        )
    };
}
pub(super) use reopen_statement;

/// How many jobs wait (`queued` or `retrying`): what a queue's capacity counts.
pub(super) const COUNT_WAITING: &str =
    "SELECT count(*) FROM booty_jobs WHERE state IN ('queued', 'retrying')";

/// `Store::cancel` for one unfinished job, `seq` in `state`, in the caller's transaction: a running job
/// is marked (its renewals answer `CancelRequested`), any other becomes `cancelled` now through
/// [`apply`] (`statement`).
pub(super) async fn cancel_one<'c, DB, E>(
    executor: E,
    statement: &'static str,
    (seq, state): (i64, &str),
    reason: &str,
    now: Timestamp,
) -> Result<JobSnapshot, sqlx::Error>
where
    DB: Database,
    E: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'r> &'r str: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i32: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
{
    if state != JobState::Running.as_str() {
        let cancelled = Outcome::Cancelled {
            reason: reason.to_owned(),
        };
        return apply(
            executor,
            statement,
            seq,
            &cancelled,
            now,
            true,
            OutputUpdate::Keep,
        )
        .await;
    }
    let row = sqlx::query(concat!(
        "UPDATE booty_jobs SET cancel_reason = $2 WHERE seq = $1 RETURNING ",
        snapshot_columns!()
    ))
    .bind(seq)
    .bind(reason)
    .fetch_one(executor)
    .await?;
    snapshot(&row)
}

/// A timestamp as stored: milliseconds, saturating at `BIGINT`'s maximum (some 292 million years out).
pub(super) fn millis(at: Timestamp) -> i64 {
    i64::try_from(at.as_unix_millis()).unwrap_or(i64::MAX)
}

/// A stored timestamp; the stores write none before the epoch.
pub(super) fn timestamp(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(u64::try_from(millis).unwrap_or(0))
}

/// A count or bound as a `BIGINT` parameter, saturating (`usize::MAX` means "no bound").
pub(super) fn bigint(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Reads a row holding [`snapshot_columns!`].
pub(super) fn snapshot<R>(row: &R) -> Result<JobSnapshot, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = row.try_get("state")?;
    let state = state.parse::<JobState>().map_err(decode)?;
    let attempts: i32 = row.try_get("attempts")?;
    Ok(JobSnapshot {
        seq: u64::try_from(row.try_get::<i64, _>("seq")?).map_err(decode)?,
        job_id: JobId::from(row.try_get::<String, _>("job_id")?),
        state,
        attempts: u32::try_from(attempts).map_err(decode)?,
        dedupe_key: row.try_get("dedupe_key")?,
        lane: row.try_get("lane")?,
        kind: row.try_get("kind")?,
        metadata: metadata(row)?,
        created_at: timestamp(row.try_get("created_at_ms")?),
        started_at: row
            .try_get::<Option<i64>, _>("started_at_ms")?
            .map(timestamp),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at_ms")?
            .map(timestamp),
        retry_at: row.try_get::<Option<i64>, _>("retry_at_ms")?.map(timestamp),
        error: row.try_get("error")?,
        output: row.try_get("output")?,
    })
}

/// Reads a claimed job (`job_id, dedupe_key, lane, kind, metadata, created_at_ms, attempts, payload`,
/// the metadata and payload as JSON text), its payload still the stored JSON.
pub(super) fn claimed<R>(row: &R) -> Result<Job<String>, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i32: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    let attempt: i32 = row.try_get("attempts")?;
    Ok(Job {
        id: JobId::from(row.try_get::<String, _>("job_id")?),
        dedupe_key: row.try_get("dedupe_key")?,
        lane: row.try_get("lane")?,
        kind: row.try_get("kind")?,
        metadata: metadata(row)?,
        created_at: timestamp(row.try_get("created_at_ms")?),
        attempt: u32::try_from(attempt).unwrap_or(0),
        payload: Arc::new(row.try_get("payload")?),
        output: JobOutput::default(),
    })
}

/// The `metadata` column, JSON text.
fn metadata<R>(row: &R) -> Result<JobMetadata, sqlx::Error>
where
    R: Row,
    for<'r> &'r str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let json: String = row.try_get("metadata")?;
    serde_json::from_str(&json).map_err(decode)
}

/// What recording an outcome does to a job's `output`: the attempt that ended replaces it (`Set`, with
/// `None` when it printed nothing); a job taken back or cancelled keeps the last attempt's (`Keep`).
#[derive(Debug, Clone, Copy)]
pub(super) enum OutputUpdate<'a> {
    Keep,
    Set(Option<&'a str>),
}

impl<'a> OutputUpdate<'a> {
    /// Whether the output is replaced, and by what: the two parameters the stores' `UPDATE` binds.
    pub(super) fn parts(self) -> (bool, Option<&'a str>) {
        match self {
            Self::Keep => (false, None),
            Self::Set(output) => (true, output),
        }
    }
}

/// The states a `GROUP BY state` counted, as [`JobCounts`].
pub(super) fn counts(rows: Vec<(String, i64)>) -> Result<JobCounts, sqlx::Error> {
    let mut counts = JobCounts::default();
    for (state, count) in rows {
        let state = state.parse::<JobState>().map_err(decode)?;
        counts.add(state, u64::try_from(count).unwrap_or(0));
    }
    Ok(counts)
}

/// A job's metadata as the JSON a SQL store keeps, or the store's error naming the job.
pub(super) fn encode_metadata<P>(store: &'static str, job: &Job<P>) -> Result<String, StoreError> {
    serde_json::to_string(&job.metadata).map_err(|err| {
        unstorable(
            store,
            &job.id,
            &format!("the metadata does not serialize to JSON: {err}"),
        )
    })
}

/// The store's error for a job it cannot keep, and why.
pub(super) fn unstorable(store: &'static str, job_id: &JobId, why: &str) -> StoreError {
    StoreError::Backend {
        store,
        operation: "insert",
        source: format!("job {job_id}: {why}").into(),
    }
}

/// A claimed job with its payload decoded, or the job back with the error to fail it with (a payload
/// that no longer deserializes, say after a change to `P`, can never run).
pub(super) fn decode_payload<P: DeserializeOwned>(
    job: Job<String>,
) -> Result<Job<P>, Box<(Job<String>, String)>> {
    match serde_json::from_str::<P>(&job.payload) {
        Ok(payload) => Ok(Job {
            id: job.id,
            dedupe_key: job.dedupe_key,
            lane: job.lane,
            kind: job.kind,
            metadata: job.metadata,
            created_at: job.created_at,
            attempt: job.attempt,
            payload: Arc::new(payload),
            output: job.output,
        }),
        Err(err) => {
            let error = format!("the stored payload does not deserialize: {err}");
            Err(Box::new((job, error)))
        }
    }
}

/// Migration `version` of a store, as its embedded migrator lists it.
pub(super) fn migration(
    version: i64,
    description: &str,
    sql: &'static str,
) -> sqlx::migrate::Migration {
    sqlx::migrate::Migration::new(
        version,
        description.to_owned().into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str(sql),
        false,
    )
}

/// What went wrong, said once: sqlx's own messages repeat their source (`error returned from database:
/// X: X`), which an error chain would print twice. A database error is its message and its code, which
/// the backend calls `code` (`SQLite code`, `SQLSTATE`).
pub(super) fn cause(err: sqlx::Error, code: &str) -> BoxError {
    match err {
        sqlx::Error::Database(db) => match db.code() {
            Some(number) => format!("{} ({code} {number})", db.message()).into(),
            None => db.message().into(),
        },
        sqlx::Error::Io(io) => Box::new(io),
        other => Box::new(other),
    }
}

fn decode(err: impl Into<BoxError>) -> sqlx::Error {
    sqlx::Error::Decode(err.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_saturate_instead_of_wrapping() {
        let now = Timestamp::from_unix_millis(1_700_000_000_123);
        assert_eq!(timestamp(millis(now)), now);
        assert_eq!(millis(Timestamp::from_unix_millis(u64::MAX)), i64::MAX);
        assert_eq!(timestamp(-5), Timestamp::EPOCH);
        assert_eq!(bigint(usize::MAX), i64::MAX);
        assert_eq!(bigint(100), 100);
    }

    #[test]
    fn an_undecodable_payload_says_so() {
        let job = Job {
            id: JobId::new("1-d"),
            dedupe_key: "d".to_owned(),
            lane: None,
            kind: "test".to_owned(),
            metadata: JobMetadata::new(),
            created_at: Timestamp::EPOCH,
            attempt: 1,
            payload: Arc::new("{\"not\": \"a number\"}".to_owned()),
            output: JobOutput::default(),
        };
        let (_, err) = *decode_payload::<u64>(job).unwrap_err();
        assert!(
            err.starts_with("the stored payload does not deserialize"),
            "{err}"
        );
    }
}
