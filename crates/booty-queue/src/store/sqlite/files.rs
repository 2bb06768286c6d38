//! The database file and its write-ahead log must stay the files the store opened.
//!
//! SQLite keeps writing to a log file that was deleted (or replaced) under it, through the descriptors
//! it holds: nothing fails, and everything committed since the last checkpoint is lost at the next
//! crash, while a connection opened afterwards would start a second log next to the first. So the store
//! notes both files' identity (device and inode) when it opens, checks them at every checkpoint and
//! every [`CHECK_EVERY`], and when either changed it refuses every write from then on with an error
//! that says which file and what to do: a restart on the file as it is.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::store::StoreError;

/// How often the checkpointer looks at the files when no checkpoint is due.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(10);

/// Device and inode.
type Identity = (u64, u64);

/// The files the store opened, and whether they were found changed.
#[derive(Debug)]
pub(super) struct Files {
    database: PathBuf,
    log: PathBuf,
    identities: (Identity, Identity),
    changed: OnceLock<String>,
}

impl Files {
    /// Notes the identity of `database` and its `-wal` log, which exists once a connection is open.
    pub(super) fn note(database: &Path) -> std::io::Result<Self> {
        let log = log_path(database);
        Ok(Self {
            identities: (identity(database)?, identity(&log)?),
            database: database.to_owned(),
            log,
            changed: OnceLock::new(),
        })
    }

    /// Looks at the files again; `Err` with the reason once either is gone or another file (and from
    /// then on).
    pub(super) fn verify(&self) -> Result<(), &str> {
        if self.changed.get().is_none() {
            let (database, log) = self.identities;
            let problem = [(&self.database, database), (&self.log, log)]
                .into_iter()
                .find_map(|(path, noted)| match identity(path) {
                    Ok(now) if now == noted => None,
                    Ok(_) => Some(format!(
                        "{} was replaced while the store had it open",
                        path.display()
                    )),
                    Err(err) => Some(format!(
                        "{} was removed while the store had it open ({err})",
                        path.display()
                    )),
                });
            if let Some(problem) = problem {
                let _ = self.changed.set(format!(
                    "{problem}; the store stopped writing so nothing more is lost: restart booty on the \
                     database as it is now"
                ));
            }
        }
        self.refusal()
    }

    /// Whether writes are refused (without looking at the files again).
    pub(super) fn refusal(&self) -> Result<(), &str> {
        match self.changed.get() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// [`Self::refusal`] as the error of a store `operation`.
    pub(super) fn check(&self, operation: &'static str) -> Result<(), StoreError> {
        self.refusal().map_err(|reason| refused(operation, reason))
    }
}

/// The error of a write refused because the files changed.
pub(super) fn refused(operation: &'static str, reason: &str) -> StoreError {
    StoreError::Backend {
        store: "sqlite",
        operation,
        source: reason.to_owned().into(),
    }
}

/// `PATH-wal`, SQLite's name for the log of `PATH`.
fn log_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn identity(path: &Path) -> std::io::Result<Identity> {
    let metadata = std::fs::metadata(path)?;
    Ok((metadata.dev(), metadata.ino()))
}
