//! `booty supervise` (hidden): the job command's supervisor, which booty starts as its own executable so a
//! command dies with booty (`booty_service::supervise`).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

/// `booty supervise --hold PATH ... -- PROGRAM ARGS...`.
#[derive(Debug, clap::Args)]
pub(crate) struct SuperviseArgs {
    /// A path kept marked in use while the job runs (repeatable).
    #[arg(long, value_name = "PATH")]
    hold: Vec<PathBuf>,

    /// The job command: program and arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<OsString>,
}

/// Runs the supervisor; its exit status is the command's.
pub(crate) fn run(args: &SuperviseArgs) -> ExitCode {
    // booty built this process's environment for the command; it passes on as it is.
    let env = std::env::vars_os().collect();
    booty_service::supervise::run(&args.hold, &args.command, env).unwrap_or_else(|err| {
        eprintln!("booty supervise: {}", booty_service::error_chain(&err));
        ExitCode::from(booty_service::supervise::NOT_STARTED)
    })
}
