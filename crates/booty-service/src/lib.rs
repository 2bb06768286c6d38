//! booty's pipeline as a library: GitHub webhooks in, a job command run in a fresh workspace per labelled
//! issue.
//!
//! [`Service::start`] composes the crates the way the `booty` binary runs them: [`booty_edge`] verifies
//! webhooks and hands them to a [`QueueSink`], which routes each with booty-event's trigger rule
//! ([`ServiceConfig::trigger`]) and submits the triggers to [`booty_queue`], which stores and orders the
//! jobs; each job's handler prepares a workspace with [`booty_workspace`] and runs the configured
//! [`JobCommand`] in it (or nothing, for a bot that only wants the workspaces). The admin listener
//! ([`Admin`]) shows the jobs. With [`ServiceConfig::recovery`] (a [`RecoveryConfig`]), it also recovers
//! the deliveries GitHub could not deliver from the hook's delivery log, at start-up and every few minutes,
//! through the same sink as a webhook ([`recover_once`] is one pass, for a command line).
//! [`Service::shutdown`] drains it in order. Everything it is configured with is in [`ServiceConfig`].
//!
//! The pieces are public for bots that compose their own: [`QueueSink`] (the edge's sink for any payload
//! type, making each job's payload from a [`Submission`]), [`Admin`] and [`serve_admin`] (the `/jobs`
//! routes over any [`JobInspector`]), [`QueueInspector`] (the admin listener's view of a queue),
//! [`JobPayload`] (what the service queues), and [`supervise::run`] (what a job command runs under so it
//! dies with its parent).
//!
//! It installs no tracing subscriber and reads no configuration file or environment variable of its own:
//! that is the binary's part.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use booty_edge::EdgeConfig;
//! use booty_service::{CloneFrom, JobCommand, Service, ServiceConfig};
//! use booty_signature::Verifier;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let edge = EdgeConfig::new(Verifier::new("webhook secret")?);
//! // Each trigger's own repository on github.com (only those the rule allows; see `ServiceConfig::trigger`).
//! let mut config = ServiceConfig::new(edge, CloneFrom::github(), "/var/lib/booty");
//! config.command = Some(JobCommand::new(vec!["/usr/local/bin/agent".to_owned()]));
//! let service = Service::start(config).await?;
//! println!("webhooks on {}", service.webhook_addr());
//! tokio::signal::ctrl_c().await?;
//! service.shutdown(Duration::from_secs(30)).await?;
//! # Ok(())
//! # }
//! ```

mod admin;
mod auth;
mod chain;
mod command;
mod handler;
mod inspect;
mod metrics;
mod page;
mod payload;
mod process;
mod publish;
mod recover;
mod scratch;
mod service;
mod sink;
pub mod supervise;

pub use admin::{
    Action, Admin, DEFAULT_JOB_LIMIT, JobFilter, JobInspector, MAX_JOB_LIMIT, MetricsSource,
    serve_admin,
};
pub use auth::{AdminToken, TokenError};
pub use chain::error_chain;
pub use command::{BASE_ENV, MAX_ENV_VALUE_BYTES, RETRY_EXIT_CODE, inherited_env};
pub use inspect::{JobView, OPERATOR_CANCEL_REASON, QueueInspector};
pub use metrics::{Metrics, PHASE_BUCKETS};
pub use page::escape_html;
pub use payload::JobPayload;
pub use publish::{GitError, PR_BODY_FILE, PR_TITLE_FILE, PublishConfig, PublishMode, push_commit};
pub use recover::{
    DEFAULT_RECOVERY_INTERVAL, DEFAULT_RECOVERY_MAX_AGE, Missed, MissedOutcome, PassReport,
    RecoveryConfig, RecoveryError, RecoveryHook, Since,
};
pub use service::{
    CloneFrom, DEFAULT_ADMIN_LISTEN, DEFAULT_BASE_BRANCH, DEFAULT_GITHUB_URL, DEFAULT_JOB_TIMEOUT,
    DEFAULT_LISTEN, JobCommand, RunError, Service, ServiceConfig, StartError, StoreConfig,
    recover_once,
};
pub use sink::{QueueSink, Submission};
