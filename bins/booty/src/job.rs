//! What the binary queues for a trigger, and the adapters that let the edge reach the queue without
//! knowing it: [`QueueSink`] (the edge's `Sink`) and [`QueueInspector`] (its `JobInspector`).

use booty_edge::{JobInspector, Sink, SinkAnswer, Submission};
use booty_event::IssueTrigger;
use booty_queue::{JobSnapshot, NewJob, Queue, QueueError, Submitted};
use serde::{Deserialize, Serialize};

/// A job's payload: the trigger, and the event as GitHub sent it (for `BOOTY_EVENT_PATH`). Durable stores
/// persist it, so it is plain serde data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JobPayload {
    /// The `X-GitHub-Event` name (always `issues` today).
    pub(crate) event: String,
    /// The issue, repository, label and sender.
    pub(crate) trigger: IssueTrigger,
    /// The webhook payload JSON, verbatim.
    pub(crate) payload: String,
}

/// Hands the edge's triggers to the queue. The queue stores the job before answering, so `202` means
/// stored; a store that cannot be reached is `503` and leaves no trace.
pub(crate) struct QueueSink {
    pub(crate) queue: Queue<JobPayload>,
}

impl Sink for QueueSink {
    async fn submit(&self, submission: Submission) -> SinkAnswer {
        let Submission {
            delivery,
            trigger,
            payload,
            ..
        } = submission;
        let payload = match String::from_utf8(payload.to_vec()) {
            Ok(json) => json,
            Err(err) => return SinkAnswer::Failed(Box::new(err)),
        };
        let repository = trigger.repository.full_name.clone();
        let issue = trigger.issue.number;
        let job = NewJob::new(
            delivery.id().as_str(),
            JobPayload {
                event: delivery.event().to_owned(),
                trigger,
                payload,
            },
        )
        .for_issue(repository, issue);
        match self.queue.submit(job).await {
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

/// The admin listener's read-only view of the queue.
pub(crate) struct QueueInspector {
    pub(crate) queue: Queue<JobPayload>,
}

impl JobInspector for QueueInspector {
    type View = JobSnapshot;
    type Error = QueueError;

    async fn recent(&self, limit: usize) -> Result<Vec<JobSnapshot>, QueueError> {
        self.queue.list(limit).await
    }

    async fn job(&self, job_id: &str) -> Result<Option<JobSnapshot>, QueueError> {
        self.queue.get(job_id).await
    }
}
