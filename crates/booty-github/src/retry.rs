//! When to try again: GitHub's rate-limit headers read into a wait, and the backoff with jitter of retries
//! after a 5xx or a transport failure.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use crate::error::RateLimit;
use crate::time::{from_unix_seconds, parse_http_date};

/// What a secondary limit without `Retry-After` waits the first time (GitHub: "at least one minute"); it
/// doubles on each repeat within a call.
pub(crate) const SECONDARY_DEFAULT_WAIT: Duration = Duration::from_mins(1);
/// How many rate-limit waits one call makes before giving up, whatever they add up to.
pub(crate) const MAX_RATE_LIMIT_WAITS: u32 = 8;
/// The first retry delay after a 5xx or a transport failure; it doubles on each retry, up to
/// [`MAX_BACKOFF`], and a random part of up to half of it is taken off (jitter).
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A rate limit and when it lifts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limited {
    pub(crate) limit: RateLimit,
    pub(crate) until: SystemTime,
}

/// Whether a 403 or 429 is a rate limit, and until when, in GitHub's documented order: `Retry-After` first,
/// then `x-ratelimit-remaining: 0` until `x-ratelimit-reset`, then a 429 or GitHub's secondary-limit
/// message, which wait a minute, doubled for each earlier secondary wait of the call.
pub(crate) fn classify(
    status: u16,
    headers: &HeaderMap,
    message: &str,
    now: SystemTime,
    earlier_secondary_waits: u32,
) -> Option<Limited> {
    if status != 403 && status != 429 {
        return None;
    }
    if let Some(until) = retry_after(headers, now) {
        return Some(Limited {
            limit: RateLimit::Secondary,
            until,
        });
    }
    if let Some(until) = exhausted(headers) {
        return Some(Limited {
            limit: RateLimit::Primary,
            until: until.max(now),
        });
    }
    let message = message.to_ascii_lowercase();
    if status == 429 || message.contains("secondary rate limit") || message.contains("abuse") {
        let factor = 1_u32 << earlier_secondary_waits.min(4);
        return Some(Limited {
            limit: RateLimit::Secondary,
            until: now + SECONDARY_DEFAULT_WAIT * factor,
        });
    }
    None
}

/// `x-ratelimit-reset` when `x-ratelimit-remaining` is 0: the budget is spent until then.
pub(crate) fn exhausted(headers: &HeaderMap) -> Option<SystemTime> {
    if header(headers, "x-ratelimit-remaining")?.trim() != "0" {
        return None;
    }
    let reset: i64 = header(headers, "x-ratelimit-reset")?.trim().parse().ok()?;
    Some(from_unix_seconds(reset))
}

/// `Retry-After`, in seconds or as an HTTP date.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<SystemTime> {
    let value = header(headers, "retry-after")?.trim();
    match value.parse::<u64>() {
        Ok(seconds) => Some(now + Duration::from_secs(seconds)),
        Err(_) => parse_http_date(value),
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name)?.to_str().ok()
}

/// The delay before retry number `retry` (1 for the first): exponential, capped, with jitter.
pub(crate) fn backoff(retry: u32) -> Duration {
    let full = FIRST_BACKOFF
        .saturating_mul(1_u32 << retry.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    // Between half and all of it.
    full.mul_f64(1.0 - random_fraction() / 2.0)
}

/// A uniformly random number in `[0, 1)`.
fn random_fraction() -> f64 {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0_u8; 8];
    // The system's generator does not fail on the platforms ring supports; no jitter is still a valid delay.
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return 0.0;
    }
    // 53 random bits, the precision of an f64 in [0, 1).
    #[allow(
        clippy::cast_precision_loss,
        reason = "53 bits fit an f64's mantissa exactly"
    )]
    let fraction = (u64::from_le_bytes(bytes) >> 11) as f64 / (1_u64 << 53) as f64;
    fraction
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use reqwest::header::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn rate_limits_are_read_in_githubs_order() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let secs = |s| UNIX_EPOCH + Duration::from_secs(s);
        let both = headers(&[
            ("retry-after", "30"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "5000"),
        ]);
        assert_eq!(
            classify(403, &both, "", now, 0),
            Some(Limited {
                limit: RateLimit::Secondary,
                until: secs(1_030)
            })
        );
        let primary = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "5000"),
        ]);
        assert_eq!(
            classify(403, &primary, "API rate limit exceeded", now, 0),
            Some(Limited {
                limit: RateLimit::Primary,
                until: secs(5_000)
            })
        );
        let message = "You have exceeded a secondary rate limit. Please wait a few minutes.";
        assert_eq!(
            classify(403, &HeaderMap::new(), message, now, 0).map(|l| l.until),
            Some(secs(1_060))
        );
        assert_eq!(
            classify(429, &HeaderMap::new(), "", now, 2).map(|l| l.until),
            Some(secs(1_240))
        );
        let date = headers(&[("retry-after", "Thu, 01 Jan 1970 00:20:00 GMT")]);
        assert_eq!(
            classify(429, &date, "", now, 0).map(|l| l.until),
            Some(secs(1_200))
        );
        // A plain 403 is a permission problem, and other statuses are never rate limits.
        let forbidden = "Resource not accessible by integration";
        assert_eq!(classify(403, &HeaderMap::new(), forbidden, now, 0), None);
        assert_eq!(classify(500, &both, "", now, 0), None);
        let spent_ok = headers(&[
            ("x-ratelimit-remaining", "1"),
            ("x-ratelimit-reset", "5000"),
        ]);
        assert_eq!(exhausted(&spent_ok), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        for retry in 1..=10 {
            let full = Duration::from_secs(1 << (retry - 1)).min(MAX_BACKOFF);
            let delay = backoff(retry);
            assert!(delay <= full && delay >= full / 2, "{retry}: {delay:?}");
        }
        let delays: std::collections::HashSet<_> = (0..20).map(|_| backoff(3)).collect();
        assert!(delays.len() > 1, "no jitter: {delays:?}");
    }
}
