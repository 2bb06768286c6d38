//! The workspace manager: turns a request into a prepared [`Workspace`] within a time limit, or into a
//! classified error with nothing left behind.

use std::fmt;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use tracing::Instrument as _;

use crate::clone::{self, CloneFailure, CloneSpec, Cloned};
use crate::config::{Token, WorkspaceConfig};
use crate::dir::WorkspaceDir;
use crate::error::{self, PrepareError};
use crate::source::{self, Source};
use crate::{Workspace, blocking};

/// What to prepare: which repository, which branch to start from, and for which issue.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkspaceRequest {
    /// `https://`, `http://`, `file://` or a local path. Credentials in it (`https://user:secret@host/...`) are
    /// used for this clone, in memory only, and shown nowhere. Over `http://`, credentials (these or the
    /// configured token) are only sent to a loopback host; other hosts are refused.
    pub repository_url: String,
    /// The branch to clone and to start `agent/issue-{n}` from, e.g. `main`.
    pub base_branch: String,
    /// The issue number `n` in `agent/issue-{n}`.
    pub issue_number: u64,
    /// Credentials for this clone only (a GitHub App's installation token, minted for this repository),
    /// used instead of [`WorkspaceConfig::token`](crate::WorkspaceConfig::token); same rules, in memory
    /// only.
    pub token: Option<Token>,
}

impl WorkspaceRequest {
    /// A request for `issue_number` on `base_branch` of `repository_url`.
    pub fn new(
        repository_url: impl Into<String>,
        base_branch: impl Into<String>,
        issue_number: u64,
    ) -> Self {
        Self {
            repository_url: repository_url.into(),
            base_branch: base_branch.into(),
            issue_number,
            token: None,
        }
    }

    /// The same request, cloning with `token` instead of the configured one.
    #[must_use]
    pub fn with_token(mut self, token: Token) -> Self {
        self.token = Some(token);
        self
    }
}

impl fmt::Debug for WorkspaceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkspaceRequest")
            .field("repository_url", &source::redact_url(&self.repository_url))
            .field("base_branch", &self.base_branch)
            .field("issue_number", &self.issue_number)
            .field("token", &self.token)
            .finish()
    }
}

/// Prepares workspaces: one shallow, single-branch clone per job, in a directory of its own.
///
/// Build it once from a [`WorkspaceConfig`]; it is cheap to clone and can be shared by every worker.
#[derive(Debug, Clone)]
pub struct WorkspaceManager {
    config: Arc<WorkspaceConfig>,
}

/// Why a clone was told to stop before it finished.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Cancelled,
    TimedOut,
}

/// What the blocking part hands back.
enum Failure {
    Dir(std::io::Error),
    Clone(CloneFailure),
}

impl WorkspaceManager {
    /// A manager with `config`. Nothing is touched on disk until the first [`Self::prepare`].
    pub fn new(config: WorkspaceConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// The directory workspaces are created in.
    pub fn root(&self) -> &Path {
        &self.config.root
    }

    /// Checks `repository_url` as [`Self::prepare`] would before it clones, with this manager's token:
    /// a URL or path git understands, a supported scheme, and no credentials over plain `http://` to
    /// another host. Touches neither the network nor the disk, so a configuration can be checked at
    /// start-up.
    ///
    /// # Errors
    /// [`PrepareError::InvalidUrl`], with the URL shown without credentials.
    pub fn check_url(&self, repository_url: &str) -> Result<(), PrepareError> {
        self.source(repository_url, None).map(drop)
    }

    /// `repository_url` parsed, with `token` (or the configured one) for its credentials.
    fn source(&self, repository_url: &str, token: Option<&Token>) -> Result<Source, PrepareError> {
        let token = token.or(self.config.token.as_ref());
        Source::parse(repository_url, token).map_err(|problem| PrepareError::InvalidUrl {
            url: source::redact_url(repository_url),
            reason: problem.to_string(),
        })
    }

    /// Clones `request.base_branch` of `request.repository_url` into a new directory under the root, checks it
    /// out, and puts HEAD on a new branch `agent/issue-{n}` at the base branch's tip.
    ///
    /// The clone runs on tokio's blocking pool. It is stopped when `cancelled` completes (pass a cancellation
    /// token's `cancelled()` future, or [`std::future::pending`] for none) or when the configured time limit
    /// passes, and then this returns only once the clone's thread has finished and its directory is gone. If
    /// the returned future is dropped instead, the clone is stopped the same way in the background and its
    /// directory removed when its thread finishes.
    ///
    /// A clone blocked on a server that sends nothing notices cancellation only when that read ends, which the
    /// time limit bounds (every HTTP request is given the time left until the limit).
    ///
    /// # Errors
    /// A [`PrepareError`]; [`PrepareError::is_retryable`] says whether trying again later can help. Whatever
    /// the error, no directory is left behind.
    ///
    /// # Panics
    /// Only if the clone's thread panics; the panic is resumed here, after its directory was removed.
    pub async fn prepare(
        &self,
        request: &WorkspaceRequest,
        cancelled: impl Future<Output = ()> + Send,
    ) -> Result<Workspace, PrepareError> {
        let source = self.source(&request.repository_url, request.token.as_ref())?;
        let base_ref = Some(&request.base_branch)
            .filter(|branch| !branch.is_empty() && !branch.starts_with("refs/"))
            .and_then(|branch| gix::refs::FullName::try_from(format!("refs/heads/{branch}")).ok())
            .ok_or_else(|| PrepareError::InvalidBranch {
                branch: request.base_branch.clone(),
            })?;
        let span = tracing::info_span!(
            "prepare_workspace",
            issue_number = request.issue_number,
            repository = source.display(),
            base_branch = %request.base_branch,
        );
        self.clone_within_limits(request, source, base_ref, cancelled)
            .instrument(span)
            .await
    }

    async fn clone_within_limits(
        &self,
        request: &WorkspaceRequest,
        source: Source,
        base_ref: gix::refs::FullName,
        cancelled: impl Future<Output = ()> + Send,
    ) -> Result<Workspace, PrepareError> {
        let limit = self.config.clone_timeout;
        let deadline = Instant::now() + limit;
        let interrupt = Arc::new(AtomicBool::new(false));
        // Set the flag if this future is dropped mid-clone, so the thread stops and removes its directory.
        let _stop_if_dropped = InterruptOnDrop(interrupt.clone());

        let work = {
            let (root, depth, issue_number) = (
                self.config.root.clone(),
                self.config.depth,
                request.issue_number,
            );
            let (source, interrupt) = (source.clone(), interrupt.clone());
            move || -> Result<(WorkspaceDir, Cloned), Failure> {
                let agent_ref =
                    gix::refs::FullName::try_from(format!("refs/heads/agent/issue-{issue_number}"))
                        .expect("`agent/issue-` followed by digits is a valid branch name");
                let dir = WorkspaceDir::create(&root, issue_number).map_err(Failure::Dir)?;
                let spec = CloneSpec {
                    source: &source,
                    base_ref: &base_ref,
                    agent_ref: &agent_ref,
                    depth,
                    deadline,
                };
                match clone::clone_into(dir.path(), &spec, &interrupt) {
                    Ok(cloned) => Ok((dir, cloned)),
                    // Dropping removes the directory here, on the blocking thread, before the error is seen.
                    Err(failure) => Err(Failure::Clone(failure)),
                }
            }
        };
        let mut task = pin!(blocking::run(work));
        // Biased: a clone that finishes at the moment it is cancelled or runs out of time still counts as
        // stopped, so a caller that cancelled never gets a workspace back.
        let stop = tokio::select! {
            biased;
            () = cancelled => Stop::Cancelled,
            () = tokio::time::sleep(limit) => Stop::TimedOut,
            outcome = &mut task => return self.finish(outcome, request, &source),
        };

        tracing::debug!(reason = ?stop, "clone_stopping");
        interrupt.store(true, Ordering::Relaxed);
        if let Some(Ok((dir, _))) = task.await {
            // It finished just as it was told to stop; the caller still gets the stop, and no directory.
            let removed = blocking::run(move || dir.remove()).await;
            if let Some(Err(err)) = removed {
                tracing::warn!(error = %err, "workspace_cleanup_failed");
            }
        }
        let url = source.display().to_owned();
        Err(match stop {
            Stop::Cancelled => PrepareError::Cancelled { url },
            Stop::TimedOut => PrepareError::TimedOut { url, limit },
        })
    }

    fn finish(
        &self,
        outcome: Option<Result<(WorkspaceDir, Cloned), Failure>>,
        request: &WorkspaceRequest,
        source: &Source,
    ) -> Result<Workspace, PrepareError> {
        let url = source.display().to_owned();
        match outcome {
            Some(Ok((dir, cloned))) => Ok(Workspace::new(dir, cloned, request, url)),
            Some(Err(Failure::Dir(err))) => Err(PrepareError::Workspace {
                root: self.config.root.clone(),
                source: err,
            }),
            Some(Err(Failure::Clone(CloneFailure::Git(err)))) => Err(error::classify(
                err,
                url,
                &request.base_branch,
                self.config.clone_timeout,
                self.config.root.clone(),
            )),
            // The flag is only set after this future stopped waiting for the thread, or by the runtime's
            // shutdown: either way the clone was called off.
            Some(Err(Failure::Clone(CloneFailure::Interrupted))) | None => {
                Err(PrepareError::Cancelled { url })
            }
        }
    }
}

/// Sets the clone's interrupt flag when dropped.
struct InterruptOnDrop(Arc<AtomicBool>);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}
