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

use sqlx::Connection;
use sqlx::SqliteConnection;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::warn;

use crate::worker::Chain;

/// The writer's connection checkpoints by itself once the log holds this many pages.
pub(super) const FALLBACK_PAGES: u32 = 40_000;

/// The writer waits for a checkpoint only once at most this many pages are left to copy.
const RESTART_BELOW: i64 = 2_000;

/// Passive checkpoints tried before the writer is made to wait whatever is left.
const PASSIVE_TRIES: usize = 4;

/// Held by the writer while it writes a batch, and by the checkpointer while its `RESTART` checkpoint
/// runs: so each waits for the other in the runtime, woken the moment the other is done.
pub(super) type WriteGate = Arc<tokio::sync::Mutex<()>>;

/// The checkpointer task and how to reach it. Dropping it stops the task.
#[derive(Debug)]
pub(super) struct Checkpointer {
    due: Arc<Notify>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
    /// Stops the task if the store is dropped without being closed.
    _guard: DropGuard,
}

impl Checkpointer {
    /// Starts the task on `connection`.
    pub(super) fn start(connection: SqliteConnection, gate: WriteGate) -> Self {
        let due = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(connection, gate, Arc::clone(&due), stop.clone()));
        Self {
            due,
            _guard: stop.clone().drop_guard(),
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// What the writer signals when a checkpoint is due.
    pub(super) fn due(&self) -> Arc<Notify> {
        Arc::clone(&self.due)
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

async fn run(
    mut connection: SqliteConnection,
    gate: WriteGate,
    due: Arc<Notify>,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = due.notified() => {
                if let Err(err) = checkpoint(&mut connection, &gate).await {
                    warn!(store = "sqlite", error = %Chain(&err), "store_checkpoint_failed");
                }
            }
        }
    }
    // The store is closing or gone; a connection that does not close politely is closed by dropping it.
    let _ = connection.close().await;
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

    use sqlx::ConnectOptions;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

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
