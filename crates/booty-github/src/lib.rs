//! GitHub for bots: GitHub App authentication and the REST calls booty makes, with GitHub's rules kept.
//!
//! - [`Credentials`] are a [`Token`] or an App's [`AppCredentials`] ([`AppId`] and RSA private key, PKCS#1 as
//!   GitHub hands it out or PKCS#8). [`AppCredentials::from_pem_file`] parses the key and signs one JWT, so
//!   a start-up check knows the credentials are usable without the network.
//! - [`GitHub`] is the client, cheap to clone and share. With an App it signs JWTs (RS256, `iat` 60 s in the
//!   past, `exp` 9 minutes ahead, retried once with GitHub's clock when GitHub rejects their times) and
//!   mints installation tokens narrowed to one repository and to [`Config::permissions`]
//!   ([`GitHub::token_for`]), cached until 5 minutes before they expire with one mint in flight per key; a
//!   401 in the first seconds of a token is GitHub's replication delay and is retried.
//!   [`GitHub::installation_for_repository`] finds the installation when a payload names none.
//! - [`GitHub::create_app_from_manifest`] is the end of GitHub's App manifest flow: a one-time code
//!   exchanged, without credentials ([`Credentials::Anonymous`]), for the new App's ids and secrets
//!   ([`ManifestApp`]).
//! - Calls live on handles: [`RepositoryClient`] (issue comments and reactions, pull requests, a repository
//!   hook's deliveries, the Git database API), [`AppClient`] (the App hook's deliveries), [`OrganizationClient`]. Lists come a
//!   [`Page`] at a time, following GitHub's `Link` header.
//! - Every request has a time limit; rate limits are waited out (the primary one until
//!   `x-ratelimit-reset`, the secondary one for `Retry-After` or a minute) up to what the caller allows;
//!   5xx and broken connections are retried with backoff and jitter for idempotent calls only. Failures are
//!   an [`Error`] whose [`ErrorKind`] says what to do about it.
//!
//! Secrets (the key, JWTs, tokens) print nothing in `Debug`, have no `Display`, and never appear in a log
//! line, an error or a URL. The crate knows nothing of webhooks' delivery to booty, of its queue or of git:
//! for git over HTTPS, give the installation token to the git client as the password of `x-access-token`.
//! It emits `tracing` events (`installation_token_minted`, `github_rate_limited`, `github_retrying`,
//! `github_clock_skew`) and installs no subscriber. HTTP is reqwest with rustls on the process-default crypto
//! provider (*ring* unless the application installed another).
//!
//! ```no_run
//! use booty_github::{AppCredentials, Config, Credentials, GitHub};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = AppCredentials::from_pem_file("Iv23liExample".parse()?, "/etc/booty/app.pem")?;
//! let github = GitHub::new(Credentials::App(app), Config::default())?;
//! let repo = "octo-org/hello".parse()?;
//!
//! // A token for git: narrowed to octo-org/hello, reused until 5 minutes before it expires.
//! let installation = github.installation_for_repository(&repo).await?;
//! let token = github.token_for(installation, &repo).await?;
//! assert!(token.expires_at().is_some());
//!
//! // REST calls on the repository carry such a token.
//! let comment = github
//!     .repository(repo, Some(installation))
//!     .create_issue_comment(7, "On it.")
//!     .await?;
//! println!("commented: {}", comment.html_url);
//! # Ok(())
//! # }
//! ```

mod api;
mod client;
mod config;
mod credentials;
mod error;
mod names;
mod observer;
mod pagination;
mod retry;
mod secret;
mod time;
mod tokens;

pub use api::deliveries::{DeliveryRequest, DeliveryResponse, HookDelivery, HookDeliveryDetail};
pub use api::git::{GitCommit, GitObject, GitRef, GitTree, TreeEntry};
pub use api::issues::{Account, IssueComment, Reaction, ReactionContent};
pub use api::manifest::ManifestApp;
pub use api::pulls::{Branch, NewPullRequest, PullRequest, PullRequestUpdate, PullState};
pub use api::{AppClient, OrganizationClient, RepositoryClient};
pub use client::{GitHub, REPLICATION_WINDOW};
pub use config::{
    API_VERSION, Access, Config, DEFAULT_API_URL, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_RATE_LIMIT_WAIT, DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT, Permissions,
    TOKEN_REFRESH_MARGIN, enterprise_api_url,
};
pub use credentials::{
    AppCredentials, AppId, AppIdError, Credentials, JWT_ISSUED_BEFORE, JWT_LIFETIME, KeyError,
};
pub use error::{BuildError, Error, ErrorKind, FieldError, RateLimit};
pub use names::{DeliveryId, HookId, InstallationId, NameError, Repository};
pub use observer::{ApiCall, ApiObserver};
pub use pagination::{Cursor, Page};
pub use secret::{Jwt, Secret, Token};
pub use time::{Clock, Sleep, SystemClock};
