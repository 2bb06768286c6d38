//! Issue comments and reactions: what booty says on the issue that started a job.

use std::time::SystemTime;

use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::api::RepositoryClient;
use crate::client::Call;
use crate::error::Error;
use crate::pagination::{Cursor, Page};
use crate::time::deserialize_rfc3339;

/// A comment on an issue or a pull request.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct IssueComment {
    /// Its id, to update it.
    pub id: u64,
    /// Where people see it.
    pub html_url: String,
    /// Its Markdown text.
    pub body: Option<String>,
    /// Who wrote it (`None` for a deleted account).
    pub user: Option<Account>,
    /// When it was written.
    #[serde(deserialize_with = "deserialize_rfc3339")]
    pub created_at: SystemTime,
    /// When it was last changed.
    #[serde(deserialize_with = "deserialize_rfc3339")]
    pub updated_at: SystemTime,
}

/// A user, organization or bot, as GitHub shows one in another object.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct Account {
    /// The login (`booty[bot]` for an App's bot user).
    pub login: String,
    /// The account's id.
    pub id: u64,
    /// `User`, `Organization` or `Bot`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A reaction's emoji.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum ReactionContent {
    /// 👍
    #[serde(rename = "+1")]
    ThumbsUp,
    /// 👎
    #[serde(rename = "-1")]
    ThumbsDown,
    /// 😄
    #[serde(rename = "laugh")]
    Laugh,
    /// 😕
    #[serde(rename = "confused")]
    Confused,
    /// ❤️
    #[serde(rename = "heart")]
    Heart,
    /// 🎉
    #[serde(rename = "hooray")]
    Hooray,
    /// 🚀
    #[serde(rename = "rocket")]
    Rocket,
    /// 👀
    #[serde(rename = "eyes")]
    Eyes,
}

/// A reaction, as created (or found already there: GitHub answers 200 with the existing one).
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct Reaction {
    /// Its id.
    pub id: u64,
    /// The emoji's name (`eyes`, `+1`, ...).
    pub content: String,
}

#[derive(Serialize)]
struct CommentBody<'a> {
    body: &'a str,
}

#[derive(Serialize)]
struct ReactionBody {
    content: ReactionContent,
}

impl RepositoryClient {
    /// Comments on issue (or pull request) `issue`. Not retried after a 5xx or a broken connection: the
    /// comment may have been made.
    ///
    /// # Errors
    /// Any [`Error`] of `POST /repos/{owner}/{repo}/issues/{issue}/comments`.
    pub async fn create_issue_comment(
        &self,
        issue: u64,
        body: &str,
    ) -> Result<IssueComment, Error> {
        let url = self.endpoint(&["issues", &issue.to_string(), "comments"]);
        let call = Call::with_json(
            Method::POST,
            url,
            &CommentBody { body },
            false,
            self.auth().await?,
        )?;
        self.github.send(&call).await?.json()
    }

    /// Replaces the text of comment `comment` (idempotent: retried like a read).
    ///
    /// # Errors
    /// Any [`Error`] of `PATCH /repos/{owner}/{repo}/issues/comments/{comment}`.
    pub async fn update_issue_comment(
        &self,
        comment: u64,
        body: &str,
    ) -> Result<IssueComment, Error> {
        let url = self.endpoint(&["issues", "comments", &comment.to_string()]);
        let call = Call::with_json(
            Method::PATCH,
            url,
            &CommentBody { body },
            true,
            self.auth().await?,
        )?;
        self.github.send(&call).await?.json()
    }

    /// One page of the comments on issue `issue`, oldest first, 100 a page: `None` for the first page, then
    /// the previous page's [`Page::next`].
    ///
    /// # Errors
    /// Any [`Error`] of `GET /repos/{owner}/{repo}/issues/{issue}/comments`.
    pub async fn list_issue_comments(
        &self,
        issue: u64,
        page: Option<&Cursor>,
    ) -> Result<Page<IssueComment>, Error> {
        let url = if let Some(cursor) = page {
            cursor.0.clone()
        } else {
            let mut url = self.endpoint(&["issues", &issue.to_string(), "comments"]);
            url.query_pairs_mut().append_pair("per_page", "100");
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

    /// Reacts to issue (or pull request) `issue`. Safe to repeat: GitHub keeps one reaction per emoji and
    /// user, so it is retried like a read.
    ///
    /// # Errors
    /// Any [`Error`] of `POST /repos/{owner}/{repo}/issues/{issue}/reactions`.
    pub async fn create_issue_reaction(
        &self,
        issue: u64,
        content: ReactionContent,
    ) -> Result<Reaction, Error> {
        let url = self.endpoint(&["issues", &issue.to_string(), "reactions"]);
        let call = Call::with_json(
            Method::POST,
            url,
            &ReactionBody { content },
            true,
            self.auth().await?,
        )?;
        self.github.send(&call).await?.json()
    }

    /// Reacts to issue comment `comment`; safe to repeat, as [`RepositoryClient::create_issue_reaction`].
    ///
    /// # Errors
    /// Any [`Error`] of `POST /repos/{owner}/{repo}/issues/comments/{comment}/reactions`.
    pub async fn create_issue_comment_reaction(
        &self,
        comment: u64,
        content: ReactionContent,
    ) -> Result<Reaction, Error> {
        let url = self.endpoint(&["issues", "comments", &comment.to_string(), "reactions"]);
        let call = Call::with_json(
            Method::POST,
            url,
            &ReactionBody { content },
            true,
            self.auth().await?,
        )?;
        self.github.send(&call).await?.json()
    }
}
