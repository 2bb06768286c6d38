//! Shutdown: running jobs get the grace period, then their token, then are dropped; the memory store's
//! unfinished jobs are abandoned and reported; nothing is accepted once it has begun.

use std::time::Duration;

use booty_queue::{
    Backoff, CancellationToken, HandlerError, Job, JobState, MemoryStore, NewJob, Queue,
    ShutdownReport, Submitted,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::support::{ForIssue, config, id, within};

/// What the test handler does with a job.
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Fails with a retryable error.
    Fail,
    /// Works for one (virtual) second, then succeeds.
    WorkOneSecond,
    /// Waits for its cancellation token, then returns the error a cancelled clone would.
    UntilCancelled,
}

#[tokio::test(start_paused = true)]
async fn shutdown_reports_finished_cancelled_and_abandoned_jobs() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let handler = move |job: Job<Act>, cancel: CancellationToken| {
        started_tx.send(job.id.clone()).unwrap();
        async move {
            match *job.payload {
                Act::Fail => Err(HandlerError::retryable("github.com: connection reset")),
                Act::WorkOneSecond => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok(())
                }
                Act::UntilCancelled => {
                    cancel.cancelled().await;
                    Err(HandlerError::retryable("clone interrupted"))
                }
            }
        }
    };
    let mut config = config(2);
    config.backoff = Backoff {
        base: Duration::from_hours(1),
        cap: Duration::from_hours(1),
    };
    config.cancel_grace = Duration::from_secs(5);
    let queue = Queue::start(MemoryStore::default(), handler, config)
        .await
        .unwrap();
    let submit = |delivery: &'static str, issue: u64, act: Act| {
        let queue = queue.clone();
        async move {
            let job = NewJob::new(delivery, act).for_issue("octo/repo", issue);
            assert!(matches!(
                queue.submit(job).await.unwrap(),
                Submitted::Accepted(_)
            ));
        }
    };

    submit("retrying", 3, Act::Fail).await;
    assert_eq!(
        within("a job start", started.recv()).await,
        Some(id(3, "retrying"))
    );
    submit("running", 1, Act::UntilCancelled).await;
    submit("finishing", 2, Act::WorkOneSecond).await;
    submit("queued", 1, Act::WorkOneSecond).await;
    // Both workers busy means the one that ran `retrying` has recorded its retry.
    let mut both = [
        within("a job start", started.recv()).await.unwrap(),
        within("a job start", started.recv()).await.unwrap(),
    ];
    both.sort();
    assert_eq!(both, [id(1, "running"), id(2, "finishing")]);

    let began = Instant::now();
    let report = within("shutdown", queue.shutdown(Duration::from_secs(10))).await;
    let took = began.elapsed();
    assert_eq!(
        report,
        ShutdownReport {
            finished: vec![id(2, "finishing")],
            cancelled: vec![id(1, "running")],
            abandoned: vec![id(3, "retrying"), id(1, "running"), id(1, "queued")],
        }
    );
    // The grace period ran out, and the cancelled handler returned at once.
    assert!(
        took >= Duration::from_secs(10) && took < Duration::from_secs(11),
        "{took:?}"
    );

    let state = |delivery: &'static str, issue: u64| {
        let queue = queue.clone();
        async move {
            queue
                .get(id(issue, delivery).as_str())
                .await
                .unwrap()
                .unwrap()
        }
    };
    assert_eq!(state("finishing", 2).await.state, JobState::Succeeded);
    for (delivery, issue, attempts) in [("retrying", 3, 1), ("running", 1, 1), ("queued", 1, 0)] {
        let job = state(delivery, issue).await;
        assert_eq!(
            (job.state, job.attempts),
            (JobState::Abandoned, attempts),
            "{delivery}"
        );
        assert!(job.finished_at.is_some());
    }
    assert!(
        started.try_recv().is_err(),
        "nothing started after shutdown began"
    );

    // Closed for good: a new delivery is refused and not remembered.
    let late = NewJob::new("late", Act::Fail).for_issue("octo/repo", 4);
    assert_eq!(queue.submit(late).await.unwrap(), Submitted::Busy);
    assert_eq!(queue.get("4-late").await.unwrap(), None);
    assert_eq!(
        queue.shutdown(Duration::ZERO).await,
        ShutdownReport::default()
    );
}

/// Tells its receiver when the handler's future is dropped.
struct DropSignal(Option<oneshot::Sender<()>>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        if let Some(signal) = self.0.take() {
            let _ = signal.send(());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_ignores_cancellation_is_dropped_after_cancel_grace() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (dropped_tx, dropped) = oneshot::channel();
    let dropped_tx = std::sync::Mutex::new(Some(dropped_tx));
    let handler = move |_: Job<()>, _ignored: CancellationToken| {
        let guard = DropSignal(dropped_tx.lock().unwrap().take());
        started_tx.send(()).unwrap();
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(())
        }
    };
    let mut config = config(1);
    config.cancel_grace = Duration::from_secs(3);
    let queue = Queue::start(MemoryStore::default(), handler, config)
        .await
        .unwrap();
    let _ = queue
        .submit(NewJob::new("stuck", ()).for_issue("octo/repo", 1))
        .await
        .unwrap();
    within("a job start", started.recv()).await.unwrap();

    let began = Instant::now();
    let report = within("shutdown", queue.shutdown(Duration::from_secs(2))).await;
    let took = began.elapsed();
    assert!(
        took >= Duration::from_secs(5) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(report.cancelled, [id(1, "stuck")]);
    assert_eq!(report.abandoned, [id(1, "stuck")]);
    assert!(report.finished.is_empty());
    // The handler's future is gone by the time shutdown returns.
    assert_eq!(within("the handler future's drop", dropped).await, Ok(()));
}

#[tokio::test]
async fn dropping_the_queue_stops_its_handlers() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let (dropped_tx, dropped) = oneshot::channel();
    let dropped_tx = std::sync::Mutex::new(Some(dropped_tx));
    let handler = move |_: Job<()>, _: CancellationToken| {
        let guard = DropSignal(dropped_tx.lock().unwrap().take());
        started_tx.send(()).unwrap();
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            Ok(())
        }
    };
    let queue = Queue::start(MemoryStore::default(), handler, config(1))
        .await
        .unwrap();
    let _ = queue.submit(NewJob::new("d1", ())).await.unwrap();
    within("a job start", started.recv()).await.unwrap();
    drop(queue);
    assert_eq!(within("the handler future's drop", dropped).await, Ok(()));
}
