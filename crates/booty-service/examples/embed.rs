//! Embedding booty's crates in your own bot: the edge verifies webhooks, booty's sink routes them with the
//! trigger rule, the queue dedupes and orders jobs, and a Rust closure gets a fresh workspace on
//! `agent/issue-N` for each labelled issue.
//!
//! ```sh
//! WEBHOOK_SECRET=s3cret cargo run -p booty-service --example embed -- /path/to/repo
//! ```
//!
//! Then deliver a payload with `booty send ... --url http://127.0.0.1:3000/webhooks/github --secret s3cret`.
//! docs/embedding.md walks through it.

#![allow(
    clippy::print_stderr,
    reason = "an example program reports to its user"
)]

use std::sync::Arc;
use std::time::Duration;

use booty_edge::EdgeConfig;
use booty_event::{IssueTrigger, TriggerRule};
use booty_queue::{CancellationToken, HandlerError, Job, MemoryStore, Queue, QueueConfig};
use booty_service::{QueueSink, Submission};
use booty_signature::Verifier;
use booty_workspace::{WorkspaceConfig, WorkspaceManager, WorkspaceRequest};

/// What the bot queues for each trigger. With a durable store this must be serde data.
#[derive(Debug, Clone)]
struct Work {
    trigger: IssueTrigger,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::var("WEBHOOK_SECRET").map_err(|_| "set WEBHOOK_SECRET")?;
    let repo: Arc<str> = std::env::args()
        .nth(1)
        .ok_or("usage: embed REPOSITORY")?
        .into();

    let workspaces = WorkspaceManager::new(WorkspaceConfig::new(std::env::temp_dir()));
    let handler = move |job: Job<Work>, cancel: CancellationToken| {
        let (workspaces, repo) = (workspaces.clone(), Arc::clone(&repo));
        async move {
            let issue = &job.payload.trigger.issue;
            let request = WorkspaceRequest::new(&*repo, "main", issue.number);
            let workspace = workspaces
                .prepare(&request, cancel.cancelled())
                .await
                .map_err(|err| {
                    if err.is_retryable() {
                        HandlerError::retryable(err)
                    } else {
                        HandlerError::permanent(err)
                    }
                })?;
            // Your agent goes here: the clone is at workspace.path(), on workspace.branch().
            eprintln!(
                "job {}: \"{}\" ready at {} on {} ({})",
                job.id,
                issue.title,
                workspace.path().display(),
                workspace.branch(),
                workspace.head_commit()
            );
            workspace.close().await.map_err(HandlerError::retryable)
        }
    };
    let queue = Queue::start(MemoryStore::default(), handler, QueueConfig::default()).await?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    eprintln!(
        "listening on http://{}/webhooks/github; Ctrl-C stops",
        listener.local_addr()?
    );
    let config = EdgeConfig::new(Verifier::new(secret)?);
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    // booty's own sink: it routes each delivery with the trigger rule (`agent:builder` here), answers
    // `202` only once the job is stored, `503` (nothing stored) when the queue is full or its store fails,
    // and makes the job's payload from each trigger with the closure.
    let rule = TriggerRule::default();
    let sink = QueueSink::new(queue.clone(), rule, |submission: &Submission| {
        Ok::<_, std::convert::Infallible>(Work {
            trigger: submission.trigger.clone(),
        })
    });
    booty_edge::serve(listener, config, Arc::new(sink), ctrl_c).await?;
    let report = queue.shutdown(Duration::from_secs(30)).await;
    eprintln!(
        "stopped: {} finished, {} cancelled",
        report.finished.len(),
        report.cancelled.len()
    );
    Ok(())
}
