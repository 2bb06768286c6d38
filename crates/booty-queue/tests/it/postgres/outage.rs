//! The database goes away under load: connections terminated with `pg_terminate_backend`, and a whole
//! server stopped and started again. No accepted job is lost, and a refused insert is an error (so the
//! edge answers `503`), never an `Accepted` that was not stored.
//!
//! Stopping the shared server would break every other test running against it, so the restart test runs
//! its own throwaway cluster (`initdb` in a temporary directory, on a free port), under the `postgres`
//! system user when the tests run as root, as `initdb` insists.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use booty_queue::{
    Claim, JobId, JobQuery, JobState, Lease, Outcome, PostgresStore, Store, StoreError, Submitted,
    Timestamp,
};
use tokio::task::JoinSet;

use crate::contract::Payload;
use crate::postgres::{TestSchema, job, later, now, url};
use crate::support::job_id;

const INSERTERS_PER_STORE: usize = 2;
const INSERTS_EACH: usize = 150;
const CLAIMERS_PER_STORE: usize = 2;

/// What happened to every delivery and job during a load run.
#[derive(Default)]
struct Ledger {
    /// Deliveries the store answered `Accepted`, with their job ids.
    accepted: BTreeMap<String, JobId>,
    /// Deliveries whose insert failed.
    refused: BTreeSet<String>,
    /// How many times each job was handed to a claimer.
    runs: BTreeMap<JobId, u32>,
}

/// Inserts from both stores and claims on both, while `chaos` runs; then drains what is left and checks
/// the ledger against the database.
async fn survive(stores: [Arc<PostgresStore>; 2], chaos: impl Future<Output = ()>) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let inserting = Arc::new(AtomicBool::new(true));

    let mut inserters = JoinSet::new();
    for (which, store) in stores.iter().enumerate() {
        for inserter in 0..INSERTERS_PER_STORE {
            let (store, ledger) = (Arc::clone(store), Arc::clone(&ledger));
            inserters.spawn(async move {
                for n in 0..INSERTS_EACH as u64 {
                    let delivery = format!("s{which}-i{inserter}-{n}");
                    let answer = store.insert(job(&delivery, Some(n % 5), n), 100_000).await;
                    let mut ledger = ledger.lock().unwrap();
                    match answer {
                        Ok(Submitted::Accepted(id)) => {
                            ledger.accepted.insert(delivery, id);
                        }
                        Ok(other) => panic!("{delivery}: {other:?} for a new delivery"),
                        Err(StoreError::Backend { .. }) => {
                            ledger.refused.insert(delivery);
                        }
                        Err(err) => panic!("{delivery}: {err:?}"),
                    }
                }
            });
        }
    }
    let mut claimers = JoinSet::new();
    for (which, store) in stores.iter().enumerate() {
        for worker in 0..CLAIMERS_PER_STORE {
            let (store, ledger, inserting) = (
                Arc::clone(store),
                Arc::clone(&ledger),
                Arc::clone(&inserting),
            );
            claimers.spawn(async move {
                let owner = format!("s{which}-w{worker}");
                while inserting.load(Ordering::SeqCst) {
                    run_one(&store, &owner, now(), &ledger).await;
                }
            });
        }
    }

    let ((), ()) = tokio::join!(chaos, async {
        while let Some(joined) = inserters.join_next().await {
            joined.unwrap();
        }
    });
    inserting.store(false, Ordering::SeqCst);
    claimers.join_all().await;

    // Claims whose answer was lost with a connection, and outcomes that could not be recorded, left
    // jobs `running`: a reaper from the future takes them back, then everything left is run.
    let far = later(Duration::from_hours(1));
    Store::<Payload>::reclaim_expired(&*stores[0], far, 100)
        .await
        .unwrap();
    while run_one(&stores[0], "drain", far, &ledger).await {}

    let ledger = Arc::into_inner(ledger).unwrap().into_inner().unwrap();
    check(&stores[0], &ledger).await;
    ledger
}

/// Claims one job at `at` and finishes it; `false` if there was nothing to claim. Store errors are
/// the point of the test: they are tolerated here and the job is left to the drain.
async fn run_one(
    store: &PostgresStore,
    owner: &str,
    at: Timestamp,
    ledger: &Mutex<Ledger>,
) -> bool {
    let claimed =
        Store::<Payload>::claim(store, owner, at, at.saturating_add(Duration::from_mins(1))).await;
    let job = match claimed {
        Ok(Claim::Job(job)) => job,
        Ok(Claim::Idle { .. }) => {
            tokio::task::yield_now().await;
            return false;
        }
        Err(_) => {
            // The database is away; the store has already retried and logged.
            tokio::task::yield_now().await;
            return true;
        }
    };
    *ledger
        .lock()
        .unwrap()
        .runs
        .entry(job.id.clone())
        .or_default() += 1;
    let lease = Lease {
        job_id: job.id,
        owner: owner.to_owned(),
        attempt: job.attempt,
    };
    let _ = Store::<Payload>::finish(store, &lease, Outcome::Succeeded, None, at).await;
    true
}

/// Every accepted job is stored and succeeded; every stored job was accepted, or refused with an error
/// whose commit got through anyway (the only way a refused delivery can be stored); a refused delivery
/// is accepted (or found) when sent again.
async fn check(store: &PostgresStore, ledger: &Ledger) {
    let stored = Store::<Payload>::list(store, &JobQuery::newest(100_000))
        .await
        .unwrap();
    let stored: BTreeMap<&str, _> = stored
        .iter()
        .map(|job| (job.dedupe_key.as_str(), job))
        .collect();
    for (delivery, id) in &ledger.accepted {
        let job = stored
            .get(delivery.as_str())
            .unwrap_or_else(|| panic!("accepted delivery {delivery} ({id}) was lost"));
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert!(ledger.runs.get(id).is_some_and(|&runs| runs >= 1), "{id}");
    }
    for (delivery, job) in &stored {
        assert!(
            ledger.accepted.contains_key(*delivery) || ledger.refused.contains(*delivery),
            "{delivery} is stored but was never submitted: {job:?}"
        );
    }
    for delivery in &ledger.refused {
        let n = delivery.rsplit('-').next().unwrap().parse::<u64>().unwrap();
        let again = store
            .insert(job(delivery, Some(n % 5), n), 100_000)
            .await
            .unwrap();
        assert!(
            matches!(again, Submitted::Accepted(_) | Submitted::Duplicate(_)),
            "{delivery}: {again:?}"
        );
    }
    let total = ledger.accepted.len() + ledger.refused.len();
    assert_eq!(total, 2 * INSERTERS_PER_STORE * INSERTS_EACH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn terminated_connections_under_load_lose_no_accepted_job() {
    let schema = TestSchema::new();
    let stores = [
        Arc::new(schema.connect(schema.options()).await),
        Arc::new(schema.connect(schema.options()).await),
    ];
    let terminated = Arc::new(Mutex::new(0));
    let chaos = {
        let terminated = Arc::clone(&terminated);
        let schema = &schema;
        async move {
            for _ in 0..6 {
                // Pacing, not synchronisation: let the load run a little between the cuts.
                tokio::time::sleep(Duration::from_millis(150)).await;
                *terminated.lock().unwrap() += schema.terminate_connections().await;
            }
        }
    };
    let ledger = survive(stores, chaos).await;
    assert!(*terminated.lock().unwrap() > 0, "no connection was cut");
    assert!(!ledger.accepted.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn a_database_restart_under_load_loses_no_accepted_job() {
    let cluster = Arc::new(Cluster::create());
    let schema = TestSchema::on(cluster.url());
    let mut options = schema.options();
    options.acquire_timeout = Duration::from_millis(500);
    options.retry_for = Duration::from_secs(3);
    let stores = [
        Arc::new(schema.connect(options.clone()).await),
        Arc::new(schema.connect(options).await),
    ];

    let chaos = {
        let cluster = Arc::clone(&cluster);
        async move {
            for _ in 0..2 {
                // Pacing, not synchronisation: let the load run between restarts.
                tokio::time::sleep(Duration::from_millis(300)).await;
                cluster.stop().await;
                tokio::time::sleep(Duration::from_millis(200)).await;
                cluster.start().await;
            }
        }
    };
    let ledger = survive(stores.clone(), chaos).await;
    assert!(!ledger.accepted.is_empty());

    // While the server is down, a submission fails (and is not recorded) instead of hanging; once the
    // server is back, the same delivery is accepted.
    cluster.stop().await;
    let refused = stores[0].insert(job("while-down", Some(1), 0), 100).await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Backend {
                store: "postgres",
                operation: "insert",
                ..
            })
        ),
        "{refused:?}"
    );
    cluster.start().await;
    let answer = stores[1]
        .insert(job("while-down", Some(1), 0), 100)
        .await
        .unwrap();
    assert_eq!(answer, Submitted::Accepted(job_id(Some(1), "while-down")));
    drop(stores);
    drop(schema);
}

/// A PostgreSQL cluster of the test's own, removed when dropped.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Cluster {
    fn create() -> Self {
        let bin = PathBuf::from(
            String::from_utf8(
                Command::new("pg_config")
                    .arg("--bindir")
                    .output()
                    .expect("pg_config (from the PostgreSQL server packages) is on PATH")
                    .stdout,
            )
            .unwrap()
            .trim(),
        );
        let dir = tempfile::Builder::new()
            .prefix("booty-pg-")
            .tempdir()
            .unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["postgres:"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the cluster directory to postgres");
        }
        // Any free port: bind one, read it, let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self { dir, bin, port };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.run_start();
        cluster
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A server program, run as `postgres` when the tests run as root.
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            Command::new(program)
        };
        command.current_dir(self.dir.path());
        command
    }

    fn run(&self, program: &str, args: &[&str]) {
        let output = self.command(program).args(args).output().unwrap();
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn run_start(&self) {
        let (data, dir) = (self.data(), self.dir.path());
        let server_options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            dir.display()
        );
        let log = dir.join("server.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-o",
                &server_options,
                "-l",
                path(&log),
                "-w",
                "start",
            ],
        );
    }

    fn run_stop(&self, mode: &str) {
        self.run(
            "pg_ctl",
            &["-D", path(&self.data()), "-m", mode, "-w", "stop"],
        );
    }

    /// A fast shutdown: sessions are terminated, in-flight transactions rolled back.
    async fn stop(self: &Arc<Self>) {
        let cluster = Arc::clone(self);
        tokio::task::spawn_blocking(move || cluster.run_stop("fast"))
            .await
            .unwrap();
    }

    async fn start(self: &Arc<Self>) {
        let cluster = Arc::clone(self);
        tokio::task::spawn_blocking(move || cluster.run_start())
            .await
            .unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // It may already be stopped (a failed test); the directory goes either way.
        let _ = self
            .command("pg_ctl")
            .args(["-D", path(&self.data()), "-m", "immediate", "stop"])
            .output();
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.trim_ascii() == b"0")
}

/// A TCP proxy in front of the server (for connections without TLS) that, once armed, swallows the
/// server's answer to the next `COMMIT` and cuts that connection: the transaction is committed, and the
/// store cannot know it.
struct CommitEater {
    addr: std::net::SocketAddr,
    armed: Arc<AtomicBool>,
    eaten: Arc<tokio::sync::Notify>,
}

impl CommitEater {
    /// `CommandComplete` with the tag `COMMIT`: 'C', length 11, "COMMIT\0".
    const COMMITTED: &[u8] = b"C\x00\x00\x00\x0bCOMMIT\x00";

    async fn start(server: std::net::SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let armed = Arc::new(AtomicBool::new(false));
        let eaten = Arc::new(tokio::sync::Notify::new());
        let (armed_for_task, eaten_for_task) = (Arc::clone(&armed), Arc::clone(&eaten));
        tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let upstream = tokio::net::TcpStream::connect(server).await.unwrap();
                tokio::spawn(Self::relay(
                    client,
                    upstream,
                    Arc::clone(&armed_for_task),
                    Arc::clone(&eaten_for_task),
                ));
            }
        });
        Self { addr, armed, eaten }
    }

    async fn relay(
        client: tokio::net::TcpStream,
        upstream: tokio::net::TcpStream,
        armed: Arc<AtomicBool>,
        eaten: Arc<tokio::sync::Notify>,
    ) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client_read, mut client_write) = client.into_split();
        let (mut upstream_read, mut upstream_write) = upstream.into_split();
        let to_server = tokio::spawn(async move {
            let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
        });
        let mut buffer = vec![0; 64 * 1024];
        // The tail of the previous read, so a message split across reads is still seen.
        let mut window: Vec<u8> = Vec::new();
        while let Ok(read) = upstream_read.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            let chunk = &buffer[..read];
            window.extend_from_slice(chunk);
            let seen = window
                .windows(Self::COMMITTED.len())
                .any(|bytes| bytes == Self::COMMITTED);
            if seen && armed.swap(false, Ordering::SeqCst) {
                eaten.notify_one();
                break;
            }
            let keep = window.len().saturating_sub(Self::COMMITTED.len());
            window.drain(..keep);
            if client_write.write_all(chunk).await.is_err() {
                break;
            }
        }
        to_server.abort();
    }

    /// The next `COMMIT` answer is swallowed.
    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn a_commit_whose_answer_is_lost_is_recorded_once_and_never_doubled() {
    let base = url();
    // The test server's address, for the proxy to forward to.
    let connect: sqlx::postgres::PgConnectOptions = base.parse().unwrap();
    let server = tokio::net::lookup_host((connect.get_host(), connect.get_port()))
        .await
        .unwrap()
        .next()
        .unwrap();
    let eater = CommitEater::start(server).await;
    let through_proxy = base.replacen(
        &format!("{}:{}", connect.get_host(), connect.get_port()),
        &eater.addr.to_string(),
        1,
    );
    assert_ne!(through_proxy, base, "the test URL names host:port");
    // In clear text, so the proxy can read the answers.
    let separator = if through_proxy.contains('?') {
        '&'
    } else {
        '?'
    };
    let through_proxy = format!("{through_proxy}{separator}sslmode=disable");
    let schema = TestSchema::on(through_proxy);
    let store = schema.connect(schema.options()).await;

    // An insert whose COMMIT answer is lost fails (the edge answers 503), but it was stored: the
    // redelivery finds it.
    eater.arm();
    let lost = store.insert(job("d-1", Some(1), 1), 100).await;
    assert!(matches!(lost, Err(StoreError::Backend { .. })), "{lost:?}");
    assert!(
        !eater.armed.load(Ordering::SeqCst),
        "the COMMIT answer was eaten"
    );
    assert_eq!(
        store.insert(job("d-1", Some(1), 1), 100).await.unwrap(),
        Submitted::Duplicate(job_id(Some(1), "d-1"))
    );

    // A finish whose COMMIT answer is lost is retried, sees its own write, and reports success rather
    // than a lost lease (which would make the job run again).
    let Claim::Job(claimed) =
        Store::<Payload>::claim(&store, "w1", now(), later(Duration::from_mins(1)))
            .await
            .unwrap()
    else {
        panic!("d-1 is runnable");
    };
    let lease = Lease {
        job_id: claimed.id.clone(),
        owner: "w1".to_owned(),
        attempt: claimed.attempt,
    };
    eater.arm();
    let finished = Store::<Payload>::finish(&store, &lease, Outcome::Succeeded, None, now()).await;
    tokio::time::timeout(Duration::from_secs(5), eater.eaten.notified())
        .await
        .expect("the finish's COMMIT answer was eaten");
    finished.unwrap();
    let done = Store::<Payload>::get(&store, claimed.id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 1));
}
