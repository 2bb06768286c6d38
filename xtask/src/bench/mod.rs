//! `cargo xtask bench`: load benchmarks that need more than criterion (several processes, pinned cores).
//!
//! `cargo xtask bench ingest` measures the webhook edge, or with `--store` the `booty` binary storing
//! jobs in one or several processes: see [`ingest`].

mod fleet;
mod ingest;
mod load;

use clap::{Args, Subcommand};

/// The benchmark to run.
#[derive(Debug, Args)]
pub(crate) struct Bench {
    #[command(subcommand)]
    which: Which,
}

#[derive(Debug, Subcommand)]
enum Which {
    /// Signed 12 KB `issues.labeled` deliveries into the edge, server and load generator on their own cores.
    Ingest(ingest::IngestArgs),
    /// The load generator alone (`bench ingest` runs it pinned to its core; rarely useful by hand).
    #[command(hide = true)]
    Load(load::LoadArgs),
}

/// Runs the chosen benchmark.
pub(crate) fn run(bench: Bench) -> anyhow::Result<()> {
    match bench.which {
        Which::Ingest(args) => ingest::run(&args),
        Which::Load(args) => load::run(&args),
    }
}
