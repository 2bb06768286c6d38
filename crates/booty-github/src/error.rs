//! What went wrong talking to GitHub: an [`Error`] names the call (method and path) and holds an
//! [`ErrorKind`] a caller can act on.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::credentials::KeyError;
use crate::time::Rfc3339;

/// A failed call: which one (`POST /repos/octo/hello/issues/7/comments`) and what happened
/// ([`Error::kind`]).
///
/// No error holds or prints a token, a JWT or a key: messages are GitHub's own (which never echo
/// credentials), and transport errors are kept without their URL. Cloning is cheap (concurrent callers
/// waiting for one token mint all get its error).
///
/// | what happened | kind | [`Error::is_retryable`] |
/// |---|---|---|
/// | 401 (after the clock-skew and replication retries) | [`ErrorKind::Unauthorized`] | no |
/// | 403 that is not a rate limit | [`ErrorKind::Forbidden`] | no |
/// | 404 (GitHub's answer, too, for a repository a token may not see) | [`ErrorKind::NotFound`] | no |
/// | 422 | [`ErrorKind::ValidationFailed`] | no |
/// | a rate limit the call could not wait out | [`ErrorKind::RateLimited`] | yes, after `until` |
/// | another 4xx | [`ErrorKind::Status`] | no |
/// | 5xx (after the retries idempotent calls get) | [`ErrorKind::Server`] | yes |
/// | no answer in time | [`ErrorKind::Timeout`] | yes |
/// | connection refused, reset, TLS | [`ErrorKind::Connection`] | yes |
/// | an answer that does not decode | [`ErrorKind::InvalidAnswer`] | no |
/// | an App-only call on a token client, a JWT that cannot be signed | [`ErrorKind::Credentials`] | no |
///
/// A non-idempotent call (creating a comment or a pull request) that got a 5xx, a timeout or a broken
/// connection may have taken effect: it is retryable in that trying again later can succeed, but the
/// caller should look before doing it again.
#[derive(Clone, Debug)]
pub struct Error {
    operation: String,
    kind: ErrorKind,
}

/// What kind of failure an [`Error`] is.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// 401: GitHub refused the credentials (a JWT it would not take, an expired or revoked token), after
    /// the one retry with GitHub's clock for a JWT and the replication retries of a new installation token.
    #[error("github refused the credentials (401): {message}")]
    Unauthorized {
        /// GitHub's message.
        message: String,
    },
    /// 403 that is not a rate limit: the credentials may not do this.
    #[error("forbidden (403): {message}{}", needs(permission.as_deref()))]
    Forbidden {
        /// GitHub's message (`Resource not accessible by integration`, ...).
        message: String,
        /// The permission GitHub says the call needs (its `X-Accepted-GitHub-Permissions` header, e.g.
        /// `issues=write`), when it says.
        permission: Option<String>,
    },
    /// 404: no such thing, or one these credentials may not see (GitHub does not tell them apart).
    #[error("not found (404): {message}")]
    NotFound {
        /// GitHub's message.
        message: String,
    },
    /// 422: GitHub refused the request's content.
    #[error("validation failed (422): {message}{}", list(errors))]
    ValidationFailed {
        /// GitHub's message.
        message: String,
        /// GitHub's `errors[]`, one per field at fault.
        errors: Vec<FieldError>,
    },
    /// A rate limit that lifts only after the time this call may wait ([`crate::Config::max_rate_limit_wait`],
    /// counted over all its waits), or that kept coming back.
    #[error("rate limited ({limit}) until {}, beyond the {}s this call may wait", Rfc3339(*until), max_wait.as_secs())]
    RateLimited {
        /// Primary or secondary.
        limit: RateLimit,
        /// When GitHub says the limit lifts (`x-ratelimit-reset`, `Retry-After`, or a minute for a secondary
        /// limit without either).
        until: SystemTime,
        /// What the call could have waited in all.
        max_wait: Duration,
    },
    /// Another 4xx.
    #[error("github answered {status}: {message}")]
    Status {
        /// The status code.
        status: u16,
        /// GitHub's message.
        message: String,
    },
    /// 5xx, after the retries an idempotent call gets (a non-idempotent one gets none).
    #[error("github failed ({status}): {message}")]
    Server {
        /// The status code.
        status: u16,
        /// GitHub's message, if the body had one.
        message: String,
    },
    /// No complete answer within [`crate::Config::timeout`].
    #[error("no answer within {}s", timeout.as_secs_f32())]
    Timeout {
        /// The time limit.
        timeout: Duration,
    },
    /// The connection failed (refused, reset, TLS, DNS).
    #[error("connection failed")]
    Connection {
        /// reqwest's error, without its URL.
        #[source]
        source: Arc<reqwest::Error>,
    },
    /// The answer was not what the API describes (a body that does not decode, a next-page link to
    /// another host).
    #[error("unexpected answer: {reason}")]
    InvalidAnswer {
        /// What was wrong (never the body of an answer that carries a token).
        reason: String,
    },
    /// The call needs credentials the client does not have, or the JWT could not be signed.
    #[error("{reason}")]
    Credentials {
        /// What is missing.
        reason: String,
        /// The key's error, when signing failed.
        #[source]
        source: Option<Arc<KeyError>>,
    },
}

/// Which of GitHub's rate limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateLimit {
    /// The hourly request budget (`x-ratelimit-remaining: 0` until `x-ratelimit-reset`).
    Primary,
    /// The abuse limits (403 or 429 with `Retry-After`, or GitHub's message).
    Secondary,
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Primary => "primary",
            Self::Secondary => "secondary",
        })
    }
}

/// One entry of a 422's `errors[]`: GitHub names the resource and field at fault and a code (`missing`,
/// `missing_field`, `invalid`, `already_exists`, `unprocessable`, `custom` with a message).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[non_exhaustive]
pub struct FieldError {
    /// The resource (`Issue`, `PullRequest`, ...).
    pub resource: Option<String>,
    /// The field.
    pub field: Option<String>,
    /// GitHub's code.
    pub code: Option<String>,
    /// A message, for `custom` codes.
    pub message: Option<String>,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts = [&self.resource, &self.field, &self.code, &self.message];
        let mut first = true;
        for part in parts.into_iter().flatten() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(part)?;
            first = false;
        }
        Ok(())
    }
}

fn needs(permission: Option<&str>) -> String {
    permission.map_or_else(String::new, |permission| {
        format!(" (needs permission {permission})")
    })
}

fn list(errors: &[FieldError]) -> String {
    if errors.is_empty() {
        return String::new();
    }
    let items: Vec<String> = errors.iter().map(ToString::to_string).collect();
    format!(" ({})", items.join("; "))
}

impl Error {
    pub(crate) fn new(operation: impl Into<String>, kind: ErrorKind) -> Self {
        Self {
            operation: operation.into(),
            kind,
        }
    }

    /// What failed.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The call: its method and path (`GET /repos/octo/hello/pulls`).
    pub fn operation(&self) -> &str {
        &self.operation
    }

    /// Whether trying the call again later can succeed: rate limits (after
    /// [`Error::rate_limited_until`]), 5xx, timeouts and connection failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::RateLimited { .. }
                | ErrorKind::Server { .. }
                | ErrorKind::Timeout { .. }
                | ErrorKind::Connection { .. }
        )
    }

    /// Whether GitHub answered 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, ErrorKind::NotFound { .. })
    }

    /// When a rate limit lifts, for [`ErrorKind::RateLimited`].
    pub fn rate_limited_until(&self) -> Option<SystemTime> {
        match self.kind {
            ErrorKind::RateLimited { until, .. } => Some(until),
            _ => None,
        }
    }

    /// The HTTP status GitHub answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            ErrorKind::Unauthorized { .. } => Some(401),
            ErrorKind::Forbidden { .. } => Some(403),
            ErrorKind::NotFound { .. } => Some(404),
            ErrorKind::ValidationFailed { .. } => Some(422),
            ErrorKind::Status { status, .. } | ErrorKind::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "github: {}: {}", self.operation, self.kind)
    }
}

impl std::error::Error for Error {
    /// The kind's own cause (the kind's message is already in this error's), so a chain says each once.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.kind)
    }
}

/// Why a [`crate::GitHub`] client could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The API URL is not an absolute `https://` URL (or `http://` to a loopback host), or has credentials,
    /// a query or a fragment.
    #[error("invalid github api url {url:?}: {reason}")]
    ApiUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The user agent is not a valid header value.
    #[error("invalid user agent {0:?}")]
    UserAgent(String),
    /// rustls could not be set up with the platform's certificate verifier.
    #[error("setting up tls for the github client")]
    Tls(#[source] rustls::Error),
    /// reqwest could not build its client.
    #[error("building the http client for github")]
    Http(#[source] reqwest::Error),
}
