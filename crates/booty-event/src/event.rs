//! The event model: one typed struct per event a bot acts on, a generic one for the rest.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::model::{
    Comment, Commit, Installation, InstallationRepository, Issue, Label, PullRequest, Repository,
    User,
};
use crate::open::open_enum;

/// A decoded webhook payload, chosen by the event name (`X-GitHub-Event`).
///
/// The events a bot acts on are typed; every other event is [`Event::Other`], which still exposes its name,
/// action, repository, sender and installation. Decode with [`Event::decode`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `ping`: sent when a hook is created.
    Ping(PingEvent),
    /// `issues`: every action.
    Issues(Box<IssuesEvent>),
    /// `issue_comment`.
    IssueComment(Box<IssueCommentEvent>),
    /// `pull_request`.
    PullRequest(Box<PullRequestEvent>),
    /// `push`.
    Push(Box<PushEvent>),
    /// `installation`: a GitHub App was installed, removed, suspended...
    Installation(InstallationEvent),
    /// Any other event.
    Other(OtherEvent),
}

impl Event {
    /// Decodes `json` as the payload of the event named `event`, straight from the bytes into the typed
    /// structs. Unknown fields and unknown actions are accepted; unknown event names give
    /// [`Event::Other`].
    ///
    /// # Errors
    /// [`DecodeError::NotAnObject`] when the payload is JSON but not an object (or empty),
    /// [`DecodeError::Json`] when it is malformed or lacks a field the typed struct needs; both name the
    /// event, and the latter the line and column.
    pub fn decode(event: &str, json: &[u8]) -> Result<Self, DecodeError> {
        Ok(match event {
            PingEvent::NAME => Self::Ping(decode(event, json)?),
            IssuesEvent::NAME => Self::Issues(decode(event, json)?),
            IssueCommentEvent::NAME => Self::IssueComment(decode(event, json)?),
            PullRequestEvent::NAME => Self::PullRequest(decode(event, json)?),
            PushEvent::NAME => Self::Push(decode(event, json)?),
            InstallationEvent::NAME => Self::Installation(decode(event, json)?),
            _ => {
                let Common {
                    action,
                    repository,
                    sender,
                    installation,
                } = decode(event, json)?;
                Self::Other(OtherEvent {
                    name: event.to_owned(),
                    action,
                    repository,
                    sender,
                    installation,
                })
            }
        })
    }

    /// The event name, as in `X-GitHub-Event`.
    pub fn name(&self) -> &str {
        match self {
            Self::Ping(_) => PingEvent::NAME,
            Self::Issues(_) => IssuesEvent::NAME,
            Self::IssueComment(_) => IssueCommentEvent::NAME,
            Self::PullRequest(_) => PullRequestEvent::NAME,
            Self::Push(_) => PushEvent::NAME,
            Self::Installation(_) => InstallationEvent::NAME,
            Self::Other(other) => &other.name,
        }
    }

    /// The payload's `action`, for the events that have one (`ping` and `push` do not).
    pub fn action(&self) -> Option<&str> {
        match self {
            Self::Ping(_) | Self::Push(_) => None,
            Self::Issues(event) => Some(event.action.as_str()),
            Self::IssueComment(event) => Some(event.action.as_str()),
            Self::PullRequest(event) => Some(event.action.as_str()),
            Self::Installation(event) => Some(event.action.as_str()),
            Self::Other(other) => other.action.as_deref(),
        }
    }

    /// The repository the event happened in, when the payload names one.
    pub fn repository(&self) -> Option<&Repository> {
        match self {
            Self::Ping(event) => event.repository.as_ref(),
            Self::Issues(event) => Some(&event.repository),
            Self::IssueComment(event) => Some(&event.repository),
            Self::PullRequest(event) => Some(&event.repository),
            Self::Push(event) => Some(&event.repository),
            Self::Installation(_) => None,
            Self::Other(other) => other.repository.as_ref(),
        }
    }

    /// Who caused the event, when the payload says.
    pub fn sender(&self) -> Option<&User> {
        match self {
            Self::Ping(event) => event.sender.as_ref(),
            Self::Issues(event) => Some(&event.sender),
            Self::IssueComment(event) => Some(&event.sender),
            Self::PullRequest(event) => Some(&event.sender),
            Self::Push(event) => Some(&event.sender),
            Self::Installation(event) => Some(&event.sender),
            Self::Other(other) => other.sender.as_ref(),
        }
    }

    /// The GitHub App installation the event was sent to, for App webhooks.
    pub fn installation(&self) -> Option<&Installation> {
        match self {
            Self::Ping(_) => None,
            Self::Issues(event) => event.installation.as_ref(),
            Self::IssueComment(event) => event.installation.as_ref(),
            Self::PullRequest(event) => event.installation.as_ref(),
            Self::Push(event) => event.installation.as_ref(),
            Self::Installation(event) => Some(&event.installation),
            Self::Other(other) => other.installation.as_ref(),
        }
    }
}

/// `ping`: GitHub checking that the hook answers.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PingEvent {
    /// A random line of GitHub zen.
    pub zen: String,
    /// The id of the hook being pinged.
    pub hook_id: u64,
    /// The repository, for repository hooks (organization and App hooks have none).
    pub repository: Option<Repository>,
    /// Who created the hook.
    pub sender: Option<User>,
}

impl PingEvent {
    /// `ping`
    pub const NAME: &str = "ping";
}

/// `issues`: something happened to an issue; the trigger event.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IssuesEvent {
    /// What happened.
    pub action: IssuesAction,
    /// The issue, as it is after the action.
    pub issue: Issue,
    /// The label added or removed, for `labeled` and `unlabeled`.
    pub label: Option<Label>,
    /// Where it happened.
    pub repository: Repository,
    /// Who did it.
    pub sender: User,
    /// The App installation, for App webhooks.
    pub installation: Option<Installation>,
}

impl IssuesEvent {
    /// `issues`
    pub const NAME: &str = "issues";
}

open_enum! {
    /// The `action` of an `issues` event.
    pub enum IssuesAction {
        Assigned = "assigned",
        Closed = "closed",
        Deleted = "deleted",
        Demilestoned = "demilestoned",
        Edited = "edited",
        Labeled = "labeled",
        Locked = "locked",
        Milestoned = "milestoned",
        Opened = "opened",
        Pinned = "pinned",
        Reopened = "reopened",
        Transferred = "transferred",
        Typed = "typed",
        Unassigned = "unassigned",
        Unlabeled = "unlabeled",
        Unlocked = "unlocked",
        Unpinned = "unpinned",
        Untyped = "untyped",
    }
}

/// `issue_comment`: a comment on an issue or pull request was created, edited or deleted.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct IssueCommentEvent {
    /// What happened.
    pub action: IssueCommentAction,
    /// The issue (or pull request) commented on.
    pub issue: Issue,
    /// The comment.
    pub comment: Comment,
    /// Where it happened.
    pub repository: Repository,
    /// Who did it.
    pub sender: User,
    /// The App installation, for App webhooks.
    pub installation: Option<Installation>,
}

impl IssueCommentEvent {
    /// `issue_comment`
    pub const NAME: &str = "issue_comment";
}

open_enum! {
    /// The `action` of an `issue_comment` event.
    pub enum IssueCommentAction {
        Created = "created",
        Deleted = "deleted",
        Edited = "edited",
    }
}

/// `pull_request`: something happened to a pull request.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PullRequestEvent {
    /// What happened.
    pub action: PullRequestAction,
    /// The pull request number.
    pub number: u64,
    /// The pull request, as it is after the action.
    pub pull_request: PullRequest,
    /// The label added or removed, for `labeled` and `unlabeled`.
    pub label: Option<Label>,
    /// Where it happened.
    pub repository: Repository,
    /// Who did it.
    pub sender: User,
    /// The App installation, for App webhooks.
    pub installation: Option<Installation>,
}

impl PullRequestEvent {
    /// `pull_request`
    pub const NAME: &str = "pull_request";
}

open_enum! {
    /// The `action` of a `pull_request` event.
    pub enum PullRequestAction {
        Assigned = "assigned",
        AutoMergeDisabled = "auto_merge_disabled",
        AutoMergeEnabled = "auto_merge_enabled",
        Closed = "closed",
        ConvertedToDraft = "converted_to_draft",
        Demilestoned = "demilestoned",
        Dequeued = "dequeued",
        Edited = "edited",
        Enqueued = "enqueued",
        Labeled = "labeled",
        Locked = "locked",
        Milestoned = "milestoned",
        Opened = "opened",
        ReadyForReview = "ready_for_review",
        Reopened = "reopened",
        ReviewRequestRemoved = "review_request_removed",
        ReviewRequested = "review_requested",
        Synchronize = "synchronize",
        Unassigned = "unassigned",
        Unlabeled = "unlabeled",
        Unlocked = "unlocked",
    }
}

/// `push`: commits were pushed, or a branch or tag was created or deleted.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct PushEvent {
    /// The full ref pushed, e.g. `refs/heads/main`.
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The commit the ref pointed at before (all zeros when it was created).
    pub before: String,
    /// The commit it points at now (all zeros when it was deleted).
    pub after: String,
    /// Whether the push created the ref.
    pub created: bool,
    /// Whether the push deleted the ref.
    pub deleted: bool,
    /// Whether it was a force push.
    pub forced: bool,
    /// The newest commit pushed; `None` when the ref was deleted.
    pub head_commit: Option<Commit>,
    /// Where it happened.
    pub repository: Repository,
    /// Who pushed.
    pub sender: User,
    /// The App installation, for App webhooks.
    pub installation: Option<Installation>,
}

impl PushEvent {
    /// `push`
    pub const NAME: &str = "push";
}

/// `installation`: a GitHub App was installed, removed, suspended or granted new permissions.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct InstallationEvent {
    /// What happened.
    pub action: InstallationAction,
    /// The installation (its other fields are ignored).
    pub installation: Installation,
    /// The repositories the installation can access, when GitHub lists them.
    pub repositories: Option<Vec<InstallationRepository>>,
    /// Who did it.
    pub sender: User,
}

impl InstallationEvent {
    /// `installation`
    pub const NAME: &str = "installation";
}

open_enum! {
    /// The `action` of an `installation` event.
    pub enum InstallationAction {
        Created = "created",
        Deleted = "deleted",
        NewPermissionsAccepted = "new_permissions_accepted",
        Suspend = "suspend",
        Unsuspend = "unsuspend",
    }
}

/// Any event without a typed struct: what every payload may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtherEvent {
    /// The event name (`X-GitHub-Event`).
    pub name: String,
    /// The `action`, for events that have one.
    pub action: Option<String>,
    /// The repository, when the event happened in one.
    pub repository: Option<Repository>,
    /// Who caused the event.
    pub sender: Option<User>,
    /// The App installation, for App webhooks.
    pub installation: Option<Installation>,
}

/// The fields decoded from a payload of an event without a typed struct.
#[derive(Deserialize)]
struct Common {
    action: Option<String>,
    repository: Option<Repository>,
    sender: Option<User>,
    installation: Option<Installation>,
}

/// Decodes `json` into `T`, checking first that it is an object so the error can say so plainly.
pub(crate) fn decode<T: DeserializeOwned>(event: &str, json: &[u8]) -> Result<T, DecodeError> {
    let first = json
        .iter()
        .find(|byte| !matches!(byte, b' ' | b'\t' | b'\n' | b'\r'));
    let found = match first {
        None => "empty",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b'-' | b'0'..=b'9') => "a number",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        // An object, or not JSON at all: serde_json says where it breaks.
        Some(_) => {
            return serde_json::from_slice(json).map_err(|error| DecodeError::Json {
                event: event.to_owned(),
                error,
            });
        }
    };
    Err(DecodeError::NotAnObject {
        event: event.to_owned(),
        found,
    })
}

/// A payload could not be decoded as the event it was announced as.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The payload is empty, or JSON that is not an object (an array, a string, ...).
    #[error("`{event}` payload is not a JSON object: it is {found}")]
    NotAnObject {
        /// The event name.
        event: String,
        /// What it is instead: `empty`, `an array`, `a string`, `a number`, `a boolean` or `null`.
        found: &'static str,
    },
    /// The payload is not valid JSON, or lacks (or mistypes) a field the event's struct needs.
    #[error("malformed `{event}` payload: {error}")]
    Json {
        /// The event name.
        event: String,
        /// `serde_json`'s error, which says what broke and at which line and column.
        error: serde_json::Error,
    },
}

impl DecodeError {
    /// The 1-based line and column where decoding stopped, for malformed JSON.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            Self::NotAnObject { .. } => None,
            Self::Json { error, .. } => Some((error.line(), error.column())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_actions_are_kept_and_known_ones_typed() {
        let json = br#"{"action":"frobnicated","issue":{"number":1,"title":"t","body":null,
            "html_url":"h","url":"u","user":null},"repository":{"full_name":"o/r","clone_url":"c",
            "html_url":"h","default_branch":"main","private":false},"sender":{"login":"s","type":"User"}}"#;
        let Event::Issues(event) = Event::decode("issues", json).unwrap() else {
            panic!("not an issues event");
        };
        assert_eq!(event.action, IssuesAction::Other("frobnicated".into()));
        assert_eq!(IssuesAction::from("labeled"), IssuesAction::Labeled);
        assert_eq!(IssuesAction::Untyped.as_str(), "untyped");
    }

    #[test]
    fn non_objects_are_named() {
        for (json, found) in [
            (&b""[..], "empty"),
            (b"  \n", "empty"),
            (b"[{}]", "an array"),
            (b" \"{}\"", "a string"),
            (b"-1", "a number"),
            (b"true", "a boolean"),
            (b"null", "null"),
        ] {
            let err = Event::decode("push", json).unwrap_err();
            assert!(
                matches!(err, DecodeError::NotAnObject { found: f, .. } if f == found),
                "{json:?}: {err}"
            );
            assert_eq!(err.position(), None);
        }
        assert_eq!(
            Event::decode("push", b"[]").unwrap_err().to_string(),
            "`push` payload is not a JSON object: it is an array"
        );
    }

    #[test]
    fn other_events_expose_name_action_and_repository() {
        let event = Event::decode(
            "star",
            br#"{"action":"created","starred_at":null,"sender":{"login":"a","type":"User"}}"#,
        )
        .unwrap();
        assert_eq!(event.name(), "star");
        assert_eq!(event.action(), Some("created"));
        assert_eq!(event.repository(), None);
        assert_eq!(event.sender().map(|user| user.login.as_str()), Some("a"));
    }
}
