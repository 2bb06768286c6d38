//! The engine on the memory store: dedupe under concurrency, capacity, ordering, retries, panics, leases,
//! recovery and bounded memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use booty_queue::{
    CancelTarget, CancellationToken, Claim, HandlerError, Job, JobId, JobQuery, JobState,
    MemoryStore, NewJob, Outcome, Queue, QueueConfig, QueueError, Retention, StartError, Store,
    Submitted, Timestamp,
};
use tokio::sync::{Barrier, Notify, mpsc};
use tokio::time::Instant;

use crate::support::{ForIssue, Observed, config, id, issue_of, next_recorded, stored_job, within};

const GRACE: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_submits_of_one_delivery_accept_exactly_one() {
    const SUBMITTERS: usize = 1_000;
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let handler = move |_: Job<usize>, _: CancellationToken| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    };
    let queue = Queue::start(store, handler, config(4)).await.unwrap();

    let start = Arc::new(Barrier::new(SUBMITTERS));
    let mut submitters = Vec::new();
    for n in 0..SUBMITTERS {
        let (queue, start) = (queue.clone(), Arc::clone(&start));
        submitters.push(tokio::spawn(async move {
            start.wait().await;
            let job = NewJob::new("72d3162e", n).for_issue("octo/repo", 7);
            queue.submit(job).await.unwrap()
        }));
    }
    let (mut accepted, mut duplicates) = (0, 0);
    for submitter in submitters {
        match submitter.await.unwrap() {
            Submitted::Accepted(job_id) => {
                assert_eq!(job_id, id(7, "72d3162e"));
                accepted += 1;
            }
            Submitted::Duplicate(job_id) => {
                assert_eq!(job_id, id(7, "72d3162e"));
                duplicates += 1;
            }
            Submitted::Busy => panic!("busy with room to spare"),
        }
    }
    assert_eq!((accepted, duplicates), (1, SUBMITTERS - 1));

    assert_eq!(
        next_recorded(&mut recorded).await,
        (id(7, "72d3162e"), Outcome::Succeeded)
    );
    let report = queue.shutdown(GRACE).await;
    assert!(report.abandoned.is_empty());
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(queue.list(10).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_leaves_no_trace_and_the_redelivery_is_accepted() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let gate = Arc::clone(&release);
    let handler = move |job: Job<()>, _: CancellationToken| {
        let (started_tx, gate) = (started_tx.clone(), Arc::clone(&gate));
        async move {
            started_tx.send(job.id.clone()).unwrap();
            if job.dedupe_key == "first" {
                gate.notified().await;
            }
            Ok(())
        }
    };
    let mut config = config(1);
    config.capacity = 1;
    let queue = Queue::start(MemoryStore::default(), handler, config)
        .await
        .unwrap();

    let submit = |delivery: &'static str| {
        let queue = queue.clone();
        async move {
            let job = NewJob::new(delivery, ()).for_issue("octo/repo", 1);
            queue.submit(job).await.unwrap()
        }
    };
    assert_eq!(submit("first").await, Submitted::Accepted(id(1, "first")));
    assert_eq!(
        within("a job start", started.recv()).await,
        Some(id(1, "first"))
    );
    // `first` runs, `second` fills the one waiting place.
    assert_eq!(submit("second").await, Submitted::Accepted(id(1, "second")));
    assert_eq!(submit("third").await, Submitted::Busy);
    assert_eq!(queue.get("1-third").await.unwrap(), None);
    let listed: Vec<_> = queue.list(10).await.unwrap();
    assert_eq!(listed.len(), 2);

    release.notify_one();
    assert_eq!(
        within("a job start", started.recv()).await,
        Some(id(1, "second"))
    );
    assert_eq!(submit("third").await, Submitted::Accepted(id(1, "third")));
    assert_eq!(
        within("a job start", started.recv()).await,
        Some(id(1, "third"))
    );
    queue.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_of_one_issue_run_alone_and_in_arrival_order_under_8_workers() {
    const ISSUES: u64 = 6;
    const PER_ISSUE: u64 = 25;
    let running: Arc<Vec<AtomicBool>> =
        Arc::new((0..ISSUES).map(|_| AtomicBool::new(false)).collect());
    let overlaps = Arc::new(AtomicUsize::new(0));
    let order: Arc<Mutex<HashMap<u64, Vec<u64>>>> = Arc::default();
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let handler = {
        let (running, overlaps, order) = (
            Arc::clone(&running),
            Arc::clone(&overlaps),
            Arc::clone(&order),
        );
        move |job: Job<u64>, _: CancellationToken| {
            let (running, overlaps, order) = (
                Arc::clone(&running),
                Arc::clone(&overlaps),
                Arc::clone(&order),
            );
            let done_tx = done_tx.clone();
            async move {
                let issue = issue_of(&job.metadata);
                let lane = usize::try_from(issue).unwrap();
                if running[lane].swap(true, Ordering::SeqCst) {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                order
                    .lock()
                    .unwrap()
                    .entry(issue)
                    .or_default()
                    .push(*job.payload);
                // Give other workers room to interleave.
                for _ in 0..=(*job.payload % 4) {
                    tokio::task::yield_now().await;
                }
                running[lane].store(false, Ordering::SeqCst);
                done_tx.send(()).unwrap();
                Ok(())
            }
        }
    };
    let queue = Queue::start(MemoryStore::default(), handler, config(8))
        .await
        .unwrap();
    for seq in 0..PER_ISSUE {
        for issue in 0..ISSUES {
            let job = NewJob::new(format!("d-{issue}-{seq}"), seq).for_issue("octo/repo", issue);
            assert!(matches!(
                queue.submit(job).await.unwrap(),
                Submitted::Accepted(_)
            ));
        }
    }
    for _ in 0..ISSUES * PER_ISSUE {
        within("a job end", done.recv()).await.unwrap();
    }
    queue.shutdown(GRACE).await;

    assert_eq!(overlaps.load(Ordering::SeqCst), 0);
    let order = order.lock().unwrap();
    for issue in 0..ISSUES {
        assert_eq!(
            order[&issue],
            (0..PER_ISSUE).collect::<Vec<_>>(),
            "issue {issue}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_of_different_issues_run_in_parallel() {
    const WORKERS: usize = 8;
    let together = Arc::new(Barrier::new(WORKERS));
    let (done_tx, mut done) = mpsc::unbounded_channel();
    let handler = move |job: Job<()>, _: CancellationToken| {
        let (together, done_tx) = (Arc::clone(&together), done_tx.clone());
        async move {
            // Passes only when all eight jobs are running at the same time.
            together.wait().await;
            done_tx.send(job.id).unwrap();
            Ok(())
        }
    };
    let queue = Queue::start(MemoryStore::default(), handler, config(WORKERS))
        .await
        .unwrap();
    for issue in 0..WORKERS as u64 {
        let job = NewJob::new(format!("d{issue}"), ()).for_issue("octo/repo", issue);
        assert!(matches!(
            queue.submit(job).await.unwrap(),
            Submitted::Accepted(_)
        ));
    }
    // If the jobs ran one after another, the first would wait at the barrier forever.
    for _ in 0..WORKERS {
        within("eight jobs running at once", done.recv())
            .await
            .unwrap();
    }
    queue.shutdown(GRACE).await;
}

#[tokio::test(start_paused = true)]
async fn retryable_errors_back_off_with_growing_delays_then_fail() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let (attempt_tx, mut attempts) = mpsc::unbounded_channel();
    let handler = move |job: Job<()>, _: CancellationToken| {
        attempt_tx.send(Instant::now()).unwrap();
        async move {
            Err(HandlerError::retryable(format!(
                "attempt {} timed out",
                job.attempt
            )))
        }
    };
    let mut config = config(1);
    config.max_attempts = 4;
    let backoff = config.backoff;
    let queue = Queue::start(store, handler, config).await.unwrap();
    let job = NewJob::new("d1", ()).for_issue("octo/repo", 3);
    let _ = queue.submit(job).await.unwrap();

    let mut outcomes = Vec::new();
    for _ in 0..4 {
        outcomes.push(next_recorded(&mut recorded).await.1);
    }
    for (n, outcome) in outcomes[..3].iter().enumerate() {
        let Outcome::Retry { error, .. } = outcome else {
            panic!("attempt {} recorded {outcome:?}", n + 1);
        };
        assert_eq!(error, &format!("attempt {} timed out", n + 1));
    }
    assert_eq!(
        outcomes[3],
        Outcome::Failed {
            error: "attempt 4 timed out".to_owned()
        }
    );

    let starts: Vec<Instant> = (0..4).map(|_| attempts.try_recv().unwrap()).collect();
    let gaps: Vec<Duration> = starts.windows(2).map(|pair| pair[1] - pair[0]).collect();
    for (attempt, gap) in (1..).zip(&gaps) {
        let ceiling = backoff.ceiling(attempt);
        assert!(
            *gap >= ceiling / 2 && *gap <= ceiling,
            "after attempt {attempt}: {gap:?} outside [{:?}, {ceiling:?}]",
            ceiling / 2
        );
    }
    assert!(gaps.windows(2).all(|pair| pair[0] < pair[1]), "{gaps:?}");

    let failed = queue.get("3-d1").await.unwrap().unwrap();
    assert_eq!(failed.state, JobState::Failed);
    assert_eq!(failed.attempts, 4);
    assert_eq!(failed.error.as_deref(), Some("attempt 4 timed out"));
    queue.shutdown(GRACE).await;
    assert!(attempts.try_recv().is_err(), "no fifth attempt");
}

#[tokio::test(start_paused = true)]
async fn a_permanent_error_fails_the_job_at_once() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let handler = |_: Job<()>, _: CancellationToken| async {
        Err(HandlerError::permanent("git clone: authentication failed"))
    };
    let queue = Queue::start(store, handler, config(1)).await.unwrap();
    let _ = queue
        .submit(NewJob::new("d1", ()).for_issue("octo/repo", 3))
        .await
        .unwrap();
    assert_eq!(
        next_recorded(&mut recorded).await.1,
        Outcome::Failed {
            error: "git clone: authentication failed".to_owned()
        }
    );
    let failed = queue.get("3-d1").await.unwrap().unwrap();
    assert_eq!((failed.state, failed.attempts), (JobState::Failed, 1));
    assert!(failed.finished_at.is_some());
    queue.shutdown(GRACE).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_fails_the_attempt_and_the_worker_lives_on() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let handler = |job: Job<&'static str>, _: CancellationToken| async move {
        match *job.payload {
            "once" if job.attempt == 1 => panic!("boom on attempt {}", job.attempt),
            "always" => panic!("boom again"),
            _ => Ok(()),
        }
    };
    // One worker: if a panic killed it, nothing after the first panic would run.
    let mut config = config(1);
    config.max_attempts = 2;
    let queue = Queue::start(store, handler, config).await.unwrap();
    for (delivery, payload) in [("d1", "once"), ("d2", "always")] {
        let job = NewJob::new(delivery, payload).for_issue("octo/repo", 5);
        let _ = queue.submit(job).await.unwrap();
    }

    let (job_id, outcome) = next_recorded(&mut recorded).await;
    assert_eq!(job_id, id(5, "d1"));
    assert!(
        matches!(&outcome, Outcome::Retry { error, .. } if error == "handler panicked: boom on attempt 1"),
        "{outcome:?}"
    );
    assert_eq!(
        next_recorded(&mut recorded).await,
        (id(5, "d1"), Outcome::Succeeded)
    );
    assert!(matches!(
        next_recorded(&mut recorded).await.1,
        Outcome::Retry { .. }
    ));
    assert_eq!(
        next_recorded(&mut recorded).await,
        (
            id(5, "d2"),
            Outcome::Failed {
                error: "handler panicked: boom again".to_owned()
            }
        )
    );
    let _ = queue.submit(NewJob::new("d3", "fine")).await.unwrap();
    assert_eq!(
        next_recorded(&mut recorded).await,
        (JobId::new("d3"), Outcome::Succeeded)
    );
    queue.shutdown(GRACE).await;
}

#[tokio::test(start_paused = true)]
async fn the_lease_is_renewed_while_a_long_job_runs() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let starts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&starts);
    let handler = move |_: Job<()>, _: CancellationToken| {
        counter.fetch_add(1, Ordering::SeqCst);
        // Ten leases long: without renewal, the reaper would take the job back.
        async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok(())
        }
    };
    let mut config = config(2);
    config.lease = Duration::from_secs(3);
    let queue = Queue::start(store, handler, config).await.unwrap();
    let _ = queue
        .submit(NewJob::new("d1", ()).for_issue("octo/repo", 1))
        .await
        .unwrap();
    assert_eq!(
        next_recorded(&mut recorded).await,
        (id(1, "d1"), Outcome::Succeeded)
    );
    let job = queue.get("1-d1").await.unwrap().unwrap();
    assert_eq!(job.attempts, 1);
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    queue.shutdown(GRACE).await;
}

#[tokio::test(start_paused = true)]
async fn a_job_whose_lease_expired_is_taken_over_as_a_new_attempt() {
    let memory = Arc::new(MemoryStore::default());
    let (store, mut recorded) = Observed::new(Arc::clone(&memory));
    let (attempt_tx, mut attempts) = mpsc::unbounded_channel();
    let handler = move |job: Job<()>, _: CancellationToken| {
        attempt_tx.send(job.attempt).unwrap();
        async { Ok(()) }
    };
    let mut config = config(1);
    config.lease = Duration::from_secs(3);
    let queue = Queue::start(store, handler, config).await.unwrap();

    // Another process takes the job and dies: its lease runs out 3 s from now.
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let job = stored_job("d1", Some(1), now, ());
    let _ = memory.insert(job, 10).await.unwrap();
    let lease_until = now.saturating_add(Duration::from_secs(3));
    let Claim::Job(_) = memory
        .claim("dead-process", now, lease_until)
        .await
        .unwrap()
    else {
        panic!("the job is runnable");
    };

    assert_eq!(within("an attempt", attempts.recv()).await, Some(2));
    assert_eq!(
        next_recorded(&mut recorded).await,
        (id(1, "d1"), Outcome::Succeeded)
    );
    assert_eq!(queue.get("1-d1").await.unwrap().unwrap().attempts, 2);
    queue.shutdown(GRACE).await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_whose_lease_was_taken_is_cancelled_and_records_nothing() {
    let memory = Arc::new(MemoryStore::default());
    let (store, mut recorded) = Observed::new(Arc::clone(&memory));
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let handler = move |job: Job<()>, cancel: CancellationToken| {
        let seen_tx = seen_tx.clone();
        async move {
            seen_tx.send(("started", job.attempt)).unwrap();
            if job.attempt > 1 {
                return Ok(());
            }
            cancel.cancelled().await;
            seen_tx.send(("cancelled", job.attempt)).unwrap();
            Err(HandlerError::permanent("interrupted"))
        }
    };
    let mut config = config(1);
    config.lease = Duration::from_secs(3);
    let queue = Queue::start(store, handler, config).await.unwrap();
    let _ = queue
        .submit(NewJob::new("d1", ()).for_issue("octo/repo", 1))
        .await
        .unwrap();
    assert_eq!(within("attempt 1", seen.recv()).await, Some(("started", 1)));

    // Another process decides the lease is over and takes the job back.
    let later = Timestamp::from_system_time(std::time::SystemTime::now())
        .saturating_add(Duration::from_hours(1));
    assert_eq!(memory.reclaim_expired(later, 3).await.unwrap().len(), 1);

    // The next renewal finds out: attempt 1 is cancelled and its error is not recorded.
    assert_eq!(
        within("cancellation", seen.recv()).await,
        Some(("cancelled", 1))
    );
    assert_eq!(within("attempt 2", seen.recv()).await, Some(("started", 2)));
    assert_eq!(
        next_recorded(&mut recorded).await,
        (id(1, "d1"), Outcome::Succeeded)
    );
    let job = queue.get("1-d1").await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 2));
    queue.shutdown(GRACE).await;
}

#[tokio::test(start_paused = true)]
async fn jobs_left_running_by_a_previous_run_are_recovered_at_start() {
    let memory = Arc::new(MemoryStore::default());
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let job = stored_job("d1", Some(4), now, ());
    let _ = memory.insert(job, 10).await.unwrap();
    let far = now.saturating_add(Duration::from_hours(1));
    let Claim::Job(_) = memory.claim("previous-run", now, far).await.unwrap() else {
        panic!("the job is runnable");
    };

    let (store, mut recorded) = Observed::new(memory);
    let (attempt_tx, mut attempts) = mpsc::unbounded_channel();
    let handler = move |job: Job<()>, _: CancellationToken| {
        attempt_tx.send(job.attempt).unwrap();
        async { Ok(()) }
    };
    let queue = Queue::start(store, handler, config(1)).await.unwrap();
    // The lost attempt counts.
    assert_eq!(within("an attempt", attempts.recv()).await, Some(2));
    assert_eq!(
        next_recorded(&mut recorded).await,
        (id(4, "d1"), Outcome::Succeeded)
    );
    queue.shutdown(GRACE).await;
}

#[tokio::test]
async fn a_store_outage_is_an_error_that_leaves_no_trace() {
    let (store, _recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let handler = |_: Job<()>, _: CancellationToken| async { Ok(()) };
    let queue = Queue::start(Arc::clone(&store), handler, config(1))
        .await
        .unwrap();

    store.set_outage(true);
    let err = queue
        .submit(NewJob::new("d1", ()).for_issue("octo/repo", 2))
        .await
        .unwrap_err();
    assert!(matches!(&err, QueueError::NotRecorded { job_id, .. } if job_id.as_str() == "2-d1"));
    assert_eq!(err.to_string(), "job 2-d1 could not be recorded");
    let source = std::error::Error::source(&err).unwrap();
    assert_eq!(source.to_string(), "observed store: insert failed");
    assert_eq!(queue.get("2-d1").await.unwrap(), None);

    store.set_outage(false);
    let again = queue
        .submit(NewJob::new("d1", ()).for_issue("octo/repo", 2))
        .await
        .unwrap();
    assert_eq!(again, Submitted::Accepted(id(2, "d1")));
    queue.shutdown(GRACE).await;
}

#[tokio::test(start_paused = true)]
async fn an_outcome_the_store_cannot_write_is_written_once_it_can_and_the_job_runs_once() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let handler = move |_: Job<()>, _: CancellationToken| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok(()) }
    };
    let queue = Queue::start(Arc::clone(&store), handler, config(3))
        .await
        .unwrap();
    // A full disk for the first five tries: about 1 + 2 + 4 + 8 + 8 s, within the 30 s lease.
    store.fail_finishes(5);
    let submitted = queue
        .submit(NewJob::new("d1", ()).for_issue("octo/repo", 4))
        .await
        .unwrap();
    assert_eq!(submitted, Submitted::Accepted(id(4, "d1")));
    assert_eq!(
        next_recorded(&mut recorded).await,
        (id(4, "d1"), Outcome::Succeeded)
    );
    let job = queue.get("4-d1").await.unwrap().unwrap();
    assert_eq!((job.state, job.attempts), (JobState::Succeeded, 1));
    // Nobody else ran it while its outcome waited for the store.
    tokio::time::sleep(Duration::from_mins(2)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    queue.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_workers_poll_every_store_so_a_job_stored_without_a_wake_up_runs() {
    let memory = Arc::new(MemoryStore::default());
    let (ran, mut runs) = mpsc::unbounded_channel();
    let handler = move |job: Job<()>, _: CancellationToken| {
        let _ = ran.send(job.id);
        async { Ok(()) }
    };
    let mut config = config(1);
    config.poll_interval = Duration::from_millis(50);
    let queue = Queue::start(Arc::clone(&memory), handler, config)
        .await
        .unwrap();
    // Stored behind the queue's back (as another process would), so nothing wakes the idle worker.
    let job = stored_job("aside", Some(5), Timestamp::from_unix_millis(0), ());
    let stored = Store::insert(&*memory, job, 10).await.unwrap();
    assert_eq!(stored, Submitted::Accepted(id(5, "aside")));
    let ran = within("the poll", runs.recv()).await;
    assert_eq!(ran, Some(id(5, "aside")));
    queue.shutdown(GRACE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_the_store_took_before_its_deadline_is_answered_with_the_truth() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let handler = |_: Job<()>, _: CancellationToken| async { Ok(()) };
    let queue = Queue::start(Arc::clone(&store), handler, config(1))
        .await
        .unwrap();
    // The store admits at once, then takes 300 ms to commit: past the 50 ms deadline.
    store.slow_commits(Duration::from_millis(300));
    let deadline = Instant::now() + Duration::from_millis(50);
    let answer = queue
        .submit_before(
            NewJob::new("d1", ()).for_issue("octo/repo", 6),
            Some(deadline),
        )
        .await
        .unwrap();
    assert_eq!(answer, Submitted::Accepted(id(6, "d1")));
    assert!(Instant::now() >= deadline + Duration::from_millis(250));
    assert_eq!(
        next_recorded(&mut recorded).await,
        (id(6, "d1"), Outcome::Succeeded)
    );
    queue.shutdown(GRACE).await;
}

#[tokio::test]
async fn bad_input_and_bad_settings_are_refused_with_their_name() {
    let handler = |_: Job<()>, _: CancellationToken| async { Ok(()) };
    let queue = Queue::start(MemoryStore::default(), handler, config(1))
        .await
        .unwrap();
    let err = queue.submit(NewJob::new("", ())).await.unwrap_err();
    assert!(matches!(err, QueueError::InvalidJob { .. }));
    assert_eq!(err.to_string(), "job  cannot be submitted: its id is empty");
    let err = queue
        .submit(NewJob::new("1-d", ()).deduped_by(""))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "job 1-d cannot be submitted: its dedupe key is empty"
    );
    assert!(queue.list(10).await.unwrap().is_empty());
    queue.shutdown(GRACE).await;

    for (setting, change) in [
        (
            "workers",
            (|c: &mut QueueConfig| c.workers = 0) as fn(&mut QueueConfig),
        ),
        ("capacity", |c| c.capacity = 0),
        ("max_attempts", |c| c.max_attempts = 0),
        ("lease", |c| c.lease = Duration::ZERO),
    ] {
        let mut bad = config(1);
        change(&mut bad);
        let handler = |_: Job<()>, _: CancellationToken| async { Ok(()) };
        let err = Queue::start(MemoryStore::default(), handler, bad)
            .await
            .unwrap_err();
        assert!(matches!(err, StartError::Config { setting: named, .. } if named == setting));
        assert!(
            err.to_string()
                .starts_with(&format!("queue setting `{setting}` must be")),
            "{err}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stays_bounded_after_a_million_distinct_submissions() {
    const SUBMISSIONS: u64 = 1_000_000;
    let memory = Arc::new(MemoryStore::new(Retention::new(16, 8)));
    let handler = |_: Job<u64>, _: CancellationToken| async { Ok(()) };
    let mut config = config(2);
    config.capacity = 4;
    let queue = Queue::start(Arc::clone(&memory), handler, config)
        .await
        .unwrap();

    let check = |when: u64| {
        let stats = memory.stats().unwrap();
        // Waiting jobs, plus at most one running per worker, plus the retained finished ones.
        assert!(stats.jobs <= 4 + 2 + 8, "after {when}: {stats:?}");
        assert!(stats.waiting <= 4, "after {when}: {stats:?}");
        assert!(stats.finished <= 8, "after {when}: {stats:?}");
        assert!(
            stats.remembered_dedupe_keys <= 16,
            "after {when}: {stats:?}"
        );
        assert!(stats.lanes <= 4 + 2, "after {when}: {stats:?}");
    };
    let (mut accepted, mut busy) = (0_u64, 0_u64);
    for n in 0..SUBMISSIONS {
        let job = NewJob::new(format!("delivery-{n}"), n).for_issue("octo/repo", n % 1_000);
        match queue.submit(job).await.unwrap() {
            Submitted::Accepted(_) => accepted += 1,
            Submitted::Busy => {
                busy += 1;
                tokio::task::yield_now().await;
            }
            Submitted::Duplicate(job_id) => panic!("{job_id} is a distinct delivery"),
        }
        if n % 10_000 == 0 {
            check(n);
        }
    }
    check(SUBMISSIONS);
    assert_eq!(accepted + busy, SUBMISSIONS);
    assert!(accepted >= 1_000, "only {accepted} accepted");

    // The first delivery is long forgotten: it is accepted again, not answered as a duplicate.
    loop {
        let job = NewJob::new("delivery-0", 0).for_issue("octo/repo", 0);
        match queue.submit(job).await.unwrap() {
            Submitted::Busy => tokio::task::yield_now().await,
            answer => {
                assert_eq!(answer, Submitted::Accepted(id(0, "delivery-0")));
                break;
            }
        }
    }
    queue.shutdown(GRACE).await;
    check(SUBMISSIONS + 1);
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_running_job_fires_its_token_at_the_next_renewal_and_it_ends_cancelled() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let handler = move |job: Job<()>, cancel: CancellationToken| {
        let seen_tx = seen_tx.clone();
        async move {
            seen_tx.send(("started", job.attempt)).unwrap();
            cancel.cancelled().await;
            seen_tx.send(("cancelled", job.attempt)).unwrap();
            // However the handler ends once told, the attempt is cancelled, never retried.
            Err(HandlerError::retryable("interrupted"))
        }
    };
    let mut config = config(1);
    config.lease = Duration::from_secs(3);
    let queue = Queue::start(store, handler, config).await.unwrap();
    let _ = queue
        .submit(NewJob::new("d1", ()).for_issue("octo/repo", 1))
        .await
        .unwrap();
    assert_eq!(within("attempt 1", seen.recv()).await, Some(("started", 1)));

    let asked = Instant::now();
    let changed = queue
        .cancel(&CancelTarget::Job(id(1, "d1")), "label removed")
        .await
        .unwrap();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].state, JobState::Running);
    assert_eq!(
        within("cancellation", seen.recv()).await,
        Some(("cancelled", 1))
    );
    // Renewals come every third of the lease.
    assert!(Instant::now() - asked <= Duration::from_secs(1));
    assert_eq!(
        next_recorded(&mut recorded).await,
        (
            id(1, "d1"),
            Outcome::Cancelled {
                reason: "label removed".to_owned()
            }
        )
    );
    let job = queue.get("1-d1").await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempts, job.error.as_deref()),
        (JobState::Cancelled, 1, Some("label removed"))
    );
    let report = queue.shutdown(GRACE).await;
    assert!(report.cancelled.is_empty(), "{report:?}");
    assert!(seen.try_recv().is_err(), "no second attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_waiting_job_never_runs_and_the_next_one_of_its_lane_does() {
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let release = Arc::new(Notify::new());
    let gate = Arc::clone(&release);
    let handler = move |job: Job<()>, _: CancellationToken| {
        let (started_tx, gate) = (started_tx.clone(), Arc::clone(&gate));
        async move {
            started_tx.send(job.id.clone()).unwrap();
            if job.dedupe_key == "first" {
                gate.notified().await;
            }
            Ok(())
        }
    };
    let queue = Queue::start(MemoryStore::default(), handler, config(2))
        .await
        .unwrap();
    for delivery in ["first", "second", "third"] {
        let job = NewJob::new(delivery, ()).for_issue("octo/repo", 1);
        assert!(matches!(
            queue.submit(job).await.unwrap(),
            Submitted::Accepted(_)
        ));
    }
    assert_eq!(
        within("the first job", started.recv()).await,
        Some(id(1, "first"))
    );
    let cancelled = queue
        .cancel(&CancelTarget::Job(id(1, "second")), "superseded")
        .await
        .unwrap();
    assert_eq!(cancelled[0].state, JobState::Cancelled);
    release.notify_one();
    assert_eq!(
        within("the third job", started.recv()).await,
        Some(id(1, "third"))
    );
    queue.shutdown(GRACE).await;
    assert!(started.try_recv().is_err(), "the cancelled job ran");
    let counts = queue.counts().await.unwrap();
    assert_eq!((counts.succeeded, counts.cancelled), (2, 1));
}

#[tokio::test(start_paused = true)]
async fn what_a_handler_prints_is_recorded_with_its_attempt() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let handler = |job: Job<()>, _: CancellationToken| async move {
        job.output.append(&format!("attempt {}\n", job.attempt));
        if job.attempt == 1 {
            job.output.append("clone timed out\n");
            return Err(HandlerError::retryable("timeout"));
        }
        Ok(())
    };
    let queue = Queue::start(store, handler, config(1)).await.unwrap();
    let _ = queue
        .submit(NewJob::new("d1", ()).for_issue("octo/repo", 2))
        .await
        .unwrap();
    assert!(matches!(
        next_recorded(&mut recorded).await.1,
        Outcome::Retry { .. }
    ));
    let retrying = queue.get("2-d1").await.unwrap().unwrap();
    assert_eq!(
        retrying.output.as_deref(),
        Some("attempt 1\nclone timed out\n")
    );
    assert_eq!(next_recorded(&mut recorded).await.1, Outcome::Succeeded);
    let done = queue.get("2-d1").await.unwrap().unwrap();
    assert_eq!(done.output.as_deref(), Some("attempt 2\n"));
    let listed = queue
        .query(&JobQuery::newest(5).with_metadata("repository", "octo/repo"))
        .await
        .unwrap();
    assert_eq!(listed, [done]);
    queue.shutdown(GRACE).await;
}
