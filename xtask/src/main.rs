//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! One module per task, as in rust-analyzer's xtask: [`ci`] runs every check CI runs, [`deny`] runs
//! cargo-deny (including the advisories that need a network), [`fixtures`] refreshes the fixtures vendored from
//! npm (booty-event's webhook payloads, the part of GitHub's OpenAPI description booty-testkit's fake GitHub
//! is built from), [`bench`](mod@bench) runs every benchmark into one report, [`fuzz`] runs the
//! cargo-fuzz targets in `fuzz/`, [`soak`] keeps the binary under mixed traffic and checks for leaks. The
//! `tidy` test keeps the tree honest.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "xtask is a command-line program that reports to its user"
)]

mod bench;
mod ci;
mod deny;
mod fixtures;
mod fuzz;
mod shell;
mod soak;
#[cfg(test)]
mod tidy;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Project automation for booty.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Every check CI runs, in order, stopping at the first failure: fmt, clippy, test, doc, deny.
    Ci,
    /// cargo-deny with every check, advisories included (needs network access to the advisory database).
    Deny,
    /// Refresh the fixtures vendored from npm: booty-event's webhook payloads (`@octokit/webhooks-examples`)
    /// and the operations booty-github calls from GitHub's OpenAPI description (`@octokit/openapi`), both
    /// pinned (needs npm and the registry; tests never do).
    Fixtures,
    /// Every benchmark in one report (`target/bench/report.md`); `--quick` for a smoke run. `bench ingest`
    /// loads the edge alone, or the binary with one store; `bench instructions` counts the instructions a
    /// delivery costs, under valgrind.
    Bench(bench::Bench),
    /// Run each cargo-fuzz target in `fuzz/` for a while (needs a nightly toolchain), from a seed corpus of
    /// real payloads; fails naming the artifact if one crashes.
    Fuzz(fuzz::Args),
    /// The release binary under 10 minutes of mixed traffic with a job command; then checks that every
    /// accepted job ran once and that memory, file descriptors and workspaces were not leaked.
    Soak(soak::SoakArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Ci => ci::run(),
        Task::Deny => deny::run_all(),
        Task::Fixtures => fixtures::run(),
        Task::Bench(bench) => bench::run(&bench),
        Task::Fuzz(args) => fuzz::run(&args),
        Task::Soak(args) => soak::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
