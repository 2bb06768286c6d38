//! `cargo xtask bench`: every benchmark in one report, and load benchmarks that need more than criterion
//! (several processes, pinned cores).
//!
//! `cargo xtask bench [--quick]` runs the crates' criterion benchmarks, the `booty` binary under load with
//! each store, and the clone benchmark, and writes `target/bench/report.{md,json}`: see [`all`].
//! `cargo xtask bench ingest` measures the webhook edge alone, or with `--store` the `booty` binary storing
//! jobs in one or several processes: see [`ingest`]. `cargo xtask bench instructions` counts the
//! instructions a delivery costs under valgrind: see [`instructions`].

mod all;
mod criterion;
pub(crate) mod fleet;
mod ingest;
mod instructions;
mod load;
mod octokit;
mod report;

use clap::{Args, Subcommand};

/// The benchmark to run; without one, all of them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct Bench {
    #[command(subcommand)]
    which: Option<Which>,
    #[command(flatten)]
    all: all::AllArgs,
}

#[derive(Debug, Subcommand)]
enum Which {
    /// Signed 12 KB `issues.labeled` deliveries into the edge, server and load generator on their own cores.
    Ingest(ingest::IngestArgs),
    /// User-space instructions per delivery, counted by valgrind's callgrind: booty beside the floor and
    /// a baseline, repeatable on a busy machine.
    Instructions(instructions::InstructionsArgs),
    /// The load generator alone (`bench ingest` runs it pinned to its core; rarely useful by hand).
    #[command(hide = true)]
    Load(load::LoadArgs),
}

/// Runs the chosen benchmark, or all of them.
pub(crate) fn run(bench: &Bench) -> anyhow::Result<()> {
    match &bench.which {
        None => all::run(&bench.all),
        Some(Which::Ingest(args)) => ingest::run(args),
        Some(Which::Instructions(args)) => instructions::run(args),
        Some(Which::Load(args)) => load::run(args),
    }
}
