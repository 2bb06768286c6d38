//! The job handler: prepare the workspace, run the job command in it, remove the workspace.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use booty_github::{
    Access as Level, Credentials, GitHub, InstallationId, Repository, RepositoryClient,
    Token as GitHubToken,
};
use booty_queue::{CancellationToken, Handler, HandlerError, Job};
use booty_workspace::{
    PrepareError, Removal, Token, Workspace, WorkspaceManager, WorkspaceRequest,
};
use tracing::{info, warn};

use crate::chain::error_chain;
use crate::command::{self, CommandError};
use crate::metrics::Metrics;
use crate::payload::JobPayload;
use crate::publish::{self, PublishConfig, PublishMode, Reporter, Status, Work};
use crate::scratch::HeldDir;
use crate::service::{CloneFrom, JobCommand};

/// Event files are written next to the workspaces, outside them, under this prefix (swept at start-up).
pub(crate) const EVENT_FILE_PREFIX: &str = "booty-event-";
/// Each command's `BOOTY_OUTPUT_DIR` is made next to the workspaces, outside them, under this prefix.
pub(crate) const OUTPUT_DIR_PREFIX: &str = "booty-output-";

/// What every job needs: where to clone from, with what credentials, and what to run.
pub(crate) struct Runner {
    pub(crate) workspaces: WorkspaceManager,
    pub(crate) clone_from: CloneFrom,
    pub(crate) base_branch: String,
    pub(crate) command: Option<Arc<JobCommand>>,
    /// A GitHub App's client: each clone then uses an installation token minted for the trigger's
    /// repository (cached and shared by booty-github), not a configured token.
    pub(crate) github: Option<GitHub>,
    /// What is done with the work once the command exits 0, and whether the issue hears of it.
    pub(crate) publish: PublishConfig,
    /// Attempts per job: the last one's failure is reported as final.
    pub(crate) max_attempts: u32,
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
        let access = self.access(&job.payload).await?;
        // The credentials held for this job: never in its comment, nor in its recorded output.
        let secrets: Vec<String> = access
            .token
            .iter()
            .map(|token| token.expose().to_owned())
            .collect();
        let client = access
            .client
            .clone()
            .filter(|_| self.publish.comment_on_issue);
        let mut reporter = Reporter::start(
            client,
            trigger.issue.number,
            job.id.as_str(),
            secrets.clone(),
        )
        .await;
        reporter
            .set(&Status::Started {
                attempt: job.attempt.max(1),
            })
            .await;
        let result = self
            .work(&job, &url, &access, &secrets, &mut reporter, &cancel)
            .await;
        if cancel.is_cancelled() {
            // Cancelled (label removed, shutdown): the comment stays as it was; a retry updates it.
            return result.map(|_| ()).map_err(|failure| failure.error);
        }
        match result {
            Ok(status) => {
                reporter.set(&status).await;
                Ok(())
            }
            Err(failure) => {
                let last = !failure.error.is_retryable() || job.attempt >= self.max_attempts;
                let status = if last {
                    Status::Failed {
                        reason: failure.error.message().to_owned(),
                        tail: failure.tail,
                        hint: failure.hint,
                    }
                } else {
                    Status::Retrying {
                        reason: failure.error.message().to_owned(),
                    }
                };
                reporter.set(&status).await;
                Err(failure.error)
            }
        }
    }
}

/// A job's attempt that failed: the error, and what the issue's comment shows of it.
struct Failure {
    error: HandlerError,
    /// The last lines the command wrote to stderr, when it ran and failed.
    tail: Vec<String>,
    /// What to fix, when booty knows.
    hint: Option<String>,
}

impl From<HandlerError> for Failure {
    fn from(error: HandlerError) -> Self {
        Self {
            error,
            tail: Vec::new(),
            hint: None,
        }
    }
}

/// The job's access to GitHub: the token for git (an installation token with App credentials, the
/// client's token otherwise) and the REST client for its repository.
struct Access {
    token: Option<GitHubToken>,
    client: Option<RepositoryClient>,
}

impl Runner {
    /// Clones, runs the command, publishes; the workspace lives until publishing ends.
    async fn work(
        &self,
        job: &Job<JobPayload>,
        url: &str,
        access: &Access,
        secrets: &[String],
        reporter: &mut Reporter,
        cancel: &CancellationToken,
    ) -> Result<Status, Failure> {
        let trigger = &job.payload.trigger;
        let mut request = WorkspaceRequest::new(url, &self.base_branch, trigger.issue.number);
        if let Some(token) = &access.token {
            request = request.with_token(Token::new(token.expose()));
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
        let output_dir = HeldDir::new(
            self.workspaces.root(),
            &format!("{OUTPUT_DIR_PREFIX}{}-", job.id),
        )
        .map_err(|err| {
            HandlerError::retryable(format!("cannot make the command's output directory: {err}"))
        });
        let result = match output_dir {
            Err(err) => Err(Failure::from(err)),
            Ok(output_dir) => {
                let ran = match &self.command {
                    Some(command) => {
                        let running = Instant::now();
                        let ran = self
                            .run_command(
                                command,
                                job,
                                &workspace,
                                output_dir.path(),
                                cancel,
                                secrets,
                            )
                            .await;
                        self.record("command", running);
                        ran
                    }
                    None => Ok(()),
                };
                match (ran, &access.client) {
                    (Err(failure), _) => Err(failure),
                    (Ok(()), Some(client)) if self.publish.mode != PublishMode::Off => {
                        let work = Work {
                            config: &self.publish,
                            client,
                            token: access.token.as_ref().map(GitHubToken::expose),
                            url,
                            workspace_dir: workspace.path(),
                            scratch: self.workspaces.root(),
                            branch: workspace.branch(),
                            base_branch: workspace.base_branch(),
                            base_commit: workspace.head_commit(),
                            issue: trigger.issue.number,
                            issue_title: &trigger.issue.title,
                            job_id: job.id.as_str(),
                            output_dir: Some(output_dir.path()),
                            path_var: self.path_var(),
                        };
                        self.publish(&work, &trigger.repository.full_name, reporter)
                            .await
                    }
                    (Ok(()), _) => Ok(Status::Done),
                }
            }
        };
        if let Err(err) = workspace.close().await {
            warn!(
                error = &err as &(dyn std::error::Error + 'static),
                "workspace_cleanup_failed"
            );
        }
        result
    }

    /// The `PATH` the command runs with, which publishing's `git` uses too.
    fn path_var(&self) -> Option<&std::ffi::OsString> {
        self.command.as_ref().and_then(|command| {
            command
                .env
                .iter()
                .find(|(name, _)| name == "PATH")
                .map(|(_, value)| value)
        })
    }

    /// Publishes the work of a command that exited 0 (timed as the `publish` phase).
    async fn publish(
        &self,
        work: &Work<'_>,
        full_name: &str,
        reporter: &mut Reporter,
    ) -> Result<Status, Failure> {
        let publishing = Instant::now();
        let published = publish::publish(work, reporter).await;
        self.record("publish", publishing);
        published.map_err(|err| {
            let hint = err.hint(full_name);
            let message = format!("publishing failed: {err}");
            Failure {
                error: if err.is_retryable() {
                    HandlerError::retryable(message)
                } else {
                    HandlerError::permanent(message)
                },
                tail: Vec::new(),
                hint,
            }
        })
    }

    /// Records that `phase` took from `started` until now.
    fn record(&self, phase: &'static str, started: Instant) {
        if let Some(metrics) = &self.metrics {
            metrics.phase(phase, started.elapsed());
        }
    }

    /// With a GitHub client, the REST client for the trigger's repository; with App credentials, an
    /// installation token for it too: from the payload's installation, or the repository's when a
    /// repository webhook names none.
    async fn access(&self, payload: &JobPayload) -> Result<Access, HandlerError> {
        let Some(github) = &self.github else {
            return Ok(Access {
                token: None,
                client: None,
            });
        };
        let trigger = &payload.trigger;
        let repository: Repository = trigger
            .repository
            .full_name
            .parse()
            .map_err(|err| HandlerError::permanent(error_chain(&err)))?;
        if let Credentials::Token(token) = github.credentials() {
            return Ok(Access {
                token: Some(token.clone()),
                client: Some(github.repository(repository, None)),
            });
        }
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
            .map_err(|err| token_error(github, &repository, &err))?;
        Ok(Access {
            token: Some(token),
            client: Some(github.repository(repository, Some(installation))),
        })
    }

    async fn run_command(
        &self,
        command: &JobCommand,
        job: &Job<JobPayload>,
        workspace: &Workspace,
        output_dir: &Path,
        cancel: &CancellationToken,
        secrets: &[String],
    ) -> Result<(), Failure> {
        let event_file = self.write_event_file(job).map_err(|err| {
            Failure::from(HandlerError::retryable(format!(
                "cannot write the event file: {err}"
            )))
        })?;
        let trigger = &job.payload.trigger;
        let (job_id, issue_number) = (job.id.to_string(), trigger.issue.number.to_string());
        let (workspace_path, event_path, output_path) = (
            workspace.path().to_string_lossy(),
            event_file.path().to_string_lossy(),
            output_dir.to_string_lossy(),
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
            ("BOOTY_OUTPUT_DIR", &output_path),
        ];
        let launch = command::Launch {
            argv: &command.argv,
            dir: workspace.path(),
            env: command::environment(&command.env, &variables),
            supervisor: command
                .supervisor
                .as_deref()
                .map(|booty| (booty, vec![workspace.path(), event_file.path(), output_dir])),
            output: &job.output,
            redact: secrets,
        };
        command::run(launch, command.timeout, cancel)
            .await
            .map_err(|err| {
                let tail = match &err {
                    CommandError::Exited { stderr_tail, .. } => stderr_tail.clone(),
                    _ => Vec::new(),
                };
                let error = command_error(err);
                Failure {
                    error,
                    tail,
                    hint: None,
                }
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

/// How a failed run of the command is retried: cancellation and 75 are, the rest is not.
fn command_error(err: CommandError) -> HandlerError {
    match err {
        CommandError::Cancelled | CommandError::Wait(_) => HandlerError::retryable(err),
        err if err.asks_for_retry() => HandlerError::retryable(format!(
            "{}; exit code {} asks for a retry",
            error_chain(&err),
            command::RETRY_EXIT_CODE
        )),
        CommandError::Spawn { .. } | CommandError::Exited { .. } | CommandError::TimedOut(_) => {
            HandlerError::permanent(error_chain(&err))
        }
    }
}

/// A refused installation token says which permissions booty asked for: GitHub's 422 does not.
fn token_error(
    github: &GitHub,
    repository: &Repository,
    err: &booty_github::Error,
) -> HandlerError {
    if err.status() != Some(422) {
        return github_error(err);
    }
    let asked: Vec<String> = github
        .permissions()
        .iter()
        .map(|(name, access)| {
            let access = match access {
                Level::Read => "read",
                Level::Write => "write",
                Level::Admin => "admin",
            };
            format!("{name}: {access}")
        })
        .collect();
    HandlerError::permanent(format!(
        "{}; booty asks for an installation token for {repository} with {}, which the App's \
         installation must grant (contents: write to push, pull_requests: write to open pull requests, \
         issues: write to comment)",
        error_chain(err),
        asked.join(", ")
    ))
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

/// Event files, output directories and pushing repositories a crashed run left in `root`: those nobody
/// holds are removed, those in use (a live process's job) are left; returns (removed, in use).
pub(crate) fn sweep_event_files(root: &Path) -> std::io::Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut removed, mut in_use) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(root)? {
        let entry = entry?;
        let name = entry.file_name();
        let kind = entry.file_type()?;
        let is_event_file = name.to_str().is_some_and(|name| {
            name.starts_with(EVENT_FILE_PREFIX)
                && Path::new(name).extension().is_some_and(|ext| ext == "json")
        }) && kind.is_file();
        let is_scratch = name.to_str().is_some_and(|name| {
            name.starts_with(OUTPUT_DIR_PREFIX) || name.starts_with(publish::PUSH_DIR_PREFIX)
        }) && kind.is_dir();
        if !is_event_file && !is_scratch {
            continue;
        }
        match booty_workspace::remove_unless_in_use(&entry.path())? {
            Removal::InUse => in_use.push(entry.path()),
            _ => removed.push(entry.path()),
        }
    }
    Ok((removed, in_use))
}
