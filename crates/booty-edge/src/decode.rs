//! The decode step: verified bytes and headers in, a [`Webhook`] for the sink out.
//!
//! Everything GitHub-specific is booty-event's: the delivery headers and the payload's content type. The
//! JSON itself is not parsed here: the sink's routing parses it, once. This module only maps booty-event's
//! errors to HTTP.

use booty_event::{Delivery, Payload, PayloadFormat};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{HeaderMap, StatusCode};
use tokio::time::Instant;

use crate::names;
use crate::sink::Webhook;

/// A verified delivery that cannot be decoded: the status (400 or 415) and what was wrong.
#[derive(Debug)]
pub(crate) struct Undecodable {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

/// Decodes a verified delivery: headers (400), content type (415) and form field (400). `body` is the
/// raw body the signature was checked on; `deadline` is the request's, handed to the sink.
pub(crate) fn decode(
    headers: &HeaderMap,
    body: Bytes,
    deadline: Instant,
) -> Result<Webhook, Undecodable> {
    let header = |name: &str| names::delivery_header(headers, name).map(HeaderValue::as_bytes);
    let delivery = Delivery::from_headers(header).map_err(|err| Undecodable {
        status: StatusCode::BAD_REQUEST,
        message: err.to_string(),
    })?;
    let payload = Payload::decode(headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes), &body)
        .map_err(|err| {
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
    // A JSON body is the payload itself: share it rather than copy it.
    let payload = match payload.format() {
        PayloadFormat::Json => {
            drop(payload);
            body
        }
        PayloadFormat::Form => Bytes::from(payload.into_json()),
    };
    Ok(Webhook::new(delivery, payload, deadline))
}
