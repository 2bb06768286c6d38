//! An error with causes, as a store gives one, for tests of what is logged behind a `5xx`.

/// A store's error caused by a database error caused by an I/O error: three links, so a test can check
/// that a log line shows every cause (`inserting the job failed: database is locked: the disk is on
/// fire`) and that an answer shows none.
#[derive(Debug, thiserror::Error)]
#[error("inserting the job failed")]
pub struct StoreError {
    #[source]
    source: DatabaseError,
}

/// What [`StoreError`] wraps: itself caused by an I/O error.
#[derive(Debug, thiserror::Error)]
#[error("database is locked")]
pub struct DatabaseError {
    #[source]
    source: std::io::Error,
}

impl StoreError {
    /// The chain `inserting the job failed: database is locked: the disk is on fire`.
    pub fn chain() -> Self {
        Self {
            source: DatabaseError {
                source: std::io::Error::other("the disk is on fire"),
            },
        }
    }
}
