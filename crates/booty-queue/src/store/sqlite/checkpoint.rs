//! The checkpointer: folds the write-ahead log back into the database file on a connection of its own.
//!
//! A checkpoint copies the pages committed to the log into the file and syncs both, which takes
//! milliseconds on a real disk. SQLite runs it by default in the connection whose commit made the log
//! long enough, and the writer's whole batch, so every waiting webhook, would wait for it. Instead the
//! writer asks this task (every `CHECKPOINT_EVERY` inserts, see `writer.rs`), which first runs `PASSIVE`
//! checkpoints: they copy what is committed without blocking the writer, who keeps appending to the log
//! meanwhile. A passive checkpoint never catches up with a writer that does not pause, though, and
//! SQLite only starts the log over once all of it is in the file; so once what is left is short (at
//! most [`RESTART_BELOW`] pages), a `RESTART` checkpoint copies it while the writer waits, and the next
//! commit starts the log from its beginning. The writer waits on the [`WriteGate`] rather than in
//! SQLite's busy handler, which sleeps in growing steps (1, 2, 5, 10, 15 ms, ...) and would keep it
//! idle some tens of milliseconds after a checkpoint of a few. The writer's own connection still checkpoints if the log
//! ever grows past [`FALLBACK_PAGES`] (this task failing, say).

use std::sync::{Arc, Mutex};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, SqliteConnection};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{error, warn};

use super::backend;
use super::files::{self, Files};
use crate::chain::Chain;
use crate::store::StoreError;

/// The writer's connection checkpoints by itself once the log holds this many pages.
pub(super) const FALLBACK_PAGES: u32 = 40_000;

/// The writer waits for a checkpoint only once at most this many pages are left to copy.
const RESTART_BELOW: i64 = 2_000;

/// Passive checkpoints tried before the writer is made to wait whatever is left.
const PASSIVE_TRIES: usize = 4;

/// Held by the writer while it writes a batch, and by the checkpointer while its `RESTART` checkpoint
/// runs: so each waits for the other in the runtime, woken the moment the other is done.
pub(super) type WriteGate = Arc<tokio::sync::Mutex<()>>;

/// A checkpoint asked for by [`Checkpointer::run_now`], and where its result goes.
type Request = oneshot::Sender<Result<(), StoreError>>;

/// The checkpointer task and how to reach it. Dropping it stops the task.
#[derive(Debug)]
pub(super) struct Checkpointer {
    due: Arc<Notify>,
    requests: mpsc::Sender<Request>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Stops the task if the store is dropped without being closed.
    _guard: DropGuard,
}

/// What the task works with.
struct Task {
    /// How to open the connection again after a checkpoint failed on it.
    options: SqliteConnectOptions,
    connection: Option<SqliteConnection>,
    gate: WriteGate,
    files: Arc<Files>,
}

impl Checkpointer {
    /// Starts the task on `connection` (opened with `options`).
    pub(super) fn start(
        options: SqliteConnectOptions,
        connection: SqliteConnection,
        gate: WriteGate,
        files: Arc<Files>,
    ) -> Self {
        let due = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let (requests, received) = mpsc::channel(16);
        let task = Task {
            options,
            connection: Some(connection),
            gate,
            files,
        };
        let task = tokio::spawn(task.run(Arc::clone(&due), received, stop.clone()));
        Self {
            due,
            requests,
            _guard: stop.clone().drop_guard(),
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// What the writer signals when a checkpoint is due.
    pub(super) fn due(&self) -> Arc<Notify> {
        Arc::clone(&self.due)
    }

    /// Checkpoints now and says how it went.
    pub(super) async fn run_now(&self) -> Result<(), StoreError> {
        let stopped = || StoreError::Backend {
            store: "sqlite",
            operation: "checkpoint",
            source: "the store is closed".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.requests.send(reply).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Stops the task and waits for it (its connection closed).
    pub(super) async fn stop(&self) {
        self.stop.cancel();
        let task = self.task.lock().ok().and_then(|mut task| task.take());
        if let Some(task) = task
            && let Err(err) = task.await
        {
            warn!(store = "sqlite", error = %Chain(&err), "store_checkpoint_failed");
        }
    }
}

impl Task {
    async fn run(
        mut self,
        due: Arc<Notify>,
        mut requests: mpsc::Receiver<Request>,
        stop: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = due.notified() => {
                    if let Err(err) = self.checkpoint().await {
                        warn!(store = "sqlite", error = %Chain(&err), "store_checkpoint_failed");
                    }
                }
                Some(reply) = requests.recv() => {
                    let _ = reply.send(self.checkpoint().await);
                }
                () = tokio::time::sleep(files::CHECK_EVERY) => self.look_at_files().await,
            }
        }
        // The store is closing or gone; a connection that does not close politely is closed by dropping it.
        if let Some(connection) = self.connection.take() {
            let _ = connection.close().await;
        }
    }

    /// Checks the files, then checkpoints (see the module documentation).
    async fn checkpoint(&mut self) -> Result<(), StoreError> {
        self.look_at_files().await;
        self.files.check("checkpoint")?;
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self.connection.insert(
                self.options
                    .connect()
                    .await
                    .map_err(|err| backend("checkpoint", err))?,
            ),
        };
        let done = checkpoint(connection, &self.gate).await;
        if done.is_err() {
            // Whatever state the failure left it in, the next checkpoint starts on a new connection.
            self.connection = None;
        }
        done.map_err(|err| backend("checkpoint", err))
    }

    /// Stops every write once the database or its log is not the file the store opened, folding what
    /// the log held into the database file first, through this connection's handle on the old log.
    async fn look_at_files(&mut self) {
        let first = self.files.refusal().is_ok();
        let Err(reason) = self.files.verify() else {
            return;
        };
        if first {
            error!(store = "sqlite", error = reason, "store_files_changed");
            if let Some(connection) = &mut self.connection {
                let saved = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(connection)
                    .await;
                if let Err(err) = saved {
                    warn!(store = "sqlite", error = %Chain(&err), "store_checkpoint_failed");
                }
            }
        }
    }
}

/// Copies the log into the file, passively while much is left, and starts the log over (see the module
/// documentation).
async fn checkpoint(
    connection: &mut SqliteConnection,
    gate: &WriteGate,
) -> Result<(), sqlx::Error> {
    for _ in 0..PASSIVE_TRIES {
        // (busy, pages in the log, pages of it now in the file)
        let (_, log, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut *connection)
            .await?;
        if log - copied <= RESTART_BELOW {
            break;
        }
    }
    let _writer_waits = gate.lock().await;
    sqlx::query("PRAGMA wal_checkpoint(RESTART)")
        .execute(connection)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    use sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};

    use super::*;

    /// Frames in the log now (`PRAGMA wal_checkpoint` answers it, after a passive checkpoint).
    async fn log_frames(connection: &mut SqliteConnection) -> i64 {
        let (_, log, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(connection)
            .await
            .expect("the log's size");
        log
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_checkpoint_under_writes_that_never_pause_starts_the_log_over() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("log.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .pragma("wal_autocheckpoint", "0");
        let mut writer = options.connect().await.expect("the writer connects");
        sqlx::query("CREATE TABLE rows (body BLOB)")
            .execute(&mut writer)
            .await
            .expect("a table");
        // Some 3 x RESTART_BELOW frames in the log before the checkpoint starts.
        for _ in 0..(3 * RESTART_BELOW / 2) {
            sqlx::query("INSERT INTO rows VALUES (zeroblob(3000))")
                .execute(&mut writer)
                .await
                .expect("an insert");
        }
        let mut checkpointer = options.connect().await.expect("the checkpointer connects");
        let before = log_frames(&mut checkpointer).await;
        assert!(before > 2 * RESTART_BELOW, "{before} frames");

        // A writer that commits one row after another while the checkpoint runs.
        let stop = Arc::new(AtomicBool::new(false));
        let written = Arc::new(AtomicU64::new(0));
        let writing = tokio::spawn({
            let (stop, written) = (Arc::clone(&stop), Arc::clone(&written));
            async move {
                while !stop.load(Ordering::SeqCst) {
                    sqlx::query("INSERT INTO rows VALUES (zeroblob(3000))")
                        .execute(&mut writer)
                        .await
                        .expect("an insert during the checkpoint");
                    written.fetch_add(1, Ordering::SeqCst);
                }
                writer
            }
        });
        while written.load(Ordering::SeqCst) < 10 {
            tokio::task::yield_now().await;
        }
        checkpoint(&mut checkpointer, &WriteGate::default())
            .await
            .expect("the checkpoint");
        let during = written.load(Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        let mut writer = writing.await.expect("the writer task");
        let after_checkpoint = written.load(Ordering::SeqCst) - during;
        sqlx::query("INSERT INTO rows VALUES (zeroblob(3000))")
            .execute(&mut writer)
            .await
            .expect("an insert after the checkpoint");

        // Started over: the log holds what was written since the checkpoint (two frames a row, and
        // some slack), not everything before it.
        let after = log_frames(&mut checkpointer).await;
        let since = i64::try_from(after_checkpoint).unwrap_or(i64::MAX);
        assert!(
            after <= 2 * (since + 1) + 10 && after < before,
            "{after} frames in the log after the checkpoint ({before} before, {during} rows written \
             during it, {after_checkpoint} after)"
        );
    }
}
