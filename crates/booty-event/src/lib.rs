//! GitHub webhook deliveries, payloads and events, and the rule that turns a labeled issue into a job.
//!
//! A verified webhook request goes through three steps, each with its own error type so a server can map
//! failures to status codes without reading messages:
//!
//! 1. [`Delivery::from_headers`] reads the `X-GitHub-*` headers through a lookup closure (feed it from an
//!    `http::HeaderMap` with `|name| headers.get(name).map(HeaderValue::as_bytes)`). It validates the event
//!    name and the [`DeliveryId`], which is then safe in job ids, file names and log fields.
//!    Errors: [`HeaderError`] (400), naming the header.
//! 2. [`Payload::decode`] takes the JSON out of the body according to `Content-Type`: `application/json`
//!    (borrowed as is) or `application/x-www-form-urlencoded` with the JSON percent-encoded in `payload`.
//!    [`Payload::into_json`] hands the bytes over, owned, e.g. to write them to a file for a job.
//!    Errors: [`PayloadError`]; [`PayloadError::is_unsupported_media_type`] says 415, otherwise 400.
//! 3. [`TriggerRule::decide`] routes `(event name, JSON)` to a [`Decision`]: an [`IssueTrigger`] (for
//!    `issues`, action `labeled`, label exactly the trigger label, [`DEFAULT_TRIGGER_LABEL`] by default) or
//!    [`Ignored`], whose `Display` is the reason to answer with. Other events are ignored by name (their
//!    JSON is only checked to be well formed); an `issues` payload is decoded once, straight into typed
//!    structs. It is pure (no I/O, no clock), so whoever routes can call it: in booty, the service's sink,
//!    for deliveries from the webhook listener and any other source alike.
//!    Errors: [`TriggerError`] (400): malformed JSON with `serde_json`'s line and column, or a `labeled` event
//!    without its `label`.
//!
//! [`Event::decode`] decodes any payload into the typed model: [`PingEvent`], [`IssuesEvent`],
//! [`IssueCommentEvent`], [`PullRequestEvent`], [`PushEvent`], [`InstallationEvent`], and [`OtherEvent`]
//! (name, action, repository, sender, installation) for the rest. Actions are open enums ([`IssuesAction`]
//! and friends): a known action costs no allocation, one GitHub adds later decodes as `Other(String)`.
//! Unknown fields are ignored, and nullable fields are `Option`s. The typed events come out of every one of
//! the 329 payloads of `@octokit/webhooks-examples`, which the tests vendor.
//!
//! The crate does no I/O, needs no runtime, and does not know about HTTP: `ping` (answered `pong`) is the
//! caller's to spot, with `delivery.event() == PingEvent::NAME`.
//!
//! ```
//! use booty_event::{Decision, Delivery, Payload, TriggerRule};
//!
//! let headers = [
//!     ("x-github-event", "issues"),
//!     ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
//!     ("content-type", "application/json"),
//! ];
//! let header = |name: &str| {
//!     headers.iter().find(|(key, _)| *key == name).map(|(_, value)| value.as_bytes())
//! };
//! let body = br#"{"action":"labeled","label":{"name":"agent:builder","description":null},
//!   "issue":{"number":7,"title":"Add a health endpoint","body":null,"state":"open",
//!     "html_url":"https://github.com/octo/app/issues/7","url":"https://api.github.com/repos/octo/app/issues/7",
//!     "labels":[{"name":"agent:builder","description":null}],"user":{"login":"ada","type":"User"}},
//!   "repository":{"full_name":"octo/app","clone_url":"https://github.com/octo/app.git",
//!     "html_url":"https://github.com/octo/app","default_branch":"main","private":false},
//!   "sender":{"login":"ada","type":"User"}}"#;
//!
//! let delivery = Delivery::from_headers(header)?;
//! let payload = Payload::decode(header("content-type"), body)?;
//! match TriggerRule::default().decide(delivery.event(), payload.json())? {
//!     Decision::Trigger(trigger) => {
//!         let job_id = format!("{}-{}", trigger.issue.number, delivery.id());
//!         assert_eq!(job_id, "7-72d3162e-cc78-11e3-81ab-4c9367dc0958");
//!         assert_eq!(trigger.repository.clone_url, "https://github.com/octo/app.git");
//!     }
//!     other => panic!("not a trigger: {other:?}"),
//! }
//!
//! // Any other event is ignored by name; the reason is ready for `{"status":"ignored","reason":...}`.
//! let Decision::Ignored(reason) = TriggerRule::default().decide("push", b"{}")? else { unreachable!() };
//! assert_eq!(reason.to_string(), "event `push` is not a trigger");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The real `issues`/`labeled` payload the tests, benchmarks and fuzz seeds of the workspace share is
//! `crates/booty-event/tests/fixtures/issues.labeled.json` (12,470 bytes, as GitHub sends it).

mod delivery;
mod event;
mod form;
mod model;
mod open;
mod payload;
mod trigger;

pub use delivery::{
    DELIVERY_HEADER, Delivery, DeliveryId, DeliveryIdError, EVENT_HEADER, HeaderError,
    MAX_DELIVERY_ID_LEN,
};
pub use event::{
    DecodeError, Event, InstallationAction, InstallationEvent, IssueCommentAction,
    IssueCommentEvent, IssuesAction, IssuesEvent, OtherEvent, PingEvent, PullRequestAction,
    PullRequestEvent, PushEvent,
};
pub use model::{
    Branch, Comment, Commit, Installation, InstallationRepository, Issue, IssueState, Label,
    PullRequest, Repository, User, UserKind,
};
pub use payload::{Payload, PayloadError, PayloadFormat};
pub use trigger::{
    CancelReason, Cancellation, DEFAULT_TRIGGER_LABEL, Decision, Ignored, IssueTrigger,
    MAX_ISSUE_NUMBER, Repositories, RuleError, Subject, TriggerError, TriggerRule,
};
