//! `LISTEN booty_jobs`: the task that wakes this process's idle workers when another process made work
//! runnable.
//!
//! A trigger on `booty_jobs` notifies the channel, with the table's schema as the payload, whenever a job
//! is inserted, goes back to `queued`, or becomes final (which may free the next job of its lane). The
//! notification is only a hint: the workers' poll interval covers any that are lost with a connection,
//! and after every reconnection the task wakes the workers anyway.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::chain::Chain;

/// The channel the migration's trigger notifies.
const CHANNEL: &str = "booty_jobs";
const FIRST_PAUSE: Duration = Duration::from_millis(100);
const LONGEST_PAUSE: Duration = Duration::from_secs(5);

/// The listening task, stopped by [`Listener::stop`] or, failing that, aborted on drop.
#[derive(Debug)]
pub(super) struct Listener {
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Listener {
    /// Listens on one connection of `pool` (it stays taken until the store is closed) and signals
    /// `wake` for every notification about `schema`. Returns once `LISTEN` is in place, so any change
    /// committed after it wakes this process.
    pub(super) async fn start(
        pool: &PgPool,
        schema: String,
        wake: Arc<Notify>,
    ) -> Result<Self, sqlx::Error> {
        let mut listener = PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(listen(listener, schema, wake, stop.clone()));
        Ok(Self {
            stop,
            task: Mutex::new(Some(task)),
        })
    }

    /// Stops listening and waits for the task to end (it gives its connection back to the pool).
    pub(super) async fn stop(&self) {
        self.stop.cancel();
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            // The task only ends by returning; a join error would mean it panicked, over either way.
            let _ = task.await;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let task = self
            .task
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

async fn listen(
    mut listener: PgListener,
    schema: String,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut pause = FIRST_PAUSE;
    let mut failing = false;
    loop {
        let next = tokio::select! {
            () = stop.cancelled() => return,
            next = listener.try_recv() => next,
        };
        let reconnected = match next {
            Ok(Some(notification)) => {
                if notification.payload() == schema {
                    wake_all(&wake);
                }
                failing
            }
            // The connection was lost and a new one listens again.
            Ok(None) => true,
            Err(err) => {
                if !failing {
                    warn!(store = "postgres", error = %Chain(&err), "store_listener_failed");
                }
                failing = true;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(LONGEST_PAUSE);
                continue;
            }
        };
        if reconnected {
            // Whatever was notified while no connection listened is gone: look for it.
            info!(store = "postgres", "store_listener_reconnected");
            wake_all(&wake);
        }
        failing = false;
        pause = FIRST_PAUSE;
    }
}

/// Wakes every idle worker, and leaves a permit for one that is between a fruitless claim and its wait.
fn wake_all(wake: &Notify) {
    wake.notify_waiters();
    wake.notify_one();
}
