//! Marks the PostgreSQL store's tests `ignored` when there is no server to run them against.
//!
//! They need the server named by `BOOTY_TEST_POSTGRES_URL`. libtest decides what is ignored when a test
//! is compiled, not when it runs, so this sets `cfg(booty_postgres_tests)` when the variable is set and
//! not empty, and each such test carries
//! `#[cfg_attr(not(booty_postgres_tests), ignore = "BOOTY_TEST_POSTGRES_URL is not set")]`. Cargo runs
//! this again, and rebuilds the package, whenever the variable changes. `bins/booty/build.rs` is the
//! same for the binary's end-to-end tests.

#![allow(
    clippy::print_stdout,
    reason = "a build script talks to cargo on stdout"
)]

const URL: &str = "BOOTY_TEST_POSTGRES_URL";

fn main() {
    println!("cargo::rustc-check-cfg=cfg(booty_postgres_tests)");
    println!("cargo::rerun-if-env-changed={URL}");
    if std::env::var_os(URL).is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=booty_postgres_tests");
    }
}
