//! Integration tests for booty-service: real HTTP over loopback with hyper's client, or raw TCP where a
//! test has to misbehave.

#![allow(
    clippy::unwrap_used,
    reason = "tests may unwrap (style.md rule 5), and that includes the helpers outside #[test] functions"
)]

mod admin;
mod jobs;
mod sink;
