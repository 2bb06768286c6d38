//! The whole service: what it is configured with, how it starts, and how it stops.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use booty_edge::{EdgeConfig, HostError, ServeError};
use booty_event::{Repositories, TriggerRule};
use booty_github::GitHub;
use booty_queue::{
    CancellationToken, MemoryStore, PostgresError, PostgresOptions, PostgresStore, Queue,
    QueueConfig, Retention, ShutdownReport, SqliteError, SqliteOptions, SqliteStore,
};
use booty_workspace::{SweepError, WorkspaceConfig, WorkspaceManager};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::admin::Admin;
use crate::auth::AdminToken;
use crate::handler::{self, Runner};
use crate::inspect::QueueInspector;
use crate::metrics::{Exporter, Metrics};
use crate::payload::JobPayload;
use crate::publish::PublishConfig;
use crate::recover::{self, PassReport, Recovery, RecoveryConfig, RecoveryError, Since};
use crate::sink::QueueSink;

/// Where the webhook listener listens unless configured otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);
/// Where the admin listener listens unless configured otherwise.
pub const DEFAULT_ADMIN_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9090);
/// The branch cloned and branched from unless configured otherwise.
pub const DEFAULT_BASE_BRANCH: &str = "main";
/// How long one run of the job command may take unless configured otherwise.
pub const DEFAULT_JOB_TIMEOUT: Duration = Duration::from_mins(30);

/// Everything the service runs with. Start from [`ServiceConfig::new`] and set fields.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServiceConfig {
    /// The webhook listener: signature secrets, body and time limits.
    pub edge: EdgeConfig,
    /// Which deliveries start a job: `issues`/`labeled` with the trigger label (default
    /// [`DEFAULT_TRIGGER_LABEL`](booty_event::DEFAULT_TRIGGER_LABEL)); the service's sink routes every
    /// verified delivery with it.
    pub trigger: TriggerRule,
    /// Where the webhook listener listens (default [`DEFAULT_LISTEN`]; port 0 picks one).
    pub listen: SocketAddr,
    /// Where the admin listener listens (default [`DEFAULT_ADMIN_LISTEN`]).
    pub admin_listen: SocketAddr,
    /// Names the admin listener answers to besides its own address.
    pub admin_allowed_hosts: Vec<String>,
    /// The token every admin request must carry. Without one, the admin listener may only listen on a
    /// loopback address ([`StartError::AdminUnprotected`]).
    pub admin_token: Option<AdminToken>,
    /// Whether `GET /metrics` on the admin listener is open without the token.
    pub admin_metrics_public: bool,
    /// Where the service counts what it does (served at `GET /metrics`); `None` makes a fresh one.
    /// Give your own to read the same numbers in-process.
    pub metrics: Option<Metrics>,
    /// Where jobs are kept (default: in memory).
    pub store: StoreConfig,
    /// Workers, capacity, attempts, backoff, lease.
    pub queue: QueueConfig,
    /// Where workspaces go, clone depth and time limit, the token for private repositories.
    pub workspace: WorkspaceConfig,
    /// Where each job's clone comes from: the trigger's own repository on a GitHub host (the default,
    /// github.com), or one repository at a URL of its own.
    pub clone_from: CloneFrom,
    /// The branch cloned and branched from (default [`DEFAULT_BASE_BRANCH`]).
    pub base_branch: String,
    /// What each job runs in its workspace; `None` prepares the workspace and succeeds.
    pub command: Option<JobCommand>,
    /// GitHub's API, with a GitHub App's credentials: each clone then uses an installation token minted
    /// for the trigger's repository and narrowed to it (`workspace.token` is not used). `None`: clones use
    /// `workspace.token`, if any.
    pub github: Option<GitHub>,
    /// Recovering the deliveries GitHub could not deliver, from the hook's delivery log with `github`'s
    /// credentials: a pass at start-up, then one every `interval`. `None` (the default): off.
    pub recovery: Option<RecoveryConfig>,
    /// What is done with a job's work once its command exits 0 (push, pull request) and whether its issue
    /// hears of it; needs [`ServiceConfig::github`] (without it nothing is published or reported).
    pub publish: PublishConfig,
}

impl ServiceConfig {
    /// A configuration with every default: `edge` for the webhooks, `clone_from` for the clones,
    /// workspaces under `workspace_root`.
    pub fn new(
        edge: EdgeConfig,
        clone_from: CloneFrom,
        workspace_root: impl Into<PathBuf>,
    ) -> Self {
        Self {
            edge,
            trigger: TriggerRule::default(),
            listen: DEFAULT_LISTEN,
            admin_listen: DEFAULT_ADMIN_LISTEN,
            admin_allowed_hosts: Vec::new(),
            admin_token: None,
            admin_metrics_public: false,
            metrics: None,
            store: StoreConfig::Memory(Retention::default()),
            queue: QueueConfig::default(),
            workspace: WorkspaceConfig::new(workspace_root),
            clone_from,
            base_branch: DEFAULT_BASE_BRANCH.to_owned(),
            command: None,
            github: None,
            recovery: None,
            publish: PublishConfig::default(),
        }
    }
}

/// The GitHub host clones come from unless configured otherwise.
pub const DEFAULT_GITHUB_URL: &str = "https://github.com";

/// Where a job's clone comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloneFrom {
    /// The trigger's own repository on this GitHub host (`https://github.com`, or a GitHub Enterprise
    /// Server's): `{host}/{owner}/{name}.git`, the name from the payload's `repository.full_name`. Never
    /// the payload's `clone_url`: a webhook does not choose the host a token is sent to.
    GitHub {
        /// The host's URL, without a trailing slash.
        url: String,
    },
    /// One repository, `full_name`, cloned from `url` (a local path, say). The trigger rule serves that
    /// repository alone, and a job for any other is refused: no configuration clones one repository for
    /// another repository's issue.
    Single {
        /// The `owner/name` it stands for.
        full_name: String,
        /// Where to clone it from.
        url: String,
    },
}

impl CloneFrom {
    /// Each trigger's own repository on github.com.
    pub fn github() -> Self {
        Self::GitHub {
            url: DEFAULT_GITHUB_URL.to_owned(),
        }
    }

    /// The URL to clone `full_name` from, or `None` if this source does not serve it.
    pub fn url_for(&self, full_name: &str) -> Option<String> {
        match self {
            Self::GitHub { url } => Some(format!("{}/{full_name}.git", url.trim_end_matches('/'))),
            Self::Single {
                full_name: only,
                url,
            } => only.eq_ignore_ascii_case(full_name).then(|| url.clone()),
        }
    }
}

/// Where jobs are kept.
#[derive(Clone)]
#[non_exhaustive]
pub enum StoreConfig {
    /// In this process only: queued jobs are lost at exit.
    Memory(Retention),
    /// A SQLite database file, for one process.
    Sqlite {
        /// The database file (created if missing; its directory must exist).
        path: PathBuf,
        /// How it writes and what it keeps.
        options: SqliteOptions,
    },
    /// A PostgreSQL database shared by several processes.
    Postgres {
        /// `postgres://...`; may hold a password, so it is never shown.
        url: String,
        /// Connections, dedupe window, timeouts.
        options: PostgresOptions,
    },
}

impl StoreConfig {
    /// `memory`, `sqlite` or `postgres`, as logs name it.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Memory(_) => "memory",
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory(limits) => f.debug_tuple("Memory").field(limits).finish(),
            Self::Sqlite { path, options } => f
                .debug_struct("Sqlite")
                .field("path", path)
                .field("options", options)
                .finish(),
            Self::Postgres { options, .. } => f
                .debug_struct("Postgres")
                .field("url", &"<redacted>")
                .field("options", options)
                .finish(),
        }
    }
}

/// The command each job runs in its workspace, and how (the contract is in docs/configuration.md, "The
/// job command").
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobCommand {
    /// Program and arguments; never run through a shell.
    pub argv: Vec<String>,
    /// How long one run may take before its process group is killed (default [`DEFAULT_JOB_TIMEOUT`]).
    pub timeout: Duration,
    /// The environment every run starts from, before the `BOOTY_*` variables (the binary gives
    /// [`inherited_env`](crate::inherited_env) of its own; default: `PATH` only). Nothing else is
    /// inherited: a command never sees this program's secrets.
    pub env: Vec<(OsString, OsString)>,
    /// An executable that runs [`supervise::run`](crate::supervise::run) when started as `EXE supervise
    /// --hold PATH ... -- COMMAND...` (booty's own, `/proc/self/exe`): each command then runs under it and
    /// dies with this process however it dies. `None` (the default) starts commands directly.
    pub supervisor: Option<PathBuf>,
}

impl JobCommand {
    /// `argv` with every default.
    pub fn new(argv: Vec<String>) -> Self {
        Self {
            argv,
            timeout: DEFAULT_JOB_TIMEOUT,
            env: crate::command::inherited_env(&[], |_| None),
            supervisor: None,
        }
    }
}

/// [`Service::start`] failed; nothing is left running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The SQLite store could not be opened (the error names the file and what is wrong with it).
    #[error("cannot open the SQLite store (`store`)")]
    Sqlite(#[source] SqliteError),
    /// The PostgreSQL store could not be reached or set up (the error names the server, never the URL).
    #[error("cannot open the PostgreSQL store (`store`)")]
    Postgres(#[source] PostgresError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr} (`{field}`)")]
    Listen {
        /// `listen` or `admin_listen`.
        field: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The one repository of [`CloneFrom::Single`] is not `owner/name`.
    #[error("invalid repository for `clone_from`")]
    Repository(#[source] booty_event::RuleError),
    /// The admin listener would listen beyond loopback with no token: anyone who can reach it could
    /// cancel and retry jobs.
    #[error(
        "`admin_listen` is {addr}, which is not a loopback address, and no `admin_token` is set: set \
         `admin_token` (or `admin_token_file`), or listen on 127.0.0.1"
    )]
    AdminUnprotected {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// An allowed admin host is not a host.
    #[error("invalid `admin_allowed_hosts`")]
    AdminHosts(#[source] HostError),
    /// The workspace root could not be created or swept.
    #[error("cannot prepare the workspace root {}", root.display())]
    WorkspaceRoot {
        /// The root.
        root: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The queue did not start.
    #[error(transparent)]
    Queue(#[from] booty_queue::StartError),
    /// Recovery is configured without GitHub credentials to read the deliveries with.
    #[error("`recovery` needs GitHub credentials (`github`)")]
    RecoveryWithoutGitHub,
}

/// A listener failed while the service ran, or its task panicked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The webhook or admin listener stopped working.
    #[error("the {listener} listener failed")]
    Listener {
        /// `webhook` or `admin`.
        listener: &'static str,
        /// Why.
        #[source]
        source: ServeError,
    },
    /// A listener's task panicked.
    #[error("the {0} listener's task panicked")]
    Panicked(&'static str),
}

/// The running service: the webhook and admin listeners, the queue and its workers.
///
/// [`Service::start`] opens the store, binds both listeners, sweeps what a crashed run left under the
/// workspace root (only what no live process holds) and starts the queue; [`Service::shutdown`] stops
/// accepting webhooks, drains the queue within the grace, then closes the admin listener.
pub struct Service {
    queue: Queue<JobPayload>,
    webhook_addr: SocketAddr,
    admin_addr: SocketAddr,
    edge: Option<JoinHandle<Result<(), ServeError>>>,
    admin: JoinHandle<Result<(), ServeError>>,
    stop_edge: CancellationToken,
    stop_admin: CancellationToken,
    /// The periodic recovery, if configured, and what stops it.
    recovery: Option<(JoinHandle<()>, CancellationToken)>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("webhook_addr", &self.webhook_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Starts the service on the current tokio runtime and logs `listening` with the bound addresses.
    ///
    /// The order protects a running booty: the store first (a SQLite file is locked to one process), then
    /// both listeners, and only then the sweep of `workspace.root`, so a second process that cannot have
    /// the store or the ports stops before it touches a file.
    ///
    /// # Errors
    /// A [`StartError`] naming what could not be had.
    pub async fn start(config: ServiceConfig) -> Result<Self, StartError> {
        let store_name = config.store.name();
        let metrics = config.metrics.unwrap_or_default();
        if config.admin_token.is_none() && !config.admin_listen.ip().is_loopback() {
            return Err(StartError::AdminUnprotected {
                addr: config.admin_listen,
            });
        }
        let recovery = periodic_recovery(config.recovery, config.github.as_ref(), &metrics)?;
        let store = open_store(config.store).await?;
        let listen = |field, addr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Listen {
                    field,
                    addr,
                    source,
                })
        };
        let listener = listen("listen", config.listen).await?;
        let admin_listener = listen("admin_listen", config.admin_listen).await?;
        let local = |field, listener: &TcpListener, addr| {
            listener.local_addr().map_err(|source| StartError::Listen {
                field,
                addr,
                source,
            })
        };
        let webhook_addr = local("listen", &listener, config.listen)?;
        let admin_addr = local("admin_listen", &admin_listener, config.admin_listen)?;
        let admin_hosts = config.admin_allowed_hosts;
        sweep_leftovers(&config.workspace.root).await?;

        let workers = config.queue.workers;
        let trigger = serving_rule(config.trigger, &config.clone_from)?;
        let issues_at = match &config.clone_from {
            CloneFrom::GitHub { url } => Some(url.clone()),
            CloneFrom::Single { .. } => None,
        };
        let runner = Runner {
            workspaces: WorkspaceManager::new(config.workspace),
            clone_from: config.clone_from,
            base_branch: config.base_branch,
            command: config.command.map(Arc::new),
            github: config.github,
            publish: config.publish,
            max_attempts: config.queue.max_attempts,
            metrics: Some(metrics.clone()),
        };
        let queue = store.start(runner, config.queue, metrics.clone()).await?;
        let admin = admin_router(
            &queue,
            &metrics,
            AdminSettings {
                limits: config.edge.limits,
                hosts: &admin_hosts,
                token: config.admin_token,
                metrics_public: config.admin_metrics_public,
                issues_at,
            },
        )?;
        info!(
            webhook_addr = %webhook_addr,
            admin_addr = %admin_addr,
            store = store_name,
            workers,
            "listening"
        );

        let (stop_edge, stop_admin) = (CancellationToken::new(), CancellationToken::new());
        let sink = Arc::new(
            QueueSink::new(queue.clone(), trigger, JobPayload::from_submission)
                .with_metrics(metrics.clone()),
        );
        let recovery = recovery.map(|(recovery, interval)| {
            spawn_recovery(recovery, interval, &queue, Arc::clone(&sink))
        });
        let mut edge_config = config.edge;
        edge_config.observer = Some(Arc::new(metrics.clone()));
        let edge = tokio::spawn(booty_edge::serve(
            listener,
            edge_config,
            sink,
            stop_edge.clone().cancelled_owned(),
        ));
        let admin = tokio::spawn(admin.serve(admin_listener, stop_admin.clone().cancelled_owned()));
        Ok(Self {
            queue,
            webhook_addr,
            admin_addr,
            edge: Some(edge),
            admin,
            stop_edge,
            stop_admin,
            recovery,
        })
    }

    /// The webhook listener's address (the port chosen, if `listen` asked for port 0).
    pub fn webhook_addr(&self) -> SocketAddr {
        self.webhook_addr
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The queue, to submit to or inspect directly.
    pub fn queue(&self) -> &Queue<JobPayload> {
        &self.queue
    }

    /// Waits until the webhook listener stops by itself (its listener failed), which it only does on an
    /// error; shut the service down then. Pending forever once [`Service::shutdown`] could take over.
    ///
    /// # Errors
    /// Why the listener stopped.
    pub async fn failed(&mut self) -> RunError {
        let Some(edge) = &mut self.edge else {
            return std::future::pending().await;
        };
        let stopped = edge.await;
        self.edge = None;
        error!("webhook listener stopped unexpectedly; shutting down");
        match stopped {
            Ok(Ok(())) => RunError::Listener {
                listener: "webhook",
                source: ServeError::Accept(std::io::Error::other("stopped without being asked")),
            },
            Ok(Err(source)) => RunError::Listener {
                listener: "webhook",
                source,
            },
            Err(_) => RunError::Panicked("webhook"),
        }
    }

    /// Stops in order: the webhook listener stops accepting and answers what is in flight, the queue
    /// drains within `grace` (running jobs are then cancelled), and the admin listener closes last.
    ///
    /// # Errors
    /// A [`RunError`] if a listener had failed or panicked; the queue is drained all the same.
    pub async fn shutdown(mut self, grace: Duration) -> Result<ShutdownReport, RunError> {
        self.stop_edge.cancel();
        if let Some((task, stop)) = self.recovery.take() {
            // A pass stopped half-way loses nothing: its bookmark only covers what was stored.
            stop.cancel();
            let _ = task.await;
        }
        let edge = match self.edge.take() {
            Some(edge) => joined("webhook", edge.await),
            None => Ok(()),
        };
        let report = self.queue.shutdown(grace).await;
        self.stop_admin.cancel();
        let admin = joined("admin", self.admin.await);
        edge.and(admin).map(|()| report)
    }
}

/// The service's recovery, counted in `metrics`, and the time between its passes; it needs GitHub.
fn periodic_recovery(
    config: Option<RecoveryConfig>,
    github: Option<&GitHub>,
    metrics: &Metrics,
) -> Result<Option<(Recovery, Duration)>, StartError> {
    match (config, github) {
        (None, _) => Ok(None),
        (Some(recovery), Some(github)) => Ok(Some((
            Recovery {
                github: github.clone(),
                hook: recovery.hook,
                max_age: recovery.max_age,
                metrics: Some(metrics.clone()),
            },
            recovery.interval,
        ))),
        (Some(_), None) => Err(StartError::RecoveryWithoutGitHub),
    }
}

/// Runs `recovery` every `interval` through `sink` until the returned token is cancelled.
fn spawn_recovery(
    recovery: Recovery,
    interval: Duration,
    queue: &Queue<JobPayload>,
    sink: Arc<QueueSink<JobPayload>>,
) -> (JoinHandle<()>, CancellationToken) {
    let stop = CancellationToken::new();
    let task = tokio::spawn(recover::run_periodically(
        recovery,
        queue.clone(),
        sink,
        interval,
        stop.clone(),
    ));
    (task, stop)
}

/// The rule the sink routes with: `trigger`, serving the one repository there is for
/// [`CloneFrom::Single`], whatever else it was told.
fn serving_rule(trigger: TriggerRule, clone_from: &CloneFrom) -> Result<TriggerRule, StartError> {
    Ok(match clone_from {
        CloneFrom::Single { full_name, .. } => {
            let only = Repositories::new([full_name]).map_err(StartError::Repository)?;
            trigger.only_repositories(only)
        }
        CloneFrom::GitHub { .. } => trigger,
    })
}

/// One recovery pass from the command line (`booty recover`): opens `config`'s store, reads the
/// configured hook's deliveries back to `since`, and submits the missed ones through the service's sink
/// to a queue that runs nothing here (the running service's workers take them from the store), or, with
/// `dry_run`, only says what it would submit. Listeners are not opened; nothing is swept.
///
/// # Errors
/// [`RecoveryError`] when recovery is not configured, the store cannot be opened, or there is nothing
/// durable to submit to.
pub async fn recover_once(
    config: ServiceConfig,
    since: Since,
    dry_run: bool,
) -> Result<PassReport, RecoveryError> {
    let Some(recovery) = config.recovery else {
        return Err(RecoveryError::NotConfigured);
    };
    let Some(github) = config.github else {
        return Err(RecoveryError::Start(StartError::RecoveryWithoutGitHub));
    };
    if !dry_run && matches!(config.store, StoreConfig::Memory(_)) {
        return Err(RecoveryError::MemoryStore);
    }
    let rule = serving_rule(config.trigger, &config.clone_from).map_err(RecoveryError::Start)?;
    let store = open_store(config.store)
        .await
        .map_err(RecoveryError::Start)?;
    let queue = store
        .submit_only(config.queue)
        .map_err(|err| RecoveryError::Start(err.into()))?;
    let recovery = Recovery {
        github,
        hook: recovery.hook,
        max_age: recovery.max_age,
        metrics: None,
    };
    let sink = QueueSink::new(queue.clone(), rule.clone(), JobPayload::from_submission);
    let target = if dry_run {
        recover::Target::DryRun(&rule)
    } else {
        recover::Target::Submit(&sink)
    };
    let report = recovery.pass(&queue, target, since).await;
    queue.shutdown(Duration::ZERO).await;
    Ok(report)
}

fn joined(
    listener: &'static str,
    result: Result<Result<(), ServeError>, tokio::task::JoinError>,
) -> Result<(), RunError> {
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(RunError::Listener { listener, source }),
        Err(_) => Err(RunError::Panicked(listener)),
    }
}

/// The configured store, open (and, for SQLite, locked to this process).
enum OpenStore {
    Memory(MemoryStore<JobPayload>),
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

async fn open_store(config: StoreConfig) -> Result<OpenStore, StartError> {
    Ok(match config {
        StoreConfig::Memory(retention) => OpenStore::Memory(MemoryStore::new(retention)),
        StoreConfig::Sqlite { path, options } => OpenStore::Sqlite(
            SqliteStore::open(path, options)
                .await
                .map_err(StartError::Sqlite)?,
        ),
        StoreConfig::Postgres { url, options } => OpenStore::Postgres(
            PostgresStore::connect(&url, options)
                .await
                .map_err(StartError::Postgres)?,
        ),
    })
}

impl OpenStore {
    async fn start(
        self,
        runner: Runner,
        config: QueueConfig,
        metrics: Metrics,
    ) -> Result<Queue<JobPayload>, booty_queue::StartError> {
        match self {
            Self::Memory(store) => Queue::start_with(store, runner, config, metrics).await,
            Self::Sqlite(store) => Queue::start_with(store, runner, config, metrics).await,
            Self::Postgres(store) => Queue::start_with(store, runner, config, metrics).await,
        }
    }
}

impl OpenStore {
    fn submit_only(
        self,
        config: QueueConfig,
    ) -> Result<Queue<JobPayload>, booty_queue::StartError> {
        match self {
            Self::Memory(store) => Queue::submit_only(store, config),
            Self::Sqlite(store) => Queue::submit_only(store, config),
            Self::Postgres(store) => Queue::submit_only(store, config),
        }
    }
}

/// What the admin listener is configured with.
struct AdminSettings<'a> {
    limits: booty_edge::Limits,
    hosts: &'a [String],
    token: Option<AdminToken>,
    metrics_public: bool,
    issues_at: Option<String>,
}

/// The admin listener over `queue`: its jobs, its token, and `metrics` with the queue's depth read at
/// each scrape.
fn admin_router(
    queue: &Queue<JobPayload>,
    metrics: &Metrics,
    settings: AdminSettings<'_>,
) -> Result<Admin<QueueInspector<JobPayload>>, StartError> {
    let admin = Admin::new(
        Arc::new(QueueInspector::new(queue.clone())),
        settings.limits,
    )
    .allow_hosts(settings.hosts)
    .map_err(StartError::AdminHosts)?;
    let admin = match settings.token {
        Some(token) => admin.with_token(token),
        None => admin,
    };
    let counted = queue.clone();
    let exporter = Exporter {
        metrics: metrics.clone(),
        counts: move || {
            let queue = counted.clone();
            // A store that cannot count leaves the depth out of this scrape (and is counted in
            // `booty_store_errors_total`); the rest is still served.
            async move { queue.counts().await.ok() }
        },
    };
    let admin = admin.with_metrics(Arc::new(exporter), settings.metrics_public);
    Ok(match settings.issues_at {
        Some(url) => admin.link_issues_to(url),
        None => admin,
    })
}

/// Removes the workspaces and event files a crashed run left under `root`, leaving those a live process
/// holds (another booty's running job, or a job command still dying).
async fn sweep_leftovers(root: &std::path::Path) -> Result<(), StartError> {
    let failed = |source: Box<dyn std::error::Error + Send + Sync>| StartError::WorkspaceRoot {
        root: root.to_owned(),
        source,
    };
    std::fs::create_dir_all(root).map_err(|err| failed(Box::new(err)))?;
    let workspaces = booty_workspace::sweep(root)
        .await
        .map_err(|err: SweepError| failed(Box::new(err)))?;
    let (event_files, event_files_in_use) =
        handler::sweep_event_files(root).map_err(|err| failed(Box::new(err)))?;
    info!(
        workspaces = workspaces.removed.len(),
        workspaces_in_use = workspaces.in_use.len(),
        event_files = event_files.len(),
        event_files_in_use = event_files_in_use.len(),
        root = %root.display(),
        "startup_swept"
    );
    Ok(())
}
