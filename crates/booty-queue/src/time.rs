//! Timestamps (unix milliseconds, written as RFC 3339) and the engine's clock.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

/// A wall-clock instant with millisecond precision: milliseconds since the Unix epoch, UTC.
///
/// Stores persist it as an integer ([`as_unix_millis`](Self::as_unix_millis)); `Display` and `Serialize`
/// write RFC 3339 in UTC with milliseconds (`2024-05-01T12:34:56.789Z`), the form the admin view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch, `1970-01-01T00:00:00.000Z`.
    pub const EPOCH: Self = Self(0);

    /// The instant `millis` milliseconds after the Unix epoch.
    pub const fn from_unix_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// Milliseconds since the Unix epoch, the form stores persist.
    pub const fn as_unix_millis(self) -> u64 {
        self.0
    }

    /// `time` truncated to the millisecond; instants before the epoch become the epoch.
    pub fn from_system_time(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        Self(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
    }

    /// The same instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.0)
    }

    /// `self + duration`, truncated to the millisecond and saturating at the largest timestamp.
    #[must_use]
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Self(self.0.saturating_add(millis))
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds. Years past 9999 (half a billion years of range) print with more
    /// digits, which RFC 3339 cannot express; no real clock gets there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MILLIS_PER_DAY: u64 = 86_400_000;
        let (days, in_day) = (self.0 / MILLIS_PER_DAY, self.0 % MILLIS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        let (hour, minute) = (in_day / 3_600_000, in_day / 60_000 % 60);
        let (second, milli) = (in_day / 1_000 % 60, in_day % 1_000);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z"
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01: Howard Hinnant's `civil_from_days`, restricted
/// to days on or after the epoch so every step stays in unsigned arithmetic.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // Count from 0000-03-01 so the leap day ends each 400-year era.
    let shifted = days + 719_468;
    let era = shifted / 146_097;
    let day_of_era = shifted % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

/// The engine's clock: the wall-clock time when the queue started, plus tokio's monotonic time since.
///
/// Deriving "now" from tokio's clock means paused-time tests drive backoffs and leases, and a wall-clock
/// step while the process runs can neither shorten a backoff nor expire a lease early. The origin is whole
/// milliseconds, so [`Clock::instant_at`] and [`Clock::now`] agree exactly: at `instant_at(t)`, `now()` is
/// at least `t`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Timestamp,
    started: tokio::time::Instant,
}

impl Clock {
    pub(crate) fn start() -> Self {
        Self {
            origin: Timestamp::from_system_time(SystemTime::now()),
            started: tokio::time::Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.origin.saturating_add(self.started.elapsed())
    }

    /// The tokio instant at which [`Clock::now`] reaches `at`.
    pub(crate) fn instant_at(&self, at: Timestamp) -> tokio::time::Instant {
        self.started + at.saturating_duration_since(self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_rfc3339_utc_with_millis() {
        // Expected values from `date -u -d @SECONDS +%Y-%m-%dT%H:%M:%S`.
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (951_868_799_999, "2000-02-29T23:59:59.999Z"),
            (951_868_800_000, "2000-03-01T00:00:00.000Z"),
            (1_709_164_800_001, "2024-02-29T00:00:00.001Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (1_234_567_890_123, "2009-02-13T23:31:30.123Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
        ];
        for (millis, text) in cases {
            assert_eq!(Timestamp::from_unix_millis(millis).to_string(), text);
        }
    }

    #[test]
    fn every_day_follows_the_previous_one() {
        // Walk 1970..2500 day by day: the date advances by exactly one calendar day each time.
        let month_len = |year: u64, month: u64| match month {
            2 if year.is_multiple_of(4)
                && (!year.is_multiple_of(100) || year.is_multiple_of(400)) =>
            {
                29
            }
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut expected = (1970, 1, 1);
        for days in 0..194_000 {
            assert_eq!(civil_from_days(days), expected, "day {days}");
            let (year, month, day) = expected;
            expected = if day < month_len(year, month) {
                (year, month, day + 1)
            } else if month < 12 {
                (year, month + 1, 1)
            } else {
                (year + 1, 1, 1)
            };
        }
    }

    #[test]
    fn system_time_round_trips_at_millisecond_precision() {
        let time = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        let stamp = Timestamp::from_system_time(time);
        assert_eq!(stamp.as_unix_millis(), 1_700_000_000_123);
        assert_eq!(
            stamp.to_system_time(),
            UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
        );
        let before_epoch = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(Timestamp::from_system_time(before_epoch), Timestamp::EPOCH);
    }

    #[test]
    fn arithmetic_saturates() {
        let max = Timestamp::from_unix_millis(u64::MAX);
        assert_eq!(max.saturating_add(Duration::from_secs(1)), max);
        let t = Timestamp::from_unix_millis(5_000);
        assert_eq!(
            t.saturating_add(Duration::from_micros(2_500)),
            Timestamp::from_unix_millis(5_002)
        );
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_unix_millis(1_000)),
            Duration::from_secs(4)
        );
        assert_eq!(t.saturating_duration_since(max), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn clock_follows_tokio_time_and_instant_at_agrees_with_now() {
        let clock = Clock::start();
        let start = clock.now();
        tokio::time::advance(Duration::from_millis(1_500)).await;
        assert_eq!(
            clock.now(),
            start.saturating_add(Duration::from_millis(1_500))
        );

        let target = start.saturating_add(Duration::from_secs(90));
        tokio::time::sleep_until(clock.instant_at(target)).await;
        assert!(clock.now() >= target);
        assert!(clock.now() < target.saturating_add(Duration::from_millis(1)));
    }
}
