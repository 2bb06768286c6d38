//! What a [`SqliteStore`](super::SqliteStore) is told when it opens, and how opening fails.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::store::{BoxError, Retention};

/// How a [`SqliteStore`](super::SqliteStore) writes and what it keeps. Start from
/// `SqliteOptions::default()` and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How hard a commit insists that its data reached the disk (default [`Synchronous::Normal`]).
    pub synchronous: Synchronous,
    /// Dedupe keys remembered after their job is gone (the newest `dedupe_capacity` always are) and
    /// finished jobs kept (default [`Retention::default`]).
    pub retention: Retention,
    /// Dedupe keys younger than this are remembered too, however many there are (default 7 days; zero
    /// keeps only the count). A key is forgotten once it is out of both windows and its job is gone.
    pub dedupe_retention: Duration,
    /// Submissions written in one transaction at most (default 256, at most 1,024). Concurrent
    /// submissions share a commit; this only bounds how long one commit keeps the others waiting.
    pub max_batch: usize,
    /// How long a statement waits for a lock someone else holds on the database, such as a `sqlite3`
    /// shell reading it, before it fails (default 5 s).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Normal,
            retention: Retention::default(),
            dedupe_retention: Duration::from_hours(7 * 24),
            max_batch: 256,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

impl SqliteOptions {
    /// The first setting that cannot work.
    pub(super) fn check(&self) -> Result<(), SqliteError> {
        let problem = if self.max_batch == 0 {
            Some(("max_batch", "must be at least 1"))
        } else if self.max_batch > 1_024 {
            Some((
                "max_batch",
                "must be at most 1,024 (the script for the largest batch is prepared once and kept)",
            ))
        } else {
            None
        };
        match problem {
            Some((option, problem)) => Err(SqliteError::Option { option, problem }),
            None => Ok(()),
        }
    }
}

/// SQLite's `synchronous` setting, with the database in WAL mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Synchronous {
    /// The write-ahead log is synced at checkpoints, not at every commit: a commit survives the process
    /// being killed (the operating system has it), and the database stays consistent through a power
    /// loss, which may take back the last commits. SQLite's recommendation for WAL.
    #[default]
    Normal,
    /// Every commit syncs the write-ahead log before it returns: a `202` survives a power loss too. Each
    /// group commit then waits for the disk once.
    Full,
}

impl Synchronous {
    /// The name the configuration uses: `normal` or `full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Full => "full",
        }
    }
}

impl fmt::Display for Synchronous {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a [`Synchronous`] level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown synchronous level `{0}` (expected `normal` or `full`)")]
pub struct UnknownSynchronous(pub String);

impl FromStr for Synchronous {
    type Err = UnknownSynchronous;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "normal" => Ok(Self::Normal),
            "full" => Ok(Self::Full),
            other => Err(UnknownSynchronous(other.to_owned())),
        }
    }
}

/// [`SqliteStore::open`](super::SqliteStore::open) failed. Every message names the database file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SqliteError {
    /// A setting of [`SqliteOptions`] cannot work.
    #[error("SQLite store option `{option}` {problem}")]
    Option {
        /// The field of `SqliteOptions`.
        option: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Another process (or another store in this one) has the database open: one process per file.
    #[error(
        "SQLite database {} is in use by another process (its lock file {} is held); \
         a database file serves one booty process at a time",
        .path.display(), .lock.display()
    )]
    InUse {
        /// The database file.
        path: PathBuf,
        /// The lock file next to it.
        lock: PathBuf,
    },
    /// The database is locked by something else that holds SQLite's own lock (a `sqlite3` shell in the
    /// middle of a write, say) for longer than the busy timeout.
    #[error("SQLite database {} is locked by another connection", .path.display())]
    Locked {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: BoxError,
    },
    /// The file (or its lock file, or its directory) cannot be created, opened or written.
    #[error("cannot open SQLite database {} for writing", .path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The file is not a SQLite database, or it is damaged.
    #[error("SQLite database {} is corrupt or not a database", .path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite found.
        #[source]
        source: BoxError,
    },
    /// The embedded migrations could not be applied: a migration failed, or the file holds migrations
    /// this version of booty does not know (a newer booty wrote it).
    #[error("could not migrate the SQLite store's tables in {}", .path.display())]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_levels_round_trip_by_name() {
        for level in [Synchronous::Normal, Synchronous::Full] {
            assert_eq!(level.as_str().parse::<Synchronous>().unwrap(), level);
        }
        let err = "off".parse::<Synchronous>().unwrap_err().to_string();
        assert!(err.contains("`off`"), "{err}");
    }

    #[test]
    fn a_zero_batch_is_named() {
        let mut options = SqliteOptions::default();
        assert!(options.check().is_ok());
        options.max_batch = 0;
        let err = options.check().unwrap_err().to_string();
        assert!(err.contains("`max_batch`"), "{err}");
    }
}
