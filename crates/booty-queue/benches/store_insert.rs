//! Accepted inserts per second at the store level, the memory store next to SQLite at both synchronous
//! levels and PostgreSQL with one and two store instances (two processes' worth of connection pools) on
//! one schema, in one criterion run. It needs both features (`required-features`):
//! `cargo bench -p booty-queue --features sqlite,postgres --bench store_insert`.
//!
//! Every insert is a new delivery accepted into a queue with room, as a webhook burst would be: jobs are
//! inserted in rounds of [`ROUND`] with the default capacity of 100, and between rounds (outside the
//! timing) the round's jobs are deleted, so the capacity count always sees fewer than 100 waiting jobs.
//! Remembered deliveries are kept, so the dedupe index grows to the 10,000-delivery window as it would.
//!
//! - `memory/tasks=1`: `MemoryStore::insert`, one after the other;
//! - `sqlite/{normal,full}/tasks=1`: a `SqliteStore` on a fresh file in a temporary directory, one insert
//!   at a time (each its own transaction: the latency of one commit);
//! - `sqlite/{normal,full}/tasks=16`: sixteen concurrent inserters, as many as the ingest benchmark's
//!   connections (they share commits);
//! - `postgres/stores=1/tasks=1`: one store, one insert at a time (the latency of one insert);
//! - `postgres/stores=1/tasks=4`: one store, four concurrent inserters (a busy edge);
//! - `postgres/stores=2/tasks=4`: two stores, four concurrent inserters each.
//!
//! Each runs twice: with a payload of a few bytes, which shows the store's own bookkeeping, and with
//! GitHub's 12 KB `issues.labeled` example (the name ends in `/webhook`), which booty stores for every
//! trigger: packing it (the SQLite store compresses it) and writing it are part of each insert.
//!
//! The PostgreSQL benchmarks use the server named by `BOOTY_TEST_POSTGRES_URL`, in a schema of their own
//! that is dropped at the end; without it they are skipped, and the run says so.

#![allow(
    clippy::print_stderr,
    reason = "a benchmark tells whoever runs it that part of it was skipped"
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use booty_queue::{Job, JobId, JobOutput, MemoryStore, MetadataValue, Store, Submitted};
use criterion::BenchmarkGroup;
use criterion::measurement::WallTime;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::value::RawValue;
use tokio::runtime::Runtime;
use tokio::sync::Barrier;

/// Jobs inserted between two clean-ups; below the capacity, so none is refused.
const ROUND: u64 = 48;
/// The queue's default capacity.
const CAPACITY: usize = 100;

/// A job's payload as booty-service stores one: JSON, kept as written (its `JobPayload` embeds the webhook
/// the same way, through a `RawValue`).
type Payload = Box<RawValue>;

/// What each job carries.
#[derive(Clone, Copy)]
enum Carries {
    /// A few bytes (`{"title":"Issue 7"}`): what the store's own bookkeeping costs.
    Title,
    /// GitHub's 12 KB `issues.labeled` example, as booty stores for every trigger: what moving, packing
    /// and writing a real webhook adds (the benchmark's name ends in `/webhook`).
    Webhook,
}

impl Carries {
    const ALL: [Self; 2] = [Self::Title, Self::Webhook];

    /// The suffix of the benchmark's name.
    fn suffix(self) -> &'static str {
        match self {
            Self::Title => "",
            Self::Webhook => "/webhook",
        }
    }

    /// Job `n`'s payload. Every webhook job shares one, made once, so the timing holds the store's work
    /// alone, not checking 12 KB of JSON per job.
    fn payload(self, n: u64) -> Arc<Payload> {
        static SHARED: OnceLock<Arc<Payload>> = OnceLock::new();
        let json = |text: String| RawValue::from_string(text).expect("the payloads are JSON");
        match self {
            Self::Title => Arc::new(json(format!(r#"{{"title":"Issue {n}"}}"#))),
            Self::Webhook => Arc::clone(SHARED.get_or_init(|| Arc::new(json(WEBHOOK.to_owned())))),
        }
    }
}

/// GitHub's `issues.labeled` example, the payload booty-event's tests and the ingest benchmark use.
const WEBHOOK: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../booty-event/tests/fixtures/issues.labeled.json"
));

/// Unique delivery numbers across every benchmark and sample.
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A job as booty-service makes one for a delivery: id `{issue}-{delivery}`, deduplicated by the
/// delivery, in its issue's lane, with the issue, repository and delivery as metadata.
fn new_job(carries: Carries) -> Job<Payload> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let delivery = format!("delivery-{n}");
    let issue = n % 100;
    Job {
        id: JobId::new(format!("{issue}-{delivery}")),
        lane: Some(format!("octo/repo#{issue}")),
        kind: "issue".to_owned(),
        metadata: [
            (
                "issue_number",
                MetadataValue::Integer(i64::try_from(issue).unwrap_or(0)),
            ),
            ("repository", MetadataValue::from("octo/repo")),
            ("delivery_id", MetadataValue::from(delivery.as_str())),
        ]
        .into_iter()
        .collect(),
        dedupe_key: delivery,
        created_at: booty_queue::Timestamp::EPOCH,
        attempt: 0,
        payload: carries.payload(n),
        output: JobOutput::default(),
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn accept(store: &impl Store<Payload>, carries: Carries) {
    let answer = store
        .insert(new_job(carries), CAPACITY)
        .await
        .expect("insert");
    assert!(
        matches!(answer, Submitted::Accepted(_)),
        "expected Accepted, got {answer:?}"
    );
}

/// The rounds of `iters` inserts: how many jobs each.
fn rounds(iters: u64) -> impl Iterator<Item = u64> {
    let full = iters / ROUND;
    std::iter::repeat_n(ROUND, usize::try_from(full).expect("rounds fit usize"))
        .chain((!iters.is_multiple_of(ROUND)).then_some(iters % ROUND))
}

/// Inserts `jobs` jobs with `tasks` concurrent inserters spread over `stores`, and times them.
async fn timed_round<S: Store<Payload>>(
    stores: &[Arc<S>],
    tasks: usize,
    jobs: u64,
    carries: Carries,
) -> Duration {
    let inserters = stores.len() * tasks;
    let start = Arc::new(Barrier::new(inserters + 1));
    let mut running = tokio::task::JoinSet::new();
    for inserter in 0..inserters {
        let store = Arc::clone(&stores[inserter % stores.len()]);
        let start = Arc::clone(&start);
        let share =
            jobs / inserters as u64 + u64::from((inserter as u64) < jobs % inserters as u64);
        running.spawn(async move {
            start.wait().await;
            for _ in 0..share {
                accept(&*store, carries).await;
            }
        });
    }
    start.wait().await;
    let began = Instant::now();
    running.join_all().await;
    began.elapsed()
}

fn store_insert(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("store_insert");
    group.throughput(Throughput::Elements(1));

    for carries in Carries::ALL {
        group.bench_function(format!("memory/tasks=1{}", carries.suffix()), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut took = Duration::ZERO;
                    for jobs in rounds(iters) {
                        let store = MemoryStore::default();
                        let began = Instant::now();
                        for _ in 0..jobs {
                            accept(&store, carries).await;
                        }
                        took += began.elapsed();
                    }
                    took
                })
            });
        });
    }

    sqlite::bench(&rt, &mut group);
    postgres::bench(&rt, &mut group);
    group.finish();
}

mod postgres {
    //! The PostgreSQL benchmarks, in a schema of their own on the server named by
    //! `BOOTY_TEST_POSTGRES_URL`.

    use booty_queue::{PostgresOptions, PostgresStore};
    use sqlx::{Connection, PgConnection};

    use super::{Arc, BenchmarkGroup, Carries, Duration, Runtime, WallTime, rounds, timed_round};

    /// A schema of the benchmark's own on the server, with a connection to clean it between rounds.
    struct Bench {
        url: String,
        schema: String,
        admin: PgConnection,
    }

    impl Bench {
        async fn open(url: String) -> Self {
            let schema = format!("booty_bench_{}", std::process::id());
            let mut admin = PgConnection::connect(&url).await.expect("connect");
            drop_schema(&mut admin, &schema).await;
            Self { url, schema, admin }
        }

        async fn store(&self) -> PostgresStore {
            let mut options = PostgresOptions::default();
            options.schema = Some(self.schema.clone());
            PostgresStore::connect(&self.url, options)
                .await
                .expect("the benchmark's store connects")
        }

        async fn clear_jobs(&mut self) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {}.booty_jobs",
                self.schema
            )))
            .execute(&mut self.admin)
            .await
            .expect("clear the round's jobs");
        }
    }

    async fn drop_schema(admin: &mut PgConnection, schema: &str) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(admin)
        .await
        .expect("drop the benchmark schema");
    }

    pub(super) fn bench(rt: &Runtime, group: &mut BenchmarkGroup<'_, WallTime>) {
        let Some(url) = std::env::var("BOOTY_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())
        else {
            eprintln!(
                "store_insert: BOOTY_TEST_POSTGRES_URL is not set; the PostgreSQL benchmarks are SKIPPED"
            );
            return;
        };
        let mut bench = rt.block_on(Bench::open(url));
        let one = Arc::new(rt.block_on(bench.store()));
        let two = [Arc::clone(&one), Arc::new(rt.block_on(bench.store()))];
        // Fewer samples than criterion's 100, so a run's fewest iterations (1 + 2 + ... + 50) take
        // seconds, not minutes, at a few milliseconds per insert. The measurement time is left to the
        // command line, so `cargo xtask bench --quick` stays quick.
        group.sample_size(50);
        for carries in Carries::ALL {
            for (name, stores, tasks) in [
                ("postgres/stores=1/tasks=1", &two[..1], 1),
                ("postgres/stores=1/tasks=4", &two[..1], 4),
                ("postgres/stores=2/tasks=4", &two[..], 4),
            ] {
                group.bench_function(format!("{name}{}", carries.suffix()), |b| {
                    b.iter_custom(|iters| {
                        rt.block_on(async {
                            let mut took = Duration::ZERO;
                            for jobs in rounds(iters) {
                                took += timed_round(stores, tasks, jobs, carries).await;
                                bench.clear_jobs().await;
                            }
                            took
                        })
                    });
                });
            }
        }
        drop((one, two));
        let schema = bench.schema.clone();
        rt.block_on(drop_schema(&mut bench.admin, &schema));
    }
}

mod sqlite {
    //! The SQLite benchmarks, each on a fresh file in a temporary directory.

    use booty_queue::{SqliteOptions, SqliteStore, Synchronous};
    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

    use super::{Arc, BenchmarkGroup, Carries, Duration, Runtime, WallTime, rounds, timed_round};

    pub(super) fn bench(rt: &Runtime, group: &mut BenchmarkGroup<'_, WallTime>) {
        // As for PostgreSQL: 50 samples, the measurement time the command line's.
        group.sample_size(50);
        for (level, synchronous) in [("normal", Synchronous::Normal), ("full", Synchronous::Full)] {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let path = dir.path().join("bench.db");
            let mut options = SqliteOptions::default();
            options.synchronous = synchronous;
            let store = Arc::new(
                rt.block_on(SqliteStore::open(&path, options))
                    .expect("the benchmark's store opens"),
            );
            // The benchmark's own connection, to delete each round's jobs (SQLite lets it in).
            let mut side: SqliteConnection = rt
                .block_on(SqliteConnectOptions::new().filename(&path).connect())
                .expect("a side connection");
            for carries in Carries::ALL {
                for tasks in [1, 16] {
                    let name = format!("sqlite/{level}/tasks={tasks}{}", carries.suffix());
                    group.bench_function(name, |b| {
                        b.iter_custom(|iters| {
                            rt.block_on(async {
                                let mut took = Duration::ZERO;
                                for jobs in rounds(iters) {
                                    let stores = std::slice::from_ref(&store);
                                    took += timed_round(stores, tasks, jobs, carries).await;
                                    sqlx::query("DELETE FROM booty_jobs")
                                        .execute(&mut side)
                                        .await
                                        .expect("clear the round's jobs");
                                }
                                took
                            })
                        });
                    });
                }
            }
        }
    }
}

criterion_group!(benches, store_insert);
criterion_main!(benches);
