//! `booty supervise` (hidden): runs a job command so that it dies with booty, however booty dies.
//!
//! booty starts this process (its own executable, in the job's process group) with the job command after
//! `--`, and keeps the write end of a pipe that is this process's standard input. The supervisor:
//!
//! 1. takes a shared lock on each `--hold` path (the workspace, the event file), so a sweep by a booty
//!    started meanwhile leaves them alone for as long as anything of the job runs
//!    (`booty_workspace::mark_in_use`);
//! 2. starts the command in the same process group, with the environment and directory booty gave it
//!    (already built by booty from scratch) and no standard input;
//! 3. waits. When the command exits, it exits the same way. When its standard input reaches its end, booty
//!    is gone (`kill -9` included: the kernel closes the pipe): it sends SIGTERM to the whole group, and
//!    SIGKILL after the grace, which ends it too. A SIGTERM booty sends the group itself (a timeout, a
//!    cancelled job) is the command's to act on; the supervisor waits for the command.
//!
//! The locks go with the process, so they are released only once nothing of the job is left to run.

use std::ffi::OsString;
use std::fs::File;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use rustix::process::{Signal, getpid, kill_current_process_group, kill_process};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

/// After SIGTERM, how long the group gets before SIGKILL (booty's own grace is the same).
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(2);

/// The exit code when the supervisor could not start the command (none of the command's own, 126 and
/// 127 being the shell's for "not executable" and "not found").
const NOT_STARTED: u8 = 125;

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
    match supervise(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("booty supervise: {err:#}");
            ExitCode::from(NOT_STARTED)
        }
    }
}

fn supervise(args: &SuperviseArgs) -> anyhow::Result<ExitCode> {
    let mut held = Vec::with_capacity(args.hold.len());
    for path in &args.hold {
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let marked = booty_workspace::mark_in_use(&file, path)
            .with_context(|| format!("cannot lock {}", path.display()))?;
        if !marked {
            bail!(
                "{} was swept before the job command started",
                path.display()
            );
        }
        held.push(file);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let status = runtime.block_on(wait_for_command(&args.command));
    // The read of standard input may still block a thread: do not wait for it.
    runtime.shutdown_background();
    let status = status?;
    drop(held);
    if let Some(code) = status.code() {
        return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
    }
    // Killed by a signal: die of the same one, so booty sees what the command saw. SIGTERM is handled
    // here (see `wait_for_command`), so it cannot be re-raised: 128 + its number, as a shell says it.
    let signal = std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0);
    if let Some(same) = Signal::from_named_raw(signal)
        && same != Signal::TERM
    {
        let _ = kill_process(getpid(), same);
    }
    Ok(ExitCode::from(u8::try_from(128 + signal).unwrap_or(1)))
}

async fn wait_for_command(command: &[OsString]) -> anyhow::Result<std::process::ExitStatus> {
    let (program, arguments) = command.split_first().context("no command to run")?;
    // Handled, so a SIGTERM to the group (booty's, or this process's own when booty is gone) leaves the
    // supervisor waiting for the command instead of ending it first.
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut child = Command::new(program)
        .args(arguments)
        // booty built this environment from nothing; pass exactly that on.
        .env_clear()
        .envs(std::env::vars_os())
        .stdin(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start job command `{}`", program.to_string_lossy()))?;
    let mut booty = tokio::io::stdin();
    let mut byte = [0_u8; 1];
    let mut booty_gone = false;
    loop {
        tokio::select! {
            status = child.wait() => return status.context("lost track of the job command"),
            _ = term.recv() => {}
            read = booty.read(&mut byte), if !booty_gone => {
                if matches!(read, Ok(0) | Err(_)) {
                    booty_gone = true;
                    let _ = kill_current_process_group(Signal::TERM);
                    tokio::select! {
                        status = child.wait() => return status.context("lost track of the job command"),
                        () = tokio::time::sleep(TERM_GRACE) => {}
                    }
                    // The group, this process included.
                    let _ = kill_current_process_group(Signal::KILL);
                }
            }
        }
    }
}
