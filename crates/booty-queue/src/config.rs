//! The queue's settings.

use std::time::Duration;

use crate::backoff::Backoff;

/// How a [`Queue`](crate::Queue) runs. Start from `QueueConfig::default()` and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueConfig {
    /// Jobs run at once (`workers`, default 3).
    pub workers: usize,
    /// Jobs waiting (`queued` or `retrying`) before submissions are answered `Busy` (`queue_capacity`,
    /// default 100).
    pub capacity: usize,
    /// Attempts per job, the first included (`max_attempts`, default 3).
    pub max_attempts: u32,
    /// The delay between attempts.
    pub backoff: Backoff,
    /// How long a claimed job stays leased without renewal (default 30 s). Workers renew every third of
    /// it; a job whose lease runs out (its process died) is taken back within about half of it more.
    pub lease: Duration,
    /// At shutdown, how long cancelled handlers get to return before they are dropped (default 5 s).
    pub cancel_grace: Duration,
    /// Idle workers look for work at least this often, whatever else wakes them (default 5 s): a job
    /// stored without its wake-up reaching them (another process's, a lost signal) waits at most this
    /// long. A store's own [`Wakeups::poll_interval`](crate::Wakeups::poll_interval), if shorter, wins.
    pub poll_interval: Duration,
    /// How much of what an attempt prints is kept with it: the last `output_bytes` bytes (default
    /// [`MAX_OUTPUT_BYTES`](crate::MAX_OUTPUT_BYTES), 64 KiB; `0` keeps nothing).
    pub output_bytes: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            workers: 3,
            capacity: 100,
            max_attempts: 3,
            backoff: Backoff::default(),
            lease: Duration::from_secs(30),
            cancel_grace: Duration::from_secs(5),
            poll_interval: Duration::from_secs(5),
            output_bytes: crate::job::MAX_OUTPUT_BYTES,
        }
    }
}

impl QueueConfig {
    /// The first setting that cannot work, as `(field, why)`.
    pub(crate) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.workers == 0 {
            return Err(("workers", "must be at least 1"));
        }
        if self.capacity == 0 {
            return Err(("capacity", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(("max_attempts", "must be at least 1"));
        }
        if self.poll_interval.is_zero() {
            return Err(("poll_interval", "must be longer than zero"));
        }
        if self.lease < Duration::from_millis(3) {
            return Err((
                "lease",
                "must be at least 3 ms (it is renewed every third of it)",
            ));
        }
        Ok(())
    }
}
