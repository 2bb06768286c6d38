//! Workspace directories: created private, recognisable and held in use, removed exactly once, swept after a
//! crash without touching one a live process holds.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::lock::{self, Removal};

/// What every workspace directory's name starts with; the issue number and a random suffix follow.
const PREFIX: &str = "booty-issue-";

/// How many fresh directories [`WorkspaceDir::create`] tries when sweeps keep taking them before it can hold
/// them (each try loses only to a sweep that ran in the instant between `mkdir` and `flock`).
const CREATE_ATTEMPTS: usize = 3;

/// A workspace directory that is removed when this guard is dropped, unless [`Self::remove`] already did.
///
/// From its creation until it has been removed, the guard holds a shared `flock` on the directory, so
/// [`sweep`] (in this process or another) leaves it alone.
#[derive(Debug)]
pub(crate) struct WorkspaceDir {
    path: PathBuf,
    /// The directory, open, with its shared lock; `None` once the directory has been removed (or handed to
    /// [`Self::remove`]), which closes it and releases the lock.
    held: Option<File>,
}

impl WorkspaceDir {
    /// Creates `root/booty-issue-{issue}-{random}` with mode 0700 (creating `root` first if needed) and marks
    /// it in use before anything is written in it. The random part keeps two workspaces for the same issue
    /// apart.
    ///
    /// A `root` that exists but is not a directory fails with [`io::ErrorKind::NotADirectory`] (std reports it
    /// as "already exists", which would read as a passing conflict).
    pub(crate) fn create(root: &Path, issue_number: u64) -> io::Result<Self> {
        if let Err(err) = std::fs::create_dir_all(root) {
            return Err(
                if err.kind() == io::ErrorKind::AlreadyExists && !root.is_dir() {
                    io::Error::from(io::ErrorKind::NotADirectory)
                } else {
                    err
                },
            );
        }
        let prefix = format!("{PREFIX}{issue_number}-");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            builder.permissions(std::fs::Permissions::from_mode(0o700));
        }
        for _ in 0..CREATE_ATTEMPTS {
            let path = builder.tempdir_in(root)?.keep();
            let held = match File::open(&path) {
                Ok(held) => held,
                // A sweep removed it already.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(remove_unheld(&path, err)),
            };
            match lock::mark_in_use(&held, &path) {
                Ok(true) => {
                    return Ok(Self {
                        path,
                        held: Some(held),
                    });
                }
                // A sweep holds it and removes it; try another name.
                Ok(false) => {}
                Err(err) => return Err(remove_unheld(&path, err)),
            }
        }
        Err(io::Error::other(
            "every new workspace directory was swept before it could be marked in use",
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory now and reports a failure instead of logging it.
    pub(crate) fn remove(mut self) -> io::Result<()> {
        let held = self.held.take();
        let removed = remove_tree(&self.path);
        drop(held);
        removed
    }
}

impl Drop for WorkspaceDir {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            if let Err(err) = remove_tree(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %err, "workspace_cleanup_failed");
            }
            drop(held);
        }
    }
}

/// Removes a directory just created that could not be marked in use (it is empty), and returns `err`.
fn remove_unheld(path: &Path, err: io::Error) -> io::Error {
    let _ = std::fs::remove_dir(path);
    err
}

/// Removes `path` and everything under it; a directory that is already gone (gix removes the destination of
/// a failed clone itself) counts as removed.
fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    tracing::info!(path = %path.display(), "workspace_cleaned");
    Ok(())
}

/// Whether `name` is one [`WorkspaceDir::create`] makes: the prefix, an issue number, `-`, a non-empty suffix.
fn is_workspace_name(name: &OsStr) -> bool {
    let Some(rest) = name.to_str().and_then(|name| name.strip_prefix(PREFIX)) else {
        return false;
    };
    let Some((number, suffix)) = rest.split_once('-') else {
        return false;
    };
    !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) && !suffix.is_empty()
}

/// What [`sweep`] found: the leftovers it removed and the workspaces it left alone because they are in use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Swept {
    /// Leftovers nobody held, now removed; sorted.
    pub removed: Vec<PathBuf>,
    /// Workspaces some process holds (a live [`crate::Workspace`], or a process that marked it in use), left
    /// as they are; sorted.
    pub in_use: Vec<PathBuf>,
}

/// A leftover could not be removed by [`sweep`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// The root directory could not be listed.
    #[error("could not list workspace root {}", root.display())]
    List {
        /// The workspace root that was swept.
        root: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// A leftover workspace could not be locked or removed; the ones before it were handled.
    #[error("could not remove leftover workspace {}", path.display())]
    Remove {
        /// The leftover that is still there (or part of it).
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
}

/// Removes the workspace directories under `root` that no process uses any more, and says which it removed
/// and which it left alone because they are in use.
///
/// Only directories named like the ones [`crate::WorkspaceManager::prepare`] creates
/// (`booty-issue-{n}-{random}`) are touched; anything else in `root` is left alone, and a missing `root` has
/// nothing to sweep.
///
/// A workspace is in use while some open file holds a shared `flock` on its directory: every
/// [`crate::Workspace`] does, from the moment its directory is created (before the clone starts) until it
/// has been removed, so a sweep in this process or another (a second `booty serve` starting up) never
/// removes a live one. A directory is removed only while the sweep holds an exclusive lock on it, taken
/// without waiting; one that someone holds is skipped, reported in [`Swept::in_use`] and logged as
/// `workspace_in_use`. The kernel drops a lock when its holder exits, even by `kill -9`, so what a crashed
/// run left behind is removed (logged as `workspace_cleaned`) unless another process still holds it.
///
/// **To keep a workspace from being swept, hold a shared `flock` on its directory**, for as long as it must
/// stay: open the directory and lock it with [`crate::mark_in_use`] (or [`File::lock_shared`], or
/// `flock --shared DIR command`). A job command's supervisor that may outlive this process does exactly
/// that; the lock of the [`crate::Workspace`] is not inherited by child processes. Files kept next to
/// workspaces can follow the same protocol with [`crate::mark_in_use`] and [`crate::remove_unless_in_use`].
///
/// It can run at any time, not only at start-up.
///
/// # Errors
/// [`SweepError::List`] if `root` cannot be read, [`SweepError::Remove`] for the first directory that cannot
/// be locked or removed (the sweep stops there).
pub async fn sweep(root: impl Into<PathBuf>) -> Result<Swept, SweepError> {
    let root = root.into();
    let listed = root.clone();
    crate::blocking::run(move || sweep_blocking(&root))
        .await
        .unwrap_or_else(|| {
            Err(SweepError::List {
                root: listed,
                source: io::Error::other("the runtime shut down during the sweep"),
            })
        })
}

fn sweep_blocking(root: &Path) -> Result<Swept, SweepError> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Swept::default()),
        Err(source) => {
            return Err(SweepError::List {
                root: root.to_owned(),
                source,
            });
        }
    };
    let mut swept = Swept::default();
    for entry in entries {
        let entry = entry.map_err(|source| SweepError::List {
            root: root.to_owned(),
            source,
        })?;
        // `DirEntry::file_type` does not follow symlinks: a link named like a workspace is not ours to follow.
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        if !is_dir || !is_workspace_name(&entry.file_name()) {
            continue;
        }
        let path = entry.path();
        match lock::remove_unless_in_use(&path) {
            Ok(Removal::Removed) => {
                tracing::info!(path = %path.display(), "workspace_cleaned");
                swept.removed.push(path);
            }
            Ok(Removal::InUse) => {
                tracing::info!(path = %path.display(), "workspace_in_use");
                swept.in_use.push(path);
            }
            // Removed since it was listed, by another sweep.
            Ok(Removal::Gone) => {}
            Err(source) => return Err(SweepError::Remove { path, source }),
        }
    }
    swept.removed.sort();
    swept.in_use.sort();
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_names_are_recognised_exactly() {
        for name in [
            "booty-issue-42-Ab3xYz",
            "booty-issue-0-x",
            "booty-issue-7-a-b",
        ] {
            assert!(is_workspace_name(OsStr::new(name)), "{name}");
        }
        for name in [
            "booty-issue-42",
            "booty-issue-42-",
            "booty-issue--abc",
            "booty-issue-4x2-abc",
            "booty-issues-42-abc",
            "xbooty-issue-42-abc",
            "booty-db",
            "",
        ] {
            assert!(!is_workspace_name(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn created_directories_are_private_and_named_after_the_issue() {
        let root = tempfile::tempdir().unwrap();
        let nested = root.path().join("not/yet/there");
        let dir = WorkspaceDir::create(&nested, 42).unwrap();
        let name = dir.path().file_name().unwrap().to_owned();
        assert!(
            name.to_str().unwrap().starts_with("booty-issue-42-"),
            "{name:?}"
        );
        assert!(is_workspace_name(&name));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let path = dir.path().to_owned();
        std::fs::write(path.join("file"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn a_created_directory_is_in_use_until_it_is_removed() {
        let root = tempfile::tempdir().unwrap();
        let dir = WorkspaceDir::create(root.path(), 5).unwrap();
        assert_eq!(
            lock::remove_unless_in_use(dir.path()).unwrap(),
            Removal::InUse
        );
        assert!(dir.path().is_dir());
        let path = dir.path().to_owned();
        dir.remove().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn remove_accepts_a_directory_that_is_already_gone() {
        let root = tempfile::tempdir().unwrap();
        let dir = WorkspaceDir::create(root.path(), 1).unwrap();
        std::fs::remove_dir(dir.path()).unwrap();
        dir.remove().unwrap();
    }
}
