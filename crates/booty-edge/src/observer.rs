//! The edge's observer: what it tells an embedder about each webhook request it answered, for metrics,
//! without the edge knowing a metrics crate.

use std::fmt;
use std::time::Duration;

use hyper::StatusCode;

/// Told about every request to the webhook path once it is answered: register one in
/// [`EdgeConfig::observer`](crate::EdgeConfig::observer).
///
/// Every method does nothing by default, so new events can be added without breaking implementors.
/// Called on the connection's task before the answer is sent: keep it cheap (bump a counter, record a
/// histogram sample) and never block.
pub trait EdgeObserver: fmt::Debug + Send + Sync + 'static {
    /// A request to the webhook path was answered.
    fn answered(&self, _answered: &Answered<'_>) {}
}

/// What [`EdgeObserver::answered`] is told.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Answered<'a> {
    /// The `X-GitHub-Event` header, when it looks like an event name (short, snake case); a request
    /// without one, or with anything else there, has `None`. It is what the client sent: for a request
    /// refused before its signature was checked, nobody vouches for it.
    pub event: Option<&'a str>,
    /// The status answered.
    pub status: StatusCode,
    /// From the request's headers being read to its answer being ready.
    pub latency: Duration,
}

impl Answered<'_> {
    /// A request answered `status` after `latency`, without an event name (set [`Answered::event`]).
    pub fn new(status: StatusCode, latency: Duration) -> Self {
        Self {
            event: None,
            status,
            latency,
        }
    }
}

/// The header value as an event label, if it looks like one of GitHub's event names: 1 to 64 ASCII
/// lowercase letters, digits and underscores. Anything else would let a client invent label values.
pub(crate) fn event_name(value: &hyper::header::HeaderValue) -> Option<&str> {
    let name = value.to_str().ok()?;
    (!name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_'))
    .then_some(name)
}

#[cfg(test)]
mod tests {
    use hyper::header::HeaderValue;

    use super::*;

    #[test]
    fn only_event_like_names_are_labels() {
        let name =
            |value: &'static str| event_name(&HeaderValue::from_static(value)).map(str::to_owned);
        assert_eq!(name("issues").as_deref(), Some("issues"));
        assert_eq!(
            name("pull_request_review").as_deref(),
            Some("pull_request_review")
        );
        assert_eq!(name(""), None);
        assert_eq!(name("Issues"), None);
        assert_eq!(name("issues\"} 1"), None);
        assert_eq!(name("a-b"), None);
        assert_eq!(name(&*"x".repeat(65).leak()), None);
    }
}
