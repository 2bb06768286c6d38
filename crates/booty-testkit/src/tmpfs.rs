//! A tmpfs of a fixed size that a test can fill, free and make read-only: the disk faults booty must
//! survive, produced by the kernel rather than by a mock.

use std::fs::File;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The ballast file [`Tmpfs::fill`] grows until the file system is full.
const BALLAST: &str = ".booty-testkit-ballast";

/// A tmpfs mounted on a fresh temporary directory, unmounted (and the directory removed) on drop.
#[derive(Debug)]
pub struct Tmpfs {
    dir: TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_bytes` (rounded up to whole pages by the kernel), mode 0700.
    ///
    /// # Panics
    /// When the mount fails, typically because the test does not run as root: the message says how to run
    /// it instead of letting the test pass without its fault.
    pub fn mount(size_bytes: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("booty-tmpfs-")
            .tempdir()
            .expect("a temporary directory to mount on");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_bytes},mode=0700"))
            .arg("tmpfs")
            .arg(dir.path())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .status()
            .expect("mount(8) runs");
        assert!(
            status.success(),
            "cannot mount a tmpfs on {} ({status}): this test fills a real file system and must run as \
             root (or with CAP_SYS_ADMIN), as CI does",
            dir.path().display()
        );
        Self { dir }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn ballast(&self) -> PathBuf {
        self.path().join(BALLAST)
    }

    /// Fills the file system: from now on, writes that need a new block fail with `StorageFull`.
    pub fn fill(&self) {
        let mut ballast = File::options()
            .create(true)
            .append(true)
            .open(self.ballast())
            .expect("the ballast file opens");
        // Big blocks first, then pages, so the last free page is taken too.
        for block in [1 << 20, 4096, 512, 1] {
            let chunk = vec![0xA5_u8; block];
            loop {
                match ballast.write_all(&chunk) {
                    Ok(()) => {}
                    Err(err) if err.kind() == ErrorKind::StorageFull => break,
                    Err(err) => panic!("filling {}: {err}", self.path().display()),
                }
            }
        }
    }

    /// Frees what [`Tmpfs::fill`] took.
    ///
    /// The ballast is truncated before it is unlinked: unlinking alone frees nothing while another
    /// process still holds the file, and a child that any test in this process forks while
    /// [`Tmpfs::fill`] has the ballast open inherits it until its `exec`. Truncation frees the pages
    /// whoever holds the file.
    pub fn free(&self) {
        let ballast = self.ballast();
        match File::options().write(true).open(&ballast) {
            Ok(file) => file
                .set_len(0)
                .unwrap_or_else(|err| panic!("freeing {}: {err}", self.path().display())),
            Err(err) if err.kind() == ErrorKind::NotFound => return,
            Err(err) => panic!("freeing {}: {err}", self.path().display()),
        }
        std::fs::remove_file(&ballast)
            .unwrap_or_else(|err| panic!("freeing {}: {err}", self.path().display()));
    }

    /// Remounts the file system read-only (`true`) or read-write (`false`).
    pub fn set_read_only(&self, read_only: bool) {
        let mode = if read_only {
            "remount,ro"
        } else {
            "remount,rw"
        };
        let status = Command::new("mount")
            .args(["-o", mode])
            .arg(self.path())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .status()
            .expect("mount(8) runs");
        assert!(status.success(), "cannot {mode} {}", self.path().display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file still open in a process the test started must not keep the mount alive.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.path())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_tmpfs_refuses_writes_until_freed() {
        let disk = Tmpfs::mount(1 << 20);
        std::fs::write(disk.path().join("before"), b"fits").unwrap();
        disk.fill();
        let err = std::fs::write(disk.path().join("after"), vec![1; 8192]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StorageFull, "{err}");
        disk.free();
        std::fs::write(disk.path().join("after"), vec![1; 8192]).unwrap();
        disk.set_read_only(true);
        let err = std::fs::write(disk.path().join("ro"), b"x").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ReadOnlyFilesystem, "{err}");
        disk.set_read_only(false);
        std::fs::write(disk.path().join("rw"), b"x").unwrap();
    }

    /// A process forked while the ballast is open holds it until its `exec`; CI failed on this once,
    /// when the other tests of this crate started `git` and `openssl` while one test filled its disk.
    /// Unlinking alone lost this race about one time in 25 on a 2-core machine.
    #[test]
    fn free_frees_the_space_while_other_threads_start_processes() {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spawners: Vec<_> = (0..2)
            .map(|_| {
                let stop = std::sync::Arc::clone(&stop);
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        Command::new("/bin/true").status().expect("true runs");
                    }
                })
            })
            .collect();
        let still_full = (0..200)
            .filter(|_| {
                let disk = Tmpfs::mount(1 << 20);
                disk.fill();
                disk.free();
                std::fs::write(disk.path().join("after"), vec![1; 8192]).is_err()
            })
            .count();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for spawner in spawners {
            spawner
                .join()
                .expect("a thread starting processes panicked");
        }
        assert_eq!(
            still_full, 0,
            "free() left the disk full in {still_full} of 200 rounds"
        );
    }
}
