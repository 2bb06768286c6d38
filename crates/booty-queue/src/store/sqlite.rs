//! The SQLite store: one process keeps its queue in a database file that survives restarts.
//!
//! The tables are in `migrations/sqlite/` (laid out like the PostgreSQL store's, so `sql.rs` reads rows
//! for both). How the contract's rules hold:
//!
//! - **One process per file.** [`SqliteStore::open`] takes an exclusive lock on `PATH.lock` (an advisory
//!   `flock`, released by the operating system when the process dies, however it dies) before it touches
//!   the database; a second opener fails with [`SqliteError::InUse`]. SQLite's own locking stays normal,
//!   so a `sqlite3` shell can read the file while booty runs. Since nobody else runs jobs from the file,
//!   `recover` takes back every job left `running`.
//! - **One connection.** Every operation runs on the store's single connection (a pool of one that never
//!   closes it; only checkpoints have another), one after the other: each is one statement or one `BEGIN IMMEDIATE` transaction, so each
//!   is atomic and sees every earlier one.
//! - **Group commit.** `insert` hands its job to a writer task (`writer.rs`) and waits for the answer.
//!   The writer lets the submissions that are on their way arrive, takes every one waiting (up to
//!   [`SqliteOptions::max_batch`]) and writes them in one transaction, in two round trips to SQLite
//!   whatever their number: one reads what the batch's dedupe keys are already known as and the waiting
//!   count, the writer decides each answer, the other inserts the accepted jobs in one statement and
//!   commits. Concurrent submissions therefore share one commit, and, with [`Synchronous::Full`], one
//!   sync of the disk. If the batch fails, each of its submissions is written again alone, so one that
//!   fails leaves no trace and takes no one down.
//! - **Dedupe** is `booty_dedupe_keys`, unique by dedupe key, written with the job: it holds the key
//!   of every stored job, and afterwards keeps a key while it is among the newest `dedupe_capacity`
//!   or younger than `dedupe_retention`, measured from the new job's `created_at` (the engine's clock, as
//!   always).
//! - **Capacity** reads `booty_counts.waiting`, which the writer (for inserts) and triggers (for state
//!   changes and deletes) keep equal to the number of `queued` and `retrying` jobs, so an insert does not
//!   count the backlog.
//! - **Durability.** WAL mode; `synchronous = NORMAL` by default (a commit survives `kill -9`, the last
//!   ones may not survive a power loss) or `FULL` (they do). `202` is answered after the commit.
//!   Checkpoints (folding the log into the file, with a sync of the disk) run on a connection of their
//!   own (`checkpoint.rs`), so the writer waits only for the last short part of each.

mod checkpoint;
mod connection;
mod files;
mod jobs;
mod migrate;
mod options;
mod packed;
mod writer;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::warn;

use crate::chain::Chain;
use crate::job::{Job, JobId, JobSnapshot, Submitted};
use crate::query::{CancelTarget, JobCounts, JobQuery, Retried};
use crate::store::sql::{self, SqlStore, bigint, millis, snapshot, snapshot_columns};
use crate::store::{Admission, Claim, Lease, Outcome, Renewal, Store, StoreError};
use crate::time::Timestamp;

use writer::{Pending, Writer};

pub use options::{SqliteError, SqliteOptions, Synchronous, UnknownSynchronous};

/// What SQLite calls its error codes, in messages.
const CODE: &str = "SQLite code";

/// Submissions waiting for the writer at most; more wait for room (a bound, not a limit anyone meets:
/// the edge caps connections far below it).
const QUEUED_INSERTS: usize = 4_096;

/// Keeps jobs in a SQLite database file, for one process: accepted jobs and remembered dedupe keys survive
/// a restart (or `kill -9`), and jobs that were running when the process died run again.
///
/// [`SqliteStore::open`] locks the file for this process, creates it if missing, checks it and brings
/// its tables up to date. Payloads are stored as JSON, LZ4-compressed: the store needs
/// `P: Serialize + DeserializeOwned`.
/// A stored payload that no longer deserializes fails its job when claimed, with an error saying so.
///
/// Jobs are durable: [`Store::close`] keeps unfinished ones for the next start.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    pool: SqlitePool,
    options: SqliteOptions,
    /// Where `insert` hands jobs to the writer; `None` once the store is closed.
    inserts: Mutex<Option<mpsc::Sender<Pending>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: checkpoint::Checkpointer,
    /// An idle connection held until the store closes, so that no other connection closing is the last
    /// one, which would make SQLite delete the log (see [`SqliteStore::open`]).
    anchor: Mutex<Option<SqliteConnection>>,
    /// The database and log files as opened; every write is refused once either changed.
    files: Arc<files::Files>,
    stats: Arc<Counters>,
    /// Held for the store's life: the one-process-per-file lock.
    _lock: File,
}

/// What the writer has done, for [`SqliteStore::stats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) transactions: AtomicU64,
    /// Taken off the queue by the writer.
    pub(super) received: AtomicU64,
    /// Answered by the writer.
    pub(super) inserts: AtomicU64,
}

/// How the store's group commit has gone so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteStats {
    /// Insert transactions committed (or tried).
    pub insert_transactions: u64,
    /// Submissions answered by the writer (accepted, duplicate, busy or failed).
    pub inserts: u64,
    /// Submissions waiting for their answer right now: queued for the writer, or in the transaction it
    /// is writing.
    pub pending_inserts: u64,
}

impl SqliteStore {
    /// Opens the database file at `path` for this process: takes the lock, creates the file if it does
    /// not exist, checks it, applies the embedded migrations and starts the writer.
    ///
    /// # Errors
    /// [`SqliteError`] names the file and what is wrong: in use by another process, not writable,
    /// corrupt, locked, or holding a newer schema.
    pub async fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, SqliteError> {
        options.check()?;
        let path = path.as_ref().to_owned();
        let lock = lock(&path)?;
        let connect = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(match options.synchronous {
                Synchronous::Normal => SqliteSynchronous::Normal,
                Synchronous::Full => SqliteSynchronous::Full,
            })
            .busy_timeout(options.busy_timeout)
            .foreign_keys(false)
            // Statement journals in memory: the batch insert's, which copies each index page it is
            // about to change (one random page per delivery), outgrew the 64 KiB SQLite keeps in memory
            // in one batch of five and went to a temporary file (created, written, deleted each time).
            .pragma("temp_store", "memory");
        // The checkpointer folds the log into the file on its own connection (`checkpoint.rs`); the
        // writer's connection only checkpoints if that falls far behind (40 MB of log with 4 KiB pages).
        let writing = connect
            .clone()
            .pragma("wal_autocheckpoint", checkpoint::FALLBACK_PAGES.to_string());
        // The pool opens a new connection after a write failed on the last one (`connection.rs`); one
        // opened after the log was removed would start a second log, so it looks at the files first.
        let noted: Arc<OnceLock<Arc<files::Files>>> = Arc::default();
        let watch = Arc::clone(&noted);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .test_before_acquire(false)
            .after_connect(move |_, _| {
                let files = watch.get().cloned();
                Box::pin(async move {
                    match files.as_deref().map(files::Files::verify) {
                        Some(Err(reason)) => Err(sqlx::Error::Configuration(reason.into())),
                        _ => Ok(()),
                    }
                })
            })
            .connect_with(writing)
            .await
            .map_err(|err| open_error(&path, err))?;
        check_integrity(&pool, &path).await?;
        migrate::run(&pool).await.map_err(|err| match err {
            sqlx::migrate::MigrateError::Execute(err) => open_error(&path, err),
            other => SqliteError::Migrate {
                path: path.clone(),
                source: Box::new(other),
            },
        })?;

        // SQLite deletes the log (and its index) when the last connection to the database closes. The
        // writer's and the checkpointer's connections are both closed after a failed write (a full disk
        // fails both), so either could be the last, and the log opened next would be a new file, which
        // `files` takes for a log replaced under the store: every write refused until a restart. This
        // connection stays open, idle, for the store's life, so neither ever is the last.
        let anchor = connect
            .connect()
            .await
            .map_err(|err| open_error(&path, err))?;
        let files = Arc::new(files::Files::note(&path).map_err(|err| SqliteError::Open {
            path: path.clone(),
            source: format!("cannot look at the database or its log: {err}").into(),
        })?);
        let _ = noted.set(Arc::clone(&files));
        let gate = checkpoint::WriteGate::default();
        let checkpointer = checkpoint::Checkpointer::start(
            connect.clone(),
            connect
                .connect()
                .await
                .map_err(|err| open_error(&path, err))?,
            Arc::clone(&gate),
            Arc::clone(&files),
        );
        let (inserts, queue) = mpsc::channel(QUEUED_INSERTS);
        let stats = Arc::new(Counters::default());
        let writer = Writer::new(
            pool.clone(),
            options.clone(),
            Arc::clone(&stats),
            checkpointer.due(),
            gate,
            Arc::clone(&files),
        );
        let writer = tokio::spawn(writer.run(queue));
        Ok(Self {
            path,
            pool,
            options,
            inserts: Mutex::new(Some(inserts)),
            writer: Mutex::new(Some(writer)),
            checkpointer,
            anchor: Mutex::new(Some(anchor)),
            files,
            stats,
            _lock: lock,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Folds the write-ahead log into the database file now, as the store does by itself every few
    /// thousand inserts, after checking that both are still the files it opened.
    ///
    /// # Errors
    /// [`StoreError::Backend`] if the checkpoint failed (a full disk, say), or the database or its log
    /// was removed or replaced while the store had it open (every write is refused from then on).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.checkpointer.run_now().await
    }

    /// How the group commit has gone: transactions and submissions so far, and submissions waiting.
    pub fn stats(&self) -> SqliteStats {
        let queued = self
            .inserts
            .lock()
            .ok()
            .and_then(|inserts| {
                inserts
                    .as_ref()
                    .map(|sender| sender.max_capacity() - sender.capacity())
            })
            .unwrap_or(0);
        let inserts = self.stats.inserts.load(Ordering::SeqCst);
        let received = self.stats.received.load(Ordering::SeqCst);
        SqliteStats {
            insert_transactions: self.stats.transactions.load(Ordering::SeqCst),
            inserts,
            pending_inserts: queued as u64 + received.saturating_sub(inserts),
        }
    }

    async fn insert_job<P: Serialize>(
        &self,
        job: Job<P>,
        capacity: usize,
        admission: Admission,
    ) -> Result<Submitted, StoreError> {
        let payload =
            packed::pack(&*job.payload).map_err(|why| sql::unstorable("sqlite", &job.id, &why))?;
        let metadata = sql::encode_metadata("sqlite", &job)?;
        let pending_job = writer::NewJob {
            job_id: job.id,
            dedupe_key: job.dedupe_key,
            lane: job.lane,
            kind: job.kind,
            metadata,
            payload,
            created_at_ms: millis(job.created_at),
        };
        let sender = self
            .inserts
            .lock()
            .ok()
            .and_then(|inserts| inserts.clone())
            .ok_or_else(|| closed("insert"))?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            job: pending_job,
            capacity: bigint(capacity),
            admission,
            reply,
        };
        sender.send(pending).await.map_err(|_| closed("insert"))?;
        answer.await.map_err(|_| closed("insert"))?
    }

    async fn try_get(&self, job_id: &str) -> Result<Option<JobSnapshot>, sqlx::Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            snapshot_columns!(),
            " FROM booty_jobs WHERE job_id = ?1"
        ))
        .bind(job_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(snapshot).transpose()
    }

    /// Stops the writer once every submission it holds is answered, and folds the write-ahead log back
    /// into the database file, so the file alone is a complete copy.
    async fn stop_writer(&self) {
        let sender = self
            .inserts
            .lock()
            .ok()
            .and_then(|mut inserts| inserts.take());
        drop(sender);
        let writer = self.writer.lock().ok().and_then(|mut writer| writer.take());
        if let Some(writer) = writer
            && let Err(err) = writer.await
        {
            warn!(store = "sqlite", error = %Chain(&err), "store_writer_failed");
        }
        self.checkpointer.stop().await;
        if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            warn!(store = "sqlite", error = %Chain(&err), "store_checkpoint_failed");
        }
        let anchor = self.anchor.lock().ok().and_then(|mut anchor| anchor.take());
        if let Some(anchor) = anchor
            && let Err(err) = anchor.close().await
        {
            warn!(store = "sqlite", error = %Chain(&err), "store_close_failed");
        }
    }
}

impl<P> Store<P> for SqliteStore
where
    P: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    async fn insert(&self, job: Job<P>, capacity: usize) -> Result<Submitted, StoreError> {
        self.insert_job(job, capacity, Admission::new()).await
    }

    /// Admits the job once its batch holds the database's write lock (see `writer.rs`).
    async fn insert_admitted(
        &self,
        job: Job<P>,
        capacity: usize,
        admission: Admission,
    ) -> Result<Submitted, StoreError> {
        self.insert_job(job, capacity, admission).await
    }

    async fn claim(
        &self,
        owner: &str,
        now: Timestamp,
        lease_until: Timestamp,
    ) -> Result<Claim<P>, StoreError> {
        sql::claim(self, owner, now, lease_until).await
    }

    async fn renew(&self, lease: &Lease, until: Timestamp) -> Result<Renewal, StoreError> {
        self.renew_lease(lease, until).await
    }

    async fn finish(
        &self,
        lease: &Lease,
        outcome: Outcome,
        output: Option<&str>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        SqlStore::record(self, lease, &outcome, output, now).await
    }

    async fn cancel(
        &self,
        target: &CancelTarget,
        reason: &str,
        now: Timestamp,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        self.cancel_jobs(target, reason, now).await
    }

    async fn reopen(&self, job_id: &str, capacity: usize) -> Result<Retried, StoreError> {
        self.reopen_job(job_id, capacity).await
    }

    async fn reclaim_expired(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        self.files.check("reclaim_expired")?;
        self.take_back(Some(now), now, max_attempts)
            .await
            .map_err(|err| backend("reclaim_expired", err))
    }

    /// One process uses the file: every job left running belongs to a run that is gone.
    async fn recover(
        &self,
        now: Timestamp,
        max_attempts: u32,
    ) -> Result<Vec<JobSnapshot>, StoreError> {
        self.files.check("recover")?;
        self.take_back(None, now, max_attempts)
            .await
            .map_err(|err| backend("recover", err))
    }

    async fn get(&self, job_id: &str) -> Result<Option<JobSnapshot>, StoreError> {
        self.try_get(job_id)
            .await
            .map_err(|err| backend("get", err))
    }

    async fn list(&self, query: &JobQuery) -> Result<Vec<JobSnapshot>, StoreError> {
        self.list_jobs(query).await
    }

    async fn count(&self) -> Result<JobCounts, StoreError> {
        self.count_jobs().await
    }

    /// Unfinished jobs stay in the file for the next start; this stops the writer and checkpoints.
    async fn close(&self, _now: Timestamp) -> Result<Vec<JobSnapshot>, StoreError> {
        self.stop_writer().await;
        Ok(Vec::new())
    }

    /// `booty_dedupe_keys` holds the key of every stored job and of the remembered ones.
    async fn dedupe_key_job(&self, dedupe_key: &str) -> Result<Option<JobId>, StoreError> {
        let job_id: Option<String> =
            sqlx::query_scalar("SELECT job_id FROM booty_dedupe_keys WHERE dedupe_key = ?1")
                .bind(dedupe_key)
                .fetch_optional(&self.pool)
                .await
                .map_err(|err| backend("dedupe_key_job", err))?;
        Ok(job_id.map(JobId::from))
    }

    async fn bookmark(&self, name: &str) -> Result<Option<Timestamp>, StoreError> {
        let at: Option<i64> =
            sqlx::query_scalar("SELECT at_ms FROM booty_bookmarks WHERE name = ?1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map_err(|err| backend("bookmark", err))?;
        Ok(at.map(sql::timestamp))
    }

    async fn set_bookmark(&self, name: &str, at: Timestamp) -> Result<(), StoreError> {
        self.files.check("set_bookmark")?;
        sqlx::query(
            "INSERT INTO booty_bookmarks (name, at_ms) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET at_ms = excluded.at_ms",
        )
        .bind(name)
        .bind(millis(at))
        .execute(&self.pool)
        .await
        .map_err(|err| backend("set_bookmark", err))?;
        Ok(())
    }
}

/// `PATH.lock`, next to the database.
fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Takes the one-process-per-file lock.
fn lock(path: &Path) -> Result<File, SqliteError> {
    let lock = lock_path(path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|err| SqliteError::Open {
            path: path.to_owned(),
            source: format!("cannot create its lock file {}: {err}", lock.display()).into(),
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(SqliteError::InUse {
            path: path.to_owned(),
            lock,
        }),
        Err(TryLockError::Error(err)) => Err(SqliteError::Open {
            path: path.to_owned(),
            source: format!("cannot lock {}: {err}", lock.display()).into(),
        }),
    }
}

/// `PRAGMA quick_check`: a damaged file is found at start-up, not by the first job that touches it.
async fn check_integrity(pool: &SqlitePool, path: &Path) -> Result<(), SqliteError> {
    let problems: Vec<String> = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(pool)
        .await
        .map_err(|err| open_error(path, err))?;
    if problems.iter().all(|line| line == "ok") {
        return Ok(());
    }
    Err(SqliteError::Corrupt {
        path: path.to_owned(),
        source: problems.join("; ").into(),
    })
}

/// SQLite's primary result code of a database error.
pub(super) fn primary_code(err: &sqlx::Error) -> Option<i32> {
    match err {
        sqlx::Error::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map(|code| code & 0xff),
        _ => None,
    }
}

/// Sorts a failure to open or check the file into what the operator must do about it.
fn open_error(path: &Path, err: sqlx::Error) -> SqliteError {
    let path = path.to_owned();
    // SQLITE_BUSY, SQLITE_LOCKED; SQLITE_CORRUPT, SQLITE_NOTADB.
    match primary_code(&err) {
        Some(5 | 6) => SqliteError::Locked {
            path,
            source: sql::cause(err, CODE),
        },
        Some(11 | 26) => SqliteError::Corrupt {
            path,
            source: sql::cause(err, CODE),
        },
        _ => SqliteError::Open {
            path,
            source: sql::cause(err, CODE),
        },
    }
}

/// The store's error for a failed `operation`.
pub(super) fn backend(operation: &'static str, err: sqlx::Error) -> StoreError {
    StoreError::Backend {
        store: "sqlite",
        operation,
        source: sql::cause(err, CODE),
    }
}

fn closed(operation: &'static str) -> StoreError {
    StoreError::Backend {
        store: "sqlite",
        operation,
        source: "the store is closed".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A statement journal that outgrows SQLite's 64 KiB goes to a temporary file unless temp storage
    /// is in memory: a file created, written and deleted by the writer for a batch of inserts.
    #[tokio::test]
    async fn statement_journals_stay_in_memory() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("booty.db"), SqliteOptions::default())
            .await
            .expect("the store opens");
        // 2 is MEMORY (0 would be the compile-time default, a file).
        let temp_store: i64 = sqlx::query_scalar("PRAGMA temp_store")
            .fetch_one(&store.pool)
            .await
            .expect("the pragma answers");
        assert_eq!(temp_store, 2);
    }

    /// After a full disk, the writer's connection and the checkpointer's are both closed. When the
    /// last connection to a database closes, SQLite deletes its log, and the next one opened is a new
    /// file the store takes for a log replaced under it: it refused every write until a restart (CI saw
    /// this as the full-disk test's `PoolTimedOut`, about one run in twenty under load).
    #[tokio::test]
    async fn closing_the_writer_and_checkpointer_connections_leaves_the_log_in_place() {
        use std::os::unix::fs::MetadataExt as _;

        use crate::job::NewJob;

        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join("booty.db"), SqliteOptions::default())
            .await
            .expect("the store opens");
        let insert = |id: &str| {
            let job = NewJob::new(id, "payload".to_owned()).into_job(Timestamp::EPOCH);
            Store::<String>::insert(&store, job, 10)
        };
        assert!(matches!(insert("1").await, Ok(Submitted::Accepted(_))));
        let log = File::open(dir.path().join("booty.db-wal")).expect("the log exists");

        store.checkpointer.stop().await;
        store
            .pool
            .acquire()
            .await
            .expect("the writer's connection")
            .close()
            .await
            .expect("it closes");
        assert_eq!(
            log.metadata().expect("the log's metadata").nlink(),
            1,
            "SQLite deleted the log the store has open"
        );
        assert!(matches!(insert("2").await, Ok(Submitted::Accepted(_))));
        store
            .files
            .check("insert")
            .expect("the log is still the store's");
    }
}
