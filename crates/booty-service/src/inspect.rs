//! The admin listener's read-only view of the queue.

use booty_edge::JobInspector;
use booty_queue::{JobSnapshot, Queue, QueueError};

/// Jobs as the admin listener shows them: the queue's snapshots.
pub struct QueueInspector<P> {
    queue: Queue<P>,
}

impl<P> QueueInspector<P> {
    /// The view of `queue`.
    pub fn new(queue: Queue<P>) -> Self {
        Self { queue }
    }
}

impl<P: Send + Sync + 'static> JobInspector for QueueInspector<P> {
    type View = JobSnapshot;
    type Error = QueueError;

    async fn recent(&self, limit: usize) -> Result<Vec<JobSnapshot>, QueueError> {
        self.queue.list(limit).await
    }

    async fn job(&self, job_id: &str) -> Result<Option<JobSnapshot>, QueueError> {
        self.queue.get(job_id).await
    }
}
