//! The decode step: verified bytes and headers in, a pong, an ignored event or a trigger out.
//!
//! INTERIM: booty-event owns delivery headers, payload decoding and trigger matching; until it lands
//! this module reads just enough JSON to exercise the edge, and is replaced by calls into booty-event.

use hyper::body::Bytes;
use hyper::{HeaderMap, StatusCode};

use crate::sink::Submission;

/// Delivery headers (interim stand-in for `booty_event::Delivery`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Delivery {
    /// `X-GitHub-Delivery`.
    pub id: String,
    /// `X-GitHub-Event`.
    pub event: String,
}

/// The issue a trigger is about (interim stand-in for `booty_event::IssueTrigger`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssueTrigger {
    /// The issue number.
    pub issue_number: u64,
    /// `owner/name`.
    pub repository: String,
}

/// What a verified delivery turned out to be.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// GitHub's `ping` after a hook is created.
    Pong,
    /// Verified, but not a trigger; the reason goes back to GitHub and into the log.
    Ignored { event: String, reason: String },
    /// A trigger for the sink.
    Trigger(Submission),
}

/// A verified delivery that cannot be decoded: the status (400 or 415) and what was wrong.
#[derive(Debug)]
pub(crate) struct Undecodable {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

fn bad(message: impl Into<String>) -> Undecodable {
    Undecodable {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

fn header(headers: &HeaderMap, name: &str) -> Result<String, Undecodable> {
    let value = headers
        .get(name)
        .ok_or_else(|| bad(format!("missing {name} header")))?;
    value
        .to_str()
        .map(str::to_owned)
        .map_err(|_| bad(format!("{name} header is not visible ASCII")))
}

/// Decodes a verified delivery.
pub(crate) fn decode(
    headers: &HeaderMap,
    body: Bytes,
    trigger_label: &str,
) -> Result<Decoded, Undecodable> {
    let event = header(headers, "x-github-event")?;
    let id = header(headers, "x-github-delivery")?;
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(Undecodable {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!("unsupported content type {content_type:?}"),
        });
    }
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|err| bad(format!("payload is not valid JSON: {err}")))?;
    if event == "ping" {
        return Ok(Decoded::Pong);
    }
    let action = value["action"].as_str().unwrap_or("");
    let label = value["label"]["name"].as_str().unwrap_or("");
    if event != "issues" || action != "labeled" || label != trigger_label {
        return Ok(Decoded::Ignored {
            reason: format!("{event}/{action} with label {label:?} is not a trigger"),
            event,
        });
    }
    let issue_number = value["issue"]["number"]
        .as_u64()
        .ok_or_else(|| bad("trigger payload has no issue.number"))?;
    let repository = value["repository"]["full_name"]
        .as_str()
        .ok_or_else(|| bad("trigger payload has no repository.full_name"))?
        .to_owned();
    Ok(Decoded::Trigger(Submission {
        delivery: Delivery { id, event },
        trigger: IssueTrigger {
            issue_number,
            repository,
        },
        payload: body,
    }))
}
