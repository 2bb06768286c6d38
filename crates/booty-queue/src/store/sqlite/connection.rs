//! The store's connection as every write uses it: taken from the pool, and closed instead of returned
//! whenever a write did not end cleanly.
//!
//! A failed statement or commit can leave a SQLite connection in a state nobody knows: SQLite rolls a
//! transaction back by itself after some errors (`SQLITE_FULL`, `SQLITE_IOERR`, ...) and not after others,
//! and sqlx's own `Transaction` then counts a transaction that no longer exists (after one full disk,
//! every later `begin_with` failed with `attempted to call begin_with at non-zero transaction depth`
//! until a restart). So writes do not use sqlx's transactions: [`Tx`] sends `BEGIN IMMEDIATE`, `COMMIT`
//! and `ROLLBACK` itself, and a connection whose write failed, or was dropped half-way (a cancelled
//! future), is closed; the pool opens a fresh one for the next call. Errors are rare, and a new
//! connection costs a millisecond.

use sqlx::pool::PoolConnection;
use sqlx::sqlite::Sqlite;
use sqlx::{SqliteConnection, SqlitePool};

/// A pooled connection that is closed on drop unless [`Held::release`] gave it back in a known state.
#[derive(Debug)]
pub(super) struct Held(Option<PoolConnection<Sqlite>>);

impl Held {
    pub(super) async fn acquire(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        Ok(Self(Some(pool.acquire().await?)))
    }

    pub(super) fn connection(&mut self) -> &mut SqliteConnection {
        self.0
            .as_deref_mut()
            .expect("a held connection is only taken by release or drop")
    }

    /// The connection is outside any transaction: back to the pool.
    pub(super) fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(mut connection) = self.0.take() {
            connection.close_on_drop();
        }
    }
}

/// One `BEGIN IMMEDIATE` transaction: [`Tx::commit`] or [`Tx::rollback`] end it; dropped or failed, its
/// connection is closed, which ends it too.
#[derive(Debug)]
pub(super) struct Tx(Held);

impl Tx {
    pub(super) async fn begin(pool: &SqlitePool) -> Result<Self, sqlx::Error> {
        let mut held = Held::acquire(pool).await?;
        sqlx::query("BEGIN IMMEDIATE")
            .execute(held.connection())
            .await?;
        Ok(Self(held))
    }

    pub(super) fn connection(&mut self) -> &mut SqliteConnection {
        self.0.connection()
    }

    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        self.end("COMMIT").await
    }

    pub(super) async fn rollback(self) -> Result<(), sqlx::Error> {
        self.end("ROLLBACK").await
    }

    async fn end(mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        sqlx::query(statement).execute(self.connection()).await?;
        self.0.release();
        Ok(())
    }
}
