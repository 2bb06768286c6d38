//! Integration tests for booty-queue: the store contract (written once, run against every store), the
//! engine on the memory store, shutdown, and the log events.

#![allow(
    clippy::unwrap_used,
    reason = "the contract checks and helpers are test code outside #[test] functions; a panic is a failure"
)]

mod contract;
mod engine;
mod logs;
mod memory;
mod shutdown;
mod support;
