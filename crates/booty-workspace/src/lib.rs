//! Workspaces for jobs: isolated, shallow gix clones on an `agent/issue-{n}` branch, with credentials that
//! never leak and cleanup on every path.
//!
//! - [`WorkspaceManager`] is built once from a [`WorkspaceConfig`] (root directory, clone depth, time limit,
//!   optional [`Token`]) and shared by the workers.
//! - [`WorkspaceManager::prepare`] turns a [`WorkspaceRequest`] (repository URL, base branch, issue number)
//!   into a [`Workspace`]: a fresh directory `booty-issue-{n}-{random}` (mode 0700) under the root holding a
//!   single-branch clone of the base branch at the configured depth, checked out, with HEAD on a new branch
//!   `agent/issue-{n}` at the base branch's tip. It accepts `https://`, `http://`, `file://` and local paths.
//! - A [`Workspace`] removes its directory when dropped (on success, error, panic or cancellation alike);
//!   [`Workspace::close`] does it on the blocking pool.
//! - [`sweep`] removes what a crashed run left under the root, and never a workspace a live process holds:
//!   each [`Workspace`] holds a shared `flock` on its directory, and a sweep removes only what it can lock
//!   exclusively. To keep a workspace (or a file next to it) from being swept, hold a shared `flock` on it:
//!   [`mark_in_use`]; [`remove_unless_in_use`] is the sweeper's side, for files of your own.
//! - [`PrepareError::is_retryable`] tells a job queue whether trying again can help.
//! - [`redact_url`] shows a repository URL without its credentials, as the crate's errors and logs do.
//!
//! The clone is pure Rust (gix, with reqwest and rustls for HTTPS); the library runs no `git` process and
//! ignores the host's git configuration and credential helpers, and never prompts. rustls uses the process's
//! default crypto provider, as rustls asks of libraries: *ring* (the only provider this crate enables), unless
//! the application installed another with `rustls::crypto::CryptoProvider::install_default`. An application
//! whose dependencies also enable rustls's `aws_lc_rs` feature must install one itself, or rustls panics at the
//! first HTTPS clone. A token is sent in memory as an HTTP header: it is never written to `.git/config` or a
//! stored URL, and never appears in a log line or an error. Credentials in a repository URL are moved out of
//! it the same way. Credentials only travel over `https://`, or over `http://` to a loopback host; any other
//! `http://` URL is refused ([`PrepareError::InvalidUrl`]) when there are credentials to send.
//!
//! The library only emits `tracing` events (`workspace_cleaned` with the path, whenever a workspace directory
//! is removed; `workspace_in_use` for one a sweep left alone); it never installs a subscriber.
//!
//! ```no_run
//! use std::time::Duration;
//! use booty_workspace::{Token, WorkspaceConfig, WorkspaceManager, WorkspaceRequest};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = WorkspaceConfig::new("/var/lib/booty/workspaces");
//! config.clone_timeout = Duration::from_secs(120);
//! config.token = Some(Token::new("ghs_..."));
//! let manager = WorkspaceManager::new(config);
//!
//! // At start-up: remove what a crashed run left behind, but not what a live process still uses.
//! let swept = booty_workspace::sweep(manager.root()).await?;
//! println!("removed {} leftovers, {} in use", swept.removed.len(), swept.in_use.len());
//!
//! let request = WorkspaceRequest::new("https://github.com/octo/hello.git", "main", 42);
//! // With a cancellation token: `manager.prepare(&request, token.cancelled())`.
//! match manager.prepare(&request, std::future::pending()).await {
//!     Ok(workspace) => {
//!         assert_eq!(workspace.branch(), "agent/issue-42");
//!         println!("{} at {}", workspace.path().display(), workspace.head_commit());
//!         // ... run the job in workspace.path() ...
//!         workspace.close().await?;
//!     }
//!     Err(err) if err.is_retryable() => eprintln!("will retry: {err}"),
//!     Err(err) => eprintln!("giving up: {err}"),
//! }
//! # Ok(())
//! # }
//! ```

mod blocking;
mod clone;
mod config;
mod dir;
mod error;
mod lock;
mod manager;
mod source;
mod workspace;

pub use config::{DEFAULT_CLONE_DEPTH, DEFAULT_CLONE_TIMEOUT, Token, WorkspaceConfig};
pub use dir::{SweepError, Swept, sweep};
pub use error::PrepareError;
pub use lock::{Removal, mark_in_use, remove_unless_in_use};
pub use manager::{WorkspaceManager, WorkspaceRequest};
pub use source::redact_url;
pub use workspace::{CloseError, Workspace};
