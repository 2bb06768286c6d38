//! The decode step: verified bytes and headers in, a pong, an ignored event or a trigger out.
//!
//! Everything GitHub-specific is booty-event's: the delivery headers, the payload's content type, the typed
//! `issues` event and the trigger rule. This module only maps its answers and errors to HTTP.

use booty_event::{Decision, Delivery, Payload, PayloadFormat, PingEvent, TriggerRule};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, StatusCode};
use tokio::time::Instant;

use crate::sink::Submission;

/// What a verified delivery turned out to be.
#[derive(Debug)]
pub(crate) enum Decoded {
    /// GitHub's `ping`, sent when a hook is created.
    Pong,
    /// Verified, but not a trigger; the reason goes back to GitHub and into the log.
    Ignored(String),
    /// A trigger for the sink (boxed: it holds the whole typed issue and repository).
    Trigger(Box<Submission>),
}

/// A verified delivery that cannot be decoded: the status (400 or 415) and what was wrong.
#[derive(Debug)]
pub(crate) struct Undecodable {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl Undecodable {
    fn bad_request(err: &impl std::error::Error) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: err.to_string(),
        }
    }
}

/// Decodes a verified delivery: headers (400), content type (415) and form field (400), then the trigger
/// rule (400 for a malformed `issues` payload). `body` is the raw body the signature was checked on;
/// `deadline` is the request's, handed to the sink with a trigger.
pub(crate) fn decode(
    headers: &HeaderMap,
    body: Bytes,
    rule: &TriggerRule,
    deadline: Instant,
) -> Result<Decoded, Undecodable> {
    let header = |name: &str| headers.get(name).map(HeaderValue::as_bytes);
    let delivery = Delivery::from_headers(header).map_err(|err| Undecodable::bad_request(&err))?;
    let payload = Payload::decode(header(CONTENT_TYPE.as_str()), &body).map_err(|err| {
        let status = if err.is_unsupported_media_type() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        } else {
            StatusCode::BAD_REQUEST
        };
        Undecodable {
            status,
            message: err.to_string(),
        }
    })?;
    if delivery.event() == PingEvent::NAME {
        return Ok(Decoded::Pong);
    }
    let trigger = match rule.decide(delivery.event(), payload.json()) {
        Ok(Decision::Trigger(trigger)) => trigger,
        Ok(Decision::Ignored(reason)) => return Ok(Decoded::Ignored(reason.to_string())),
        Err(err) => return Err(Undecodable::bad_request(&err)),
    };
    // A JSON body is the payload itself: share it rather than copy it.
    let payload = match payload.format() {
        PayloadFormat::Json => {
            drop(payload);
            body
        }
        PayloadFormat::Form => Bytes::from(payload.into_json()),
    };
    Ok(Decoded::Trigger(Box::new(Submission::new(
        delivery, *trigger, payload, deadline,
    ))))
}
