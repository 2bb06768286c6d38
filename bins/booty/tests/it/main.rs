//! End-to-end tests of the `booty` binary: the built executable as a subprocess, a real git repository,
//! real HTTP on loopback, and its JSON log.

#![allow(
    clippy::unwrap_used,
    reason = "tests unwrap: a failure is the test failing"
)]

mod admin;
mod app;
mod cancel;
mod check;
mod chromium;
mod faults;
mod github;
mod lifecycle;
mod page;
mod postgres;
mod publish;
mod recovery;
mod sqlite;
mod support;
