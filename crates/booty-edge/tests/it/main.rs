//! Integration tests for booty-edge: real HTTP over loopback with hyper's client, or raw TCP where a test
//! has to misbehave.

#![allow(
    clippy::unwrap_used,
    reason = "tests may unwrap (style.md rule 5), and that includes the helpers outside #[test] functions"
)]

mod connections;
mod contract;
mod harness;
mod limits;
mod routes;
mod service;
