//! Exponential backoff with jitter between attempts.

use std::hash::BuildHasher;
use std::time::Duration;

/// How long to wait before retrying: after failed attempt `n` (from 1), a ceiling of
/// `min(cap, base × 2^(n−1))`, and a uniformly random delay in the upper half of it ("equal jitter").
///
/// Jitter spreads retries of jobs that failed together (a GitHub outage) so they do not all come back at
/// once; keeping the lower half out means each delay is longer than the one before until the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling after the first failed attempt.
    pub base: Duration,
    /// The largest ceiling.
    pub cap: Duration,
}

/// The ceiling after the first failed attempt unless configured otherwise.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_mins(1);
/// The largest ceiling unless configured otherwise.
pub const DEFAULT_RETRY_CAP: Duration = Duration::from_hours(1);

impl Default for Backoff {
    /// 1 min, doubling up to 1 h: with 3 attempts a job outlasts an outage (a full disk, GitHub down) of
    /// about 1.5 to 3 minutes, where 5 s spent all three in some 11 seconds.
    fn default() -> Self {
        Self {
            base: DEFAULT_RETRY_BASE,
            cap: DEFAULT_RETRY_CAP,
        }
    }
}

impl Backoff {
    /// The delay after failed attempt `attempt`, with fresh randomness (std's per-process random `SipHash`
    /// keys, so no random-number crate).
    pub fn delay(&self, attempt: u32) -> Duration {
        let random = std::collections::hash_map::RandomState::new().hash_one(attempt);
        self.delay_with(attempt, random)
    }

    /// The ceiling after failed attempt `attempt`: `min(cap, base × 2^(attempt−1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let mut ceiling = self.base.min(self.cap);
        for _ in 1..attempt {
            if ceiling >= self.cap {
                break;
            }
            ceiling = ceiling.saturating_mul(2).min(self.cap);
        }
        ceiling
    }

    /// The delay for a given random word: `random / 2^64` of the way from half the ceiling to the ceiling.
    fn delay_with(&self, attempt: u32, random: u64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let half_nanos = half.as_nanos();
        let extra = (half_nanos * u128::from(random)) >> 64;
        // extra < half_nanos, which came from a Duration, so it fits back into one.
        let extra = Duration::from_nanos(u64::try_from(extra).unwrap_or(u64::MAX));
        ceiling.saturating_sub(half).saturating_add(extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn ceiling_doubles_up_to_the_cap_and_never_overflows() {
        let backoff = Backoff {
            base: SECOND,
            cap: 10 * SECOND,
        };
        let ceilings: Vec<_> = (1..=6).map(|n| backoff.ceiling(n)).collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 10, 10].map(|s| s * SECOND).to_vec());
        assert_eq!(backoff.ceiling(u32::MAX), 10 * SECOND);
        let huge = Backoff {
            base: Duration::MAX,
            cap: Duration::MAX,
        };
        assert_eq!(huge.ceiling(40), Duration::MAX);
        // A base above the cap is capped from the first retry.
        let inverted = Backoff {
            base: 60 * SECOND,
            cap: 10 * SECOND,
        };
        assert_eq!(inverted.ceiling(1), 10 * SECOND);
    }

    #[test]
    fn jitter_spans_the_upper_half_of_the_ceiling() {
        let backoff = Backoff {
            base: 2 * SECOND,
            cap: 60 * SECOND,
        };
        assert_eq!(backoff.delay_with(1, 0), SECOND);
        assert_eq!(backoff.delay_with(1, 1 << 63), 3 * SECOND / 2);
        let top = backoff.delay_with(1, u64::MAX);
        assert!(top < 2 * SECOND && top > Duration::from_nanos(1_999_999_998));
        assert_eq!(backoff.delay_with(3, 0), 4 * SECOND);
    }

    #[test]
    fn delays_grow_attempt_after_attempt_until_the_cap() {
        let backoff = Backoff {
            base: SECOND,
            cap: 64 * SECOND,
        };
        for _ in 0..200 {
            let delays: Vec<_> = (1..=7).map(|n| backoff.delay(n)).collect();
            for (n, pair) in delays.windows(2).enumerate() {
                assert!(pair[0] < pair[1], "attempt {}: {delays:?}", n + 1);
            }
            for (n, delay) in (1..).zip(&delays) {
                let ceiling = backoff.ceiling(n);
                assert!(*delay >= ceiling / 2 && *delay <= ceiling, "{n}: {delay:?}");
            }
        }
    }

    #[test]
    fn random_delays_are_not_all_the_same() {
        let backoff = Backoff::default();
        let delays: std::collections::HashSet<_> = (0..50).map(|_| backoff.delay(2)).collect();
        assert!(delays.len() > 40, "{} distinct of 50", delays.len());
    }
}
