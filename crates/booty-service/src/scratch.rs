//! Directories a job keeps next to its workspace (the command's `BOOTY_OUTPUT_DIR`, the pushing
//! repository), marked in use so that a start-up sweep by another booty on the same root leaves them
//! alone, and swept like the event files when a crash left them behind.

use std::fs::File;
use std::path::Path;

/// A directory under the workspace root, removed when dropped, held in use meanwhile.
pub(crate) struct HeldDir {
    dir: tempfile::TempDir,
    _lock: File,
}

impl HeldDir {
    /// A new directory `{prefix}XXXXXX` under `root`.
    pub(crate) fn new(root: &Path, prefix: &str) -> std::io::Result<Self> {
        loop {
            let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(root)?;
            let lock = File::open(dir.path())?;
            // A sweep that took the new directory first is removing it: make another.
            if booty_workspace::mark_in_use(&lock, dir.path())? {
                return Ok(Self { dir, _lock: lock });
            }
        }
    }

    /// Where it is.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::{OUTPUT_DIR_PREFIX, sweep_event_files};

    #[test]
    fn a_sweep_removes_leftovers_and_leaves_held_directories() {
        let root = tempfile::tempdir().unwrap();
        let held = HeldDir::new(root.path(), &format!("{OUTPUT_DIR_PREFIX}1-a-")).unwrap();
        std::fs::write(held.path().join("pr-title"), "kept").unwrap();
        // What a killed booty left: an output directory and a pushing repository nobody holds.
        let left = [
            root.path().join(format!("{OUTPUT_DIR_PREFIX}2-b-x")),
            root.path()
                .join(format!("{}3-c-y", crate::publish::PUSH_DIR_PREFIX)),
        ];
        for dir in &left {
            std::fs::create_dir_all(dir.join("objects")).unwrap();
        }
        let unrelated = root.path().join("booty-other");
        std::fs::create_dir(&unrelated).unwrap();

        let (removed, in_use) = sweep_event_files(root.path()).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert_eq!(in_use, [held.path().to_path_buf()]);
        assert!(left.iter().all(|dir| !dir.exists()));
        assert!(held.path().join("pr-title").exists() && unrelated.exists());
        let path = held.path().to_path_buf();
        drop(held);
        assert!(!path.exists(), "removed when dropped");
    }
}
