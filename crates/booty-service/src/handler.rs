//! The job handler: prepare the workspace, run the job command in it, remove the workspace.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use booty_github::{Credentials, GitHub, InstallationId, Repository};
use booty_queue::{CancellationToken, Handler, HandlerError, Job};
use booty_workspace::{
    PrepareError, Removal, Token, Workspace, WorkspaceManager, WorkspaceRequest,
};
use tracing::{info, warn};

use crate::chain::error_chain;
use crate::command::{self, CommandError};
use crate::metrics::Metrics;
use crate::payload::JobPayload;
use crate::service::{CloneFrom, JobCommand};

/// Event files are written next to the workspaces, outside them, under this prefix (swept at start-up).
pub(crate) const EVENT_FILE_PREFIX: &str = "booty-event-";

/// What every job needs: where to clone from, with what credentials, and what to run.
pub(crate) struct Runner {
    pub(crate) workspaces: WorkspaceManager,
    pub(crate) clone_from: CloneFrom,
    pub(crate) base_branch: String,
    pub(crate) command: Option<Arc<JobCommand>>,
    /// A GitHub App's client: each clone then uses an installation token minted for the trigger's
    /// repository (cached and shared by booty-github), not a configured token.
    pub(crate) github: Option<GitHub>,
    /// Where the clone and command durations are recorded.
    pub(crate) metrics: Option<Metrics>,
}

impl Handler<JobPayload> for Runner {
    async fn handle(
        &self,
        job: Job<JobPayload>,
        cancel: CancellationToken,
    ) -> Result<(), HandlerError> {
        let trigger = &job.payload.trigger;
        let full_name = &trigger.repository.full_name;
        // Built from the configured host and the repository's name, never the payload's URLs; a job for a
        // repository this service does not serve (stored under another configuration) never clones.
        let url = self.clone_from.url_for(full_name).ok_or_else(|| {
            HandlerError::permanent(format!(
                "repository {full_name} is not the one this service clones ({:?}); the job was stored \
                 under another configuration",
                self.clone_from
            ))
        })?;
        let mut request = WorkspaceRequest::new(url, &self.base_branch, trigger.issue.number);
        // The credentials held for this job, never recorded in its output.
        let mut secrets = Vec::new();
        if let Some(token) = self.installation_token(&job.payload).await? {
            request = request.with_token(Token::new(token.as_str()));
            secrets.push(token);
        }
        let cloning = Instant::now();
        let workspace = self
            .workspaces
            .prepare(&request, cancel.cancelled())
            .await
            .map_err(|err| prepare_error(&err))?;
        self.record("clone", cloning);
        info!(
            path = %workspace.path().display(),
            branch = workspace.branch(),
            base_branch = workspace.base_branch(),
            head = workspace.head_commit(),
            "workspace_ready"
        );
        let result = match &self.command {
            Some(command) => {
                let running = Instant::now();
                let result = self
                    .run_command(command, &job, &workspace, &cancel, &secrets)
                    .await;
                self.record("command", running);
                result
            }
            None => Ok(()),
        };
        if let Err(err) = workspace.close().await {
            warn!(
                error = &err as &(dyn std::error::Error + 'static),
                "workspace_cleanup_failed"
            );
        }
        result
    }
}

impl Runner {
    /// Records that `phase` took from `started` until now.
    fn record(&self, phase: &'static str, started: Instant) {
        if let Some(metrics) = &self.metrics {
            metrics.phase(phase, started.elapsed());
        }
    }

    /// With App credentials, an installation token for the trigger's repository: from the payload's
    /// installation, or the repository's when a repository webhook names none. Its text, which the caller
    /// hands to the workspace and keeps out of the job's recorded output.
    async fn installation_token(
        &self,
        payload: &JobPayload,
    ) -> Result<Option<String>, HandlerError> {
        let Some(github) = &self.github else {
            return Ok(None);
        };
        if !matches!(github.credentials(), Credentials::App(_)) {
            return Ok(None);
        }
        let trigger = &payload.trigger;
        let repository: Repository = trigger
            .repository
            .full_name
            .parse()
            .map_err(|err| HandlerError::permanent(error_chain(&err)))?;
        let installation = match &trigger.installation {
            Some(installation) => InstallationId(installation.id),
            None => github
                .installation_for_repository(&repository)
                .await
                .map_err(|err| github_error(&err))?,
        };
        let token = github
            .token_for(installation, &repository)
            .await
            .map_err(|err| github_error(&err))?;
        Ok(Some(token.expose().to_owned()))
    }

    async fn run_command(
        &self,
        command: &JobCommand,
        job: &Job<JobPayload>,
        workspace: &Workspace,
        cancel: &CancellationToken,
        secrets: &[String],
    ) -> Result<(), HandlerError> {
        let event_file = self.write_event_file(job).map_err(|err| {
            HandlerError::retryable(format!("cannot write the event file: {err}"))
        })?;
        let trigger = &job.payload.trigger;
        let (job_id, issue_number) = (job.id.to_string(), trigger.issue.number.to_string());
        let (workspace_path, event_path) = (
            workspace.path().to_string_lossy(),
            event_file.path().to_string_lossy(),
        );
        let variables = [
            ("BOOTY_JOB_ID", job_id.as_str()),
            ("BOOTY_ISSUE_NUMBER", issue_number.as_str()),
            ("BOOTY_ISSUE_TITLE", trigger.issue.title.as_str()),
            ("BOOTY_ISSUE_URL", trigger.issue.html_url.as_str()),
            ("BOOTY_REPOSITORY", trigger.repository.full_name.as_str()),
            ("BOOTY_BRANCH", workspace.branch()),
            ("BOOTY_BASE_BRANCH", workspace.base_branch()),
            ("BOOTY_WORKSPACE", &workspace_path),
            ("BOOTY_EVENT_PATH", &event_path),
        ];
        let launch = command::Launch {
            argv: &command.argv,
            dir: workspace.path(),
            env: command::environment(&command.env, &variables),
            supervisor: command
                .supervisor
                .as_deref()
                .map(|booty| (booty, vec![workspace.path(), event_file.path()])),
            output: &job.output,
            redact: secrets,
        };
        command::run(launch, command.timeout, cancel)
            .await
            .map_err(|err| match err {
                CommandError::Cancelled | CommandError::Wait(_) => HandlerError::retryable(err),
                err if err.asks_for_retry() => HandlerError::retryable(format!(
                    "{}; exit code {} asks for a retry",
                    error_chain(&err),
                    command::RETRY_EXIT_CODE
                )),
                CommandError::Spawn { .. }
                | CommandError::Exited { .. }
                | CommandError::TimedOut(_) => HandlerError::permanent(error_chain(&err)),
            })
    }

    /// The payload, in a file outside the workspace that is removed when the returned handle drops, marked
    /// in use (so a sweep by another booty leaves it alone) for as long as the handle lives.
    fn write_event_file(&self, job: &Job<JobPayload>) -> std::io::Result<tempfile::NamedTempFile> {
        loop {
            let mut file = tempfile::Builder::new()
                .prefix(&format!("{EVENT_FILE_PREFIX}{}-", job.id))
                .suffix(".json")
                .tempfile_in(self.workspaces.root())?;
            // A sweep that took the new file first is removing it: make another.
            if !booty_workspace::mark_in_use(file.as_file(), file.path())? {
                continue;
            }
            file.write_all(job.payload.payload.as_bytes())?;
            file.flush()?;
            return Ok(file);
        }
    }
}

fn github_error(err: &booty_github::Error) -> HandlerError {
    if err.is_retryable() {
        HandlerError::retryable(error_chain(err))
    } else {
        HandlerError::permanent(error_chain(err))
    }
}

fn prepare_error(err: &PrepareError) -> HandlerError {
    if err.is_retryable() {
        HandlerError::retryable(error_chain(err))
    } else {
        HandlerError::permanent(error_chain(err))
    }
}

/// Event files a crashed run left in `root`: those nobody holds are removed, those in use (a live
/// process's job) are left; returns (removed, in use).
pub(crate) fn sweep_event_files(root: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut removed, mut in_use) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_event_file = name.to_str().is_some_and(|name| {
            name.starts_with(EVENT_FILE_PREFIX)
                && Path::new(name).extension().is_some_and(|ext| ext == "json")
        });
        if !is_event_file || !entry.file_type()?.is_file() {
            continue;
        }
        match booty_workspace::remove_unless_in_use(&entry.path())? {
            Removal::InUse => in_use.push(entry.path()),
            _ => removed.push(entry.path()),
        }
    }
    Ok((removed, in_use))
}
