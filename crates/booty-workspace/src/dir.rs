//! Workspace directories: created private and recognisable, removed exactly once, swept after a crash.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};

/// What every workspace directory's name starts with; the issue number and a random suffix follow.
const PREFIX: &str = "booty-issue-";

/// A workspace directory that is removed when this guard is dropped, unless [`Self::remove`] already did.
#[derive(Debug)]
pub(crate) struct WorkspaceDir {
    path: PathBuf,
    /// `false` once the directory has been removed (or handed to [`Self::remove`]).
    armed: bool,
}

impl WorkspaceDir {
    /// Creates `root/booty-issue-{issue}-{random}` with mode 0700 (creating `root` first if needed). The
    /// random part keeps two workspaces for the same issue apart.
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
        let path = builder.tempdir_in(root)?.keep();
        Ok(Self { path, armed: true })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the directory now and reports a failure instead of logging it.
    pub(crate) fn remove(mut self) -> io::Result<()> {
        self.armed = false;
        remove_tree(&self.path)
    }
}

impl Drop for WorkspaceDir {
    fn drop(&mut self) {
        if self.armed
            && let Err(err) = remove_tree(&self.path)
        {
            tracing::warn!(path = %self.path.display(), error = %err, "workspace_cleanup_failed");
        }
    }
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
    /// A leftover workspace could not be removed; the ones before it were.
    #[error("could not remove leftover workspace {}", path.display())]
    Remove {
        /// The leftover that is still there.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
}

/// Removes the workspace directories a crashed run left under `root` and returns their paths.
///
/// Only directories named like the ones [`crate::WorkspaceManager::prepare`] creates
/// (`booty-issue-{n}-{random}`) are touched; anything else in `root` is left alone, and a missing `root` has
/// nothing to sweep. Run it at start-up, before any workspace is prepared: it cannot tell a leftover from a
/// workspace in use. Each removal is logged as `workspace_cleaned`.
///
/// # Errors
/// [`SweepError::List`] if `root` cannot be read, [`SweepError::Remove`] for the first leftover that cannot be
/// removed (the sweep stops there).
pub async fn sweep(root: impl Into<PathBuf>) -> Result<Vec<PathBuf>, SweepError> {
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

fn sweep_blocking(root: &Path) -> Result<Vec<PathBuf>, SweepError> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(SweepError::List {
                root: root.to_owned(),
                source,
            });
        }
    };
    let mut removed = Vec::new();
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
        remove_tree(&path).map_err(|source| SweepError::Remove {
            path: path.clone(),
            source,
        })?;
        removed.push(path);
    }
    removed.sort();
    Ok(removed)
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
    fn remove_accepts_a_directory_that_is_already_gone() {
        let root = tempfile::tempdir().unwrap();
        let dir = WorkspaceDir::create(root.path(), 1).unwrap();
        std::fs::remove_dir(dir.path()).unwrap();
        dir.remove().unwrap();
    }
}
