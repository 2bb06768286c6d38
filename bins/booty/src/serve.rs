//! `booty serve`: start the service (`booty_service::Service`) and run it until SIGTERM or Ctrl-C.

use anyhow::Context;
use booty_service::Service;
use tracing::info;

use crate::config::Config;

/// Runs the service until a shutdown signal (or until its webhook listener fails), then shuts down in
/// order: the webhook listener stops accepting, the queue drains within `shutdown_grace_secs`, the admin
/// listener closes last.
pub(crate) async fn serve(config: Config) -> anyhow::Result<()> {
    let grace = config.shutdown_grace;
    let mut service = Service::start(config.service()?).await?;
    let failed = tokio::select! {
        signal = shutdown_signal() => {
            info!(signal = signal?, "shutdown_started");
            None
        }
        failure = service.failed() => {
            info!(signal = "none", "shutdown_started");
            Some(failure)
        }
    };
    let report = service.shutdown(grace).await;
    if let Ok(report) = &report {
        info!(
            finished = report.finished.len(),
            cancelled = report.cancelled.len(),
            abandoned = report.abandoned.len(),
            "shutdown_complete"
        );
    }
    if let Some(failure) = failed {
        return Err(failure.into());
    }
    report?;
    Ok(())
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
