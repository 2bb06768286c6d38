//! A real tmpfs for tests that need a disk fault: a small one to fill, or one remounted read-only.
//!
//! Mounting needs root (or `CAP_SYS_ADMIN`). Without it the test fails, saying so: it never passes silently.

use std::path::Path;
use std::process::Command;

/// A tmpfs mounted on a fresh temporary directory, unmounted (and the directory removed) when dropped.
pub(crate) struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `1m`).
    ///
    /// # Panics
    /// If it cannot be mounted, with what `mount` said: run the tests as root.
    pub(crate) fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        mount(
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ],
            dir.path(),
        );
        Self { dir }
    }

    /// The mount point.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts it read-only: every write under it then fails with `EROFS`.
    pub(crate) fn remount_read_only(&self) {
        mount(&["-o", "remount,ro"], self.path());
    }
}

fn mount(args: &[&str], target: &Path) {
    let output = Command::new("mount").args(args).arg(target).output();
    match output {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "this test needs a real tmpfs and could not mount one (run the tests as root): \
             `mount {} {}` failed: {}",
            args.join(" "),
            target.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(err) => panic!(
            "this test needs a real tmpfs and could not run `mount` (run the tests as root, with util-linux): {err}"
        ),
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(self.dir.path())
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            // Something still has a file open in it: detach it now, the kernel frees it when that is closed.
            let _ = Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
        // `dir` then removes the mount point, empty again.
    }
}
