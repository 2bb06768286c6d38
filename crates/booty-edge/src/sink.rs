//! Where a verified delivery goes: the sink trait and its answers.

use std::error::Error;
use std::future::Future;

use booty_event::{Delivery, Subject};
use hyper::body::Bytes;
use tokio::time::Instant;

/// A verified webhook delivery, as the edge hands it to the [`Sink`].
///
/// The edge has checked its size, signature and content type and decoded its headers; it has not parsed
/// the JSON. What the delivery means (a trigger, an event to ignore, a payload too malformed to act on)
/// is the sink's to decide, with booty-event's routing, so the payload is parsed once, by whoever
/// decides.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Webhook {
    /// The delivery headers: id (the dedupe key), event name and the rest.
    pub delivery: Delivery,
    /// The event payload as JSON, exactly as GitHub sent it (taken out of the `payload=` field for a
    /// form-encoded hook), not yet parsed.
    pub payload: Bytes,
    /// When the request's time is up ([`Limits::request_timeout`](crate::Limits::request_timeout) after its
    /// headers arrived): the sink should have its answer by then (see [`Sink`]).
    pub deadline: Instant,
}

impl Webhook {
    /// A delivery that did not come through the edge's listener (a recovered delivery, a test, a fuzz
    /// target), to be answered by `deadline`. `payload` is the event's JSON.
    pub fn new(delivery: Delivery, payload: Bytes, deadline: Instant) -> Self {
        Self {
            delivery,
            payload,
            deadline,
        }
    }
}

/// Takes verified deliveries from the edge and says what became of them: in booty-service, it routes
/// each one with booty-event's trigger rule and stores a job for a trigger.
///
/// Every verified delivery but `ping` (which the edge answers `pong` itself) is handed to
/// [`Sink::deliver`]. The edge answers GitHub with whatever the sink answers, so the answer must be the
/// truth about what was recorded:
///
/// - [`SinkAnswer::Accepted`] only once the job is stored, [`SinkAnswer::Duplicate`] only when the
///   delivery was recorded before;
/// - [`SinkAnswer::Ignored`] for a delivery that starts nothing, [`SinkAnswer::BadRequest`] for one
///   whose payload cannot be acted on (malformed JSON, a trigger without the fields a job needs);
/// - a sink must not record a delivery it does not answer `Accepted` or `Duplicate` for: with
///   [`SinkAnswer::Busy`], [`SinkAnswer::Unavailable`] or [`SinkAnswer::Failed`] nothing may be marked
///   seen, so GitHub's redelivery is accepted later.
///
/// **Deadline.** [`Webhook::deadline`] is when the request's time is up. A sink should answer by
/// then; one that cannot decide in time (a store that is locked, a queue waiting for room) withdraws
/// what it started and answers `Busy` or `Unavailable`. The edge does not cut a late sink off at the
/// deadline, because a late answer is still the truth: it waits for it and passes it on (its
/// `webhook_answered` line gets `late_ms`, at `warn`). Only at a backstop,
/// [`Limits::sink_overrun_grace`](crate::Limits::sink_overrun_grace) past the deadline, does it give up:
/// it drops the future, answers `503` and logs the line with `outcome` `unknown` at `error`, because whether the delivery was recorded is then unknown (a redelivery is deduplicated if
/// it was). A sink that honours its deadline never gets there.
///
/// **Growing.** Like ripgrep's `Sink`, the trait has one required method, and what it gains later comes
/// with a default, so an implementation keeps compiling; [`Webhook`] and [`SinkAnswer`] are
/// `#[non_exhaustive]` for the same reason.
pub trait Sink: Send + Sync + 'static {
    /// Decides what `webhook` is and records what it starts, or says why not.
    fn deliver(&self, webhook: Webhook) -> impl Future<Output = SinkAnswer> + Send;

    /// [`Sink::deliver`], also filling in `subject` with what the delivery turned out to be about (its
    /// action, repository and issue), for the edge's one log line per webhook (`webhook_answered`). The
    /// edge calls this one; the default leaves `subject` empty.
    fn deliver_described<'a>(
        &'a self,
        webhook: Webhook,
        subject: &'a mut Subject,
    ) -> impl Future<Output = SinkAnswer> + Send + 'a {
        let _ = subject;
        self.deliver(webhook)
    }
}

/// A sink's answer, and the status the edge turns it into.
#[derive(Debug)]
#[non_exhaustive]
pub enum SinkAnswer {
    /// The job is stored: `202 {"status":"accepted","job_id":...}`.
    Accepted {
        /// The stored job's id (`{issue_number}-{delivery_id}` in booty's queue).
        job_id: String,
    },
    /// The delivery was seen before: `200 {"status":"already_processed","job_id":...}`.
    Duplicate {
        /// The job the first delivery started.
        job_id: String,
    },
    /// The delivery stopped these jobs (the trigger label was removed, the issue closed): `200
    /// {"status":"cancelled","job_ids":[...]}` (`outcome` `cancelled` on the delivery's line).
    Cancelled {
        /// The jobs cancelled, or asked to stop where they run.
        job_ids: Vec<String>,
    },
    /// The delivery starts nothing (another event, action or label): `200
    /// {"status":"ignored","reason":...}`, with this reason (`outcome` `ignored` on the delivery's line).
    Ignored(String),
    /// The payload cannot be acted on (malformed JSON, a trigger without the fields a job needs): `400`
    /// with this message, which says what is wrong (`outcome` `refused`, `reason` `bad_payload` on the
    /// delivery's line).
    BadRequest(String),
    /// The queue is full or shutting down: `503` with `Retry-After`; the delivery is not recorded.
    Busy,
    /// The store cannot be reached: `503` with `Retry-After`; the delivery is not recorded. The error is
    /// logged with all its causes, not sent.
    Unavailable(Box<dyn Error + Send + Sync>),
    /// Anything else went wrong: `500`. The error is logged with all its causes; the answer only says
    /// that storing failed.
    Failed(Box<dyn Error + Send + Sync>),
}
