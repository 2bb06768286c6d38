//! The objects events share: repositories, issues, labels, users, installations, pull requests.
//!
//! Each struct keeps the fields a bot needs and ignores the rest, so fields GitHub adds are no trouble.
//! Fields GitHub documents as nullable, or leaves out in some payloads, are `Option`s. Every type serializes
//! back to GitHub's field names, which is what makes [`IssueTrigger`](crate::IssueTrigger) a stable job
//! payload.

use serde::{Deserialize, Deserializer, Serialize};

use crate::open::open_enum;

/// A repository as webhook payloads describe it (`repository`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    /// `owner/name`, e.g. `Codertocat/Hello-World`.
    pub full_name: String,
    /// The HTTPS URL to clone, e.g. `https://github.com/Codertocat/Hello-World.git`.
    pub clone_url: String,
    /// The repository's page on GitHub.
    pub html_url: String,
    /// The branch a clone checks out by default.
    pub default_branch: String,
    /// Whether cloning needs credentials.
    pub private: bool,
}

/// An issue (`issue`). Pull requests are issues too: `issue_comment` events on a pull request carry one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    /// The number shown as `#N`, unique within the repository.
    pub number: u64,
    /// The title.
    pub title: String,
    /// The description in Markdown; `None` when the issue was opened without one.
    pub body: Option<String>,
    /// The issue's page on GitHub.
    pub html_url: String,
    /// The issue in the REST API.
    pub url: String,
    /// `open` or `closed`; absent from some payloads (`pinned`, `unpinned`).
    pub state: Option<IssueState>,
    /// The labels on the issue when the event happened (including the one just added by `labeled`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub labels: Vec<Label>,
    /// Who opened the issue; `None` if GitHub sends `null`.
    pub user: Option<User>,
}

open_enum! {
    /// The state of an issue or pull request.
    pub enum IssueState {
        Open = "open",
        Closed = "closed",
    }
}

/// A label (`label`, or an entry of `issue.labels`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// The name, compared exactly by the trigger rule.
    pub name: String,
    /// The description set on the label, if any.
    pub description: Option<String>,
}

/// A GitHub account (`sender`, `issue.user`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The account name, e.g. `octocat`.
    pub login: String,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type")]
    pub kind: UserKind,
}

open_enum! {
    /// What kind of account a [`User`] is (GitHub's `type` field).
    pub enum UserKind {
        User = "User",
        Bot = "Bot",
        Organization = "Organization",
    }
}

/// The GitHub App installation an event was sent to (`installation`); present only for App webhooks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    /// The installation id, needed to mint an installation access token.
    pub id: u64,
}

/// A repository as the `installation` event lists them (`repositories`): a summary, without URLs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationRepository {
    /// `owner/name`.
    pub full_name: String,
    /// Whether the repository is private.
    pub private: bool,
}

/// A pull request (`pull_request`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    /// The number shown as `#N` (shared with issues).
    pub number: u64,
    /// The title.
    pub title: String,
    /// The description in Markdown, if any.
    pub body: Option<String>,
    /// The pull request's page on GitHub.
    pub html_url: String,
    /// The pull request in the REST API.
    pub url: String,
    /// `open` or `closed`.
    pub state: Option<IssueState>,
    /// Whether it is a draft.
    #[serde(default)]
    pub draft: bool,
    /// Whether it has been merged; `None` where GitHub does not say.
    pub merged: Option<bool>,
    /// The branch with the changes.
    pub head: Branch,
    /// The branch the changes go into.
    pub base: Branch,
    /// Who opened it.
    pub user: Option<User>,
    /// Its labels.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub labels: Vec<Label>,
}

/// One side of a pull request (`head` or `base`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Branch {
    /// The branch name, without `refs/heads/`.
    #[serde(rename = "ref")]
    pub name: String,
    /// The commit the branch points at.
    pub sha: String,
}

/// A comment on an issue or pull request (`comment`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comment {
    /// The comment id.
    pub id: u64,
    /// The text in Markdown.
    pub body: String,
    /// The comment's page on GitHub.
    pub html_url: String,
    /// Who wrote it.
    pub user: Option<User>,
}

/// A commit as `push` describes it (`head_commit`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// The commit id (SHA).
    pub id: String,
    /// The commit message.
    pub message: String,
    /// The commit's page on GitHub.
    pub url: String,
}

/// Lists GitHub may send as `null` decode as empty.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<Vec<T>>::deserialize(deserializer).map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_tolerates_null_and_missing_optionals_and_ignores_unknown_fields() {
        let issue: Issue = serde_json::from_str(
            r#"{"number":7,"title":"t","body":null,"html_url":"h","url":"u","labels":null,
                "user":null,"brand_new_field":{"x":[1,2]}}"#,
        )
        .unwrap();
        assert_eq!(issue.number, 7);
        assert_eq!(issue.body, None);
        assert_eq!(issue.state, None);
        assert!(issue.labels.is_empty());
        assert_eq!(issue.user, None);
    }

    #[test]
    fn serializes_back_to_github_field_names() {
        let user = User {
            login: "octocat".into(),
            kind: UserKind::Bot,
        };
        assert_eq!(
            serde_json::to_string(&user).unwrap(),
            r#"{"login":"octocat","type":"Bot"}"#
        );
        let branch: Branch = serde_json::from_str(r#"{"ref":"main","sha":"abc"}"#).unwrap();
        assert_eq!(branch.name, "main");
        assert_eq!(
            serde_json::to_string(&branch).unwrap(),
            r#"{"ref":"main","sha":"abc"}"#
        );
    }
}
