//! Pull requests: find the one for a branch, open it, update it.

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::api::RepositoryClient;
use crate::client::Call;
use crate::error::Error;
use crate::pagination::{Cursor, Page};

/// A pull request (the fields booty uses; GitHub sends many more).
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct PullRequest {
    /// Its global id.
    pub id: u64,
    /// Its number in the repository.
    pub number: u64,
    /// Where people see it.
    pub html_url: String,
    /// `open` or `closed`.
    pub state: String,
    /// Its title.
    pub title: String,
    /// Its description.
    pub body: Option<String>,
    /// Whether it is a draft.
    #[serde(default)]
    pub draft: Option<bool>,
    /// The branch with the changes.
    pub head: Branch,
    /// The branch they go into.
    pub base: Branch,
}

/// One side of a pull request.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct Branch {
    /// `owner:branch`.
    pub label: String,
    /// The branch name.
    #[serde(rename = "ref")]
    pub name: String,
    /// The commit it points at.
    pub sha: String,
}

/// Which pull requests a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PullState {
    /// Open ones (GitHub's default).
    #[default]
    Open,
    /// Closed ones, merged or not.
    Closed,
    /// Both.
    All,
}

/// A pull request to open: `head` into `base`.
///
/// ```
/// let pull = booty_github::NewPullRequest::new("Fix #7", "agent/issue-7", "main")
///     .body("Closes #7")
///     .draft(true);
/// ```
#[derive(Clone, Debug, Serialize)]
pub struct NewPullRequest {
    title: String,
    head: String,
    base: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    draft: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maintainer_can_modify: Option<bool>,
}

impl NewPullRequest {
    /// A pull request titled `title` from branch `head` (`owner:branch` for another owner's fork) into
    /// `base`.
    pub fn new(title: impl Into<String>, head: impl Into<String>, base: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            head: head.into(),
            base: base.into(),
            body: None,
            draft: None,
            maintainer_can_modify: None,
        }
    }

    /// Its description.
    #[must_use]
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Opens it as a draft.
    #[must_use]
    pub fn draft(mut self, draft: bool) -> Self {
        self.draft = Some(draft);
        self
    }

    /// Whether the base repository's maintainers may push to the head branch.
    #[must_use]
    pub fn maintainer_can_modify(mut self, allowed: bool) -> Self {
        self.maintainer_can_modify = Some(allowed);
        self
    }
}

/// Changes to a pull request; what is not set stays as it is.
#[derive(Clone, Debug, Default, Serialize)]
pub struct PullRequestUpdate {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<OpenOrClosed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    base: Option<String>,
}

#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "lowercase")]
enum OpenOrClosed {
    Open,
    Closed,
}

impl PullRequestUpdate {
    /// No change yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A new title.
    #[must_use]
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// A new description.
    #[must_use]
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = Some(body.into());
        self
    }

    /// Closes it (`false` reopens it).
    #[must_use]
    pub fn closed(mut self, closed: bool) -> Self {
        self.state = Some(if closed {
            OpenOrClosed::Closed
        } else {
            OpenOrClosed::Open
        });
        self
    }

    /// A new base branch.
    #[must_use]
    pub fn base(mut self, base: impl Into<String>) -> Self {
        self.base = Some(base.into());
        self
    }
}

impl RepositoryClient {
    /// One page of the pull requests whose head is `head` (a branch of this repository's owner, or
    /// `owner:branch`), in state `state`, 100 a page: `None` for the first page, then [`Page::next`].
    ///
    /// # Errors
    /// Any [`Error`] of `GET /repos/{owner}/{repo}/pulls`.
    pub async fn list_pulls_by_head(
        &self,
        head: &str,
        state: PullState,
        page: Option<&Cursor>,
    ) -> Result<Page<PullRequest>, Error> {
        let url = if let Some(cursor) = page {
            cursor.0.clone()
        } else {
            let head = if head.contains(':') {
                head.to_owned()
            } else {
                format!("{}:{head}", self.repository.owner())
            };
            let state = match state {
                PullState::Open => "open",
                PullState::Closed => "closed",
                PullState::All => "all",
            };
            let mut url = self.endpoint(&["pulls"]);
            url.query_pairs_mut()
                .append_pair("head", &head)
                .append_pair("state", state)
                .append_pair("per_page", "100");
            url
        };
        let answer = self
            .github
            .send(&Call::get(url, self.auth().await?))
            .await?;
        Ok(Page {
            items: answer.json()?,
            next: answer.next(self.github.base())?,
        })
    }

    /// Opens a pull request. Not retried after a 5xx or a broken connection: it may have been opened (look
    /// with [`RepositoryClient::list_pulls_by_head`]).
    ///
    /// # Errors
    /// Any [`Error`] of `POST /repos/{owner}/{repo}/pulls`; GitHub answers 422
    /// ([`crate::ErrorKind::ValidationFailed`]) for a head branch that does not exist or already has an open
    /// pull request.
    pub async fn create_pull(&self, pull: &NewPullRequest) -> Result<PullRequest, Error> {
        let url = self.endpoint(&["pulls"]);
        let call = Call::with_json(Method::POST, url, pull, false, self.auth().await?)?;
        self.github.send(&call).await?.json()
    }

    /// Changes pull request `number` (idempotent: retried like a read).
    ///
    /// # Errors
    /// Any [`Error`] of `PATCH /repos/{owner}/{repo}/pulls/{number}`.
    pub async fn update_pull(
        &self,
        number: u64,
        update: &PullRequestUpdate,
    ) -> Result<PullRequest, Error> {
        let url = self.endpoint(&["pulls", &number.to_string()]);
        let call = Call::with_json(Method::PATCH, url, update, true, self.auth().await?)?;
        self.github.send(&call).await?.json()
    }
}
