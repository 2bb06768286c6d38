//! Where a verified trigger goes: the sink trait and its answers.

use std::error::Error;
use std::future::Future;

use booty_event::{Delivery, IssueTrigger};
use hyper::body::Bytes;

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
}

/// Takes triggers from the edge: in the binary, the job queue.
///
/// The edge answers GitHub with whatever the sink answers, so [`Sink::submit`] must only return
/// [`SinkAnswer::Accepted`] once the job is stored, and must not mark a delivery as seen when it answers
/// [`SinkAnswer::Busy`] or [`SinkAnswer::Unavailable`] (GitHub's redelivery has to be accepted later).
/// It runs under the request deadline: if it takes longer, the edge answers `503` and drops the future.
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
