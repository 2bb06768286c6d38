//! The job command's supervisor: runs a job command so that it dies with booty, however booty dies.
//!
//! booty starts its own executable as the supervisor (`booty supervise --hold PATH ... -- COMMAND...`, in the
//! job's process group; a program embedding this crate calls [`run`] the same way, see
//! [`JobCommand::supervisor`](crate::JobCommand::supervisor)), and keeps the write end of a pipe that is the
//! supervisor's standard input. The supervisor:
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

use rustix::process::{Signal, getpid, kill_current_process_group, kill_process};
use tokio::io::AsyncReadExt;
use tokio::process::Command;
use tokio::signal::unix::{SignalKind, signal};

/// After SIGTERM, how long the group gets before SIGKILL (booty's own grace is the same).
pub(crate) const TERM_GRACE: Duration = Duration::from_secs(2);

/// The exit code to use when the supervisor could not start the command (none of the command's own, 126
/// and 127 being the shell's for "not executable" and "not found").
pub const NOT_STARTED: u8 = 125;

/// The supervisor could not run the command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuperviseError {
    /// A path to hold could not be opened or locked.
    #[error("cannot hold {}", path.display())]
    Hold {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A path to hold was swept before the command started (its job is gone).
    #[error("{} was swept before the job command started", .0.display())]
    Swept(PathBuf),
    /// No command was given.
    #[error("no command to run")]
    NoCommand,
    /// The command could not be started, or waited for.
    #[error("cannot run job command `{program}`")]
    Command {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Holds `hold`, runs `command` with exactly `env` (the supervisor's own, which booty built) and waits for it, ending it with its process group when standard input
/// ends (booty is gone); returns the exit code to exit with, the command's own. A command killed by a
/// signal kills the supervisor with the same signal (SIGTERM, which the supervisor handles, becomes exit
/// code 143).
///
/// # Errors
/// A [`SuperviseError`] when the command could not be started; exit with [`NOT_STARTED`] then.
pub fn run(
    hold: &[PathBuf],
    command: &[OsString],
    env: Vec<(OsString, OsString)>,
) -> Result<ExitCode, SuperviseError> {
    let mut locks = Vec::with_capacity(hold.len());
    for path in hold {
        let failed = |source| SuperviseError::Hold {
            path: path.clone(),
            source,
        };
        let file = File::open(path).map_err(failed)?;
        if !booty_workspace::mark_in_use(&file, path).map_err(failed)? {
            return Err(SuperviseError::Swept(path.clone()));
        }
        locks.push(file);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| SuperviseError::Command {
            program: String::new(),
            source,
        })?;
    let status = runtime.block_on(wait_for_command(command, env));
    // The read of standard input may still block a thread: do not wait for it.
    runtime.shutdown_background();
    let status = status?;
    drop(locks);
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

async fn wait_for_command(
    command: &[OsString],
    env: Vec<(OsString, OsString)>,
) -> Result<std::process::ExitStatus, SuperviseError> {
    let (program, arguments) = command.split_first().ok_or(SuperviseError::NoCommand)?;
    let failed = |source| SuperviseError::Command {
        program: program.to_string_lossy().into_owned(),
        source,
    };
    // Handled, so a SIGTERM to the group (booty's, or this process's own when booty is gone) leaves the
    // supervisor waiting for the command instead of ending it first.
    let mut term = signal(SignalKind::terminate()).map_err(failed)?;
    let mut child = Command::new(program)
        .args(arguments)
        // booty built this environment from nothing; pass exactly that on.
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .spawn()
        .map_err(failed)?;
    let mut booty = tokio::io::stdin();
    let mut byte = [0_u8; 1];
    let mut booty_gone = false;
    loop {
        tokio::select! {
            status = child.wait() => return status.map_err(failed),
            _ = term.recv() => {}
            read = booty.read(&mut byte), if !booty_gone => {
                if matches!(read, Ok(0) | Err(_)) {
                    booty_gone = true;
                    let _ = kill_current_process_group(Signal::TERM);
                    tokio::select! {
                        status = child.wait() => return status.map_err(failed),
                        () = tokio::time::sleep(TERM_GRACE) => {}
                    }
                    // The group, this process included.
                    let _ = kill_current_process_group(Signal::KILL);
                }
            }
        }
    }
}
