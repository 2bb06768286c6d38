//! The checkpointer: folds the write-ahead log back into the database file on a connection of its own.
//!
//! A checkpoint copies the pages committed to the log into the file and syncs both, which takes
//! milliseconds on a real disk. SQLite runs it by default in the connection whose commit made the log
//! long enough, and the writer's whole batch, so every waiting webhook, would wait for it. Instead the
//! writer asks this task (every few hundred inserts), which runs a `PASSIVE` checkpoint: it copies what
//! is committed without blocking the writer, who keeps appending to the log meanwhile. The writer's own
//! connection still checkpoints if the log ever grows past [`FALLBACK_PAGES`] (this task failing, say).

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
    pub(super) fn start(connection: SqliteConnection) -> Self {
        let due = Arc::new(Notify::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(run(connection, Arc::clone(&due), stop.clone()));
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

async fn run(mut connection: SqliteConnection, due: Arc<Notify>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = due.notified() => {
                let checkpointed = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut connection)
                    .await;
                if let Err(err) = checkpointed {
                    warn!(store = "sqlite", error = %Chain(&err), "store_checkpoint_failed");
                }
            }
        }
    }
    // The store is closing or gone; a connection that does not close politely is closed by dropping it.
    let _ = connection.close().await;
}
