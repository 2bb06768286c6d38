//! A clock that moves only when a test (or a client's wait) moves it, shared by the fake GitHub and the
//! client under test, so waits take no real time and can be asserted.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Virtual wall-clock time. Clones share it.
///
/// The fake GitHub reads it for every time it shows (`Date`, `expires_at`, rate-limit resets) and checks
/// (JWT windows, token expiry). A client under test reads it too and, instead of sleeping, calls
/// [`ManualClock::sleep`], which records the wait and moves the time on at once.
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Debug)]
struct Inner {
    now: SystemTime,
    sleeps: Vec<Duration>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: SystemTime) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                now: start,
                sleeps: Vec::new(),
            })),
        }
    }

    /// A clock showing the real time, to the whole second (as GitHub's headers do).
    pub fn starting_now() -> Self {
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the system clock is after 1970")
            .as_secs();
        Self::new(UNIX_EPOCH + Duration::from_secs(seconds))
    }

    /// The time.
    pub fn now(&self) -> SystemTime {
        self.inner.lock().expect("clock lock").now
    }

    /// Moves the time on by `by`.
    pub fn advance(&self, by: Duration) {
        self.inner.lock().expect("clock lock").now += by;
    }

    /// A client's wait: recorded (see [`ManualClock::sleeps`]), and the time moves on by `duration`.
    pub fn sleep(&self, duration: Duration) {
        let mut inner = self.inner.lock().expect("clock lock");
        inner.sleeps.push(duration);
        inner.now += duration;
    }

    /// Every wait made through [`ManualClock::sleep`], in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.inner.lock().expect("clock lock").sleeps.clone()
    }

    /// The waits made so far, forgotten.
    pub fn take_sleeps(&self) -> Vec<Duration> {
        std::mem::take(&mut self.inner.lock().expect("clock lock").sleeps)
    }
}
