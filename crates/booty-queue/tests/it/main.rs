//! Integration tests for booty-queue: the store contract (written once, run against every store), the
//! engine on the memory store, shutdown, the log events, and (feature `postgres`) the PostgreSQL store.

#![allow(
    clippy::unwrap_used,
    reason = "the contract checks and helpers are test code outside #[test] functions; a panic is a failure"
)]

mod contract;
mod engine;
mod logs;
mod memory;
mod observer;
#[cfg(feature = "postgres")]
mod postgres;
mod shutdown;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "sqlite")]
mod sqlite_faults;
mod support;
