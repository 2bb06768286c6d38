//! Publishing a job's work once its command exits 0: commit what it left (if configured), push
//! `agent/issue-N` with lease semantics, open or update the pull request, and keep the issue's comment
//! for the job up to date.
//!
//! The command never holds a credential; booty alone talks to GitHub, with the job's token (an
//! installation token narrowed to the trigger's repository, or the configured token). What booty pushed is
//! remembered on GitHub itself, so it survives restarts and is shared by every booty on a PostgreSQL
//! store: a hidden `<!-- booty:pushed SHA -->` marker in the job's issue comment (written before the push)
//! and in the pull request's body. booty moves the branch only from a commit recorded there, or creates it.

pub(crate) mod git;
mod report;

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use booty_github::{
    Error as GitHubError, ErrorKind, NewPullRequest, PullRequest, PullRequestUpdate, PullState,
    RepositoryClient,
};
use tracing::{info, warn};

use crate::chain::error_chain;
pub use git::{GitError, push_commit};
pub(crate) use report::Status;

/// Files a job command may leave in `BOOTY_OUTPUT_DIR` to title the pull request.
pub const PR_TITLE_FILE: &str = "pr-title";
/// Files a job command may leave in `BOOTY_OUTPUT_DIR` to describe the pull request.
pub const PR_BODY_FILE: &str = "pr-body.md";
/// The longest pull request title booty sends (GitHub's own limit is 256 characters).
const MAX_TITLE_CHARS: usize = 256;
/// The longest body read from [`PR_BODY_FILE`] (GitHub's limit is 65536 characters).
const MAX_BODY_BYTES: usize = 60_000;
/// Tries of one publishing step that failed in a way GitHub may fix (5xx, rate limits, the network).
const PUBLISH_TRIES: u32 = 3;
/// The first pause between those tries, doubling.
const PUBLISH_BACKOFF: Duration = Duration::from_secs(1);
/// The pushing repositories are made next to the workspaces under this prefix.
pub(crate) const PUSH_DIR_PREFIX: &str = "booty-push-";

/// What booty does with a job's work once its command exits 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum PublishMode {
    /// Push `agent/issue-N` and open (or update) a pull request into the base branch.
    #[default]
    PullRequest,
    /// Push `agent/issue-N` only.
    Branch,
    /// Nothing: the workspace is thrown away.
    Off,
}

/// How a job's work is published and reported; used when the service has a GitHub client
/// ([`crate::ServiceConfig::github`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublishConfig {
    /// What is done with the branch (default [`PublishMode::PullRequest`]).
    pub mode: PublishMode,
    /// Whether each job keeps one comment on its issue up to date (default `true`).
    pub comment_on_issue: bool,
    /// Whether changes the command left uncommitted are committed by booty (default `true`); when
    /// `false` they are left out, and the comment says so.
    pub commit_uncommitted: bool,
}

impl Default for PublishConfig {
    fn default() -> Self {
        Self {
            mode: PublishMode::PullRequest,
            comment_on_issue: true,
            commit_uncommitted: true,
        }
    }
}

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PublishError {
    /// git failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// GitHub refused or failed a call.
    #[error("{}", error_chain(.0))]
    GitHub(#[from] GitHubError),
    /// The branch on GitHub holds a commit booty did not push.
    #[error(
        "the branch `{branch}` of {repository} is at {found}, a commit booty did not push (it knows of {known}); \
         booty does not overwrite someone else's commits"
    )]
    NotOurs {
        /// The branch.
        branch: String,
        /// `owner/name`.
        repository: String,
        /// What it points at.
        found: String,
        /// What booty recorded pushing there, if anything.
        known: String,
    },
}

impl PublishError {
    /// Whether trying again later may work.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Git(err) => err.is_retryable(),
            Self::GitHub(err) => err.is_retryable(),
            Self::NotOurs { .. } => false,
        }
    }

    /// What to fix, for the issue's comment.
    pub(crate) fn hint(&self, repository: &str) -> Option<String> {
        match self {
            Self::Git(err) if err.is_forbidden() => Some(format!(
                "booty's credentials need the `contents: write` permission on {repository} to push \
                 (for a GitHub App: its installation's repository permissions)."
            )),
            Self::GitHub(err) if err.status() == Some(403) => Some(format!(
                "booty's credentials lack a permission on {repository} that this call needs: \
                 `contents: write`, `pull_requests: write` and `issues: write` are required."
            )),
            Self::NotOurs { branch, .. } => Some(format!(
                "Delete or rename the branch `{branch}` (or merge its commits elsewhere), then label the issue again."
            )),
            _ => None,
        }
    }
}

/// Runs `step` until it succeeds, fails for good, or has been tried [`PUBLISH_TRIES`] times.
async fn again<T, F, Fut>(what: &'static str, mut step: F) -> Result<T, PublishError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PublishError>>,
{
    let mut pause = PUBLISH_BACKOFF;
    let mut tries = 1;
    loop {
        match step().await {
            Err(err) if err.is_retryable() && tries < PUBLISH_TRIES => {
                warn!(step = what, tries, error = %err, "publish_retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
            result => return result,
        }
    }
}

/// The job's comment on its issue.
pub(crate) struct Reporter {
    client: Option<RepositoryClient>,
    issue: u64,
    job_id: String,
    comment: Option<u64>,
    /// Who booty is on GitHub (the comment's author).
    login: Option<String>,
    /// Commits this job recorded pushing.
    pushed: Vec<String>,
    secrets: Vec<String>,
    /// A line the comment adds before what happened.
    note: Option<String>,
}

impl Reporter {
    /// The reporter of job `job_id` on `issue`; with `client`, its comment is looked for (by its marker),
    /// so a retry or a recovered job edits the comment it already has. Without, it reports nothing.
    pub(crate) async fn start(
        client: Option<RepositoryClient>,
        issue: u64,
        job_id: &str,
        secrets: Vec<String>,
    ) -> Self {
        let mut reporter = Self {
            client,
            issue,
            job_id: job_id.to_owned(),
            comment: None,
            login: None,
            pushed: Vec::new(),
            secrets,
            note: None,
        };
        if let Err(err) = reporter.find().await {
            warn!(error = %err, "issue_comment_failed");
        }
        reporter
    }

    /// Finds the job's comment by its marker.
    async fn find(&mut self) -> Result<(), GitHubError> {
        let Some(client) = &self.client else {
            return Ok(());
        };
        let marker = report::job_marker(&self.job_id);
        let mut page = None;
        loop {
            let listed = client
                .list_issue_comments(self.issue, page.as_ref())
                .await?;
            if let Some(found) = listed.items.iter().find(|comment| {
                comment
                    .body
                    .as_deref()
                    .is_some_and(|body| body.contains(&marker))
            }) {
                self.comment = Some(found.id);
                self.login = found.user.as_ref().map(|user| user.login.clone());
                self.pushed = report::pushed_commits(found.body.as_deref().unwrap_or_default());
                return Ok(());
            }
            match listed.next {
                Some(next) => page = Some(next),
                None => return Ok(()),
            }
        }
    }

    /// Makes the comment say `status`; a failure is logged, never the job's (the work itself matters more).
    pub(crate) async fn set(&mut self, status: &Status) {
        if let Err(err) = self.try_set(status).await {
            warn!(error = %err, "issue_comment_failed");
        }
    }

    async fn try_set(&mut self, status: &Status) -> Result<(), GitHubError> {
        let Some(client) = self.client.clone() else {
            return Ok(());
        };
        let secrets: Vec<&str> = self.secrets.iter().map(String::as_str).collect();
        let text = report::comment(
            &self.job_id,
            &self.pushed,
            self.note.as_deref(),
            status,
            &secrets,
        );
        let comment = match self.comment {
            Some(id) => client.update_issue_comment(id, &text).await?,
            None => match client.create_issue_comment(self.issue, &text).await {
                Ok(comment) => comment,
                Err(err) if err.is_retryable() => {
                    // It may have been made: look before making another.
                    self.find().await?;
                    match self.comment {
                        Some(id) => client.update_issue_comment(id, &text).await?,
                        None => client.create_issue_comment(self.issue, &text).await?,
                    }
                }
                Err(err) => return Err(err),
            },
        };
        if self.comment.is_none() {
            info!(comment_id = comment.id, "issue_comment_posted");
        }
        self.comment = Some(comment.id);
        if let Some(user) = comment.user {
            self.login = Some(user.login);
        }
        Ok(())
    }

    /// Records (in the comment) that `sha` is about to be pushed.
    async fn record_push(&mut self, sha: &str) {
        if !self.pushed.iter().any(|known| known == sha) {
            self.pushed.push(sha.to_owned());
        }
        self.set(&Status::Publishing).await;
    }

    /// Every commit booty recorded pushing on this issue: in its own comments (this job's and earlier
    /// jobs').
    async fn known_pushes(&self) -> Result<Vec<String>, GitHubError> {
        let mut known = self.pushed.clone();
        let (Some(client), Some(login)) = (&self.client, &self.login) else {
            return Ok(known);
        };
        let mut page = None;
        loop {
            let listed = client
                .list_issue_comments(self.issue, page.as_ref())
                .await?;
            for comment in &listed.items {
                if comment
                    .user
                    .as_ref()
                    .is_some_and(|user| &user.login == login)
                {
                    known.extend(report::pushed_commits(
                        comment.body.as_deref().unwrap_or_default(),
                    ));
                }
            }
            match listed.next {
                Some(next) => page = Some(next),
                None => return Ok(known),
            }
        }
    }
}

/// One job's work to publish.
pub(crate) struct Work<'a> {
    pub(crate) config: &'a PublishConfig,
    pub(crate) client: &'a RepositoryClient,
    /// The job's token for git (none: the remote needs none, a local path).
    pub(crate) token: Option<&'a str>,
    /// Where the branch is pushed (the URL it was cloned from).
    pub(crate) url: &'a str,
    pub(crate) workspace_dir: &'a Path,
    /// Where booty's pushing repository goes (next to the workspaces).
    pub(crate) scratch: &'a Path,
    pub(crate) branch: &'a str,
    pub(crate) base_branch: &'a str,
    /// The commit the workspace started from.
    pub(crate) base_commit: &'a str,
    pub(crate) issue: u64,
    pub(crate) issue_title: &'a str,
    pub(crate) job_id: &'a str,
    /// The command's `BOOTY_OUTPUT_DIR`.
    pub(crate) output_dir: Option<&'a Path>,
    /// `PATH` for git.
    pub(crate) path_var: Option<&'a OsString>,
}

/// Publishes `work`; returns what the comment should say.
pub(crate) async fn publish(
    work: &Work<'_>,
    reporter: &mut Reporter,
) -> Result<Status, PublishError> {
    let worktree = git::Worktree {
        dir: work.workspace_dir,
        path_var: work.path_var,
    };
    if worktree.has_uncommitted().await? {
        if work.config.commit_uncommitted {
            let message = format!(
                "Changes for #{} left uncommitted by the job command\n\nCommitted by booty for job {}.",
                work.issue, work.job_id
            );
            worktree.commit_all(&message).await?;
            info!("changes_committed");
        } else {
            info!("uncommitted_changes_left");
            reporter.note = Some(
                "The command left changes uncommitted; booty left them out (`commit_uncommitted = false`)."
                    .to_owned(),
            );
        }
    }
    let sha = worktree.branch_commit(work.branch).await?;
    if worktree.commits_ahead(work.base_commit, &sha).await? == 0 {
        info!("publish_nothing_to_change");
        return Ok(Status::NothingToChange);
    }
    let pusher = git::Pusher::new(
        work.scratch,
        &format!("{PUSH_DIR_PREFIX}{}-", work.job_id),
        &worktree.git_dir(),
        work.url,
        work.token,
        work.path_var,
    )
    .await?;
    let repository = work.client.repository().to_string();
    let open_pull = again("find pull request", || find_pull(work.client, work.branch)).await?;

    let mut pause = PUBLISH_BACKOFF;
    let mut tries = 1;
    loop {
        match push_once(
            work,
            &pusher,
            reporter,
            open_pull.as_ref(),
            &sha,
            &repository,
        )
        .await
        {
            Err(err) if err.is_retryable() && tries < PUBLISH_TRIES => {
                warn!(step = "push", tries, error = %err, "publish_retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
                tries += 1;
            }
            result => break result?,
        }
    }
    info!(branch = work.branch, head = %sha, "publish_pushed");
    if work.config.mode == PublishMode::Branch {
        return Ok(Status::Branch {
            branch: work.branch.to_owned(),
            sha,
        });
    }

    open_or_update_pull(work, open_pull, &sha).await
}

/// Opens the pull request from the branch, or updates the open one (`existing`, or one found after a
/// create that may have landed).
async fn open_or_update_pull(
    work: &Work<'_>,
    existing: Option<PullRequest>,
    sha: &str,
) -> Result<Status, PublishError> {
    let (title, own_body) = command_output(work.output_dir, work.issue_title);
    let body = report::pull_body(own_body.as_deref(), work.issue, work.job_id, sha);
    let mut existing = existing;
    let mut tries = 1;
    loop {
        if let Some(pull) = existing {
            let update = PullRequestUpdate::new().title(&title).body(&body);
            let pull = again("update pull request", || async {
                Ok(work.client.update_pull(pull.number, &update).await?)
            })
            .await?;
            info!(pull_number = pull.number, url = %pull.html_url, "pull_request_updated");
            return Ok(Status::PullRequest {
                url: pull.html_url,
                updated: true,
            });
        }
        let new = NewPullRequest::new(&title, work.branch, work.base_branch).body(&body);
        match work.client.create_pull(&new).await {
            Ok(pull) => {
                info!(pull_number = pull.number, url = %pull.html_url, "pull_request_opened");
                return Ok(Status::PullRequest {
                    url: pull.html_url,
                    updated: false,
                });
            }
            // It may have been opened (a 5xx after the fact, a request cut off), or another booty opened
            // it: look again, and update it if it is there.
            Err(err)
                if tries < PUBLISH_TRIES
                    && (err.is_retryable()
                        || matches!(err.kind(), ErrorKind::ValidationFailed { .. })) =>
            {
                warn!(error = %error_chain(&err), "pull_request_create_failed");
                if err.is_retryable() {
                    tokio::time::sleep(PUBLISH_BACKOFF * tries).await;
                }
                existing =
                    again("find pull request", || find_pull(work.client, work.branch)).await?;
                if existing.is_none() && !err.is_retryable() {
                    return Err(err.into());
                }
                tries += 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// One try at moving the branch on GitHub to `sha`: from nothing, or from a commit booty recorded pushing.
async fn push_once(
    work: &Work<'_>,
    pusher: &git::Pusher,
    reporter: &mut Reporter,
    open_pull: Option<&PullRequest>,
    sha: &str,
    repository: &str,
) -> Result<(), PublishError> {
    let remote = pusher.remote_branch(work.branch).await?;
    if remote.as_deref() == Some(sha) {
        return Ok(());
    }
    let expected = match &remote {
        None => None,
        Some(found) => {
            let mut known = reporter.known_pushes().await?;
            if let Some(pull) = open_pull {
                known.extend(report::pushed_commits(
                    pull.body.as_deref().unwrap_or_default(),
                ));
            }
            if !known.contains(found) {
                return Err(PublishError::NotOurs {
                    branch: work.branch.to_owned(),
                    repository: repository.to_owned(),
                    found: found.clone(),
                    known: if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    },
                });
            }
            Some(found.as_str())
        }
    };
    reporter.record_push(sha).await;
    pusher.push(work.branch, sha, expected).await?;
    Ok(())
}

/// The open pull request from `branch`, if there is one.
async fn find_pull(
    client: &RepositoryClient,
    branch: &str,
) -> Result<Option<PullRequest>, PublishError> {
    let page = client
        .list_pulls_by_head(branch, PullState::Open, None)
        .await?;
    Ok(page.items.into_iter().next())
}

/// The title (the command's `pr-title`, else the issue's) and the command's own body, if it left one.
fn command_output(dir: Option<&Path>, issue_title: &str) -> (String, Option<String>) {
    let read = |name: &str, limit: usize| -> Option<String> {
        let dir = dir?;
        let bytes = std::fs::read(dir.join(name)).ok()?;
        let bytes = &bytes[..bytes.len().min(limit)];
        Some(String::from_utf8_lossy(bytes).into_owned())
    };
    let title = read(PR_TITLE_FILE, 4096)
        .and_then(|text| text.lines().next().map(str::trim).map(str::to_owned))
        .filter(|title| !title.is_empty())
        .unwrap_or_else(|| issue_title.trim().to_owned());
    let title: String = title.chars().take(MAX_TITLE_CHARS).collect();
    (title, read(PR_BODY_FILE, MAX_BODY_BYTES))
}
