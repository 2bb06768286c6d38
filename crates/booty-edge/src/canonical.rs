//! The one log line per webhook, `webhook_answered`, written when the answer is known.
//!
//! Stripe's "canonical log line": everything an operator asks about a delivery (which one, what it was
//! about, what became of it, how long it took) on one line, so a busy hook costs one line per delivery
//! and one `grep` finds the whole story. The steps that led there are `debug` events.

use std::time::Instant;

use booty_event::Subject;
use hyper::HeaderMap;
use hyper::StatusCode;
use hyper::header::HeaderValue;
use tracing::{error, info, warn};

use crate::names;

/// What became of a delivery: the line's `outcome`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A job was stored (`202`).
    Accepted,
    /// The delivery was recorded before (`200 already_processed`).
    Duplicate,
    /// The delivery stopped jobs (`200 cancelled`).
    Cancelled,
    /// The delivery starts nothing (`200 ignored`).
    Ignored,
    /// GitHub's `ping` (`200 pong`).
    Pong,
    /// The request was refused for what it is or says (`4xx`).
    Refused,
    /// The queue was full or shutting down (`503`).
    Busy,
    /// The store could not be reached (`503`).
    Unavailable,
    /// Storing failed (`500`).
    Failed,
    /// The sink overran its backstop: whether the delivery was recorded is unknown (`503`).
    Unknown,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Cancelled => "cancelled",
            Self::Ignored => "ignored",
            Self::Pong => "pong",
            Self::Refused => "refused",
            Self::Busy => "busy",
            Self::Unavailable => "unavailable",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }
}

/// The line being gathered while a delivery is answered. Its fields are filled in by the step that
/// learns them; [`Line::write`] writes it once, with the status and the latency.
#[derive(Debug)]
pub(crate) struct Line {
    started: Instant,
    delivery_id: Option<HeaderValue>,
    event: Option<HeaderValue>,
    outcome: Outcome,
    reason: Option<String>,
    job_id: Option<String>,
    error: Option<String>,
    late_ms: Option<u64>,
    pub(crate) subject: Subject,
}

impl Line {
    /// A line for the delivery with these headers, `request_id` being the id its answer carries (the
    /// delivery id when that is valid).
    pub(crate) fn new(started: Instant, request_id: &HeaderValue, headers: &HeaderMap) -> Self {
        let delivery_id = headers
            .get(&names::DELIVERY)
            .filter(|delivery| *delivery == request_id)
            .cloned();
        let event = headers
            .get(&names::EVENT)
            .filter(|event| loggable(event).is_some())
            .cloned();
        Self {
            started,
            delivery_id,
            event,
            outcome: Outcome::Refused,
            reason: None,
            job_id: None,
            error: None,
            late_ms: None,
            subject: Subject::default(),
        }
    }

    /// The delivery id, for the `debug` span of the steps.
    pub(crate) fn delivery_id(&self) -> Option<&str> {
        self.delivery_id.as_ref().and_then(|id| id.to_str().ok())
    }

    /// The event name, for the `debug` span of the steps.
    pub(crate) fn event(&self) -> Option<&str> {
        self.event.as_ref().and_then(loggable)
    }

    /// The delivery was refused (`4xx`): `reason` is a short stable name, `message` what the answer said.
    pub(crate) fn refused(&mut self, reason: &str, message: Option<&str>) {
        self.outcome = Outcome::Refused;
        self.reason = Some(reason.to_owned());
        self.error = message.map(str::to_owned);
    }

    /// What became of it.
    pub(crate) fn outcome(&mut self, outcome: Outcome) {
        self.outcome = outcome;
    }

    /// The reason it was ignored, as answered.
    pub(crate) fn reason(&mut self, reason: &str) {
        self.reason = Some(reason.to_owned());
    }

    /// The job it stored or found, or (comma-separated) the jobs it cancelled.
    pub(crate) fn job_id(&mut self, job_id: String) {
        self.job_id = Some(job_id);
    }

    /// What went wrong, with all its causes (never sent, only logged).
    pub(crate) fn error(&mut self, error: String) {
        self.error = Some(error);
    }

    /// The sink answered this long after the request's deadline.
    pub(crate) fn late(&mut self, late_ms: u64) {
        self.late_ms = Some(late_ms);
    }

    /// Writes the line: `info`, or `warn` for a full queue or a sink that answered after the request's
    /// deadline (GitHub may have given up on it), and `error` for the other `5xx`.
    pub(crate) fn write(self, status: StatusCode) {
        // Microsecond resolution is all a latency needs; more digits are float noise in the log.
        let latency_ms = (self.started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
        let status = status.as_u16();
        macro_rules! line {
            ($level:ident) => {
                $level!(
                    delivery_id = self.delivery_id(),
                    event = self.event(),
                    action = self.subject.action.as_deref(),
                    status,
                    outcome = self.outcome.as_str(),
                    reason = self.reason.as_deref(),
                    job_id = self.job_id.as_deref(),
                    repository = self.subject.repository.as_deref(),
                    issue_number = self.subject.issue_number,
                    latency_ms,
                    late_ms = self.late_ms,
                    error = self.error.as_deref(),
                    "webhook_answered"
                )
            };
        }
        match self.outcome {
            Outcome::Busy => line!(warn),
            _ if status >= 500 => line!(error),
            _ if self.late_ms.is_some() => line!(warn),
            _ => line!(info),
        }
    }
}

/// A header value as a log field, when it looks like an event name or delivery id (short, printable
/// ASCII), so a client cannot put line breaks or kilobytes into the log.
pub(crate) fn loggable(value: &HeaderValue) -> Option<&str> {
    let name = value.to_str().ok()?;
    (!name.is_empty() && name.len() <= 64 && name.bytes().all(|byte| byte.is_ascii_graphic()))
        .then_some(name)
}
