//! The admin listener's view of the queue (listing, retrying, cancelling), and how a job is shown there.

use booty_queue::{
    CancelTarget, JobId, JobQuery, JobSnapshot, JobState, MetadataValue, Queue, QueueError,
    Retried, Timestamp,
};
use serde::Serialize;

use crate::admin::{Action, JobFilter, JobInspector};

/// Jobs as the admin listener shows them: [`JobView`]s of the queue's snapshots.
pub struct QueueInspector<P> {
    queue: Queue<P>,
}

impl<P> QueueInspector<P> {
    /// The view of `queue`.
    pub fn new(queue: Queue<P>) -> Self {
        Self { queue }
    }
}

/// Why an operator's cancellation is recorded on the job (its `error`).
pub const OPERATOR_CANCEL_REASON: &str = "cancelled by an operator";

impl<P: Send + Sync + 'static> JobInspector for QueueInspector<P> {
    type View = JobView;
    type Error = QueueError;

    async fn recent(&self, filter: &JobFilter) -> Result<Vec<JobView>, QueueError> {
        let mut query = JobQuery::newest(filter.limit);
        if let Some(state) = filter.state {
            query = query.in_state(state);
        }
        if let Some(repository) = &filter.repository {
            query = query.with_metadata("repository", repository.as_str());
        }
        let jobs = self.queue.query(&query).await?;
        Ok(jobs.into_iter().map(JobView::from).collect())
    }

    async fn job(&self, job_id: &str) -> Result<Option<JobView>, QueueError> {
        Ok(self.queue.get(job_id).await?.map(JobView::from))
    }

    async fn retry(&self, job_id: &str) -> Result<Action<JobView>, QueueError> {
        Ok(match self.queue.retry(job_id).await? {
            Retried::Queued(job) => Action::Done(JobView::from(job)),
            Retried::NotRetryable(job) => Action::Refused(format!(
                "job {job_id} is {}; only failed or cancelled jobs can be retried",
                job.state
            )),
            Retried::Busy => Action::Busy(format!(
                "job {job_id} was not queued again: the queue is full; retry it later"
            )),
            Retried::PayloadGone(_) => Action::Refused(format!(
                "job {job_id} finished before booty kept what failed jobs need to run again; it cannot \
                 be retried (label the issue again instead)"
            )),
            // `NotFound`, and any answer a later booty-queue adds.
            _ => Action::NotFound,
        })
    }

    async fn cancel(&self, job_id: &str) -> Result<Action<JobView>, QueueError> {
        let Some(job) = self.queue.get(job_id).await? else {
            return Ok(Action::NotFound);
        };
        let refused = |state: JobState| {
            Action::Refused(format!(
                "job {job_id} is already {state}; only queued, retrying or running jobs can be cancelled"
            ))
        };
        if job.state.is_final() {
            return Ok(refused(job.state));
        }
        let target = CancelTarget::Job(job.job_id.clone());
        let changed = self.queue.cancel(&target, OPERATOR_CANCEL_REASON).await?;
        if let Some(job) = changed.into_iter().next() {
            return Ok(Action::Done(JobView::from(job)));
        }
        // It finished between the look and the cancellation.
        Ok(match self.queue.get(job_id).await? {
            Some(job) => refused(job.state),
            None => Action::NotFound,
        })
    }
}

/// A job as the admin listener shows it: the JSON object of design.md (`job_id`, `state`, `attempts`,
/// `issue_number`, `repository`, `delivery_id`, `created_at`, `started_at`, `finished_at`, `error`) plus
/// `retry_at`; timestamps as RFC 3339, absent values as `null`. The issue, repository and delivery come
/// from the metadata the sink gives every job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct JobView {
    /// `{issue_number}-{delivery_id}`.
    pub job_id: JobId,
    /// Where the job is in its life.
    pub state: JobState,
    /// Attempts started so far.
    pub attempts: u32,
    /// The issue the job is about.
    pub issue_number: Option<u64>,
    /// The repository of that issue.
    pub repository: Option<String>,
    /// The GitHub App installation the delivery came through, when it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installation_id: Option<u64>,
    /// The delivery the job came from (its dedupe key).
    pub delivery_id: String,
    /// When the queue accepted the job.
    pub created_at: Timestamp,
    /// When the latest attempt started.
    pub started_at: Option<Timestamp>,
    /// When the job reached a final state.
    pub finished_at: Option<Timestamp>,
    /// When the next attempt may start, while `retrying`.
    pub retry_at: Option<Timestamp>,
    /// The last attempt's error, or why the job was cancelled.
    pub error: Option<String>,
    /// What the last attempt printed (its last 64 KiB).
    pub output: Option<String>,
}

impl From<JobSnapshot> for JobView {
    fn from(job: JobSnapshot) -> Self {
        let issue_number = match job.metadata.get("issue_number") {
            Some(MetadataValue::Integer(number)) => u64::try_from(*number).ok(),
            _ => None,
        };
        let text = |key: &str| match job.metadata.get(key) {
            Some(MetadataValue::Text(text)) => Some(text.clone()),
            _ => None,
        };
        let installation_id = match job.metadata.get("installation_id") {
            Some(MetadataValue::Integer(id)) => u64::try_from(*id).ok(),
            _ => None,
        };
        Self {
            installation_id,
            repository: text("repository"),
            delivery_id: text("delivery_id").unwrap_or_else(|| job.dedupe_key.clone()),
            issue_number,
            job_id: job.job_id,
            state: job.state,
            attempts: job.attempts,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            retry_at: job.retry_at,
            error: job.error,
            output: job.output,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_shown_as_the_admin_json() {
        let snapshot = JobSnapshot {
            seq: 7,
            job_id: JobId::new("1347-72d3162e"),
            state: JobState::Retrying,
            attempts: 2,
            dedupe_key: "72d3162e".to_owned(),
            lane: Some("octo/repo#1347".to_owned()),
            kind: "issue".to_owned(),
            metadata: [
                ("issue_number", MetadataValue::from(1347)),
                ("repository", MetadataValue::from("octo/repo")),
                ("delivery_id", MetadataValue::from("72d3162e")),
            ]
            .into_iter()
            .collect(),
            created_at: Timestamp::from_unix_millis(1_700_000_000_000),
            started_at: Some(Timestamp::from_unix_millis(1_700_000_001_500)),
            finished_at: None,
            retry_at: Some(Timestamp::from_unix_millis(1_700_000_011_500)),
            error: Some("clone timed out".to_owned()),
            output: None,
        };
        let json = serde_json::to_value(JobView::from(snapshot)).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "job_id": "1347-72d3162e",
                "state": "retrying",
                "attempts": 2,
                "issue_number": 1347,
                "repository": "octo/repo",
                "delivery_id": "72d3162e",
                "created_at": "2023-11-14T22:13:20.000Z",
                "started_at": "2023-11-14T22:13:21.500Z",
                "finished_at": null,
                "retry_at": "2023-11-14T22:13:31.500Z",
                "error": "clone timed out",
                "output": null,
            })
        );
    }
}
