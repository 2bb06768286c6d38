//! The trigger rule: which events start a job, and what the job is told about the issue.

use std::borrow::Cow;
use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::event::{self, DecodeError, Event, IssuesAction, IssuesEvent};
use crate::model::{Installation, Issue, Label, Repository, User, UserKind};

/// The label that starts a job unless configured otherwise.
pub const DEFAULT_TRIGGER_LABEL: &str = "agent:builder";

/// The largest issue number a trigger may carry: the largest a signed 64-bit column (SQLite's and
/// PostgreSQL's `bigint`) holds. GitHub's numbers are far below it; a larger one is bad input, refused
/// before anything stores it.
pub const MAX_ISSUE_NUMBER: u64 = i64::MAX as u64;

/// Decides where a delivery goes: an `issues` event, action `labeled`, whose `label.name` is exactly the
/// trigger label (case and whitespace included), starts a job; `unlabeled` of the trigger label, or
/// `closed`, cancels the issue's job; everything else is ignored with a reason. Before that, an `issues`
/// event from a repository the rule does not allow ([`TriggerRule::only_repositories`]) or sent by a bot
/// (unless [`TriggerRule::accept_bots`]) is ignored: a bot that labels issues must not start loops.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerRule {
    label: String,
    repositories: Option<Repositories>,
    accept_bots: bool,
}

impl Default for TriggerRule {
    /// The rule for [`DEFAULT_TRIGGER_LABEL`], any repository, bots ignored.
    fn default() -> Self {
        Self {
            label: DEFAULT_TRIGGER_LABEL.to_owned(),
            repositories: None,
            accept_bots: false,
        }
    }
}

/// Which repositories a rule serves: `owner/name`, or `owner/*` for every repository of an account,
/// compared without case as GitHub compares names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repositories(Vec<(String, Option<String>)>);

impl Repositories {
    /// The repositories `patterns` name (`acme/widgets`, `acme-labs/*`).
    ///
    /// # Errors
    /// [`RuleError::Repository`] naming the first pattern that is not `owner/name` or `owner/*`, and
    /// [`RuleError::NoRepositories`] for an empty list, which would serve nothing.
    pub fn new<I>(patterns: I) -> Result<Self, RuleError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut parsed = Vec::new();
        for pattern in patterns {
            let pattern = pattern.as_ref();
            let refused = || RuleError::Repository {
                pattern: pattern.to_owned(),
            };
            let (owner, name) = pattern.split_once('/').ok_or_else(refused)?;
            let part = |text: &str| {
                !text.is_empty()
                    && text.len() <= 100
                    && text
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            };
            if !part(owner) || !(name == "*" || part(name)) {
                return Err(refused());
            }
            let name = (name != "*").then(|| name.to_ascii_lowercase());
            parsed.push((owner.to_ascii_lowercase(), name));
        }
        if parsed.is_empty() {
            return Err(RuleError::NoRepositories);
        }
        Ok(Self(parsed))
    }

    /// Whether `full_name` (`owner/name`) is one of them.
    pub fn allows(&self, full_name: &str) -> bool {
        let Some((owner, name)) = full_name.split_once('/') else {
            return false;
        };
        self.0.iter().any(|(allowed_owner, allowed_name)| {
            allowed_owner.eq_ignore_ascii_case(owner)
                && allowed_name
                    .as_deref()
                    .is_none_or(|allowed| allowed.eq_ignore_ascii_case(name))
        })
    }

    /// The one repository named, when the list is exactly one `owner/name` (no wildcard).
    pub fn single(&self) -> Option<String> {
        match self.0.as_slice() {
            [(owner, Some(name))] => Some(format!("{owner}/{name}")),
            _ => None,
        }
    }
}

impl TriggerRule {
    /// A rule for the given trigger label.
    ///
    /// # Errors
    /// [`RuleError::EmptyLabel`] for an empty label, which no GitHub label can match.
    pub fn new(label: impl Into<String>) -> Result<Self, RuleError> {
        let label = label.into();
        if label.is_empty() {
            return Err(RuleError::EmptyLabel);
        }
        Ok(Self {
            label,
            ..Self::default()
        })
    }

    /// The trigger label.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The same rule, serving only `repositories`: an `issues` event from any other is ignored
    /// ([`Ignored::RepositoryNotAllowed`]).
    #[must_use]
    pub fn only_repositories(mut self, repositories: Repositories) -> Self {
        self.repositories = Some(repositories);
        self
    }

    /// The same rule, starting and cancelling jobs for events whose sender is a bot too (ignored by
    /// default: [`Ignored::SenderIsBot`]).
    #[must_use]
    pub fn accept_bots(mut self, accept: bool) -> Self {
        self.accept_bots = accept;
        self
    }

    /// The fast path: decides from the event name and the payload's JSON bytes, decoding only what the
    /// decision needs. An event other than `issues` is ignored on its name alone: its payload is only
    /// checked to be a well-formed JSON object (skimmed, nothing is built), so malformed JSON is an error
    /// whatever the event. An `issues` payload is decoded once, straight into the typed [`IssuesEvent`],
    /// whose parts are moved into the trigger.
    ///
    /// # Errors
    /// [`TriggerError::Decode`] when a payload is not a well-formed JSON object, or an `issues` payload
    /// lacks `issue`, `repository` or `sender`; [`TriggerError::MissingLabel`] when a `labeled` one lacks
    /// `label`.
    pub fn decide(&self, event: &str, json: &[u8]) -> Result<Decision, TriggerError> {
        self.decide_described(event, json, &mut Subject::default())
    }

    /// [`TriggerRule::decide`], also filling in `subject` with what the payload says the event is about
    /// (the action, repository and issue of an `issues` event), as far as it was read before the decision
    /// or the error: what a log line about the delivery names. Nothing is decoded for it that the decision
    /// does not decode anyway.
    ///
    /// # Errors
    /// As [`TriggerRule::decide`].
    pub fn decide_described(
        &self,
        event: &str,
        json: &[u8],
        subject: &mut Subject,
    ) -> Result<Decision, TriggerError> {
        if event != IssuesEvent::NAME {
            event::decode::<IgnoredAny>(event, json)?;
            return Ok(Decision::Ignored(Ignored::Event {
                event: event.to_owned(),
            }));
        }
        let issues: IssuesEvent = event::decode(event, json)?;
        subject.describe(&issues);
        self.decide_issues(Cow::Owned(issues))
    }

    /// The same decision for an event already decoded with [`Event::decode`]; the parts of a trigger are
    /// cloned out of it.
    ///
    /// # Errors
    /// [`TriggerError::MissingLabel`] when an `issues`/`labeled` event has no `label`.
    pub fn decide_event(&self, event: &Event) -> Result<Decision, TriggerError> {
        match event {
            Event::Issues(issues) => self.decide_issues(Cow::Borrowed(issues.as_ref())),
            other => Ok(Decision::Ignored(Ignored::Event {
                event: other.name().to_owned(),
            })),
        }
    }

    fn decide_issues(&self, event: Cow<'_, IssuesEvent>) -> Result<Decision, TriggerError> {
        if let Some(repositories) = &self.repositories
            && !repositories.allows(&event.repository.full_name)
        {
            return Ok(Decision::Ignored(Ignored::RepositoryNotAllowed {
                repository: event.repository.full_name.clone(),
            }));
        }
        if !self.accept_bots && event.sender.kind == UserKind::Bot {
            return Ok(Decision::Ignored(Ignored::SenderIsBot {
                sender: event.sender.login.clone(),
            }));
        }
        let why = match (&event.action, &event.label) {
            (IssuesAction::Labeled, Some(label)) if label.name != self.label => {
                return Ok(Decision::Ignored(Ignored::Label {
                    label: label.name.clone(),
                    trigger: self.label.clone(),
                }));
            }
            (IssuesAction::Labeled, _) => None,
            (IssuesAction::Unlabeled, Some(label)) if label.name == self.label => {
                Some(CancelReason::Unlabeled)
            }
            (IssuesAction::Closed, _) => Some(CancelReason::Closed),
            (action, _) => {
                return Ok(Decision::Ignored(Ignored::Action {
                    action: action.clone(),
                }));
            }
        };
        check_issue_number(event.issue.number)?;
        if let Some(why) = why {
            let event = event.into_owned();
            return Ok(Decision::Cancel(Box::new(Cancellation {
                repository: event.repository,
                issue_number: event.issue.number,
                why,
                sender: event.sender,
            })));
        }
        let IssuesEvent {
            issue,
            label: Some(label),
            repository,
            sender,
            installation,
            ..
        } = event.into_owned()
        else {
            return Err(TriggerError::MissingLabel);
        };
        Ok(Decision::Trigger(Box::new(IssueTrigger {
            repository,
            issue,
            label,
            sender,
            installation,
        })))
    }
}

/// Issue numbers no store can hold are bad input.
fn check_issue_number(number: u64) -> Result<(), TriggerError> {
    if (1..=MAX_ISSUE_NUMBER).contains(&number) {
        Ok(())
    } else {
        Err(TriggerError::IssueNumber { number })
    }
}

/// A delivery that asks for an issue's job to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cancellation {
    /// Where the issue lives.
    pub repository: Repository,
    /// The issue whose job stops.
    pub issue_number: u64,
    /// What happened to the issue.
    pub why: CancelReason,
    /// Who did it.
    pub sender: User,
}

/// Why an issue's job is cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelReason {
    /// The trigger label was removed.
    Unlabeled,
    /// The issue was closed.
    Closed,
}

impl fmt::Display for CancelReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unlabeled => "the trigger label was removed",
            Self::Closed => "the issue was closed",
        })
    }
}

/// What a [`TriggerRule`] made of an event: where the delivery goes.
///
/// A route that needs more than these is a new variant. It is deliberately not
/// `#[non_exhaustive]`: whoever routes must handle every route, so a new one should stop the build at
/// every `match` that does not handle it yet rather than fall into a catch-all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start a job for this issue.
    Trigger(Box<IssueTrigger>),
    /// Stop this issue's job, queued or running.
    Cancel(Box<Cancellation>),
    /// Not a trigger; [`Ignored`]'s `Display` is the reason to answer with.
    Ignored(Ignored),
}

/// What an event is about, as far as routing read it: the fields a log line about the delivery names.
/// Empty for events the rule decides on their name alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Subject {
    /// The payload's `action`.
    pub action: Option<String>,
    /// The repository's `owner/name`.
    pub repository: Option<String>,
    /// The issue's number.
    pub issue_number: Option<u64>,
}

impl Subject {
    fn describe(&mut self, event: &IssuesEvent) {
        self.action = Some(event.action.as_str().to_owned());
        self.repository = Some(event.repository.full_name.clone());
        self.issue_number = Some(event.issue.number);
    }
}

/// Everything a job learns about the issue that triggered it.
///
/// It serializes with GitHub's field names (`{"repository":{"full_name":...},"issue":{"number":...},...}`)
/// and reads back to an equal value, so it can be stored as a job payload. Jobs are keyed
/// `{issue.number}-{delivery id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueTrigger {
    /// Where the issue lives and how to clone it.
    pub repository: Repository,
    /// The issue: number, title, body, URLs, state, labels and author.
    pub issue: Issue,
    /// The label that was added (equal to the rule's trigger label).
    pub label: Label,
    /// Who added the label.
    pub sender: User,
    /// The GitHub App installation, for App webhooks (its id mints an installation token).
    pub installation: Option<Installation>,
}

/// Why an event is not a trigger. `Display` gives the short reason for `{"status":"ignored","reason":...}`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// The event is not `issues`: ``event `push` is not a trigger``.
    Event {
        /// The event name.
        event: String,
    },
    /// An `issues` event whose action is not `labeled`: ``action `opened` is not `labeled` ``.
    Action {
        /// The action.
        action: IssuesAction,
    },
    /// A label other than the trigger label was added:
    /// ``label `bug` is not the trigger label `agent:builder` ``.
    Label {
        /// The label added.
        label: String,
        /// The rule's trigger label.
        trigger: String,
    },
    /// An `issues` event from a repository the rule does not serve: `repository_not_allowed`.
    RepositoryNotAllowed {
        /// `owner/name`.
        repository: String,
    },
    /// An `issues` event sent by a bot: `sender_is_bot`.
    SenderIsBot {
        /// The bot's login.
        sender: String,
    },
}

impl Ignored {
    /// A short, fixed name for the reason (`event_not_trigger`, `action_not_labeled`,
    /// `label_not_trigger`, `repository_not_allowed`, `sender_is_bot`): one of a handful, whatever the
    /// payload held, so it can be a metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Event { .. } => "event_not_trigger",
            Self::Action { .. } => "action_not_labeled",
            Self::Label { .. } => "label_not_trigger",
            Self::RepositoryNotAllowed { .. } => "repository_not_allowed",
            Self::SenderIsBot { .. } => "sender_is_bot",
        }
    }
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Event { event } => write!(f, "event `{event}` is not a trigger"),
            Self::Action { action } => write!(f, "action `{action}` is not `labeled`"),
            Self::Label { label, trigger } => {
                write!(f, "label `{label}` is not the trigger label `{trigger}`")
            }
            Self::RepositoryNotAllowed { .. } => f.write_str("repository_not_allowed"),
            Self::SenderIsBot { .. } => f.write_str("sender_is_bot"),
        }
    }
}

/// An event that should be decided on cannot be (booty's sink answers 400).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// The `issues` payload is malformed or lacks a field every `issues` event has.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// An `issues` event with action `labeled` has no `label` object.
    #[error("`issues` event with action `labeled` has no `label` object")]
    MissingLabel,
    /// The issue number of a trigger is 0 or larger than [`MAX_ISSUE_NUMBER`].
    #[error(
        "`issue.number` {number} is out of range: issue numbers run from 1 to {MAX_ISSUE_NUMBER}"
    )]
    IssueNumber {
        /// The number as sent.
        number: u64,
    },
}

/// A trigger rule could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuleError {
    /// The trigger label is empty.
    #[error("the trigger label is empty")]
    EmptyLabel,
    /// A repository pattern is not `owner/name` or `owner/*`.
    #[error("repository {pattern:?} is not `owner/name` or `owner/*`")]
    Repository {
        /// The pattern as given.
        pattern: String,
    },
    /// An empty list of repositories, which would serve nothing.
    #[error("the list of repositories is empty")]
    NoRepositories,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_documented() {
        let rule = TriggerRule::default();
        assert_eq!(rule.label(), "agent:builder");
        let Decision::Ignored(ignored) = rule
            .decide("push", b"{\"ref\": \"refs/heads/main\"}")
            .unwrap()
        else {
            panic!("push triggered");
        };
        assert_eq!(ignored.to_string(), "event `push` is not a trigger");
        assert_eq!(ignored.code(), "event_not_trigger");
        let label = Ignored::Label {
            label: "whatever the payload says".into(),
            trigger: "agent:builder".into(),
        };
        assert_eq!(label.code(), "label_not_trigger");
        assert_eq!(
            Ignored::Action {
                action: IssuesAction::Opened
            }
            .to_string(),
            "action `opened` is not `labeled`"
        );
        assert_eq!(
            Ignored::Label {
                label: "bug".into(),
                trigger: "agent:builder".into()
            }
            .to_string(),
            "label `bug` is not the trigger label `agent:builder`"
        );
    }

    #[test]
    fn empty_label_is_refused() {
        assert_eq!(TriggerRule::new(""), Err(RuleError::EmptyLabel));
        assert_eq!(TriggerRule::new(" ").unwrap().label(), " ");
    }
}
