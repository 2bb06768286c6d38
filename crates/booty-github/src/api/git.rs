//! The Git database API: trees, commits and references made over REST, without a git client.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::api::RepositoryClient;
use crate::client::Call;
use crate::error::Error;

/// A reference (`refs/heads/main`) and the object it points at.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct GitRef {
    /// Its full name, `refs/heads/...`.
    #[serde(rename = "ref")]
    pub name: String,
    /// What it points at.
    pub object: GitObject,
}

/// The object a reference points at.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct GitObject {
    /// Its id.
    pub sha: String,
    /// `commit`, `tag`, ...
    #[serde(rename = "type")]
    pub kind: String,
}

/// A tree GitHub made.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct GitTree {
    /// Its id.
    pub sha: String,
}

/// A commit GitHub made.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct GitCommit {
    /// Its id.
    pub sha: String,
    /// Where people see it.
    pub html_url: String,
}

/// One change of a tree: a file's new text, an existing blob at a path, or a path removed.
#[derive(Clone, Debug, Serialize)]
pub struct TreeEntry {
    path: String,
    mode: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<String>,
    #[serde(skip_serializing_if = "Sha::is_absent")]
    sha: Sha,
}

/// A tree entry's `sha`: absent (the entry has `content`), a blob, or `null` (the path is removed).
#[derive(Clone, Debug)]
enum Sha {
    Absent,
    Blob(String),
    Removed,
}

impl Sha {
    fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }
}

impl Serialize for Sha {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Blob(sha) => serializer.serialize_str(sha),
            Self::Absent | Self::Removed => serializer.serialize_none(),
        }
    }
}

impl TreeEntry {
    /// A regular file at `path` holding `text` (GitHub stores it as a blob; UTF-8 text only).
    pub fn file(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            mode: "100644",
            kind: "blob",
            content: Some(text.into()),
            sha: Sha::Absent,
        }
    }

    /// The existing blob `sha` at `path` (binary files: create the blob first).
    pub fn blob(path: impl Into<String>, sha: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            mode: "100644",
            kind: "blob",
            content: None,
            sha: Sha::Blob(sha.into()),
        }
    }

    /// `path` removed.
    pub fn removed(path: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            mode: "100644",
            kind: "blob",
            content: None,
            sha: Sha::Removed,
        }
    }
}

#[derive(Serialize)]
struct NewTree<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    base_tree: Option<&'a str>,
    tree: &'a [TreeEntry],
}

#[derive(Serialize)]
struct NewCommit<'a> {
    message: &'a str,
    tree: &'a str,
    parents: &'a [&'a str],
}

#[derive(Serialize)]
struct NewRef<'a> {
    #[serde(rename = "ref")]
    name: &'a str,
    sha: &'a str,
}

#[derive(Serialize)]
struct RefUpdate<'a> {
    sha: &'a str,
    force: bool,
}

impl RepositoryClient {
    /// `…/git/{kind}/heads/x/y`: a reference's name is several path segments.
    fn ref_endpoint(&self, kind: &str, name: &str) -> reqwest::Url {
        let name = name.strip_prefix("refs/").unwrap_or(name);
        let mut rest = vec!["git", kind];
        rest.extend(name.split('/'));
        self.endpoint(&rest)
    }

    /// The reference `name` (`heads/main` or `refs/heads/main`).
    ///
    /// # Errors
    /// Any [`Error`] of `GET /repos/{owner}/{repo}/git/ref/{ref}`; [`Error::is_not_found`] when it does not
    /// exist.
    pub async fn get_ref(&self, name: &str) -> Result<GitRef, Error> {
        let url = self.ref_endpoint("ref", name);
        self.github
            .send(&Call::get(url, self.auth().await?))
            .await?
            .json()
    }

    /// A tree: `base_tree` (if any) with `entries` applied. Safe to repeat (the same input makes the same
    /// tree), so it is retried like a read.
    ///
    /// # Errors
    /// Any [`Error`] of `POST /repos/{owner}/{repo}/git/trees`.
    pub async fn create_tree(
        &self,
        base_tree: Option<&str>,
        entries: &[TreeEntry],
    ) -> Result<GitTree, Error> {
        let url = self.endpoint(&["git", "trees"]);
        let body = NewTree {
            base_tree,
            tree: entries,
        };
        let call = Call::with_json(Method::POST, url, &body, true, self.auth().await?)?;
        self.github.send(&call).await?.json()
    }

    /// A commit of `tree` on `parents`, by the credentials' identity (an App's commits show as
    /// verified). Not retried after a 5xx: a commit made twice is only an unreferenced object, but its
    /// time differs.
    ///
    /// # Errors
    /// Any [`Error`] of `POST /repos/{owner}/{repo}/git/commits`.
    pub async fn create_commit(
        &self,
        message: &str,
        tree: &str,
        parents: &[&str],
    ) -> Result<GitCommit, Error> {
        let url = self.endpoint(&["git", "commits"]);
        let body = NewCommit {
            message,
            tree,
            parents,
        };
        let call = Call::with_json(Method::POST, url, &body, false, self.auth().await?)?;
        self.github.send(&call).await?.json()
    }

    /// Creates reference `name` (`refs/heads/x`) at `sha`.
    ///
    /// # Errors
    /// Any [`Error`] of `POST /repos/{owner}/{repo}/git/refs`; 422 when it exists.
    pub async fn create_ref(&self, name: &str, sha: &str) -> Result<GitRef, Error> {
        let url = self.endpoint(&["git", "refs"]);
        let call = Call::with_json(
            Method::POST,
            url,
            &NewRef { name, sha },
            false,
            self.auth().await?,
        )?;
        self.github.send(&call).await?.json()
    }

    /// Moves reference `name` to `sha`: only forward unless `force`.
    ///
    /// # Errors
    /// Any [`Error`] of `PATCH /repos/{owner}/{repo}/git/refs/{ref}`; 422 when not a fast forward.
    pub async fn update_ref(&self, name: &str, sha: &str, force: bool) -> Result<GitRef, Error> {
        let url = self.ref_endpoint("refs", name);
        let call = Call::with_json(
            Method::PATCH,
            url,
            &RefUpdate { sha, force },
            true,
            self.auth().await?,
        )?;
        self.github.send(&call).await?.json()
    }
}
