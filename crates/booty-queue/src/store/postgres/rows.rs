//! Between Rust values and columns: timestamps as unix milliseconds, counts as `BIGINT`, and rows as
//! [`JobSnapshot`]s.

use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::job::{JobId, JobSnapshot, JobState};
use crate::store::BoxError;
use crate::time::Timestamp;

/// The columns [`snapshot`] reads, for `SELECT` and `RETURNING` lists.
macro_rules! snapshot_columns {
    () => {
        "job_id, state, attempts, issue_number, repository, delivery_id, created_at_ms, started_at_ms, \
         finished_at_ms, retry_at_ms, error"
    };
}
pub(super) use snapshot_columns;

/// A timestamp as stored: milliseconds, saturating at `BIGINT`'s maximum (some 292 million years out).
pub(super) fn millis(at: Timestamp) -> i64 {
    i64::try_from(at.as_unix_millis()).unwrap_or(i64::MAX)
}

/// A stored timestamp; the store writes none before the epoch.
pub(super) fn timestamp(millis: i64) -> Timestamp {
    Timestamp::from_unix_millis(u64::try_from(millis).unwrap_or(0))
}

/// A count or bound as a `BIGINT` parameter, saturating (`usize::MAX` means "no bound").
pub(super) fn bigint(count: usize) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Reads a row holding [`snapshot_columns!`].
pub(super) fn snapshot(row: &PgRow) -> Result<JobSnapshot, sqlx::Error> {
    let state: String = row.try_get("state")?;
    let state = state.parse::<JobState>().map_err(decode)?;
    let attempts: i32 = row.try_get("attempts")?;
    let issue_number: Option<i64> = row.try_get("issue_number")?;
    Ok(JobSnapshot {
        job_id: JobId::from(row.try_get::<String, _>("job_id")?),
        state,
        attempts: u32::try_from(attempts).map_err(decode)?,
        issue_number: issue_number
            .map(u64::try_from)
            .transpose()
            .map_err(decode)?,
        repository: row.try_get("repository")?,
        delivery_id: row.try_get("delivery_id")?,
        created_at: timestamp(row.try_get("created_at_ms")?),
        started_at: row
            .try_get::<Option<i64>, _>("started_at_ms")?
            .map(timestamp),
        finished_at: row
            .try_get::<Option<i64>, _>("finished_at_ms")?
            .map(timestamp),
        retry_at: row.try_get::<Option<i64>, _>("retry_at_ms")?.map(timestamp),
        error: row.try_get("error")?,
    })
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
}
