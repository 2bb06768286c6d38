//! The edge's sink: verified deliveries are routed with the trigger rule, triggers become queue
//! submissions, and the queue's answers the edge's.

use std::sync::Arc;

use booty_edge::{Sink, SinkAnswer, Webhook};
use booty_event::{Cancellation, Decision, Delivery, IssueTrigger, Subject, TriggerRule};
use booty_queue::{CancelTarget, NewJob, Queue, QueueError, Submitted};
use hyper::body::Bytes;
use tokio::time::Instant;

use crate::metrics::Metrics;

/// A trigger on its way to the queue: what a [`QueueSink`] makes a job's payload from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Submission {
    /// The delivery headers: id (the dedupe key), event name and the rest.
    pub delivery: Delivery,
    /// The issue, repository, label and sender the trigger is about.
    pub trigger: IssueTrigger,
    /// The event payload as JSON, exactly as GitHub sent it (taken out of the `payload=` field for a
    /// form-encoded hook), for whoever runs the job to read; the service writes it to `BOOTY_EVENT_PATH`.
    pub payload: Bytes,
    /// When the request's time is up: the job is withdrawn if the store has not taken it by then.
    pub deadline: Instant,
}

/// Makes a job's payload from a trigger; an error is answered `500` (it is logged, not sent).
type MakePayload<P> =
    dyn Fn(&Submission) -> Result<P, Box<dyn std::error::Error + Send + Sync>> + Send + Sync;

/// The edge's sink: routes each verified delivery with a [`TriggerRule`] and hands the triggers to the
/// queue, one job per delivery, in the lane of its repository and issue, withdrawn if the store has not
/// taken it by the request's deadline.
///
/// The answers keep the edge's contract: `200 ignored` with the rule's reason for a delivery that is not
/// a trigger, `400` for a payload the rule cannot decide on (malformed JSON, a trigger without the
/// fields a job needs), `202` only once the job is stored, `200 already_processed` for a delivery seen
/// before, `503` (nothing recorded) when the queue is full, shutting down or its store fails, `500` when
/// the payload cannot be made. The payload is parsed once, here: an `issues` payload straight into typed
/// structs, any other only skimmed for well-formedness.
pub struct QueueSink<P> {
    queue: Queue<P>,
    rule: TriggerRule,
    make: Arc<MakePayload<P>>,
    metrics: Option<Metrics>,
}

impl<P: Send + Sync + 'static> QueueSink<P> {
    /// A sink routing with `rule` and submitting to `queue`, with each job's payload made by `make`.
    pub fn new<F, E>(queue: Queue<P>, rule: TriggerRule, make: F) -> Self
    where
        F: Fn(&Submission) -> Result<P, E> + Send + Sync + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        Self {
            queue,
            rule,
            make: Arc::new(move |submission| make(submission).map_err(Into::into)),
            metrics: None,
        }
    }

    /// Counts every answer in `metrics` (`booty_triggers_total`).
    #[must_use]
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Cancels the unfinished jobs of the issue a cancellation is about (its lane): a queued one never
    /// runs, a running one is stopped wherever it runs. With none, the delivery is ignored.
    async fn cancel(&self, cancellation: &Cancellation, delivery: &Delivery) -> SinkAnswer {
        let lane = lane(
            &cancellation.repository.full_name,
            cancellation.issue_number,
        );
        let reason = format!(
            "{} (by {}, delivery {})",
            cancellation.why,
            cancellation.sender.login,
            delivery.id()
        );
        match self.queue.cancel(&CancelTarget::Lane(lane), &reason).await {
            Ok(jobs) if jobs.is_empty() => SinkAnswer::Ignored(NOTHING_TO_CANCEL.to_owned()),
            Ok(jobs) => SinkAnswer::Cancelled {
                job_ids: jobs.iter().map(|job| job.job_id.to_string()).collect(),
            },
            Err(err) => SinkAnswer::Unavailable(Box::new(err)),
        }
    }

    /// Stores the job for a trigger, or says why not.
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

impl<P: Send + Sync + 'static> Sink for QueueSink<P> {
    async fn deliver(&self, webhook: Webhook) -> SinkAnswer {
        self.deliver_described(webhook, &mut Subject::default())
            .await
    }

    async fn deliver_described(&self, webhook: Webhook, subject: &mut Subject) -> SinkAnswer {
        let (answer, reason) = self.route(webhook, subject).await;
        if let Some(metrics) = &self.metrics {
            metrics.trigger(&answer, reason);
        }
        answer
    }
}

impl<P: Send + Sync + 'static> QueueSink<P> {
    /// The answer to one verified delivery (a trigger submitted, a cancellation carried out, or why not),
    /// and for an ignored one the short name of why (`Ignored::code`, or `no_job_to_cancel`); `subject`
    /// gets what the delivery is about, for the edge's log line.
    async fn route(&self, webhook: Webhook, subject: &mut Subject) -> (SinkAnswer, &'static str) {
        let decision =
            self.rule
                .decide_described(webhook.delivery.event(), &webhook.payload, subject);
        let trigger = match decision {
            Ok(Decision::Trigger(trigger)) => *trigger,
            Ok(Decision::Cancel(cancellation)) => {
                let answer = self.cancel(&cancellation, &webhook.delivery).await;
                let reason = match answer {
                    SinkAnswer::Ignored(_) => NOTHING_TO_CANCEL,
                    _ => "",
                };
                return (answer, reason);
            }
            Ok(Decision::Ignored(reason)) => {
                return (SinkAnswer::Ignored(reason.to_string()), reason.code());
            }
            Err(err) => return (SinkAnswer::BadRequest(err.to_string()), ""),
        };
        let answer = self
            .submit(Submission {
                delivery: webhook.delivery,
                trigger,
                payload: webhook.payload,
                deadline: webhook.deadline,
            })
            .await;
        (answer, "")
    }
}

/// The kind of the jobs the sink submits.
const JOB_KIND: &str = "issue";

/// The reason a cancellation that found no unfinished job is ignored with.
const NOTHING_TO_CANCEL: &str = "no_job_to_cancel";

/// The lane of an issue's jobs: `{repository}#{issue}`, so one issue's jobs run one at a time, in order.
fn lane(repository: &str, issue: u64) -> String {
    format!("{repository}#{issue}")
}

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
    let job = NewJob::new(format!("{number}-{delivery}"), payload)
        .deduped_by(delivery)
        .in_lane(lane(repository, number))
        .of_kind(JOB_KIND)
        .with_metadata("issue_number", i64::try_from(number)?)
        .with_metadata("repository", repository.as_str())
        .with_metadata("delivery_id", delivery);
    Ok(match &submission.trigger.installation {
        Some(installation) => job.with_metadata("installation_id", i64::try_from(installation.id)?),
        None => job,
    })
}
