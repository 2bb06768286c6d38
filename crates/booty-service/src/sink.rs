//! The edge's sink: verified triggers become queue submissions, and the queue's answers the edge's.

use std::sync::Arc;

use booty_edge::{Sink, SinkAnswer, Submission};
use booty_queue::{NewJob, Queue, QueueError, Submitted};

/// Makes a job's payload from a trigger; an error is answered `500` (it is logged, not sent).
type MakePayload<P> =
    dyn Fn(&Submission) -> Result<P, Box<dyn std::error::Error + Send + Sync>> + Send + Sync;

/// Hands the edge's triggers to the queue: one job per delivery, in the lane of its repository and issue,
/// withdrawn if the store has not taken it by the request's deadline.
///
/// The answers keep the edge's contract: `202` only once the job is stored, `200 already_processed` for a
/// delivery seen before, `503` (nothing recorded) when the queue is full, shutting down or its store
/// fails, `500` when the payload cannot be made.
pub struct QueueSink<P> {
    queue: Queue<P>,
    make: Arc<MakePayload<P>>,
}

impl<P: Send + Sync + 'static> QueueSink<P> {
    /// A sink submitting to `queue`, with each job's payload made by `make`.
    pub fn new<F, E>(queue: Queue<P>, make: F) -> Self
    where
        F: Fn(&Submission) -> Result<P, E> + Send + Sync + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Self {
            queue,
            make: Arc::new(move |submission| make(submission).map_err(Into::into)),
        }
    }
}

impl<P: Send + Sync + 'static> Sink for QueueSink<P> {
    async fn submit(&self, submission: Submission) -> SinkAnswer {
        let payload = match (self.make)(&submission) {
            Ok(payload) => payload,
            Err(err) => return SinkAnswer::Failed(err),
        };
        let job = match new_job(&submission, payload) {
            Ok(job) => job,
            Err(err) => return SinkAnswer::Failed(Box::new(err)),
        };
        // Withdrawn if the store has not taken it by the request's deadline: never stored behind a 503.
        match self
            .queue
            .submit_before(job, Some(submission.deadline))
            .await
        {
            Ok(Submitted::Accepted(id)) => SinkAnswer::Accepted {
                job_id: id.to_string(),
            },
            Ok(Submitted::Duplicate(id)) => SinkAnswer::Duplicate {
                job_id: id.to_string(),
            },
            Ok(Submitted::Busy) => SinkAnswer::Busy,
            Err(err @ QueueError::NotRecorded { .. }) => SinkAnswer::Unavailable(Box::new(err)),
            Err(err) => SinkAnswer::Failed(Box::new(err)),
        }
    }
}

/// The kind of the jobs the sink submits.
const JOB_KIND: &str = "issue";

/// The job for a trigger: id `{issue}-{delivery}`, deduplicated by the delivery id (GitHub sends one
/// event with the same id on every hook and redelivery), in the lane `{repository}#{issue}` (one issue's
/// jobs run one at a time, in order), of kind `issue`, with the issue number, repository and delivery id
/// as metadata (so every log line about it carries them, and the admin view shows them).
///
/// # Errors
/// An issue number above `i64::MAX`, which booty-event refuses before a trigger gets here.
fn new_job<P>(submission: &Submission, payload: P) -> Result<NewJob<P>, std::num::TryFromIntError> {
    let delivery = submission.delivery.id().as_str();
    let (repository, number) = (
        &submission.trigger.repository.full_name,
        submission.trigger.issue.number,
    );
    Ok(NewJob::new(format!("{number}-{delivery}"), payload)
        .deduped_by(delivery)
        .in_lane(format!("{repository}#{number}"))
        .of_kind(JOB_KIND)
        .with_metadata("issue_number", i64::try_from(number)?)
        .with_metadata("repository", repository.as_str())
        .with_metadata("delivery_id", delivery))
}
