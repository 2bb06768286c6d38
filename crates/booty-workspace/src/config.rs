//! How a [`crate::WorkspaceManager`] is set up: where workspaces go, how deep clones are, how long they may
//! take, and the token for private repositories.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Settings for a [`crate::WorkspaceManager`], built once at start-up.
///
/// ```
/// use std::time::Duration;
/// use booty_workspace::{Token, WorkspaceConfig};
///
/// let mut config = WorkspaceConfig::new("/var/lib/booty/workspaces");
/// config.depth = 0; // full history
/// config.clone_timeout = Duration::from_secs(60);
/// config.token = Some(Token::new("ghs_example"));
/// assert!(!format!("{config:?}").contains("ghs_example"));
/// ```
#[derive(Debug, Clone)]
pub struct WorkspaceConfig {
    /// The directory workspaces are created in (created if missing). Each workspace is a directory of its own
    /// in it, named `booty-issue-{n}-{random}`, so [`crate::sweep`] can find leftovers.
    pub root: PathBuf,
    /// How many commits of the base branch to fetch; `0` fetches the whole history. Default: `1`.
    pub depth: u32,
    /// How long a clone (connect, fetch and checkout) may take before it is stopped. Default: 300 seconds.
    pub clone_timeout: Duration,
    /// Credentials for HTTP(S) remotes, sent as `x-access-token:<token>` in Basic authentication. A password
    /// in the repository URL itself takes precedence. Never sent over plain `http://` except to a loopback
    /// host: with a token set, other `http://` URLs are refused. Default: none.
    pub token: Option<Token>,
}

/// Commits of the base branch a clone fetches unless configured otherwise.
pub const DEFAULT_CLONE_DEPTH: u32 = 1;
/// How long a clone may take unless configured otherwise.
pub const DEFAULT_CLONE_TIMEOUT: Duration = Duration::from_mins(5);

impl WorkspaceConfig {
    /// The defaults ([`DEFAULT_CLONE_DEPTH`], [`DEFAULT_CLONE_TIMEOUT`], no token) with workspaces under
    /// `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            depth: DEFAULT_CLONE_DEPTH,
            clone_timeout: DEFAULT_CLONE_TIMEOUT,
            token: None,
        }
    }
}

/// A secret for HTTP(S) remotes (a GitHub installation or personal access token).
///
/// It is handed to gix in memory, as a request header, for each clone: it is never written to `.git/config`,
/// put in a stored URL, logged or shown in an error, and `Debug` prints `Token(<redacted>)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps `secret` as it is (trim a trailing newline read from a file before).
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}
