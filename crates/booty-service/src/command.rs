//! Running the configured job command: argv (never a shell), in the workspace, in its own process group,
//! with its output streamed into the log and a time limit that kills the whole group.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use booty_queue::{CancellationToken, JobOutput};
use rustix::process::{Pid, Signal, kill_process_group};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tracing::{info, warn};

use crate::supervise;

/// Lines of stderr kept for the job's error when the command fails.
const STDERR_TAIL_LINES: usize = 10;
/// Longer output lines are split; a command printing megabytes without a newline cannot exhaust memory.
const MAX_LINE_BYTES: usize = 16 * 1024;
/// After SIGTERM, how long the group gets before SIGKILL.
const TERM_GRACE: Duration = supervise::TERM_GRACE;

/// The exit code with which a command asks for its job to be tried again later (`EX_TEMPFAIL`).
pub const RETRY_EXIT_CODE: i32 = 75;

/// Variables of booty's own environment every command gets (when set): where programs are, who and where
/// it runs as, and the locale. Nothing else is inherited unless configured (`job_env_passthrough`):
/// booty's environment may hold secrets, and the command runs on text anyone can write into an issue.
pub const BASE_ENV: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
];

/// The `PATH` a command gets when booty itself has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How a run of the command ended, when it did not succeed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CommandError {
    /// The program could not be started (not found, not executable).
    #[error("cannot start job command `{program}`")]
    Spawn {
        /// `argv[0]`.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It exited with a non-zero code or was killed by a signal.
    #[error("job command {status}{}", tail_suffix(.stderr_tail))]
    Exited {
        /// The exit status.
        status: ExitStatus,
        /// The last lines it wrote to stderr.
        stderr_tail: Vec<String>,
    },
    /// It ran past `job_timeout_secs`; the process group was killed.
    #[error("job command timed out after {}s and was killed", .0.as_secs())]
    TimedOut(Duration),
    /// The job was cancelled (shutdown); the process group was killed.
    #[error("job command cancelled and killed")]
    Cancelled,
    /// Waiting for the process failed.
    #[error("lost track of the job command")]
    Wait(#[source] std::io::Error),
}

impl CommandError {
    /// Whether the command asked to be tried again: it exited with [`RETRY_EXIT_CODE`].
    pub(crate) fn asks_for_retry(&self) -> bool {
        matches!(self, Self::Exited { status, .. } if status.code() == Some(RETRY_EXIT_CODE))
    }
}

fn tail_suffix(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; stderr ends with: {}", tail.join(" | "))
    }
}

/// What to run, where, and with what around it.
pub(crate) struct Launch<'a> {
    /// The job command: program, then arguments.
    pub(crate) argv: &'a [String],
    /// Its working directory (the workspace).
    pub(crate) dir: &'a Path,
    /// Its whole environment, built by the caller ([`environment`]); nothing is inherited.
    pub(crate) env: Vec<(OsString, OsString)>,
    /// Run it under `booty supervise` with this executable (booty's own), so it dies with booty, holding
    /// these paths in use while it runs; `None` runs it directly.
    pub(crate) supervisor: Option<(&'a Path, Vec<&'a Path>)>,
    /// Where every line it prints goes too (the job's recorded output, its last 64 KiB kept), with each
    /// of `redact` (the credentials booty holds for the job) replaced by `<redacted>`.
    pub(crate) output: &'a JobOutput,
    /// Secrets never to be recorded, should the command print one.
    pub(crate) redact: &'a [String],
}

/// What a job command inherits: [`BASE_ENV`] and the `passthrough` variables, looked up with `lookup`
/// (the program's own environment, in the binary), those that are set; `PATH` is
/// `/usr/local/bin:/usr/bin:/bin` when unset.
pub fn inherited_env(
    passthrough: &[String],
    lookup: impl Fn(&str) -> Option<OsString>,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = BASE_ENV
        .iter()
        .copied()
        .chain(passthrough.iter().map(String::as_str))
        .filter_map(|name| Some((OsString::from(name), lookup(name)?)))
        .collect();
    if !env.iter().any(|(name, _)| name == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    env
}

/// The environment of one run: `inherited` ([`inherited_env`]), then `job` (the `BOOTY_*` variables),
/// each value made safe ([`env_value`]).
pub(crate) fn environment(
    inherited: &[(OsString, OsString)],
    job: &[(&'static str, &str)],
) -> Vec<(OsString, OsString)> {
    let mut env = inherited.to_vec();
    env.extend(
        job.iter()
            .map(|(name, value)| (OsString::from(name), env_value(value))),
    );
    env
}

/// The longest value booty puts in a command's environment; longer ones are cut (the event file has the
/// whole payload). Linux refuses a single variable over 128 KiB, and all of them together over a few MiB.
pub const MAX_ENV_VALUE_BYTES: usize = 4096;

/// `value` as an environment value that cannot keep the command from starting: NUL bytes (which no
/// environment can hold) removed, cut to [`MAX_ENV_VALUE_BYTES`] on a character boundary.
pub(crate) fn env_value(value: &str) -> OsString {
    let mut safe: String = value.chars().filter(|&c| c != '\0').collect();
    if safe.len() > MAX_ENV_VALUE_BYTES {
        let mut end = MAX_ENV_VALUE_BYTES;
        while !safe.is_char_boundary(end) {
            end -= 1;
        }
        safe.truncate(end);
    }
    safe.into()
}

/// Runs `launch` until it exits, `timeout` passes or `cancel` fires.
pub(crate) async fn run(
    launch: Launch<'_>,
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<(), CommandError> {
    let (program, arguments) = launch
        .argv
        .split_first()
        .expect("job_command is validated to be non-empty");
    let mut command = if let Some((booty, hold)) = &launch.supervisor {
        let mut command = Command::new(booty);
        command.arg("supervise");
        for path in hold {
            command.arg("--hold").arg(path);
        }
        command
            .arg("--")
            .args(launch.argv)
            // Its end is the supervisor's sign that booty is gone: kept open until the command exits.
            .stdin(Stdio::piped());
        command
    } else {
        let mut command = Command::new(program);
        command.args(arguments).stdin(Stdio::null());
        command
    };
    command
        .current_dir(launch.dir)
        .env_clear()
        .envs(launch.env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|source| CommandError::Spawn {
        program: program.clone(),
        source,
    })?;
    let group = child
        .id()
        .and_then(|id| Pid::from_raw(i32::try_from(id).ok()?));
    // Kills the group if this future is dropped half-way (the queue drops handlers that ignore their
    // token), so no grandchild outlives its job.
    let _guard = GroupGuard(group);
    let _booty_alive = child.stdin.take();
    info!(pid = child.id(), "job_command_started");

    let out_pipe = child.stdout.take().expect("stdout is piped");
    let err_pipe = child.stderr.take().expect("stderr is piped");
    let mut stderr_tail = VecDeque::with_capacity(STDERR_TAIL_LINES);
    let (recorded, redact) = (launch.output, launch.redact);
    let record = move |line: &str| {
        let mut line = line.to_owned();
        for secret in redact.iter().filter(|secret| !secret.is_empty()) {
            line = line.replace(secret.as_str(), "<redacted>");
        }
        line.push('\n');
        recorded.append(&line);
    };
    let output = async {
        tokio::join!(
            stream_lines(out_pipe, "stdout", record),
            stream_lines(err_pipe, "stderr", |line| {
                record(line);
                if stderr_tail.len() == STDERR_TAIL_LINES {
                    stderr_tail.pop_front();
                }
                stderr_tail.push_back(line.to_owned());
            }),
        )
    };
    let finished = async {
        let ((), ()) = output.await;
        child.wait().await
    };

    let status = tokio::select! {
        status = finished => status.map_err(CommandError::Wait)?,
        () = tokio::time::sleep(timeout) => {
            terminate(group).await;
            return Err(CommandError::TimedOut(timeout));
        }
        () = cancel.cancelled() => {
            terminate(group).await;
            return Err(CommandError::Cancelled);
        }
    };
    info!(exit_code = status.code(), "job_command_exited");
    if status.success() {
        Ok(())
    } else {
        Err(CommandError::Exited {
            status,
            stderr_tail: stderr_tail.into(),
        })
    }
}

/// Logs every line of `stream` as `job_output` with the stream's name, handing each to `each`.
async fn stream_lines(
    stream: impl AsyncRead + Unpin,
    name: &'static str,
    mut each: impl FnMut(&str),
) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match read_line_capped(&mut reader, &mut buf).await {
            Ok(0) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf);
                let line = line.trim_end_matches(['\n', '\r']);
                info!(stream = name, line, "job_output");
                each(line);
            }
            Err(err) => {
                warn!(stream = name, error = %err, "job_output_failed");
                return;
            }
        }
    }
}

/// Reads up to and including a newline, or [`MAX_LINE_BYTES`], whichever comes first.
async fn read_line_capped(
    reader: &mut (impl AsyncBufReadExt + Unpin),
    buf: &mut Vec<u8>,
) -> std::io::Result<usize> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(buf.len());
        }
        let room = MAX_LINE_BYTES - buf.len();
        let (take, done) = match available.iter().take(room).position(|&b| b == b'\n') {
            Some(newline) => (newline + 1, true),
            None => (available.len().min(room), available.len() >= room),
        };
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        if done {
            return Ok(buf.len());
        }
    }
}

/// SIGTERM to the group, then SIGKILL after [`TERM_GRACE`] if anything is left.
async fn terminate(group: Option<Pid>) {
    let Some(group) = group else { return };
    if kill_process_group(group, Signal::TERM).is_err() {
        return; // already gone
    }
    tokio::time::sleep(TERM_GRACE).await;
    let _ = kill_process_group(group, Signal::KILL);
}

/// SIGKILLs the process group when dropped; harmless when the group is already gone.
struct GroupGuard(Option<Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = kill_process_group(group, Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|&arg| arg.to_owned()).collect()
    }

    /// Runs `argv` directly (unit tests run without booty's executable to supervise it).
    async fn run_in(
        argv: &[String],
        dir: &Path,
        job: &[(&'static str, &str)],
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(), CommandError> {
        let output = JobOutput::default();
        let launch = Launch {
            argv,
            dir,
            env: environment(&inherited_env(&[], |name| std::env::var_os(name)), job),
            supervisor: None,
            output: &output,
            redact: &[],
        };
        run(launch, timeout, cancel).await
    }

    #[tokio::test]
    async fn what_the_command_prints_is_recorded_with_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let output = JobOutput::default();
        let secrets = ["ghs_s3cretInstallationToken".to_owned()];
        let launch = Launch {
            argv: &argv(&[
                "sh",
                "-c",
                "echo one; echo 'token ghs_s3cretInstallationToken here' >&2; echo three",
            ]),
            dir: dir.path(),
            env: environment(&inherited_env(&[], |name| std::env::var_os(name)), &[]),
            supervisor: None,
            output: &output,
            redact: &secrets,
        };
        run(launch, Duration::from_secs(30), &CancellationToken::new())
            .await
            .unwrap();
        let recorded = output.text();
        assert!(!recorded.contains("ghs_s3cret"), "{recorded}");
        let mut lines: Vec<&str> = recorded.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["one", "three", "token <redacted> here"]);
    }

    async fn run_sh(script: &str, timeout: Duration) -> Result<(), CommandError> {
        let dir = tempfile::tempdir().unwrap();
        run_in(
            &argv(&["sh", "-c", script]),
            dir.path(),
            &[],
            timeout,
            &CancellationToken::new(),
        )
        .await
    }

    #[tokio::test]
    async fn exit_code_and_stderr_tail_end_up_in_the_error() {
        let script = "for i in $(seq 1 15); do echo line$i >&2; done; exit 3";
        let err = run_sh(script, Duration::from_secs(30)).await.unwrap_err();
        let CommandError::Exited {
            status,
            stderr_tail,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(status.code(), Some(3));
        let expected: Vec<String> = (6..=15).map(|i| format!("line{i}")).collect();
        assert_eq!(stderr_tail, &expected);
        assert!(
            err.to_string()
                .starts_with("job command exit status: 3; stderr ends with: line6 | line7")
        );
    }

    #[tokio::test]
    async fn success_runs_in_the_directory_with_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let script = format!("pwd > {0}; echo \"$BOOTY_JOB_ID\" >> {0}", out.display());
        run_in(
            &argv(&["sh", "-c", &script]),
            dir.path(),
            &[("BOOTY_JOB_ID", "1-abc")],
            Duration::from_secs(30),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        let text = std::fs::read_to_string(out).unwrap();
        let expected_dir = dir.path().canonicalize().unwrap();
        assert_eq!(text, format!("{}\n1-abc\n", expected_dir.display()));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("grandchild");
        // The grandchild would outlive a kill of `sh` alone.
        let script = format!("sleep 300 & echo $! > {}; wait", pid_file.display());
        let err = run_in(
            &argv(&["sh", "-c", &script]),
            dir.path(),
            &[],
            Duration::from_millis(500),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, CommandError::TimedOut(_)), "{err:?}");
        let grandchild = std::fs::read_to_string(&pid_file).unwrap();
        let proc_dir = format!("/proc/{}", grandchild.trim());
        // Reaped by init or a zombie at most; never still sleeping.
        let state = std::fs::read_to_string(format!("{proc_dir}/stat")).unwrap_or_default();
        assert!(
            state.is_empty() || state.contains(") Z "),
            "grandchild still alive: {state}"
        );
    }

    #[tokio::test]
    async fn cancellation_kills_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        let sleep = argv(&["sleep", "300"]);
        let run = run_in(&sleep, dir.path(), &[], Duration::from_mins(10), &cancel);
        let (result, ()) = tokio::join!(run, async { trigger.cancel() });
        assert!(matches!(result, Err(CommandError::Cancelled)), "{result:?}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = run_in(
            &argv(&["/nonexistent/agent"]),
            dir.path(),
            &[],
            Duration::from_secs(5),
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot start job command `/nonexistent/agent`"
        );
    }

    #[tokio::test]
    async fn the_environment_is_built_from_nothing_and_its_values_always_start_a_command() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env");
        // A title no environment can hold as sent: a NUL byte, and 200 KiB (over Linux's 128 KiB limit for
        // one variable).
        let title = format!("a\0b{}", "é".repeat(100 * 1024));
        let script = format!("env > {}", out.display());
        run_in(
            &argv(&["sh", "-c", &script]),
            dir.path(),
            &[("BOOTY_ISSUE_TITLE", &title)],
            Duration::from_secs(30),
            &CancellationToken::new(),
        )
        .await
        .unwrap();
        let env = std::fs::read_to_string(out).unwrap();
        let names: Vec<&str> = env
            .lines()
            .filter_map(|line| line.split_once('=').map(|(name, _)| name))
            .collect();
        // Only what booty put there (sh adds PWD, and SHLVL or `_` depending on the shell).
        for name in &names {
            assert!(
                BASE_ENV.contains(name)
                    || name.starts_with("BOOTY_")
                    || ["PWD", "SHLVL", "_", "OLDPWD"].contains(name),
                "{name} was inherited: {names:?}"
            );
        }
        let value = env
            .lines()
            .find_map(|line| line.strip_prefix("BOOTY_ISSUE_TITLE="))
            .unwrap();
        assert!(
            value.starts_with("abé") && !value.contains('\0'),
            "{value:.20}"
        );
        assert!(value.len() <= MAX_ENV_VALUE_BYTES && value.len() > MAX_ENV_VALUE_BYTES - 4);
    }

    #[tokio::test]
    async fn exit_code_75_asks_for_a_retry_and_others_do_not() {
        let asks = run_sh("exit 75", Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(asks.asks_for_retry(), "{asks}");
        let fails = run_sh("exit 1", Duration::from_secs(30)).await.unwrap_err();
        assert!(!fails.asks_for_retry(), "{fails}");
    }

    #[tokio::test]
    async fn long_lines_are_split_not_buffered_whole() {
        let data = vec![b'x'; MAX_LINE_BYTES * 2 + 10];
        let mut reader = BufReader::new(&data[..]);
        let mut buf = Vec::new();
        assert_eq!(
            read_line_capped(&mut reader, &mut buf).await.unwrap(),
            MAX_LINE_BYTES
        );
        buf.clear();
        assert_eq!(
            read_line_capped(&mut reader, &mut buf).await.unwrap(),
            MAX_LINE_BYTES
        );
        buf.clear();
        assert_eq!(read_line_capped(&mut reader, &mut buf).await.unwrap(), 10);
    }
}
