//! The in-use protocol: whoever uses a workspace (or a file next to it) holds a shared `flock` on it, and a
//! sweep removes a path only while holding an exclusive one, so it never removes what a live process uses.
//!
//! `flock` locks belong to an open file description: they conflict between two `open`s of the same path even
//! in one process, a child started with `fork` + `exec` shares them only through a descriptor it inherits,
//! and the kernel drops them when the last descriptor closes, however the process ended (`kill -9`
//! included). So a lock held means a live holder; a path nobody holds is abandoned.

use std::fs::{self, File, Metadata, TryLockError};
use std::io;
use std::path::Path;

/// What [`remove_unless_in_use`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Removal {
    /// Nobody held it: it was removed (a directory with everything under it).
    Removed,
    /// Someone holds a lock on it (or the path was replaced while it was being locked): it was left alone.
    InUse,
    /// There was nothing at the path (already removed, say by another sweep).
    Gone,
}

/// Marks `path` as in use for as long as `file` stays open: takes a shared `flock` on `file`, which must
/// have been opened from `path` (a directory opens as a [`File`] too, with [`File::open`]).
///
/// This is the holder's half of the protocol [`crate::sweep`] and [`remove_unless_in_use`] follow: while
/// the lock is held they leave `path` alone. The lock goes with `file`'s open file description: it is
/// released when `file` and every descriptor duplicated or inherited from it are closed, even by
/// `kill -9`. A child process does not get it with a [`std::process::Command`] (Rust opens files
/// close-on-exec), so a process that must keep a workspace alone (a job command's supervisor) opens it and
/// locks it itself, with this function or a plain `flock --shared`.
///
/// Returns `false` if a sweep got there first: it holds the path now and is removing it, or has removed
/// it (or something else replaced it) before the lock was taken. Create another path then; `file` holds
/// nothing that matters.
///
/// # Errors
/// If the lock cannot be taken (a file system without `flock`) or `path` cannot be checked.
pub fn mark_in_use(file: &File, path: &Path) -> io::Result<bool> {
    match file.try_lock_shared() {
        Ok(()) => {}
        // Only an exclusive lock conflicts with a shared one, and only a sweep takes one.
        Err(TryLockError::WouldBlock) => return Ok(false),
        Err(TryLockError::Error(err)) => return Err(err),
    }
    // A sweep may have removed the path between its creation and the lock; then the lock holds a ghost.
    match fs::symlink_metadata(path) {
        Ok(now) => Ok(same_file(&file.metadata()?, &now)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

/// Removes `path` (a file, or a directory with everything under it) unless it is in use: takes an exclusive
/// `flock` on it without waiting, removes it while holding the lock, and lets go.
///
/// This is the sweeper's half of the protocol: a path on which anyone holds a lock (this process or
/// another, taken with [`mark_in_use`] or a plain `flock`) is left alone and reported [`Removal::InUse`].
/// A symbolic link is never followed. Blocks while removing: call it off an async runtime for big trees.
///
/// # Errors
/// If `path` is a symbolic link ([`io::ErrorKind::InvalidInput`]), cannot be opened or locked for another
/// reason than someone holding it, or cannot be removed (what could be removed may be gone).
pub fn remove_unless_in_use(path: &Path) -> io::Result<Removal> {
    let before = match fs::symlink_metadata(path) {
        Ok(before) => before,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Removal::Gone),
        Err(err) => return Err(err),
    };
    if before.file_type().is_symlink() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a symbolic link: not following it to remove what it points at",
        ));
    }
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Removal::Gone),
        Err(err) => return Err(err),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Removal::InUse),
        Err(TryLockError::Error(err)) => return Err(err),
    }
    // What is locked must be what the path names now (and not a link put there since the first look).
    let locked = file.metadata()?;
    match fs::symlink_metadata(path) {
        Ok(now) if same_file(&locked, &now) => {}
        Ok(_) => return Ok(Removal::InUse),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Removal::Gone),
        Err(err) => return Err(err),
    }
    let removed = if locked.is_dir() {
        fs::remove_dir_all(path)
    } else {
        fs::remove_file(path)
    };
    match removed {
        Ok(()) => Ok(Removal::Removed),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Removal::Gone),
        Err(err) => Err(err),
    }
    // `file` closes here, after the removal: the lock covers it from start to end.
}

/// Whether two metadata describe the same file (device and inode).
#[cfg(unix)]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Without inode numbers, the best available check: the same kind of file.
#[cfg(not(unix))]
fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.file_type() == b.file_type()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marked_path_is_not_removed_until_its_file_closes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("dir");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("sub/file"), "x").unwrap();
        let event = root.path().join("event.json");
        fs::write(&event, "{}").unwrap();

        for path in [&dir, &event] {
            let holder = File::open(path).unwrap();
            assert!(mark_in_use(&holder, path).unwrap());
            // A second open of the same path is another open file description: its exclusive lock conflicts.
            assert_eq!(remove_unless_in_use(path).unwrap(), Removal::InUse);
            assert!(path.exists());
            drop(holder);
            assert_eq!(remove_unless_in_use(path).unwrap(), Removal::Removed);
            assert!(!path.exists());
            assert_eq!(remove_unless_in_use(path).unwrap(), Removal::Gone);
        }
    }

    #[test]
    fn marking_fails_when_a_sweep_holds_or_has_removed_the_path() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("dir");
        fs::create_dir(&dir).unwrap();

        // A sweep holds it (exclusively) and is removing it.
        let sweeper = File::open(&dir).unwrap();
        sweeper.try_lock().unwrap();
        let late = File::open(&dir).unwrap();
        assert!(!mark_in_use(&late, &dir).unwrap());
        // The sweep has removed it and let go: the lock would hold a directory no longer there.
        fs::remove_dir(&dir).unwrap();
        drop(sweeper);
        assert!(!mark_in_use(&late, &dir).unwrap());
        // Replaced by another directory of the same name: not the one that was opened.
        fs::create_dir(&dir).unwrap();
        let stale = File::open(root.path().join("dir")).unwrap();
        fs::remove_dir(&dir).unwrap();
        fs::create_dir(&dir).unwrap();
        assert!(!mark_in_use(&stale, &dir).unwrap());
        assert!(mark_in_use(&File::open(&dir).unwrap(), &dir).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_are_not_followed() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("target");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("keep"), "keep").unwrap();
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = remove_unless_in_use(&link).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(target.join("keep").is_file());
        assert!(fs::symlink_metadata(&link).is_ok());
    }
}
