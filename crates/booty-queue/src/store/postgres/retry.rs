//! Lost connections: which failures are worth another try, how long to keep trying, and the log lines
//! that tell an operator the database went away and came back.

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use crate::chain::Chain;
use crate::store::{StoreError, sql};

/// What PostgreSQL calls its error codes, in messages.
pub(super) const CODE: &str = "SQLSTATE";

const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Why one try of an operation failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// A query failed before anything was committed: safe to run the operation again.
    Sql(sqlx::Error),
    /// `COMMIT` failed: the transaction may or may not have committed, so the operation is not repeated.
    Commit(sqlx::Error),
    /// Not the database's doing: a lost lease, a value that does not fit a column.
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        Self::Sql(err)
    }
}

/// How hard an operation tries.
#[derive(Debug, Clone, Copy)]
pub(super) enum Patience {
    /// Submissions and inspection: a connection that died in the pool (a restarted server, a terminated
    /// backend) is replaced and the operation run again at once, but an unreachable database is reported
    /// after one acquire timeout, so the webhook gets its `503` quickly.
    Once,
    /// Worker operations: retry dropped connections and an unreachable database, backing off from 50 ms
    /// to 1 s, for this long.
    For(Duration),
}

/// What kind of trouble a database error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// The connection died under the query (I/O error, server shutdown, terminated backend).
    Dropped,
    /// No connection could be had within the acquire timeout: the server is down or unreachable.
    Unreachable,
    /// The server rolled the transaction back to break a deadlock or a serialization conflict.
    RolledBack,
    /// Anything else (a bad query, a constraint): trying again would fail again.
    Other,
}

fn trouble(err: &sqlx::Error) -> Trouble {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Trouble::Dropped,
        sqlx::Error::PoolTimedOut => Trouble::Unreachable,
        sqlx::Error::Database(db) => match db.code().as_deref() {
            // admin_shutdown (pg_terminate_backend, a fast shutdown), crash_shutdown, cannot_connect_now.
            Some("57P01" | "57P02" | "57P03") => Trouble::Dropped,
            Some(code) if code.starts_with("08") => Trouble::Dropped,
            Some("40001" | "40P01") => Trouble::RolledBack,
            _ => Trouble::Other,
        },
        _ => Trouble::Other,
    }
}

/// Whether the database answers, so that losing and regaining it is logged once each, not per query.
#[derive(Debug, Default)]
pub(super) struct Health {
    down: AtomicBool,
}

impl Health {
    fn answered(&self) {
        if self.down.swap(false, Ordering::SeqCst) {
            info!(store = "postgres", "store_connection_restored");
        }
    }

    fn failed(&self, operation: &'static str, err: &sqlx::Error) {
        if matches!(trouble(err), Trouble::Dropped | Trouble::Unreachable)
            && !self.down.swap(true, Ordering::SeqCst)
        {
            warn!(store = "postgres", operation, error = %Chain(err), "store_connection_lost");
        }
    }
}

/// The retry state of one operation: `judge` each try's result until it says `Break`.
pub(super) struct Retry<'a> {
    health: &'a Health,
    operation: &'static str,
    patience: Patience,
    started: Instant,
    tries: u32,
    pause: Duration,
}

impl<'a> Retry<'a> {
    pub(super) fn new(health: &'a Health, operation: &'static str, patience: Patience) -> Self {
        Self {
            health,
            operation,
            patience,
            started: Instant::now(),
            tries: 0,
            pause: FIRST_PAUSE,
        }
    }

    /// `Break` with the operation's answer, or wait (if the patience asks for it) and `Continue`: the
    /// caller runs the operation again.
    pub(super) async fn judge<T>(
        &mut self,
        result: Result<T, Failure>,
    ) -> ControlFlow<Result<T, StoreError>> {
        let err = match result {
            Ok(value) => {
                self.health.answered();
                return ControlFlow::Break(Ok(value));
            }
            Err(Failure::Store(err)) => {
                self.health.answered();
                return ControlFlow::Break(Err(err));
            }
            Err(Failure::Commit(err)) => {
                self.health.failed(self.operation, &err);
                return ControlFlow::Break(Err(self.backend(err)));
            }
            Err(Failure::Sql(err)) => err,
        };
        self.health.failed(self.operation, &err);
        let pause = match (self.patience, trouble(&err)) {
            (_, Trouble::Other) | (Patience::Once, Trouble::Unreachable) => None,
            (Patience::Once, _) => (self.tries == 0).then_some(Duration::ZERO),
            (Patience::For(budget), _) => {
                (self.started.elapsed() + self.pause < budget).then_some(self.pause)
            }
        };
        let Some(pause) = pause else {
            return ControlFlow::Break(Err(self.backend(err)));
        };
        self.tries += 1;
        warn!(
            store = "postgres",
            operation = self.operation,
            attempt = self.tries,
            pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX),
            error = %Chain(&err),
            "store_retrying"
        );
        tokio::time::sleep(pause).await;
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
        ControlFlow::Continue(())
    }

    fn backend(&self, err: sqlx::Error) -> StoreError {
        StoreError::Backend {
            store: "postgres",
            operation: self.operation,
            source: sql::cause(err, CODE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(kind: std::io::ErrorKind) -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::from(kind))
    }

    async fn verdict(retry: &mut Retry<'_>, err: sqlx::Error) -> bool {
        retry
            .judge::<()>(Err(Failure::Sql(err)))
            .await
            .is_continue()
    }

    #[tokio::test(start_paused = true)]
    async fn submissions_replace_a_dead_connection_once_and_never_wait_for_a_dead_server() {
        let health = Health::default();
        let mut retry = Retry::new(&health, "insert", Patience::Once);
        assert!(verdict(&mut retry, io(std::io::ErrorKind::UnexpectedEof)).await);
        assert!(!verdict(&mut retry, io(std::io::ErrorKind::UnexpectedEof)).await);

        let mut retry = Retry::new(&health, "insert", Patience::Once);
        assert!(!verdict(&mut retry, sqlx::Error::PoolTimedOut).await);
        let mut retry = Retry::new(&health, "insert", Patience::Once);
        assert!(!verdict(&mut retry, sqlx::Error::RowNotFound).await);
    }

    #[tokio::test(start_paused = true)]
    async fn worker_operations_back_off_until_their_budget_runs_out() {
        let health = Health::default();
        let mut retry = Retry::new(&health, "finish", Patience::For(Duration::from_secs(3)));
        let started = Instant::now();
        let mut pauses = Vec::new();
        loop {
            let before = Instant::now();
            if !verdict(&mut retry, sqlx::Error::PoolTimedOut).await {
                break;
            }
            pauses.push(before.elapsed());
        }
        let millis: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(millis, [50, 100, 200, 400, 800, 1000]);
        assert!(started.elapsed() < Duration::from_secs(3));

        let mut retry = Retry::new(&health, "finish", Patience::For(Duration::from_secs(3)));
        assert!(!verdict(&mut retry, sqlx::Error::RowNotFound).await);
    }

    #[tokio::test(start_paused = true)]
    async fn an_uncertain_commit_is_never_repeated() {
        let health = Health::default();
        let mut retry = Retry::new(&health, "finish", Patience::For(Duration::from_secs(3)));
        let answer = retry
            .judge::<()>(Err(Failure::Commit(io(std::io::ErrorKind::UnexpectedEof))))
            .await;
        match answer {
            ControlFlow::Break(Err(StoreError::Backend {
                store, operation, ..
            })) => assert_eq!((store, operation), ("postgres", "finish")),
            other => panic!("expected a backend error, got {other:?}"),
        }
    }
}
