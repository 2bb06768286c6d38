//! Every payload of `@octokit/webhooks-examples` decodes, and the typed ones agree with the raw JSON.

use std::collections::BTreeMap;

use booty_event::{
    Decision, Event, InstallationAction, InstallationEvent, IssueCommentAction, IssueCommentEvent,
    IssueState, IssuesAction, IssuesEvent, PingEvent, PullRequestAction, PullRequestEvent,
    PushEvent, TriggerRule,
};
use serde_json::Value;

use crate::corpus;

/// The label on both `issues`/`labeled` examples of the corpus.
const CORPUS_LABEL: &str = "bug";

fn text<'a>(raw: &'a Value, pointer: &str) -> Option<&'a str> {
    raw.pointer(pointer).and_then(Value::as_str)
}

fn number(raw: &Value, pointer: &str) -> Option<u64> {
    raw.pointer(pointer).and_then(Value::as_u64)
}

fn flag(raw: &Value, pointer: &str) -> Option<bool> {
    raw.pointer(pointer).and_then(Value::as_bool)
}

/// The `name`s of the objects in the array at `pointer` (empty when there is none).
fn names<'a>(raw: &'a Value, pointer: &str, field: &str) -> Vec<&'a str> {
    raw.pointer(pointer)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|item| item[field].as_str())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn corpus_has_58_events_and_329_examples() {
    let examples = corpus();
    let mut events: Vec<&str> = examples
        .iter()
        .map(|example| example.event.as_str())
        .collect();
    events.dedup();
    assert_eq!(events.len(), 58);
    assert_eq!(examples.len(), 329);
}

#[test]
fn every_example_decodes_and_typed_events_match_the_raw_json() {
    let mut variants = BTreeMap::new();
    for example in corpus() {
        let (id, raw) = (example.id(), &example.raw);
        let event = Event::decode(&example.event, &example.bytes)
            .unwrap_or_else(|err| panic!("{id}: {err}"));
        assert_eq!(event.name(), example.event, "{id}");
        assert_eq!(event.action(), text(raw, "/action"), "{id}");
        check_common(&event, raw, &id);
        let variant = match &event {
            Event::Ping(ping) => check_ping(ping, raw, &id),
            Event::Issues(issues) => check_issues(issues, raw, &id),
            Event::IssueComment(comment) => check_issue_comment(comment, raw, &id),
            Event::PullRequest(pull) => check_pull_request(pull, raw, &id),
            Event::Push(push) => check_push(push, raw, &id),
            Event::Installation(installation) => check_installation(installation, raw, &id),
            Event::Other(_) => "other",
            _ => panic!("{id}: a variant this test does not know: {event:?}"),
        };
        if variant != "other" {
            assert_eq!(variant, example.event, "{id} decoded as the wrong variant");
        }
        *variants.entry(variant).or_insert(0) += 1;
    }
    let expected = BTreeMap::from([
        ("installation", 7),
        ("issue_comment", 9),
        ("issues", 29),
        ("other", 244),
        ("ping", 4),
        ("pull_request", 29),
        ("push", 7),
    ]);
    assert_eq!(variants, expected);
}

/// What every event exposes: repository, sender, installation.
fn check_common(event: &Event, raw: &Value, id: &str) {
    let repository = event.repository();
    assert_eq!(
        repository.map(|r| r.full_name.as_str()),
        text(raw, "/repository/full_name"),
        "{id}"
    );
    assert_eq!(
        repository.map(|r| r.clone_url.as_str()),
        text(raw, "/repository/clone_url"),
        "{id}"
    );
    assert_eq!(
        repository.map(|r| r.html_url.as_str()),
        text(raw, "/repository/html_url"),
        "{id}"
    );
    assert_eq!(
        repository.map(|r| r.default_branch.as_str()),
        text(raw, "/repository/default_branch"),
        "{id}"
    );
    assert_eq!(
        repository.map(|r| r.private),
        flag(raw, "/repository/private"),
        "{id}"
    );
    let sender = event.sender();
    assert_eq!(
        sender.map(|s| s.login.as_str()),
        text(raw, "/sender/login"),
        "{id}"
    );
    assert_eq!(
        sender.map(|s| s.kind.as_str()),
        text(raw, "/sender/type"),
        "{id}"
    );
    assert_eq!(
        event.installation().map(|i| i.id),
        number(raw, "/installation/id"),
        "{id}"
    );
}

fn check_ping(ping: &PingEvent, raw: &Value, id: &str) -> &'static str {
    assert_eq!(Some(ping.hook_id), number(raw, "/hook_id"), "{id}");
    assert_eq!(Some(ping.zen.as_str()), text(raw, "/zen"), "{id}");
    "ping"
}

fn check_issues(issues: &IssuesEvent, raw: &Value, id: &str) -> &'static str {
    // Every action in the corpus is one this crate knows.
    assert!(!matches!(issues.action, IssuesAction::Other(_)), "{id}");
    let issue = &issues.issue;
    assert_eq!(Some(issue.number), number(raw, "/issue/number"), "{id}");
    assert_eq!(
        Some(issue.title.as_str()),
        text(raw, "/issue/title"),
        "{id}"
    );
    assert_eq!(issue.body.as_deref(), text(raw, "/issue/body"), "{id}");
    assert_eq!(
        Some(issue.html_url.as_str()),
        text(raw, "/issue/html_url"),
        "{id}"
    );
    assert_eq!(Some(issue.url.as_str()), text(raw, "/issue/url"), "{id}");
    assert_eq!(
        issue.state.as_ref().map(IssueState::as_str),
        text(raw, "/issue/state"),
        "{id}"
    );
    assert_eq!(
        issue.user.as_ref().map(|u| u.login.as_str()),
        text(raw, "/issue/user/login"),
        "{id}"
    );
    let labels: Vec<&str> = issue.labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(labels, names(raw, "/issue/labels", "name"), "{id}");
    assert_eq!(
        issues.label.as_ref().map(|l| l.name.as_str()),
        text(raw, "/label/name"),
        "{id}"
    );
    "issues"
}

fn check_issue_comment(event: &IssueCommentEvent, raw: &Value, id: &str) -> &'static str {
    assert!(
        !matches!(event.action, IssueCommentAction::Other(_)),
        "{id}"
    );
    assert_eq!(
        Some(event.issue.number),
        number(raw, "/issue/number"),
        "{id}"
    );
    assert_eq!(Some(event.comment.id), number(raw, "/comment/id"), "{id}");
    assert_eq!(
        Some(event.comment.body.as_str()),
        text(raw, "/comment/body"),
        "{id}"
    );
    assert_eq!(
        Some(event.comment.html_url.as_str()),
        text(raw, "/comment/html_url"),
        "{id}"
    );
    "issue_comment"
}

fn check_pull_request(event: &PullRequestEvent, raw: &Value, id: &str) -> &'static str {
    assert!(!matches!(event.action, PullRequestAction::Other(_)), "{id}");
    let pull = &event.pull_request;
    assert_eq!(Some(event.number), number(raw, "/number"), "{id}");
    assert_eq!(
        Some(pull.number),
        number(raw, "/pull_request/number"),
        "{id}"
    );
    assert_eq!(
        Some(pull.title.as_str()),
        text(raw, "/pull_request/title"),
        "{id}"
    );
    assert_eq!(
        pull.body.as_deref(),
        text(raw, "/pull_request/body"),
        "{id}"
    );
    assert_eq!(
        Some(pull.head.name.as_str()),
        text(raw, "/pull_request/head/ref"),
        "{id}"
    );
    assert_eq!(
        Some(pull.base.sha.as_str()),
        text(raw, "/pull_request/base/sha"),
        "{id}"
    );
    assert_eq!(pull.merged, flag(raw, "/pull_request/merged"), "{id}");
    assert_eq!(Some(pull.draft), flag(raw, "/pull_request/draft"), "{id}");
    let labels: Vec<&str> = pull.labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(labels, names(raw, "/pull_request/labels", "name"), "{id}");
    assert_eq!(
        event.label.as_ref().map(|l| l.name.as_str()),
        text(raw, "/label/name"),
        "{id}"
    );
    "pull_request"
}

fn check_push(push: &PushEvent, raw: &Value, id: &str) -> &'static str {
    assert_eq!(Some(push.git_ref.as_str()), text(raw, "/ref"), "{id}");
    assert_eq!(Some(push.before.as_str()), text(raw, "/before"), "{id}");
    assert_eq!(Some(push.after.as_str()), text(raw, "/after"), "{id}");
    assert_eq!(Some(push.created), flag(raw, "/created"), "{id}");
    assert_eq!(Some(push.deleted), flag(raw, "/deleted"), "{id}");
    assert_eq!(Some(push.forced), flag(raw, "/forced"), "{id}");
    assert_eq!(
        push.head_commit.as_ref().map(|c| c.id.as_str()),
        text(raw, "/head_commit/id"),
        "{id}"
    );
    "push"
}

fn check_installation(event: &InstallationEvent, raw: &Value, id: &str) -> &'static str {
    assert!(
        !matches!(event.action, InstallationAction::Other(_)),
        "{id}"
    );
    let listed: Option<Vec<&str>> = event.repositories.as_ref().map(|list| {
        list.iter()
            .map(|repository| repository.full_name.as_str())
            .collect()
    });
    let raw_listed = raw
        .get("repositories")
        .map(|_| names(raw, "/repositories", "full_name"));
    assert_eq!(listed, raw_listed, "{id}");
    "installation"
}

#[test]
fn decide_on_bytes_agrees_with_decide_on_the_decoded_event() {
    let rule = TriggerRule::new(CORPUS_LABEL).unwrap();
    let (mut triggers, mut cancels) = (Vec::new(), Vec::new());
    for example in corpus() {
        let id = example.id();
        let fast = rule
            .decide(&example.event, &example.bytes)
            .unwrap_or_else(|err| panic!("{id}: {err}"));
        let event = Event::decode(&example.event, &example.bytes).unwrap();
        assert_eq!(fast, rule.decide_event(&event).unwrap(), "{id}");
        match fast {
            Decision::Trigger(trigger) => {
                assert_eq!(
                    Some(trigger.issue.number),
                    number(&example.raw, "/issue/number"),
                    "{id}"
                );
                assert_eq!(trigger.label.name, CORPUS_LABEL, "{id}");
                triggers.push(id);
            }
            Decision::Cancel(cancel) => {
                let action = text(&example.raw, "/action");
                let removed = text(&example.raw, "/label/name");
                assert!(
                    action == Some("closed")
                        || (action == Some("unlabeled") && removed == Some(CORPUS_LABEL)),
                    "{id}: {action:?} cancelled"
                );
                assert_eq!(
                    Some(cancel.issue_number),
                    number(&example.raw, "/issue/number"),
                    "{id}"
                );
                cancels.push(id);
            }
            Decision::Ignored(reason) => {
                let bot = text(&example.raw, "/sender/type") == Some("Bot");
                let label = text(&example.raw, "/label/name");
                let expected = match (example.event.as_str(), text(&example.raw, "/action")) {
                    ("issues", _) if bot => "sender_is_bot".to_owned(),
                    ("issues", Some("labeled")) if label != Some(CORPUS_LABEL) => {
                        format!(
                            "label `{}` is not the trigger label `{CORPUS_LABEL}`",
                            label.unwrap_or_default()
                        )
                    }
                    ("issues", Some(action)) if !["labeled", "closed"].contains(&action) => {
                        format!("action `{action}` is not `labeled`")
                    }
                    ("issues", _) => {
                        panic!(
                            "{id}: an issue event that triggers or cancels was ignored: {reason}"
                        )
                    }
                    (event, _) => format!("event `{event}` is not a trigger"),
                };
                assert_eq!(reason.to_string(), expected, "{id}");
            }
        }
    }
    assert_eq!(cancels, ["issues[24]", "issues[25]"]);
    assert_eq!(triggers, ["issues[9]", "issues[10]"]);
}
