//! How a [`crate::GitHub`] client is set up ([`Config`]), and the [`Permissions`] its installation tokens
//! ask for.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::observer::ApiObserver;
use crate::time::{Clock, SystemClock};

/// github.com's REST API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";
/// The REST API version every request names (`X-GitHub-Api-Version`).
pub const API_VERSION: &str = "2022-11-28";
/// How long one request may take (connect, send, answer, body) unless configured otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take unless configured otherwise.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Retries of an idempotent call after a 5xx or a transport failure, unless configured otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 3;
/// How long one call may wait in all for rate limits to lift, unless configured otherwise.
pub const DEFAULT_MAX_RATE_LIMIT_WAIT: Duration = Duration::from_mins(5);
/// A cached installation token is replaced once it has less than this left.
pub const TOKEN_REFRESH_MARGIN: Duration = Duration::from_mins(5);

/// The REST API URL of a GitHub Enterprise Server host: `https://HOST/api/v3`.
pub fn enterprise_api_url(host: &str) -> String {
    format!("https://{host}/api/v3")
}

/// Settings of a [`crate::GitHub`] client. Start from [`Config::default`] and change what differs.
///
/// ```
/// use std::time::Duration;
/// use booty_github::{Access, Config, Permissions};
///
/// let mut config = Config::default();
/// config.api_url = booty_github::enterprise_api_url("github.example.com");
/// config.max_rate_limit_wait = Duration::from_mins(1);
/// config.permissions = Permissions::booty().with("checks", Access::Write);
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct Config {
    /// The REST API's base URL: [`DEFAULT_API_URL`], or [`enterprise_api_url`] for GitHub Enterprise Server.
    /// It must be `https://`, or `http://` to a loopback host (tests).
    pub api_url: String,
    /// The `User-Agent` of every request. Default: `booty-github/VERSION`; the booty binary puts its own
    /// name and version first.
    pub user_agent: String,
    /// The time limit of one request, body included. Default: [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
    /// The time limit of connecting. Default: [`DEFAULT_CONNECT_TIMEOUT`].
    pub connect_timeout: Duration,
    /// Retries after a 5xx or a transport failure, for idempotent calls only (and for any call whose
    /// connection was never made). Default: [`DEFAULT_MAX_RETRIES`].
    pub max_retries: u32,
    /// How long one call may wait in all for rate limits; a longer wait is an
    /// [`crate::ErrorKind::RateLimited`] error saying until when. Default: [`DEFAULT_MAX_RATE_LIMIT_WAIT`].
    pub max_rate_limit_wait: Duration,
    /// What installation tokens ask for unless a call says otherwise. Default: [`Permissions::booty`].
    pub permissions: Permissions,
    /// Where time is read and waits happen. Default: [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// Told about every answer GitHub gives (for metrics); none by default.
    pub observer: Option<Arc<dyn ApiObserver>>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            api_url: DEFAULT_API_URL.to_owned(),
            user_agent: concat!("booty-github/", env!("CARGO_PKG_VERSION")).to_owned(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_retries: DEFAULT_MAX_RETRIES,
            max_rate_limit_wait: DEFAULT_MAX_RATE_LIMIT_WAIT,
            permissions: Permissions::booty(),
            clock: Arc::new(SystemClock),
            observer: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_url", &self.api_url)
            .field("user_agent", &self.user_agent)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("max_retries", &self.max_retries)
            .field("max_rate_limit_wait", &self.max_rate_limit_wait)
            .field("permissions", &self.permissions)
            .field("observer", &self.observer)
            .finish_non_exhaustive()
    }
}

/// A level of access to one of GitHub's permissions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// `read`.
    Read,
    /// `write` (includes read).
    Write,
    /// `admin`, which a few permissions have.
    Admin,
}

/// The permissions an installation token asks for, by GitHub's names (`contents`, `issues`,
/// `pull_requests`, `repository_hooks`, ...). GitHub narrows a token to them; it never widens one beyond
/// what the installation was granted.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct Permissions(BTreeMap<String, Access>);

impl Permissions {
    /// No permission at all (add some with [`Permissions::with`]).
    pub fn none() -> Self {
        Self(BTreeMap::new())
    }

    /// What booty uses: `contents: write` (push), `issues: write` (comments, reactions) and
    /// `pull_requests: write`.
    pub fn booty() -> Self {
        Self::none()
            .with("contents", Access::Write)
            .with("issues", Access::Write)
            .with("pull_requests", Access::Write)
    }

    /// These permissions and `name` at `access` (replacing what `name` had).
    #[must_use]
    pub fn with(mut self, name: impl Into<String>, access: Access) -> Self {
        self.0.insert(name.into(), access);
        self
    }

    /// The access asked for `name`, if any.
    pub fn get(&self, name: &str) -> Option<Access> {
        self.0.get(name).copied()
    }

    /// Each permission and its access, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Access)> {
        self.0.iter().map(|(name, access)| (name.as_str(), *access))
    }
}
