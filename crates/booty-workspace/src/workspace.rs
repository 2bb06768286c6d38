//! A prepared workspace: a checked-out clone on its own branch, removed when it is closed or dropped.

use std::io;
use std::path::{Path, PathBuf};

use crate::dir::WorkspaceDir;

/// A fresh clone on `agent/issue-{n}`, ready for a job; made by [`crate::WorkspaceManager::prepare`].
///
/// The directory is removed when the workspace is dropped, whatever way the job ends: an error, a panic that
/// unwinds through the owner, a cancelled task. Dropping removes it on the current thread; [`Self::close`]
/// removes it on the blocking pool, which is kinder to an async runtime when the tree is big.
#[derive(Debug)]
pub struct Workspace {
    dir: WorkspaceDir,
    pub(crate) issue_number: u64,
    pub(crate) branch: String,
    pub(crate) base_branch: String,
    pub(crate) head_commit: String,
    pub(crate) repository_url: String,
}

impl Workspace {
    pub(crate) fn new(
        dir: WorkspaceDir,
        cloned: crate::clone::Cloned,
        request: &crate::WorkspaceRequest,
        repository_url: String,
    ) -> Self {
        Self {
            dir,
            issue_number: request.issue_number,
            branch: cloned.branch,
            base_branch: request.base_branch.clone(),
            head_commit: cloned.head_commit,
            repository_url,
        }
    }

    /// The worktree: the directory the job works in (its `.git` is inside).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The issue this workspace was prepared for.
    pub fn issue_number(&self) -> u64 {
        self.issue_number
    }

    /// The branch HEAD points at: `agent/issue-{n}` (without `refs/heads/`).
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The branch that was cloned and branched from.
    pub fn base_branch(&self) -> &str {
        &self.base_branch
    }

    /// The commit HEAD points at (the base branch's tip when cloned), as 40 hex digits.
    pub fn head_commit(&self) -> &str {
        &self.head_commit
    }

    /// The repository the workspace was cloned from, without any credentials.
    pub fn repository_url(&self) -> &str {
        &self.repository_url
    }

    /// Removes the workspace directory on the blocking pool and waits for it to be gone.
    ///
    /// # Errors
    /// [`CloseError`] names the directory if it could not be removed completely.
    pub async fn close(self) -> Result<(), CloseError> {
        let Self { dir, .. } = self;
        let path = dir.path().to_owned();
        let removed = crate::blocking::run(move || dir.remove()).await;
        let result = removed
            .unwrap_or_else(|| Err(io::Error::other("the runtime shut down during removal")));
        result.map_err(|source| CloseError { path, source })
    }
}

/// A workspace directory could not be removed.
#[derive(Debug, thiserror::Error)]
#[error("could not remove workspace {}", path.display())]
#[non_exhaustive]
pub struct CloseError {
    /// The directory that is (at least partly) still there.
    pub path: PathBuf,
    /// What the file system said.
    #[source]
    pub source: io::Error,
}
