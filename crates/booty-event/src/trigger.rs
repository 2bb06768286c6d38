//! The trigger rule: which events start a job, and what the job is told about the issue.

use std::borrow::Cow;
use std::fmt;

use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::event::{self, DecodeError, Event, IssuesAction, IssuesEvent};
use crate::model::{Installation, Issue, Label, Repository, User};

/// The label that starts a job unless configured otherwise.
pub const DEFAULT_TRIGGER_LABEL: &str = "agent:builder";

/// The largest issue number a trigger may carry: the largest a signed 64-bit column (SQLite's and
/// PostgreSQL's `bigint`) holds. GitHub's numbers are far below it; a larger one is bad input, refused
/// before anything stores it.
pub const MAX_ISSUE_NUMBER: u64 = i64::MAX as u64;

/// Decides whether an event starts a job: an `issues` event, action `labeled`, whose `label.name` is
/// exactly the trigger label (case and whitespace included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerRule {
    label: String,
}

impl Default for TriggerRule {
    /// The rule for [`DEFAULT_TRIGGER_LABEL`].
    fn default() -> Self {
        Self {
            label: DEFAULT_TRIGGER_LABEL.to_owned(),
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
        Ok(Self { label })
    }

    /// The trigger label.
    pub fn label(&self) -> &str {
        &self.label
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
        if event != IssuesEvent::NAME {
            event::decode::<IgnoredAny>(event, json)?;
            return Ok(Decision::Ignored(Ignored::Event {
                event: event.to_owned(),
            }));
        }
        let issues: IssuesEvent = event::decode(event, json)?;
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
        if event.action != IssuesAction::Labeled {
            return Ok(Decision::Ignored(Ignored::Action {
                action: event.action.clone(),
            }));
        }
        if let Some(label) = &event.label
            && label.name != self.label
        {
            return Ok(Decision::Ignored(Ignored::Label {
                label: label.name.clone(),
                trigger: self.label.clone(),
            }));
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
        if !(1..=MAX_ISSUE_NUMBER).contains(&issue.number) {
            return Err(TriggerError::IssueNumber {
                number: issue.number,
            });
        }
        Ok(Decision::Trigger(Box::new(IssueTrigger {
            repository,
            issue,
            label,
            sender,
            installation,
        })))
    }
}

/// What a [`TriggerRule`] made of an event: where the delivery goes.
///
/// Routes that need more than these two (cancelling a job, say) are new variants. It is deliberately not
/// `#[non_exhaustive]`: whoever routes must handle every route, so a new one should stop the build at
/// every `match` that does not handle it yet rather than fall into a catch-all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Start a job for this issue.
    Trigger(Box<IssueTrigger>),
    /// Not a trigger; [`Ignored`]'s `Display` is the reason to answer with.
    Ignored(Ignored),
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
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Event { event } => write!(f, "event `{event}` is not a trigger"),
            Self::Action { action } => write!(f, "action `{action}` is not `labeled`"),
            Self::Label { label, trigger } => {
                write!(f, "label `{label}` is not the trigger label `{trigger}`")
            }
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
