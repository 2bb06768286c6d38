//! `booty serve`: compose the crates and run until SIGTERM or Ctrl-C.
//!
//! Start-up: sweep leftovers of a crashed run, open the store, start the queue, bind both listeners (the
//! bound addresses are logged as `listening`, so port 0 works). Shutdown, in order: the webhook listener
//! stops accepting and answers what is in flight, the queue drains within `shutdown_grace_secs`, the admin
//! listener stops last, and the process exits 0.

use std::sync::Arc;

use anyhow::Context;
use booty_edge::{EdgeConfig, Limits};
use booty_event::TriggerRule;
use booty_queue::{MemoryLimits, MemoryStore, Queue, QueueConfig};
use booty_signature::Verifier;
use booty_workspace::{Token, WorkspaceConfig, WorkspaceManager};
use tokio::net::TcpListener;
use booty_queue::CancellationToken;
use tracing::{error, info};

use crate::config::{Config, StoreSpec};
use crate::job::{JobPayload, QueueInspector, QueueSink};
use crate::runner::{self, Runner};

/// Runs the service until a shutdown signal, then shuts down in order.
pub(crate) async fn serve(config: Config) -> anyhow::Result<()> {
    let verifier = Verifier::with_previous(
        config.webhook_secret.expose(),
        config.previous_webhook_secrets.iter().map(crate::config::Secret::expose),
    )?;
    let trigger = TriggerRule::new(config.trigger_label.clone())?;

    std::fs::create_dir_all(&config.workspace_root).with_context(|| {
        format!("cannot create workspace_root {}", config.workspace_root.display())
    })?;
    let swept = booty_workspace::sweep(&config.workspace_root).await?;
    let swept_events = runner::sweep_event_files(&config.workspace_root).with_context(|| {
        format!("cannot sweep event files in {}", config.workspace_root.display())
    })?;
    info!(
        workspaces = swept.len(),
        event_files = swept_events.len(),
        root = %config.workspace_root.display(),
        "startup_swept"
    );

    let mut workspace_config = WorkspaceConfig::new(&config.workspace_root);
    workspace_config.depth = config.clone_depth;
    workspace_config.clone_timeout = config.clone_timeout;
    workspace_config.token = config.github_token.as_ref().map(|token| Token::new(token.expose()));
    let runner = Runner {
        workspaces: WorkspaceManager::new(workspace_config),
        repo_url: config.repo_url.clone(),
        base_branch: config.base_branch.clone(),
        command: config.job_command.as_deref().map(Arc::from),
        timeout: config.job_timeout,
    };

    let queue_config = QueueConfig {
        workers: config.workers.get(),
        capacity: config.queue_capacity,
        max_attempts: config.max_attempts,
        ..QueueConfig::default()
    };
    let queue = start_queue(&config, runner, queue_config).await?;

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {} (`listen`)", config.listen))?;
    let admin_listener = TcpListener::bind(config.admin_listen)
        .await
        .with_context(|| format!("cannot listen on {} (`admin_listen`)", config.admin_listen))?;
    info!(
        webhook_addr = %listener.local_addr()?,
        admin_addr = %admin_listener.local_addr()?,
        store = store_name(&config.store),
        workers = config.workers.get(),
        "listening"
    );

    let mut edge_config = EdgeConfig::new(verifier);
    edge_config.trigger = trigger;
    edge_config.max_body_bytes = config.max_body_bytes;
    let limits = edge_config.limits;

    let stop_edge = CancellationToken::new();
    let stop_admin = CancellationToken::new();
    let sink = Arc::new(QueueSink { queue: queue.clone() });
    let mut edge = tokio::spawn(booty_edge::serve(
        listener,
        edge_config,
        sink,
        stop_edge.clone().cancelled_owned(),
    ));
    let inspector = Arc::new(QueueInspector { queue: queue.clone() });
    let admin = tokio::spawn(booty_edge::serve_admin(
        admin_listener,
        inspector,
        Limits { ..limits },
        stop_admin.clone().cancelled_owned(),
    ));

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

async fn start_queue(
    config: &Config,
    runner: Runner,
    queue_config: QueueConfig,
) -> anyhow::Result<Queue<JobPayload>> {
    let queue = match &config.store {
        StoreSpec::Memory => {
            let store = MemoryStore::new(MemoryLimits {
                dedupe_capacity: config.dedupe_capacity,
                ..MemoryLimits::default()
            });
            Queue::start(store, runner, queue_config).await?
        }
        StoreSpec::Sqlite(path) => anyhow::bail!(
            "store `sqlite:{}` is not available yet; use `store = \"memory\"`",
            path.display()
        ),
        StoreSpec::Postgres(_) => {
            anyhow::bail!("store `postgres://...` is not available yet; use `store = \"memory\"`")
        }
    };
    Ok(queue)
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
