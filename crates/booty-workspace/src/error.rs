//! Why a workspace could not be prepared, and whether trying again can help.

use std::collections::VecDeque;
use std::error::Error as StdError;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// Errors of the layers below, kept as sources: the text of each one names a URL without credentials at
/// most, because credentials never reach gix.
type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`crate::WorkspaceManager::prepare`] failed. Every URL in it is shown without credentials.
///
/// [`Self::is_retryable`] sorts failures for a job queue, and [`Self::is_local_storage`] says whether the
/// trouble is the local file system under the workspace root rather than the request, the repository or the
/// network. A file-system error counts the same wherever it happens (creating the workspace directory,
/// writing the pack, checking out): the kind of the first I/O error in the error's chain that says anything
/// decides first, then the variant.
///
/// | failure | variant | retried |
/// |---|---|---|
/// | disk full (`ENOSPC`), over quota (`EDQUOT`), read-only (`EROFS`), I/O error (`EIO`) under the root | [`Self::Workspace`] (creating the directory), [`Self::Storage`] (writing the clone) | yes |
/// | out of memory, out of file descriptors (`EMFILE`, `ENFILE`), an interrupted call | any | yes |
/// | permission denied, not a directory (a root that is a file), a file name too long | any | no |
/// | connection refused or reset, DNS, TLS, a transfer cut short | [`Self::Network`] | yes |
/// | the clone's time limit | [`Self::TimedOut`] | yes |
/// | the caller's cancellation | [`Self::Cancelled`] | yes |
/// | a bad URL, credentials for plain `http://` to another host, a bad branch name | [`Self::InvalidUrl`], [`Self::InvalidBranch`] | no |
/// | credentials missing or refused | [`Self::Authentication`] | no |
/// | no such repository, no such branch | [`Self::RepositoryNotFound`], [`Self::BranchNotFound`] | no |
/// | any other failure creating the workspace directory | [`Self::Workspace`] | yes |
/// | any other clone failure (a server that does not speak the protocol, corrupt data) | [`Self::Clone`] | no |
///
/// Whatever the failure, no workspace directory is left behind.
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
    /// The workspace directory could not be created (nor the root, if it was missing): the root is not a
    /// directory, not writable, on a full or read-only file system, ...
    #[error("could not create a workspace directory under {}", root.display())]
    Workspace {
        /// The configured workspace root.
        root: PathBuf,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// The clone could not be written under the workspace root: its file system is full, over quota,
    /// read-only or failing (`EIO`). What was written has been removed.
    #[error("could not write the clone of {url} under {}", root.display())]
    Storage {
        /// The repository URL.
        url: String,
        /// The configured workspace root.
        root: PathBuf,
        /// What gix reported (for a pack being written, its chain names the file).
        #[source]
        source: Cause,
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
    /// Whether the same request may succeed later, as the table on [`PrepareError`] says: `true` for
    /// network trouble, time-outs, cancellation, and storage or resources that can come back (a full,
    /// read-only or failing disk, memory, file descriptors) wherever in the clone they ran out; `false` for a
    /// bad request, rejected credentials, a missing repository or branch, set-up trouble that will not fix
    /// itself (permission denied, not a directory, a name too long) wherever it happens, and other clone
    /// failures.
    pub fn is_retryable(&self) -> bool {
        match StdError::source(self).and_then(first_io_trouble) {
            Some(IoTrouble::Storage | IoTrouble::Resources) => true,
            Some(IoTrouble::Setup) => false,
            None => match self {
                Self::Network { .. }
                | Self::TimedOut { .. }
                | Self::Cancelled { .. }
                | Self::Workspace { .. }
                | Self::Storage { .. } => true,
                Self::InvalidUrl { .. }
                | Self::InvalidBranch { .. }
                | Self::Authentication { .. }
                | Self::RepositoryNotFound { .. }
                | Self::BranchNotFound { .. }
                | Self::Clone { .. } => false,
            },
        }
    }

    /// Whether the trouble is the local file system under the workspace root, not the request, the repository
    /// or the network: the workspace directory could not be created ([`Self::Workspace`]), or the clone could
    /// not be written ([`Self::Storage`]). Tell the operator so: no change to the repository will help, and
    /// [`Self::is_retryable`] says whether waiting might (a full disk, yes; a root that is a file, no).
    pub fn is_local_storage(&self) -> bool {
        matches!(self, Self::Workspace { .. } | Self::Storage { .. })
    }
}

/// What an I/O error says about trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IoTrouble {
    /// Local storage that can recover: full, over quota, read-only (until remounted), failing (`EIO`).
    Storage,
    /// Other resources that can come back: memory, file descriptors, a call interrupted by a signal.
    Resources,
    /// Set-up that will not fix itself: permission denied, not a directory, a file name too long.
    Setup,
}

/// Sorts one I/O error; `None` when its kind says nothing either way (say, a refused connection).
fn io_trouble(err: &io::Error) -> Option<IoTrouble> {
    use io::ErrorKind as Kind;
    match err.kind() {
        Kind::StorageFull | Kind::QuotaExceeded | Kind::ReadOnlyFilesystem => {
            return Some(IoTrouble::Storage);
        }
        Kind::OutOfMemory | Kind::Interrupted => return Some(IoTrouble::Resources),
        // `InvalidFilename` is std's kind for `ENAMETOOLONG`.
        Kind::PermissionDenied | Kind::NotADirectory | Kind::InvalidFilename => {
            return Some(IoTrouble::Setup);
        }
        _ => {}
    }
    // std has no stable kind for these yet.
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        let raw = err.raw_os_error()?;
        if raw == Errno::IO.raw_os_error() {
            return Some(IoTrouble::Storage);
        }
        if raw == Errno::MFILE.raw_os_error() || raw == Errno::NFILE.raw_os_error() {
            return Some(IoTrouble::Resources);
        }
    }
    None
}

/// The verdict of the first I/O error under `err` that has one, outermost first.
///
/// Following `source()` alone misses some: `io::Error::other(inner)` hides `inner` from it (it is the error's
/// payload), and `gix::Error` keeps its causes in a tree of its own (a failed checkout's `ENOSPC` is only
/// reachable through `iter_errors`).
fn first_io_trouble(err: &(dyn StdError + 'static)) -> Option<IoTrouble> {
    /// Enough for any real chain; bounds the walk should an error's sources ever loop.
    const MAX_VISITS: usize = 256;
    let mut queue = VecDeque::from([err]);
    let mut visits = 0;
    while let Some(err) = queue.pop_front() {
        visits += 1;
        if visits > MAX_VISITS {
            break;
        }
        if let Some(io) = err.downcast_ref::<io::Error>() {
            if let Some(trouble) = io_trouble(io) {
                return Some(trouble);
            }
            if let Some(payload) = io.get_ref() {
                queue.push_back(payload);
            }
        }
        if let Some(tree) = err.downcast_ref::<gix::Error>() {
            queue.extend(tree.iter_errors());
        }
        queue.extend(err.source());
    }
    None
}

/// Sorts a gix clone error into a [`PrepareError`].
///
/// gix 0.90 classifies most failures itself (`gix::error::Class`); what it leaves open is read from the
/// concrete errors in the chain (reqwest's status and time-out, the I/O error kind). A local storage failure
/// (full, read-only, failing) is told apart first: gix has no class for it, and it is not the repository's.
pub(crate) fn classify(
    err: gix::Error,
    url: String,
    branch: &str,
    limit: Duration,
    root: PathBuf,
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
    } else if first_io_trouble(&err) == Some(IoTrouble::Storage) {
        PrepareError::Storage {
            url,
            root,
            source: err.into(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Another library's error keeping an I/O error as its `source()`.
    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrapped(#[source] io::Error);

    /// Makes the same I/O error again (`io::Error` is not `Clone`).
    type MakeIo = Box<dyn Fn() -> io::Error>;

    /// Every way the same I/O error reaches a [`PrepareError`]: directly, as a source, hidden in an
    /// `io::Error::other` payload, inside a `gix::Error`, under each variant that carries a cause.
    fn everywhere(make: &dyn Fn() -> io::Error) -> Vec<PrepareError> {
        let url = || "https://example.com/o/r.git".to_owned();
        let causes: Vec<Cause> = vec![
            Box::new(make()),
            Box::new(Wrapped(make())),
            Box::new(io::Error::other(make())),
            // How gix reports a failed checkout's ENOSPC: `source()` of a `gix::Error` skips the error it holds.
            Box::new(gix::Error::from_error(make())),
            Box::new(gix::Error::from_error(Wrapped(make()))),
        ];
        let mut errors = vec![PrepareError::Workspace {
            root: "/srv/workspaces".into(),
            source: make(),
        }];
        for source in causes {
            errors.push(PrepareError::Clone { url: url(), source });
        }
        errors.push(PrepareError::Network {
            url: url(),
            source: Box::new(Wrapped(make())),
        });
        errors.push(PrepareError::Storage {
            url: url(),
            root: "/srv/workspaces".into(),
            source: Box::new(Wrapped(make())),
        });
        errors
    }

    #[cfg(unix)]
    #[test]
    fn file_system_errors_count_the_same_wherever_they_happen() {
        use rustix::io::Errno;
        let raw = |errno: Errno| move || io::Error::from_raw_os_error(errno.raw_os_error());
        let passing: Vec<(&str, MakeIo)> = vec![
            ("ENOSPC", Box::new(raw(Errno::NOSPC))),
            (
                "StorageFull",
                Box::new(|| io::ErrorKind::StorageFull.into()),
            ),
            ("EDQUOT", Box::new(raw(Errno::DQUOT))),
            ("EROFS", Box::new(raw(Errno::ROFS))),
            ("EIO", Box::new(raw(Errno::IO))),
            ("ENOMEM", Box::new(raw(Errno::NOMEM))),
            ("EMFILE", Box::new(raw(Errno::MFILE))),
            ("ENFILE", Box::new(raw(Errno::NFILE))),
            ("EINTR", Box::new(raw(Errno::INTR))),
        ];
        for (name, make) in &passing {
            for err in everywhere(make) {
                assert!(err.is_retryable(), "{name}: {err:?}");
            }
        }
        let setup: Vec<(&str, MakeIo)> = vec![
            ("EACCES", Box::new(raw(Errno::ACCESS))),
            ("EPERM", Box::new(raw(Errno::PERM))),
            ("ENOTDIR", Box::new(raw(Errno::NOTDIR))),
            (
                "NotADirectory",
                Box::new(|| io::ErrorKind::NotADirectory.into()),
            ),
            ("ENAMETOOLONG", Box::new(raw(Errno::NAMETOOLONG))),
        ];
        for (name, make) in &setup {
            for err in everywhere(make) {
                assert!(!err.is_retryable(), "{name}: {err:?}");
            }
        }
    }

    #[test]
    fn other_io_errors_leave_it_to_the_variant() {
        let workspace = PrepareError::Workspace {
            root: "/srv/workspaces".into(),
            source: io::ErrorKind::AlreadyExists.into(),
        };
        assert!(workspace.is_retryable());
        let url = || "https://example.com/o/r.git".to_owned();
        let refused = || Box::new(Wrapped(io::ErrorKind::ConnectionRefused.into()));
        assert!(
            PrepareError::Network {
                url: url(),
                source: refused(),
            }
            .is_retryable()
        );
        assert!(
            !PrepareError::Clone {
                url: url(),
                source: refused(),
            }
            .is_retryable()
        );
        assert!(
            !PrepareError::Clone {
                url: url(),
                source: "not an I/O error".into(),
            }
            .is_retryable()
        );
    }

    #[test]
    fn only_the_workspace_root_is_local_storage() {
        let url = || "https://example.com/o/r.git".to_owned();
        let full = || -> Cause { Box::new(io::Error::from(io::ErrorKind::StorageFull)) };
        assert!(
            PrepareError::Workspace {
                root: "/srv/workspaces".into(),
                source: io::ErrorKind::PermissionDenied.into(),
            }
            .is_local_storage()
        );
        assert!(
            PrepareError::Storage {
                url: url(),
                root: "/srv/workspaces".into(),
                source: full(),
            }
            .is_local_storage()
        );
        for other in [
            PrepareError::Clone {
                url: url(),
                source: full(),
            },
            PrepareError::Network {
                url: url(),
                source: full(),
            },
            PrepareError::Cancelled { url: url() },
        ] {
            assert!(!other.is_local_storage(), "{other:?}");
        }
    }
}
