//! Time: the [`Clock`] the client reads and waits on, and the two timestamp formats GitHub sends (RFC 3339
//! in bodies, the HTTP date of `Date` headers).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer};

/// The future [`Clock::sleep`] returns.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where the client reads the wall-clock time and waits: JWT claims, token expiry, rate-limit resets and
/// retry delays all go through it.
///
/// [`SystemClock`] is the default. A test or a simulation hands the client a clock of its own (through
/// [`crate::Config::clock`]) so that waits are observable and take no real time; per-request timeouts are
/// not waits and always run on tokio's timer.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
    /// Resolves once `duration` has passed.
    fn sleep(&self, duration: Duration) -> Sleep;
}

/// The system's clock, and tokio's timer for waits.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_seconds(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_secs()).map_or(i64::MIN, |secs| -secs),
    }
}

/// The time `seconds` after the Unix epoch.
pub(crate) fn from_unix_seconds(seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(seconds.unsigned_abs());
    if seconds >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// Shows a time as RFC 3339 in UTC, to the second: `2026-01-31T12:00:00Z`.
pub(crate) struct Rfc3339(pub(crate) SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = unix_seconds(self.0);
        let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )
    }
}

/// Parses the RFC 3339 timestamps GitHub's bodies carry: `2016-07-11T22:14:10Z`, with optional fractional
/// seconds and a `Z` or `±HH:MM` offset.
pub(crate) fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 20
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || !matches!(bytes[10], b'T' | b't' | b' ')
    {
        return None;
    }
    let year = number(&text[0..4])?;
    let month = number(&text[5..7])?;
    let day = number(&text[8..10])?;
    let seconds = time_of_day(&text[11..19])?;
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let (sign, hhmm) = match rest.as_bytes().first()? {
                b'+' => (1, &rest[1..]),
                b'-' => (-1, &rest[1..]),
                _ => return None,
            };
            let (hours, minutes) = hhmm.split_once(':')?;
            if hours.len() != 2 || minutes.len() != 2 {
                return None;
            }
            sign * (number(hours)? * 3600 + number(minutes)? * 60)
        }
    };
    let days = days_from_civil(year, month, day)?;
    Some(from_unix_seconds(days * 86_400 + seconds - offset))
}

/// Parses an HTTP date (RFC 9110's IMF-fixdate, what GitHub's `Date` header carries):
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn parse_http_date(text: &str) -> Option<SystemTime> {
    let mut parts = text.split_ascii_whitespace();
    let _weekday = parts.next()?.strip_suffix(',')?;
    let day = number(parts.next()?)?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year = number(parts.next()?)?;
    let seconds = time_of_day(parts.next()?)?;
    if parts.next()? != "GMT" || parts.next().is_some() {
        return None;
    }
    Some(from_unix_seconds(
        days_from_civil(year, month, day)? * 86_400 + seconds,
    ))
}

/// serde: an RFC 3339 timestamp as a [`SystemTime`].
pub(crate) fn deserialize_rfc3339<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SystemTime, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse_rfc3339(&text)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp {text:?}")))
}

/// serde: an optional RFC 3339 timestamp.
pub(crate) fn deserialize_rfc3339_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SystemTime>, D::Error> {
    let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
    text.map(|text| {
        parse_rfc3339(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp {text:?}")))
    })
    .transpose()
}

/// `HH:MM:SS` as seconds of the day.
fn time_of_day(text: &str) -> Option<i64> {
    let mut parts = text.split(':');
    let (hours, minutes, seconds) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || [hours, minutes, seconds].iter().any(|part| part.len() != 2) {
        return None;
    }
    let (hours, minutes, seconds) = (number(hours)?, number(minutes)?, number(seconds)?);
    // 60 is a leap second, which we fold into the next.
    (hours < 24 && minutes < 60 && seconds <= 60).then_some(hours * 3600 + minutes * 60 + seconds)
}

/// Decimal digits only (no sign, no spaces).
fn number(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`), or `None` for a
/// month or day out of range.
fn days_from_civil(year: i64, month: i64, day: i64) -> Option<i64> {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) {
        return None;
    }
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// The date of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_and_matches_known_instants() {
        let time = parse_rfc3339("2016-07-11T22:14:10Z").unwrap();
        assert_eq!(unix_seconds(time), 1_468_275_250);
        assert_eq!(Rfc3339(time).to_string(), "2016-07-11T22:14:10Z");
        assert_eq!(
            parse_rfc3339("2016-07-12T00:14:10.250+02:00"),
            parse_rfc3339("2016-07-11T22:14:10Z")
        );
        assert_eq!(
            unix_seconds(parse_rfc3339("1970-01-01T00:00:00Z").unwrap()),
            0
        );
        assert_eq!(
            unix_seconds(parse_rfc3339("2024-02-29T23:59:59Z").unwrap()),
            1_709_251_199
        );
        assert_eq!(
            Rfc3339(from_unix_seconds(-1)).to_string(),
            "1969-12-31T23:59:59Z"
        );
        for bad in [
            "",
            "2016-07-11",
            "2016-07-11T22:14:10",
            "2016-13-11T22:14:10Z",
            "2023-02-29T22:14:10Z",
            "2016-07-11T24:14:10Z",
            "2016-07-11T22:14:10.Z",
            "2016-07-11T22:14:10+0200",
            "+016-07-11T22:14:10Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_dates_parse_as_imf_fixdate() {
        let time = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(unix_seconds(time), 784_111_777);
        for bad in [
            "Sun, 06 Nov 1994 08:49:37",
            "Sun 06 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun, 31 Nov 1994 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        for days in (-146_097..2 * 146_097).step_by(7) {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(
                days_from_civil(year, month, day),
                Some(days),
                "{year}-{month}-{day}"
            );
        }
    }
}
