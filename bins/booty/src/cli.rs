//! The command line: `booty [serve] | check | send | recover | jobs | app create`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Turns a labelled GitHub issue into a ready workspace on `agent/issue-N`.
#[derive(Debug, Parser)]
#[command(name = "booty", version, about)]
pub(crate) struct Cli {
    /// Configuration file (default: `booty.toml` in the working directory, when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the service until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Validate the configuration and print the effective values, secrets redacted.
    Check,
    /// Sign a payload file and deliver it like GitHub would.
    Send(SendArgs),
    /// One pass recovering the webhook deliveries GitHub could not deliver: print what it found and
    /// what it submitted.
    Recover(RecoverArgs),
    /// List, show, retry or cancel jobs through the admin listener (with `admin_token` from the
    /// configuration).
    Jobs(JobsArgs),
    /// booty's GitHub App.
    #[command(subcommand)]
    App(AppCommand),
    /// Internal: run a job command so it dies with booty (booty starts it; see `supervise.rs`).
    #[command(hide = true)]
    Supervise(crate::supervise::SuperviseArgs),
}

/// `booty recover [--since DURATION] [--dry-run]`.
#[derive(Debug, Args)]
pub(crate) struct RecoverArgs {
    /// Look back this far (`90s`, `30m`, `6h`, `3d`; at most `recovery_max_age_secs`) instead of from
    /// where the last pass got to; the stored point is then left as it is.
    #[arg(long, value_name = "DURATION", value_parser = crate::recover::parse_duration)]
    pub(crate) since: Option<std::time::Duration>,

    /// Fetch and judge the missed deliveries, print what a pass would submit, and submit none.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// `booty app ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum AppCommand {
    /// Make booty's GitHub App through GitHub's manifest flow (a page on loopback, one click on GitHub),
    /// and write its key, its webhook secret and a booty.toml that uses them.
    Create(crate::app::CreateArgs),
}

/// `booty send PAYLOAD.json --event issues`.
#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    /// The JSON payload to deliver.
    pub(crate) payload: PathBuf,

    /// The event name sent as `X-GitHub-Event`.
    #[arg(long)]
    pub(crate) event: String,

    /// Where to deliver (default: `http://<listen>/webhooks/github` from the configuration).
    #[arg(long)]
    pub(crate) url: Option<String>,

    /// Sign with `webhook_secret` from the configuration (the default when `--secret` is not given).
    #[arg(long, conflicts_with = "secret")]
    pub(crate) secret_from_config: bool,

    /// Sign with this secret instead (visible to other users of the machine in the process list).
    #[arg(long)]
    pub(crate) secret: Option<String>,

    /// Send `application/x-www-form-urlencoded` with the JSON in the `payload` field.
    #[arg(long)]
    pub(crate) form: bool,

    /// The `X-GitHub-Delivery` id (default: a fresh random GUID); reuse one to try a redelivery.
    #[arg(long)]
    pub(crate) delivery: Option<String>,
}

/// `booty jobs list|show|retry|cancel`.
#[derive(Debug, Args)]
pub(crate) struct JobsArgs {
    /// The admin listener (default: `http://<admin_listen>` from the configuration).
    #[arg(long, global = true)]
    pub(crate) url: Option<String>,

    #[command(subcommand)]
    pub(crate) action: JobsAction,
}

#[derive(Debug, Subcommand)]
pub(crate) enum JobsAction {
    /// The jobs, newest first: id, state, attempts, repository#issue, created, error.
    List {
        /// Only jobs in this state (queued, running, retrying, succeeded, failed, cancelled, abandoned).
        #[arg(long)]
        state: Option<String>,
        /// Only jobs of this repository (`owner/name`).
        #[arg(long)]
        repository: Option<String>,
        /// At most this many (1 to 500; default 50).
        #[arg(long)]
        limit: Option<usize>,
    },
    /// One job, as JSON: its attempts, timings, error and output.
    Show {
        /// The job id (`{issue}-{delivery}`).
        job_id: String,
    },
    /// Run a failed or cancelled job again (its attempts continue).
    Retry {
        /// The job id.
        job_id: String,
    },
    /// Cancel a queued, retrying or running job.
    Cancel {
        /// The job id.
        job_id: String,
    },
}
