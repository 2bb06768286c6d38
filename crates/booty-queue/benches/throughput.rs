//! The memory store's figures, the floor the SQL stores are compared against: submit-and-complete
//! throughput with a no-op handler, and the cost of one submission.
//!
//! - `submit/accepted`: one accepted submission, its worker parked so jobs only pile up (drained after
//!   the timing);
//! - `submit/duplicate`: a redelivery of a stored job;
//! - `submit/store_insert`: `MemoryStore::insert` alone, to show what the engine adds on top;
//! - `submit_and_complete/workers=N`: submissions through to `succeeded`, with the default capacity of 100
//!   (a `Busy` answer waits for a job to finish and submits again).

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use booty_queue::{
    CancellationToken, HandlerError, Job, JobOutput, MemoryStore, NewJob, Queue, QueueConfig,
    Store, Submitted, Timestamp,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::sync::Notify;

/// A small owned payload, as a webhook job carries (the issue title, say).
type Payload = String;

/// A job as booty-service makes one for a delivery: id `{issue}-{delivery}`, deduplicated by the
/// delivery, in its issue's lane, with the issue, repository and delivery as metadata.
fn new_job(n: u64) -> NewJob<Payload> {
    let (delivery, issue) = (format!("delivery-{n}"), n % 100);
    NewJob::new(format!("{issue}-{delivery}"), format!("Issue {n}"))
        .deduped_by(delivery.as_str())
        .in_lane(format!("octo/repo#{issue}"))
        .of_kind("issue")
        .with_metadata("issue_number", i64::try_from(issue).unwrap_or(0))
        .with_metadata("repository", "octo/repo")
        .with_metadata("delivery_id", delivery)
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("a tokio runtime")
}

/// A handler that parks until shutdown cancels it, so submitted jobs stay queued.
async fn parked(_: Job<Payload>, cancel: CancellationToken) -> Result<(), HandlerError> {
    cancel.cancelled().await;
    Ok(())
}

fn submit(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("submit");
    group.throughput(Throughput::Elements(1));

    group.bench_function("accepted", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut config = QueueConfig::default();
                config.workers = 1;
                config.capacity = usize::MAX;
                let queue = Queue::start(MemoryStore::default(), parked, config)
                    .await
                    .expect("valid config");
                let start = Instant::now();
                for n in 0..iters {
                    let answer = queue.submit(new_job(n)).await.expect("memory store");
                    debug_assert!(matches!(answer, Submitted::Accepted(_)));
                }
                let took = start.elapsed();
                queue.shutdown(Duration::ZERO).await;
                took
            })
        });
    });

    group.bench_function("duplicate", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let queue = Queue::start(MemoryStore::default(), parked, QueueConfig::default())
                    .await
                    .expect("valid config");
                let _ = queue.submit(new_job(0)).await.expect("memory store");
                let start = Instant::now();
                for _ in 0..iters {
                    let answer = queue.submit(black_box(new_job(0))).await;
                    debug_assert!(matches!(answer, Ok(Submitted::Duplicate(_))));
                }
                let took = start.elapsed();
                queue.shutdown(Duration::ZERO).await;
                took
            })
        });
    });

    group.bench_function("store_insert", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let store = MemoryStore::default();
                let start = Instant::now();
                for n in 0..iters {
                    let new = new_job(n);
                    let job = Job {
                        id: new.id,
                        dedupe_key: new.dedupe_key,
                        lane: new.lane,
                        kind: new.kind,
                        metadata: new.metadata,
                        created_at: Timestamp::EPOCH,
                        attempt: 0,
                        payload: Arc::new(new.payload),
                        output: JobOutput::default(),
                    };
                    let answer = store.insert(job, usize::MAX).await.expect("memory store");
                    debug_assert!(matches!(answer, Submitted::Accepted(_)));
                }
                start.elapsed()
            })
        });
    });
    group.finish();
}

fn submit_and_complete(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("submit_and_complete");
    group.throughput(Throughput::Elements(1));
    for workers in [1, 2, 8] {
        group.bench_function(format!("workers={workers}"), |b| {
            b.iter_custom(|iters| rt.block_on(run_to_completion(workers, iters)));
        });
    }
    group.finish();
}

/// Submits `jobs` jobs to a fresh queue and times them until the last one has succeeded.
async fn run_to_completion(workers: usize, jobs: u64) -> Duration {
    let done = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(Notify::new());
    let handler = {
        let (done, progress) = (Arc::clone(&done), Arc::clone(&progress));
        move |_: Job<Payload>, _: CancellationToken| {
            done.fetch_add(1, Ordering::SeqCst);
            progress.notify_one();
            async { Ok(()) }
        }
    };
    let mut config = QueueConfig::default();
    config.workers = workers;
    let queue = Queue::start(MemoryStore::default(), handler, config)
        .await
        .expect("valid config");

    let start = Instant::now();
    for n in 0..jobs {
        while queue.submit(new_job(n)).await.expect("memory store") == Submitted::Busy {
            progress.notified().await;
        }
    }
    while done.load(Ordering::SeqCst) < jobs {
        progress.notified().await;
    }
    let took = start.elapsed();
    queue.shutdown(Duration::from_secs(5)).await;
    took
}

criterion_group!(benches, submit, submit_and_complete);
criterion_main!(benches);
