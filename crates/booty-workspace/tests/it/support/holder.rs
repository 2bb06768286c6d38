//! Another process holding a shared `flock` on a path, as a job command's supervisor holds its workspace:
//! `flock --shared --close PATH sleep 600` from util-linux, in a process group of its own.

use std::fs::{File, TryLockError};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The holding process; killed (with everything it started) when dropped.
pub(crate) struct SharedLockHolder {
    child: Child,
}

impl SharedLockHolder {
    /// Starts the holder and returns once it holds the lock.
    ///
    /// # Panics
    /// If `flock` cannot be run, exits early, or has not taken the lock after 30 s.
    pub(crate) fn start(path: &Path) -> Self {
        // `--close`: `sleep` does not inherit the locked descriptor, so the lock is `flock`'s alone and is gone
        // once `flock` has been reaped.
        let child = Command::new("flock")
            .args(["--shared", "--close"])
            .arg(path)
            .args(["sleep", "600"])
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("this test runs `flock` from util-linux as the other process");
        let mut holder = Self { child };
        let probe = File::open(path).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match probe.try_lock() {
                Err(TryLockError::WouldBlock) => return holder,
                // Nobody holds it yet; let go at once so `flock` can take it.
                Ok(()) => probe.unlock().unwrap(),
                Err(TryLockError::Error(err)) => {
                    panic!("cannot probe the lock on {}: {err}", path.display())
                }
            }
            if let Some(status) = holder.child.try_wait().unwrap() {
                panic!(
                    "flock exited before taking its lock on {}: {status}",
                    path.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "flock did not take its lock on {} within 30 s",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Kills the holder and its `sleep` (SIGKILL, as after `kill -9`) and reaps it: its lock is released when
    /// this returns.
    pub(crate) fn kill(mut self) {
        self.kill_group();
    }

    fn kill_group(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for SharedLockHolder {
    fn drop(&mut self) {
        self.kill_group();
    }
}
