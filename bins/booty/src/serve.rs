//! `booty serve`: compose the crates and run until SIGTERM or Ctrl-C.
//!
//! Start-up: open the store (which, for SQLite, locks the file to this process), bind both listeners, and
//! only then sweep what a crashed run left under `workspace_root` (only what no live process holds: see
//! `booty_workspace::sweep`), start the queue, and log the bound addresses as `listening` (so port 0
//! works). A second `booty` that cannot have the store or the ports stops before it touches a file.
//! Shutdown, in order: the webhook listener stops accepting and answers what is in flight, the queue
//! drains within `shutdown_grace_secs`, the admin listener stops last, and the process exits 0.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use booty_edge::{Admin, EdgeConfig};
use booty_event::TriggerRule;
use booty_queue::CancellationToken;
use booty_queue::{
    MemoryLimits, MemoryStore, PostgresOptions, PostgresStore, Queue, QueueConfig, SqliteOptions,
    SqliteStore,
};
use booty_signature::Verifier;
use booty_workspace::{Token, WorkspaceConfig, WorkspaceManager};
use tokio::net::TcpListener;
use tracing::{error, info};

use crate::config::{Config, Secret, StoreSpec};
use crate::job::{JobPayload, QueueInspector, QueueSink};
use crate::runner::{self, Runner};

/// Runs the service until a shutdown signal, then shuts down in order.
pub(crate) async fn serve(config: Config) -> anyhow::Result<()> {
    let edge_config = edge_config(&config)?;
    let store = open_store(&config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (`listen`)", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (`admin_listen`)", config.admin_listen))?;
    sweep_leftovers(&config).await?;
    let queue = store.start(&config, runner(&config)).await?;
    info!(
        webhook_addr = %listener.local_addr()?,
        admin_addr = %admin_listener.local_addr()?,
        store = store_name(&config.store),
        workers = config.workers.get(),
        "listening"
    );

    let stop_edge = CancellationToken::new();
    let stop_admin = CancellationToken::new();
    let limits = edge_config.limits;
    let mut edge = tokio::spawn(booty_edge::serve(
        listener,
        edge_config,
        Arc::new(QueueSink {
            queue: queue.clone(),
        }),
        stop_edge.clone().cancelled_owned(),
    ));
    let admin = Admin::new(
        Arc::new(QueueInspector {
            queue: queue.clone(),
        }),
        limits,
    )
    .allow_hosts(&config.admin_allowed_hosts)
    .context("invalid `admin_allowed_hosts`")?;
    let admin = tokio::spawn(admin.serve(admin_listener, stop_admin.clone().cancelled_owned()));

    // Run until a signal, or until the webhook listener fails on its own.
    let edge_result = tokio::select! {
        signal = shutdown_signal() => {
            info!(signal = signal?, "shutdown_started");
            stop_edge.cancel();
            (&mut edge).await
        }
        result = &mut edge => {
            error!("webhook listener stopped unexpectedly; shutting down");
            info!(signal = "none", "shutdown_started");
            result
        }
    };
    // The edge no longer accepts; drain the queue, then close the admin listener.
    let report = queue.shutdown(config.shutdown_grace).await;
    stop_admin.cancel();
    let admin_result = admin.await;
    info!(
        finished = report.finished.len(),
        cancelled = report.cancelled.len(),
        abandoned = report.abandoned.len(),
        "shutdown_complete"
    );
    edge_result.context("the webhook listener task panicked")??;
    admin_result.context("the admin listener task panicked")??;
    Ok(())
}

/// The webhook listener's configuration: secrets, trigger label, body limit.
fn edge_config(config: &Config) -> anyhow::Result<EdgeConfig> {
    let verifier = Verifier::with_previous(
        config.webhook_secret.expose(),
        config.previous_webhook_secrets.iter().map(Secret::expose),
    )?;
    let mut edge_config = EdgeConfig::new(verifier);
    edge_config.trigger = TriggerRule::new(config.trigger_label.clone())?;
    edge_config.max_body_bytes = config.max_body_bytes;
    Ok(edge_config)
}

/// Removes the workspaces and event files a crashed run left under `workspace_root`, leaving those a live
/// process holds (another booty's running job, or a job command still dying).
async fn sweep_leftovers(config: &Config) -> anyhow::Result<()> {
    let root = &config.workspace_root;
    std::fs::create_dir_all(root)
        .with_context(|| format!("cannot create workspace_root {}", root.display()))?;
    let workspaces = booty_workspace::sweep(root).await?;
    let (event_files, event_files_in_use) = runner::sweep_event_files(root)
        .with_context(|| format!("cannot sweep event files in {}", root.display()))?;
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

/// The job handler: workspaces from the configured repository, then the job command.
fn runner(config: &Config) -> Runner {
    let mut workspace_config = WorkspaceConfig::new(&config.workspace_root);
    workspace_config.depth = config.clone_depth;
    workspace_config.clone_timeout = config.clone_timeout;
    workspace_config.token = config
        .github_token
        .as_ref()
        .map(|token| Token::new(token.expose()));
    Runner {
        workspaces: WorkspaceManager::new(workspace_config),
        repo_url: config.repo_url.clone(),
        base_branch: config.base_branch.clone(),
        command: config.job_command.as_deref().map(Arc::from),
        timeout: config.job_timeout,
        env_passthrough: config.job_env_passthrough.clone(),
        supervisor: Some(PathBuf::from(SELF_EXE)),
    }
}

/// This process's executable, which runs each job command as `booty supervise` (Linux's name for it
/// stays valid even when the file was replaced by an upgrade).
const SELF_EXE: &str = "/proc/self/exe";

/// The configured store, open (and, for SQLite, locked to this process).
enum OpenStore {
    Memory(MemoryStore<JobPayload>),
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

/// Opens the configured store.
async fn open_store(config: &Config) -> anyhow::Result<OpenStore> {
    Ok(match &config.store {
        StoreSpec::Memory => OpenStore::Memory(MemoryStore::new(MemoryLimits {
            dedupe_capacity: config.dedupe_capacity,
            ..MemoryLimits::default()
        })),
        StoreSpec::Sqlite(path) => {
            let mut options = SqliteOptions::default();
            options.synchronous = config.sqlite_synchronous;
            options.dedupe_capacity = config.dedupe_capacity;
            options.dedupe_retention = config.dedupe_retention;
            // The error names the file and what is wrong with it (in use, corrupt, not writable).
            OpenStore::Sqlite(
                SqliteStore::open(path, options)
                    .await
                    .context("cannot open the SQLite store (`store`)")?,
            )
        }
        StoreSpec::Postgres(url) => {
            let mut options = PostgresOptions::default();
            options.dedupe_capacity = config.dedupe_capacity;
            // The error names host, port and database, never the URL (it may hold a password).
            OpenStore::Postgres(
                PostgresStore::connect(url.expose(), options)
                    .await
                    .context("cannot open the PostgreSQL store (`store`)")?,
            )
        }
    })
}

impl OpenStore {
    /// Starts the workers on the store.
    async fn start(self, config: &Config, runner: Runner) -> anyhow::Result<Queue<JobPayload>> {
        let mut queue_config = QueueConfig::default();
        queue_config.workers = config.workers.get();
        queue_config.capacity = config.queue_capacity;
        queue_config.max_attempts = config.max_attempts;
        queue_config.lease = config.lease;
        queue_config.backoff = config.retry_backoff;
        Ok(match self {
            Self::Memory(store) => Queue::start(store, runner, queue_config).await?,
            Self::Sqlite(store) => Queue::start(store, runner, queue_config).await?,
            Self::Postgres(store) => Queue::start(store, runner, queue_config).await?,
        })
    }
}

fn store_name(store: &StoreSpec) -> &'static str {
    match store {
        StoreSpec::Memory => "memory",
        StoreSpec::Sqlite(_) => "sqlite",
        StoreSpec::Postgres(_) => "postgres",
    }
}

/// Waits for SIGTERM or SIGINT (Ctrl-C) and names it.
async fn shutdown_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
