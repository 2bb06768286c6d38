//! Where a verified trigger goes: the sink trait and its answers.

use std::error::Error;
use std::future::Future;

use booty_event::{Delivery, IssueTrigger};
use hyper::body::Bytes;
use tokio::time::Instant;

/// What a job needs from a verified trigger delivery.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Submission {
    /// The delivery headers: id (the dedupe key), event name and the rest.
    pub delivery: Delivery,
    /// The issue, repository, label and sender the trigger is about.
    pub trigger: IssueTrigger,
    /// The event payload as JSON, exactly as GitHub sent it (taken out of the `payload=` field for a
    /// form-encoded hook), for whoever runs the job to read; the binary writes it to `BOOTY_EVENT_PATH`.
    pub payload: Bytes,
    /// When the request's time is up ([`Limits::request_timeout`](crate::Limits::request_timeout) after its
    /// headers arrived): the sink should have its answer by then (see [`Sink`]).
    pub deadline: Instant,
}

impl Submission {
    /// A submission for a delivery that did not come through the edge's listener (a recovered delivery,
    /// a test, a fuzz target), to be answered by `deadline`.
    pub fn new(
        delivery: Delivery,
        trigger: IssueTrigger,
        payload: Bytes,
        deadline: Instant,
    ) -> Self {
        Self {
            delivery,
            trigger,
            payload,
            deadline,
        }
    }
}

/// Takes triggers from the edge: in the binary, the job queue.
///
/// The edge answers GitHub with whatever the sink answers, so the answer must be the truth about what was
/// recorded:
///
/// - [`SinkAnswer::Accepted`] only once the job is stored, [`SinkAnswer::Duplicate`] only when the
///   delivery was recorded before;
/// - a sink must not record a delivery it does not answer `Accepted` or `Duplicate` for: with
///   [`SinkAnswer::Busy`], [`SinkAnswer::Unavailable`] or [`SinkAnswer::Failed`] nothing may be marked
///   seen, so GitHub's redelivery is accepted later.
///
/// **Deadline.** [`Submission::deadline`] is when the request's time is up. A sink should answer by
/// then; one that cannot decide in time (a store that is locked, a queue waiting for room) withdraws
/// what it started and answers `Busy` or `Unavailable`. The edge does not cut a late sink off at the
/// deadline, because a late answer is still the truth: it waits for it and passes it on (logging
/// `sink_late`). Only at a backstop, [`Limits::sink_overrun_grace`](crate::Limits::sink_overrun_grace)
/// past the deadline, does it give up: it drops the future, answers `503` and logs `sink_overran` at
/// `error`, because whether the delivery was recorded is then unknown (a redelivery is deduplicated if
/// it was). A sink that honours its deadline never gets there.
pub trait Sink: Send + Sync + 'static {
    /// Stores a job for `submission`, or says why not.
    fn submit(&self, submission: Submission) -> impl Future<Output = SinkAnswer> + Send;
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
    /// The queue is full or shutting down: `503` with `Retry-After`; the delivery is not recorded.
    Busy,
    /// The store cannot be reached: `503` with `Retry-After`; the delivery is not recorded. The error is
    /// logged, not sent.
    Unavailable(Box<dyn Error + Send + Sync>),
    /// Anything else went wrong: `500`. The error is logged; the answer only says that storing failed.
    Failed(Box<dyn Error + Send + Sync>),
}
