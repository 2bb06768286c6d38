//! The trigger rule on the real `issues`/`labeled` payload: what triggers, what is ignored and why, and
//! what the job is given.

use booty_event::{
    CancelReason, Decision, Event, Ignored, IssueTrigger, IssuesAction, MAX_ISSUE_NUMBER,
    Repositories, TriggerError, TriggerRule, UserKind,
};
use serde_json::{Value, json};

use crate::{issues_labeled, issues_labeled_with};

fn trigger(decision: Decision) -> IssueTrigger {
    match decision {
        Decision::Trigger(trigger) => *trigger,
        other => panic!("not a trigger: {other:?}"),
    }
}

fn ignored(decision: Decision) -> String {
    match decision {
        Decision::Ignored(reason) => reason.to_string(),
        other => panic!("not ignored: {other:?}"),
    }
}

fn with_label(name: &str) -> Vec<u8> {
    issues_labeled_with(
        "label",
        Some(json!({"name": name, "description": null, "color": "fff"})),
    )
}

#[test]
fn the_trigger_carries_what_a_job_needs_from_the_real_payload() {
    let body = issues_labeled();
    let raw: Value = serde_json::from_slice(&body).unwrap();
    let trigger = trigger(
        TriggerRule::new("bug")
            .unwrap()
            .decide("issues", &body)
            .unwrap(),
    );

    let repository = &raw["repository"];
    assert_eq!(
        trigger.repository.full_name,
        repository["full_name"].as_str().unwrap()
    );
    assert_eq!(
        trigger.repository.clone_url,
        repository["clone_url"].as_str().unwrap()
    );
    assert_eq!(
        trigger.repository.html_url,
        repository["html_url"].as_str().unwrap()
    );
    assert_eq!(
        trigger.repository.default_branch,
        repository["default_branch"].as_str().unwrap()
    );
    assert_eq!(
        trigger.repository.private,
        repository["private"].as_bool().unwrap()
    );
    let issue = &raw["issue"];
    assert_eq!(trigger.issue.number, issue["number"].as_u64().unwrap());
    assert_eq!(trigger.issue.title, issue["title"].as_str().unwrap());
    assert_eq!(trigger.issue.body.as_deref(), issue["body"].as_str());
    assert_eq!(trigger.issue.html_url, issue["html_url"].as_str().unwrap());
    assert_eq!(
        trigger.issue.user.as_ref().map(|user| user.login.as_str()),
        issue["user"]["login"].as_str()
    );
    assert_eq!(trigger.label.name, "bug");
    assert_eq!(
        trigger.sender.login,
        raw["sender"]["login"].as_str().unwrap()
    );
    assert_eq!(trigger.sender.kind, UserKind::User);
    assert_eq!(trigger.installation, None);
}

#[test]
fn the_trigger_round_trips_as_a_job_payload_with_github_field_names() {
    let trigger = trigger(
        TriggerRule::new("bug")
            .unwrap()
            .decide("issues", &issues_labeled())
            .unwrap(),
    );
    let stored = serde_json::to_string(&trigger).unwrap();
    let value: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(value["repository"]["full_name"], "Codertocat/Hello-World");
    assert_eq!(value["issue"]["number"], 1);
    assert_eq!(value["label"]["name"], "bug");
    assert_eq!(value["sender"]["type"], "User");
    assert_eq!(
        serde_json::from_str::<IssueTrigger>(&stored).unwrap(),
        trigger
    );
}

#[test]
fn the_default_rule_triggers_on_agent_builder_only_exactly() {
    let rule = TriggerRule::default();
    let trigger = trigger(rule.decide("issues", &with_label("agent:builder")).unwrap());
    assert_eq!(trigger.label.name, "agent:builder");

    assert_eq!(
        ignored(rule.decide("issues", &issues_labeled()).unwrap()),
        "label `bug` is not the trigger label `agent:builder`"
    );
    for near in [
        "Agent:Builder",
        "agent:builder ",
        " agent:builder",
        "agent: builder",
        "agent:builders",
        "",
    ] {
        assert_eq!(
            ignored(rule.decide("issues", &with_label(near)).unwrap()),
            format!("label `{near}` is not the trigger label `agent:builder`")
        );
    }
}

#[test]
fn other_actions_and_events_are_ignored_with_a_reason() {
    let rule = TriggerRule::default();
    let opened = issues_labeled_with("action", Some(json!("opened")));
    assert_eq!(
        ignored(rule.decide("issues", &opened).unwrap()),
        "action `opened` is not `labeled`"
    );
    let unlabeled = issues_labeled_with("action", Some(json!("unlabeled")));
    assert_eq!(
        ignored(rule.decide("issues", &unlabeled).unwrap()),
        "action `unlabeled` is not `labeled`"
    );

    // An action GitHub adds later is ignored, not an error, and kept as sent.
    let future = issues_labeled_with("action", Some(json!("frobnicated")));
    let Decision::Ignored(Ignored::Action { action }) = rule.decide("issues", &future).unwrap()
    else {
        panic!("not ignored by action");
    };
    assert_eq!(action, IssuesAction::Other("frobnicated".into()));

    // The same payload under another event name is ignored by name; malformed JSON is still an error
    // whatever the event, as the contract answers it with 400.
    for event in ["pull_request", "push", "ping", "issue_comment", "label"] {
        assert_eq!(
            ignored(rule.decide(event, &issues_labeled()).unwrap()),
            format!("event `{event}` is not a trigger")
        );
        let truncated = rule
            .decide(event, b"{\"truncated\":")
            .unwrap_err()
            .to_string();
        assert!(
            truncated.starts_with(&format!("malformed `{event}` payload: EOF while parsing")),
            "{truncated}"
        );
        let array = rule.decide(event, b"[1, 2]").unwrap_err().to_string();
        assert_eq!(
            array,
            format!("`{event}` payload is not a JSON object: it is an array")
        );
    }
}

#[test]
fn a_labeled_event_without_label_or_issue_is_an_error() {
    let rule = TriggerRule::default();
    for body in [
        issues_labeled_with("label", None),
        issues_labeled_with("label", Some(Value::Null)),
    ] {
        let err = rule.decide("issues", &body).unwrap_err();
        assert!(matches!(err, TriggerError::MissingLabel), "{err}");
        assert_eq!(
            err.to_string(),
            "`issues` event with action `labeled` has no `label` object"
        );
        let event = Event::decode("issues", &body).unwrap();
        assert!(matches!(
            rule.decide_event(&event),
            Err(TriggerError::MissingLabel)
        ));
    }

    let err = rule
        .decide("issues", &issues_labeled_with("issue", None))
        .unwrap_err();
    assert!(matches!(err, TriggerError::Decode(_)), "{err}");
    let message = err.to_string();
    assert!(
        message.starts_with("malformed `issues` payload: missing field `issue` at line 1 column "),
        "{message}"
    );

    let err = rule
        .decide("issues", &issues_labeled_with("issue", Some(Value::Null)))
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("malformed `issues` payload: invalid type: null"),
        "{err}"
    );

    let err = rule
        .decide("issues", &issues_labeled_with("repository", None))
        .unwrap_err();
    assert!(
        err.to_string().contains("missing field `repository`"),
        "{err}"
    );

    // A label object without its name is malformed, not a different label.
    let err = rule
        .decide(
            "issues",
            &issues_labeled_with("label", Some(json!({"color": "fff"}))),
        )
        .unwrap_err();
    assert!(err.to_string().contains("missing field `name`"), "{err}");
}

#[test]
fn a_trigger_with_an_issue_number_no_store_can_hold_is_an_error() {
    let rule = TriggerRule::new("bug").unwrap();
    let with_number = |number: u64| {
        let mut raw: Value = serde_json::from_slice(&issues_labeled()).unwrap();
        raw["issue"]["number"] = json!(number);
        serde_json::to_vec(&raw).unwrap()
    };
    for number in [0, MAX_ISSUE_NUMBER + 1, u64::MAX] {
        let err = rule.decide("issues", &with_number(number)).unwrap_err();
        assert!(
            matches!(err, TriggerError::IssueNumber { number: n } if n == number),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "`issue.number` {number} is out of range: issue numbers run from 1 to \
                 9223372036854775807"
            )
        );
    }
    for number in [1, MAX_ISSUE_NUMBER] {
        let trigger = trigger(rule.decide("issues", &with_number(number)).unwrap());
        assert_eq!(trigger.issue.number, number);
    }
}

#[test]
fn an_unlabeled_action_without_label_is_still_just_ignored() {
    let mut raw: Value = serde_json::from_slice(&issues_labeled()).unwrap();
    raw["action"] = json!("opened");
    raw.as_object_mut().unwrap().remove("label");
    let body = serde_json::to_vec(&raw).unwrap();
    assert_eq!(
        ignored(TriggerRule::default().decide("issues", &body).unwrap()),
        "action `opened` is not `labeled`"
    );
}

#[test]
fn a_rule_needs_a_label() {
    assert!(TriggerRule::new("").is_err());
    assert_eq!(TriggerRule::new("ready").unwrap().label(), "ready");
}

/// The fixture's `issues` payload with `action`, `repository.full_name`, the sender's type and the label.
fn issues_event(action: &str, repository: &str, sender_type: &str, label: &str) -> Vec<u8> {
    let mut raw: Value = serde_json::from_slice(&issues_labeled()).expect("the fixture is JSON");
    raw["action"] = Value::from(action);
    raw["repository"]["full_name"] = Value::from(repository);
    raw["sender"]["type"] = Value::from(sender_type);
    raw["label"]["name"] = Value::from(label);
    serde_json::to_vec(&raw).expect("a Value serializes")
}

#[test]
fn only_the_allowed_repositories_are_served_by_name_or_by_account() {
    let rule = TriggerRule::default()
        .only_repositories(Repositories::new(["acme/widgets", "Acme-Labs/*"]).unwrap());
    for allowed in [
        "acme/widgets",
        "ACME/Widgets",
        "acme-labs/anything",
        "acme-labs/x.y",
    ] {
        let event = issues_event("labeled", allowed, "User", "agent:builder");
        assert_eq!(
            trigger(rule.decide("issues", &event).unwrap())
                .repository
                .full_name,
            allowed
        );
    }
    for refused in ["acme/gadgets", "acme-lab/widgets", "other/widgets"] {
        // A trigger and a cancellation alike.
        for action in ["labeled", "closed"] {
            let event = issues_event(action, refused, "User", "agent:builder");
            assert_eq!(
                ignored(rule.decide("issues", &event).unwrap()),
                "repository_not_allowed"
            );
        }
    }
    for bad in [
        "acme",
        "acme/",
        "/widgets",
        "*/widgets",
        "acme/wid gets",
        "a/b/c",
    ] {
        let err = Repositories::new([bad]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("repository {bad:?} is not `owner/name` or `owner/*`")
        );
    }
    assert!(Repositories::new(Vec::<String>::new()).is_err());
    let single = Repositories::new(["acme/widgets"]).unwrap().single();
    assert_eq!(single.as_deref(), Some("acme/widgets"));
    assert_eq!(Repositories::new(["acme/*"]).unwrap().single(), None);
}

#[test]
fn a_bot_sender_is_ignored_unless_bots_are_accepted() {
    let event = issues_event("labeled", "acme/widgets", "Bot", "agent:builder");
    assert_eq!(
        ignored(TriggerRule::default().decide("issues", &event).unwrap()),
        "sender_is_bot"
    );
    let accepting = TriggerRule::default().accept_bots(true);
    assert_eq!(
        trigger(accepting.decide("issues", &event).unwrap())
            .sender
            .login,
        "Codertocat"
    );
}

#[test]
fn removing_the_trigger_label_or_closing_the_issue_cancels_its_job() {
    let rule = TriggerRule::default();
    for (action, label, why) in [
        ("unlabeled", "agent:builder", CancelReason::Unlabeled),
        ("closed", "anything", CancelReason::Closed),
    ] {
        let event = issues_event(action, "acme/widgets", "User", label);
        let Decision::Cancel(cancel) = rule.decide("issues", &event).unwrap() else {
            panic!("{action} did not cancel");
        };
        assert_eq!(
            (
                cancel.repository.full_name.as_str(),
                cancel.issue_number,
                cancel.why
            ),
            ("acme/widgets", 1, why)
        );
        assert_eq!(
            rule.decide_event(&Event::decode("issues", &event).unwrap())
                .unwrap(),
            Decision::Cancel(cancel)
        );
    }
    // Removing another label changes nothing.
    let event = issues_event("unlabeled", "acme/widgets", "User", "bug");
    assert_eq!(
        ignored(rule.decide("issues", &event).unwrap()),
        "action `unlabeled` is not `labeled`"
    );
}
