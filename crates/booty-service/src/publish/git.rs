//! The `git` CLI, as publishing runs it: never with a token in argv, a file or `.git/config`.
//!
//! Work on the job's workspace (committing what the command left, reading the branch) runs without any
//! credential: the workspace's `.git/config` and hooks were in the command's reach. Work that talks to
//! GitHub runs in a bare repository of booty's own outside the workspace (its objects borrowed from the
//! workspace through `objects/info/alternates`), so nothing the command wrote into the workspace's
//! configuration (`url.*.insteadOf`, `http.proxy`, `credential.helper`...) applies to a process that holds
//! the token; the token reaches that one process through environment-supplied configuration
//! (`GIT_CONFIG_COUNT`, `http.extraHeader`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use tokio::process::Command;

use crate::scratch::HeldDir;

/// How long one git invocation may take before it is killed.
const GIT_TIMEOUT: Duration = Duration::from_mins(5);
/// The most of git's stderr an error keeps.
const MAX_STDERR_BYTES: usize = 2048;

/// Who booty's own commits (of what the command left uncommitted) are by.
pub(crate) const BOOTY_NAME: &str = "booty";
/// The address of booty's own commits.
pub(crate) const BOOTY_EMAIL: &str = "booty@users.noreply.github.com";

/// A git invocation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// git could not be started.
    #[error("cannot run `git {step}`")]
    Spawn {
        /// What it was asked to do.
        step: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// git exited non-zero.
    #[error("`git {step}` failed: {stderr}")]
    Failed {
        /// What it was asked to do.
        step: &'static str,
        /// The end of what it wrote to stderr (secrets redacted by the caller's environment: none are
        /// ever in it, the token travels in a header git does not print).
        stderr: String,
    },
    /// git ran past its time limit (5 minutes) and was killed.
    #[error("`git {step}` timed out and was killed")]
    TimedOut {
        /// What it was asked to do.
        step: &'static str,
    },
}

impl GitError {
    /// Whether trying again later may work: the network, GitHub's 5xx, a timeout.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Spawn { .. } => false,
            Self::TimedOut { .. } => true,
            Self::Failed { stderr, .. } => {
                let stderr = stderr.to_ascii_lowercase();
                [
                    "returned error: 5",
                    "could not resolve host",
                    "connection refused",
                    "connection reset",
                    "timed out",
                    "early eof",
                    "the remote end hung up",
                    "failed to connect",
                    "empty reply",
                    "returned error: 429",
                ]
                .iter()
                .any(|sign| stderr.contains(sign))
            }
        }
    }

    /// Whether GitHub refused the credentials' access (403: a missing permission).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, Self::Failed { stderr, .. } if stderr.contains("returned error: 403")
            || stderr.contains("denied to"))
    }
}

/// The environment every git invocation gets: nothing of booty's own but `PATH`, no system or global
/// configuration, no prompts, C messages (so they can be recognised).
fn base_env(path: Option<&OsString>) -> Vec<(OsString, OsString)> {
    let path = path
        .cloned()
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    vec![
        ("PATH".into(), path),
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
        ("GIT_ASKPASS".into(), "".into()),
        ("SSH_ASKPASS".into(), "".into()),
        ("LC_ALL".into(), "C".into()),
        ("HOME".into(), "/nonexistent".into()),
    ]
}

/// Runs git; Ok(stdout) when it exits 0.
async fn run(
    step: &'static str,
    args: &[&std::ffi::OsStr],
    env: Vec<(OsString, OsString)>,
) -> Result<String, GitError> {
    let mut command = Command::new("git");
    command
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .map_err(|source| GitError::Spawn { step, source })?;
    let output = tokio::time::timeout(GIT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| GitError::TimedOut { step })?
        .map_err(|source| GitError::Spawn { step, source })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let mut start = stderr.len().saturating_sub(MAX_STDERR_BYTES);
        while !stderr.is_char_boundary(start) {
            start += 1;
        }
        Err(GitError::Failed {
            step,
            stderr: stderr[start..].replace('\n', " | "),
        })
    }
}

/// The job's workspace, as git sees it without any credential.
pub(crate) struct Worktree<'a> {
    pub(crate) dir: &'a Path,
    pub(crate) path_var: Option<&'a OsString>,
}

impl Worktree<'_> {
    fn env(&self) -> Vec<(OsString, OsString)> {
        let mut env = base_env(self.path_var);
        for (name, value) in [
            ("GIT_AUTHOR_NAME", BOOTY_NAME),
            ("GIT_AUTHOR_EMAIL", BOOTY_EMAIL),
            ("GIT_COMMITTER_NAME", BOOTY_NAME),
            ("GIT_COMMITTER_EMAIL", BOOTY_EMAIL),
        ] {
            env.push((name.into(), value.into()));
        }
        env
    }

    async fn git(&self, step: &'static str, args: &[&str]) -> Result<String, GitError> {
        let mut full: Vec<&std::ffi::OsStr> = vec![
            "-C".as_ref(),
            self.dir.as_os_str(),
            // The command could have set hooks; booty's own commit runs none of them.
            "-c".as_ref(),
            "core.hooksPath=/dev/null".as_ref(),
            "-c".as_ref(),
            "commit.gpgSign=false".as_ref(),
        ];
        full.extend(args.iter().map(|arg| std::ffi::OsStr::new(*arg)));
        run(step, &full, self.env()).await
    }

    /// Whether the worktree has changes (tracked or not, ignored files aside) not committed.
    pub(crate) async fn has_uncommitted(&self) -> Result<bool, GitError> {
        let status = self
            .git(
                "status",
                &["status", "--porcelain", "--untracked-files=all"],
            )
            .await?;
        Ok(!status.trim().is_empty())
    }

    /// Commits everything the command left (as booty, with `message`, hooks off) on the current branch.
    pub(crate) async fn commit_all(&self, message: &str) -> Result<(), GitError> {
        self.git("add", &["add", "--all"]).await?;
        self.git(
            "commit",
            &["commit", "--quiet", "--no-verify", "-m", message],
        )
        .await?;
        Ok(())
    }

    /// The commit `refs/heads/{branch}` points at.
    pub(crate) async fn branch_commit(&self, branch: &str) -> Result<String, GitError> {
        let spec = format!("refs/heads/{branch}^{{commit}}");
        let sha = self
            .git("rev-parse", &["rev-parse", "--verify", "--quiet", &spec])
            .await?;
        Ok(sha.trim().to_owned())
    }

    /// How many commits `head` has that `base` does not.
    pub(crate) async fn commits_ahead(&self, base: &str, head: &str) -> Result<u64, GitError> {
        let range = format!("{base}..{head}");
        let count = self
            .git("rev-list", &["rev-list", "--count", &range])
            .await?;
        Ok(count.trim().parse().unwrap_or(0))
    }

    /// The workspace's object directory and shallow file, for [`Pusher::new`].
    pub(crate) fn git_dir(&self) -> PathBuf {
        self.dir.join(".git")
    }
}

/// A bare repository of booty's own that holds the token while it talks to GitHub. Removed when dropped.
pub(crate) struct Pusher {
    dir: HeldDir,
    url: String,
    header: Option<String>,
    path_var: Option<OsString>,
}

impl Pusher {
    /// A bare repository under `root` borrowing the objects of the workspace's `git_dir`, pushing to
    /// `url` with `token` (user `x-access-token`), if any.
    pub(crate) async fn new(
        root: &Path,
        prefix: &str,
        git_dir: &Path,
        url: &str,
        token: Option<&str>,
        path_var: Option<&OsString>,
    ) -> Result<Self, GitError> {
        let dir = HeldDir::new(root, prefix).map_err(|source| GitError::Spawn {
            step: "init",
            source,
        })?;
        run(
            "init",
            &[
                "init".as_ref(),
                "--bare".as_ref(),
                "--quiet".as_ref(),
                dir.path().as_os_str(),
            ],
            base_env(path_var),
        )
        .await?;
        let write = |name: &str, text: String| {
            std::fs::write(dir.path().join(name), text).map_err(|source| GitError::Spawn {
                step: "init",
                source,
            })
        };
        write(
            "objects/info/alternates",
            format!("{}\n", git_dir.join("objects").display()),
        )?;
        // A shallow workspace's history stops at its graft points; the pushing repository must know them.
        if let Ok(shallow) = std::fs::read_to_string(git_dir.join("shallow")) {
            write("shallow", shallow)?;
        }
        let header = token.map(|token| {
            let pair =
                base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"));
            format!("Authorization: Basic {pair}")
        });
        Ok(Self {
            dir,
            url: url.to_owned(),
            header,
            path_var: path_var.cloned(),
        })
    }

    fn env(&self) -> Vec<(OsString, OsString)> {
        let mut env = base_env(self.path_var.as_ref());
        if let Some(header) = &self.header {
            for (name, value) in [
                ("GIT_CONFIG_COUNT", "1"),
                ("GIT_CONFIG_KEY_0", "http.extraHeader"),
                ("GIT_CONFIG_VALUE_0", header),
            ] {
                env.push((name.into(), value.into()));
            }
        }
        env
    }

    async fn git(&self, step: &'static str, args: &[&str]) -> Result<String, GitError> {
        let mut full: Vec<&std::ffi::OsStr> =
            vec!["--git-dir".as_ref(), self.dir.path().as_os_str()];
        full.extend(args.iter().map(|arg| std::ffi::OsStr::new(*arg)));
        run(step, &full, self.env()).await
    }

    /// The commit `branch` points at on the remote, if it exists there.
    pub(crate) async fn remote_branch(&self, branch: &str) -> Result<Option<String>, GitError> {
        let reference = format!("refs/heads/{branch}");
        let listed = self
            .git("ls-remote", &["ls-remote", &self.url, &reference])
            .await?;
        Ok(listed.lines().find_map(|line| {
            let (sha, name) = line.split_once('\t')?;
            (name.trim() == reference).then(|| sha.to_owned())
        }))
    }

    /// Sets `branch` on the remote to `sha`, only if it is at `expected` there now (`None`: only if it
    /// does not exist).
    pub(crate) async fn push(
        &self,
        branch: &str,
        sha: &str,
        expected: Option<&str>,
    ) -> Result<(), GitError> {
        let reference = format!("refs/heads/{branch}");
        let lease = format!("--force-with-lease={reference}:{}", expected.unwrap_or(""));
        let refspec = format!("{sha}:{reference}");
        self.git(
            "push",
            &[
                "push",
                "--quiet",
                "--no-verify",
                &lease,
                &self.url,
                &refspec,
            ],
        )
        .await?;
        Ok(())
    }
}

/// Pushes commit `sha` of the git repository in `workspace` to `branch` at `url`, as publishing does: from
/// a bare repository of booty's own under `scratch` (removed after) that borrows the workspace's objects,
/// with `token` (user `x-access-token`) in the environment of that one `git` process only, and only if
/// the branch is at `expected` there (`None`: only if it does not exist). `git` is looked for in
/// `/usr/local/bin:/usr/bin:/bin`.
///
/// # Errors
/// A [`GitError`] naming the step that failed (git's own message, which never holds the token).
pub async fn push_commit(
    workspace: &Path,
    scratch: &Path,
    url: &str,
    token: Option<&str>,
    branch: &str,
    sha: &str,
    expected: Option<&str>,
) -> Result<(), GitError> {
    // The library reads no environment variable of its own: git is looked for where a command's `PATH`
    // defaults to.
    let pusher = Pusher::new(
        scratch,
        super::PUSH_DIR_PREFIX,
        &workspace.join(".git"),
        url,
        token,
        None,
    )
    .await?;
    pusher.push(branch, sha, expected).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_say_whether_waiting_helps() {
        let failed = |stderr: &str| GitError::Failed {
            step: "push",
            stderr: stderr.to_owned(),
        };
        assert!(
            failed("fatal: unable to access 'x': The requested URL returned error: 502")
                .is_retryable()
        );
        assert!(
            failed("fatal: unable to access 'x': Failed to connect to 127.0.0.1 port 1")
                .is_retryable()
        );
        let denied = failed(
            "remote: Permission to o/r.git denied to app[bot]. | fatal: unable to access 'x': The requested URL returned error: 403",
        );
        assert!(!denied.is_retryable());
        assert!(denied.is_forbidden());
        assert!(!failed("! [rejected] (stale info)").is_retryable());
    }
}
