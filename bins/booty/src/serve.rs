//! `booty serve`: start the service (`booty_service::Service`) and run it until SIGTERM or Ctrl-C.

use anyhow::Context;
use booty_service::{Metrics, Service};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing::info;

use crate::config::Config;
use crate::logging;

/// Runs the service until a shutdown signal (or until its webhook listener fails), then shuts down in
/// order: the webhook listener stops accepting, the queue drains within `shutdown_grace_secs`, the admin
/// listener closes last.
pub(crate) async fn serve(config: Config) -> anyhow::Result<()> {
    let grace = config.shutdown_grace;
    // Handlers first: a SIGTERM right after `listening` is logged must shut down in order, not kill.
    let signals = ShutdownSignals::install()?;
    let mut service_config = config.service()?;
    // The log writer's drops are counted with the service's metrics.
    let metrics = service_config
        .metrics
        .get_or_insert_with(Metrics::new)
        .clone();
    logging::report_drops_to(move |lines| metrics.log_lines_dropped(lines));
    let mut service = Service::start(service_config).await?;
    let failed = tokio::select! {
        signal = signals.received() => {
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

/// SIGTERM and SIGINT (Ctrl-C), handled from the moment they are installed.
struct ShutdownSignals {
    term: Signal,
    int: Signal,
}

impl ShutdownSignals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
        })
    }

    /// Waits for either and names it.
    async fn received(mut self) -> anyhow::Result<&'static str> {
        Ok(tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        })
    }
}
