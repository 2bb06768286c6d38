//! The queue's observer: what an embedder's metrics are told, and when.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use booty_queue::{
    AttemptFinished, AttemptStarted, Backoff, CancellationToken, HandlerError, Job, MemoryStore,
    NewJob, Observer, Outcome, Queue, RetryScheduled, StoreError, SubmissionAnswered, Submitted,
};
use tokio::sync::Notify;

use crate::support::{ForIssue, Observed, config, next_recorded};

/// Every event, as a line: what a metrics adapter would count.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<String>>>);

impl Events {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }

    fn push(&self, event: String) {
        self.0.lock().unwrap().push(event);
    }
}

impl Observer for Events {
    fn submitted(&self, submission: &SubmissionAnswered<'_>) {
        let answer = match submission.answer {
            Submitted::Accepted(_) => "accepted",
            Submitted::Duplicate(_) => "duplicate",
            Submitted::Busy => "busy",
        };
        self.push(format!(
            "submitted {} {} {answer}",
            submission.kind, submission.job_id
        ));
    }

    fn started(&self, attempt: &AttemptStarted<'_>) {
        self.push(format!(
            "started {} attempt {} waited {}s",
            attempt.job_id,
            attempt.attempt,
            attempt.waited.as_secs()
        ));
    }

    fn finished(&self, attempt: &AttemptFinished<'_>) {
        let outcome = match attempt.outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Retry { .. } => "retry",
            Outcome::Failed { .. } => "failed",
            _ => "other",
        };
        self.push(format!(
            "finished {} attempt {} {outcome} after {}s",
            attempt.job_id,
            attempt.attempt,
            attempt.ran.as_secs()
        ));
    }

    fn retry_scheduled(&self, retry: &RetryScheduled<'_>) {
        self.push(format!(
            "retry {} after attempt {}",
            retry.job_id, retry.attempt
        ));
    }

    fn store_failed(&self, operation: &'static str, error: &StoreError) {
        self.push(format!("store {operation} failed: {error}"));
    }
}

#[tokio::test(start_paused = true)]
async fn the_observer_is_told_of_submissions_attempts_retries_and_store_failures() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let events = Events::default();
    let hold = Arc::new(Notify::new());
    let gate = Arc::clone(&hold);
    // d1's attempt 1 waits to be let go, runs 2 s more and fails; its attempt 2 runs 3 s and succeeds.
    // d2 succeeds at once.
    let handler = move |job: Job<()>, _: CancellationToken| {
        let gate = Arc::clone(&gate);
        async move {
            if job.dedupe_key == "d2" {
                return Ok(());
            }
            if job.attempt == 1 {
                gate.notified().await;
                tokio::time::sleep(Duration::from_secs(2)).await;
                return Err(HandlerError::retryable("timeout"));
            }
            tokio::time::sleep(Duration::from_secs(3)).await;
            Ok(())
        }
    };
    let mut config = config(1);
    config.capacity = 1;
    config.backoff = Backoff {
        base: Duration::from_secs(10),
        cap: Duration::from_secs(10),
    };
    let queue = Queue::start_with(Arc::clone(&store), handler, config, events.clone())
        .await
        .unwrap();
    let job = |delivery: &str| NewJob::new(delivery, ()).for_issue("octo/repo", 4);

    let _ = queue.submit(job("d1")).await.unwrap();
    let _ = queue.submit(job("d1")).await.unwrap();
    // Wait until d1 runs, so that d2 fills the one place and d3 is refused.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = queue.submit(job("d2")).await.unwrap();
    let _ = queue.submit(job("d3")).await.unwrap();
    store.set_outage(true);
    assert!(queue.submit(job("d4")).await.is_err());
    store.set_outage(false);
    assert_eq!(
        events.take(),
        [
            "submitted issue 4-d1 accepted",
            "submitted issue 4-d1 duplicate",
            "started 4-d1 attempt 1 waited 0s",
            "submitted issue 4-d2 accepted",
            "submitted issue 4-d3 busy",
            "store insert failed: observed store: insert failed",
        ]
    );

    hold.notify_one();
    assert!(matches!(
        next_recorded(&mut recorded).await.1,
        Outcome::Retry { .. }
    ));
    assert_eq!(next_recorded(&mut recorded).await.1, Outcome::Succeeded);
    assert_eq!(next_recorded(&mut recorded).await.1, Outcome::Succeeded);
    let events = events.take();
    assert_eq!(events.len(), 6, "{events:?}");
    // Attempt 1 ran 7 s: 5 s held, 2 s working.
    assert_eq!(
        events[..2],
        [
            "retry 4-d1 after attempt 1",
            "finished 4-d1 attempt 1 retry after 7s",
        ]
    );
    // Attempt 2 starts after the backoff (5 to 10 s with jitter), 12 to 17 s after d1 was accepted.
    let waited = |event: &str, prefix: &str| -> u64 {
        let seconds = event
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix('s'));
        seconds
            .unwrap_or_else(|| panic!("{event}"))
            .parse()
            .unwrap()
    };
    let second = waited(&events[2], "started 4-d1 attempt 2 waited ");
    assert!((12..=17).contains(&second), "{events:?}");
    assert_eq!(events[3], "finished 4-d1 attempt 2 succeeded after 3s");
    // d2 waited behind d1 in their lane, from 5 s until d1 was done.
    let behind = waited(&events[4], "started 4-d2 attempt 1 waited ");
    assert_eq!(behind, second + 3 - 5, "{events:?}");
    assert_eq!(events[5], "finished 4-d2 attempt 1 succeeded after 0s");
    queue.shutdown(Duration::from_secs(1)).await;
}
