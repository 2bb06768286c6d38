//! What calls are about: a [`Repository`] (`owner/name`, checked so it is always one URL path segment each),
//! and GitHub's numeric ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

id!(
    /// A GitHub App installation (`installation.id` in an App's webhook payloads).
    InstallationId
);
id!(
    /// A webhook of a repository or an organization.
    HookId
);
id!(
    /// One delivery of a webhook (one attempt; redeliveries get ids of their own and share the `guid`).
    DeliveryId
);

/// A repository's full name, `owner/name`.
///
/// Both parts are 1 to 100 ASCII letters, digits, `-`, `_` or `.` (and neither is `.` nor `..`), which every
/// GitHub owner and repository name satisfies, so each is one URL path segment and can never reach another
/// endpoint.
///
/// ```
/// let repo: booty_github::Repository = "octo-org/hello.world".parse().unwrap();
/// assert_eq!((repo.owner(), repo.name()), ("octo-org", "hello.world"));
/// assert!("octo/../admin".parse::<booty_github::Repository>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository {
    owner: String,
    name: String,
}

/// A string that is not `owner/name` (or not an organization's login).
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} {input:?}: expected {expected}, of ASCII letters, digits, `-`, `_` or `.`")]
pub struct NameError {
    what: &'static str,
    expected: &'static str,
    input: String,
}

impl Repository {
    /// The repository `owner/name`.
    ///
    /// # Errors
    /// When either part is not a valid owner or repository name.
    pub fn new(owner: &str, name: &str) -> Result<Self, NameError> {
        if segment(owner) && segment(name) {
            Ok(Self {
                owner: owner.to_owned(),
                name: name.to_owned(),
            })
        } else {
            Err(NameError {
                what: "repository",
                expected: "OWNER/NAME, each 1 to 100",
                input: format!("{owner}/{name}").chars().take(210).collect(),
            })
        }
    }

    /// The owner (a user or an organization).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The repository's name within its owner.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl FromStr for Repository {
    type Err = NameError;

    fn from_str(full_name: &str) -> Result<Self, Self::Err> {
        let (owner, name) = full_name.split_once('/').unwrap_or((full_name, ""));
        Self::new(owner, name)
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// An organization's login, checked like a [`Repository`]'s owner.
pub(crate) fn organization(login: &str) -> Result<String, NameError> {
    if segment(login) {
        Ok(login.to_owned())
    } else {
        Err(NameError {
            what: "organization",
            expected: "1 to 100",
            input: login.chars().take(100).collect(),
        })
    }
}

fn segment(part: &str) -> bool {
    (1..=100).contains(&part.len())
        && part != "."
        && part != ".."
        && part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_two_safe_segments() {
        let repo: Repository = "octo/hello".parse().unwrap();
        assert_eq!(repo.to_string(), "octo/hello");
        for bad in [
            "octo",
            "octo/",
            "/hello",
            "octo/hello/x",
            "octo/..",
            "../x",
            "octo/a b",
            "octo/a%2f",
            "octo/a?b",
            "octo/é",
        ] {
            let err = bad.parse::<Repository>().unwrap_err().to_string();
            assert!(err.starts_with("invalid repository"), "{bad}: {err}");
        }
    }
}
