//! Why a workspace could not be prepared, and whether trying again can help.

use std::path::PathBuf;
use std::time::Duration;

/// Errors of the layers below, kept as sources: the text of each one names a URL without credentials at
/// most, because credentials never reach gix.
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`crate::WorkspaceManager::prepare`] failed. Every URL in it is shown without credentials.
///
/// [`Self::is_retryable`] sorts the variants for a job queue: network trouble, time-outs and cancellation can
/// go away by themselves; a bad URL, a missing branch or repository, or rejected credentials cannot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PrepareError {
    /// The repository URL could not be parsed, uses a scheme other than http(s), file or a local path, or is
    /// plain `http://` to a host that is not loopback while there are credentials to send (a configured token
    /// or a password in the URL): the reason names the scheme and the host, never the credentials.
    #[error("invalid repository URL {url}: {reason}")]
    InvalidUrl {
        /// The URL as given, with any user and password removed ([`crate::redact_url`]).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The base branch is not a valid branch name (give a short name such as `main`).
    #[error("invalid base branch name `{branch}`")]
    InvalidBranch {
        /// The name as given.
        branch: String,
    },
    /// The server refused the credentials, or wanted some and got none.
    #[error("authentication failed for {url}")]
    Authentication {
        /// The repository URL.
        url: String,
        /// What the transport reported.
        #[source]
        source: Cause,
    },
    /// There is no repository at the URL (or the credentials may not see it).
    #[error("repository not found at {url}")]
    RepositoryNotFound {
        /// The repository URL.
        url: String,
        /// What the transport reported.
        #[source]
        source: Cause,
    },
    /// The repository has no branch of that name.
    #[error("branch `{branch}` not found on {url}")]
    BranchNotFound {
        /// The base branch that was asked for.
        branch: String,
        /// The repository URL.
        url: String,
    },
    /// The server could not be reached or the connection broke.
    #[error("could not reach {url}")]
    Network {
        /// The repository URL.
        url: String,
        /// What the transport reported.
        #[source]
        source: Cause,
    },
    /// The clone did not finish within the configured time limit and was stopped.
    #[error("clone of {url} did not finish within {limit:?}")]
    TimedOut {
        /// The repository URL.
        url: String,
        /// The configured limit.
        limit: Duration,
    },
    /// The clone was stopped because the caller cancelled it.
    #[error("clone of {url} was cancelled")]
    Cancelled {
        /// The repository URL.
        url: String,
    },
    /// The workspace directory could not be created.
    #[error("could not create a workspace directory under {}", root.display())]
    Workspace {
        /// The configured workspace root.
        root: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The clone failed for another reason (a server that does not speak the protocol, corrupt data, an
    /// unwritable file in the checkout).
    #[error("could not clone {url}")]
    Clone {
        /// The repository URL.
        url: String,
        /// What gix reported.
        #[source]
        source: Cause,
    },
}

impl PrepareError {
    /// Whether the same request may succeed later: `true` for network trouble, time-outs, cancellation and
    /// local file-system trouble; `false` for a bad URL or branch name, rejected credentials, a missing
    /// repository or branch, and other clone failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Network { .. }
            | Self::TimedOut { .. }
            | Self::Cancelled { .. }
            | Self::Workspace { .. } => true,
            Self::InvalidUrl { .. }
            | Self::InvalidBranch { .. }
            | Self::Authentication { .. }
            | Self::RepositoryNotFound { .. }
            | Self::BranchNotFound { .. }
            | Self::Clone { .. } => false,
        }
    }
}

/// Sorts a gix clone error into a [`PrepareError`].
///
/// gix 0.90 classifies most failures itself (`gix::error::Class`); what it leaves open is read from the
/// concrete errors in the chain (reqwest's status and time-out, the I/O error kind).
pub(crate) fn classify(
    err: gix::Error,
    url: String,
    branch: &str,
    limit: Duration,
) -> PrepareError {
    let reqwest_errors = || {
        err.iter_errors()
            .filter_map(|cause| cause.downcast_ref::<reqwest::Error>())
    };
    let status = reqwest_errors().find_map(reqwest::Error::status);
    let timed_out = reqwest_errors().any(reqwest::Error::is_timeout)
        || err.iter_errors().any(|cause| {
            cause
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        });
    let classes = || err.classify();
    // A missing branch is gix's own "not found" message; a missing local repository is an I/O "not found".
    let not_found = classes().find(|class| class.class() == gix::error::Class::NotFound);
    let local_path_missing = not_found.is_some_and(|class| class.io_kind().is_some());

    if timed_out {
        PrepareError::TimedOut { url, limit }
    } else if classes().is_unauthenticated()
        || classes().is_permission_denied()
        || matches!(status.map(|s| s.as_u16()), Some(401 | 403))
    {
        PrepareError::Authentication {
            url,
            source: err.into(),
        }
    } else if status.is_some_and(|s| s.as_u16() == 404) || local_path_missing {
        PrepareError::RepositoryNotFound {
            url,
            source: err.into(),
        }
    } else if not_found.is_some() {
        PrepareError::BranchNotFound {
            branch: branch.to_owned(),
            url,
        }
    } else if classes().can_retry_lenient()
        || reqwest_errors().any(|e| e.is_connect() || e.is_request())
    {
        PrepareError::Network {
            url,
            source: err.into(),
        }
    } else {
        PrepareError::Clone {
            url,
            source: err.into(),
        }
    }
}
