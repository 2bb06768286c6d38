//! Fuzz target `event`: delivery headers, payload decoding, typed events and the trigger rule.
//!
//! Each input is a request ([`booty_fuzz::Message`]). It goes the way an edge takes it, and every step is
//! checked against what booty-event documents, not only for panics:
//!
//! - [`Delivery::from_headers`] reads the `X-GitHub-*` headers through the lookup closure. An accepted
//!   delivery repeats the event name and id exactly; a refused one names a header in its message. A
//!   [`DeliveryId`] that parses survives `Display`/`FromStr` and serde unchanged, and one that does not is
//!   refused the same way by `FromStr` and by serde.
//! - [`Payload::decode`] takes the JSON out of the body by `content-type`. JSON is the body itself; a body
//!   error does not depend on the content type's parameters. Whatever the input, the body sent as a form's
//!   percent-encoded `payload` field decodes back to the same bytes (unless the form rules refuse it: blank,
//!   or starting with `%`).
//! - With a delivery and a payload, [`Event::decode`] and [`TriggerRule::decide`] run on the JSON, and
//!   [`TriggerRule::decide_event`] on the decoded event: the two decisions agree whenever both succeed, an
//!   `issues` payload is refused by both or neither, a trigger carries the trigger label, and an
//!   [`IssueTrigger`] reads back from its JSON unchanged.
//!
//! No error message may contain a control character: a request must not be able to break a log line.

#![no_main]

use std::fmt::Display;

use booty_event::{
    DELIVERY_HEADER, Decision, Delivery, DeliveryId, EVENT_HEADER, Event, IssueTrigger,
    IssuesEvent, Payload, PayloadError, PayloadFormat, TriggerRule,
};
use booty_fuzz::Message;
use libfuzzer_sys::fuzz_target;

const JSON: &[u8] = b"application/json";
const FORM: &[u8] = b"application/x-www-form-urlencoded";

fuzz_target!(|data: &[u8]| {
    let request = Message::parse(data);
    let delivery = check_delivery(&request);
    check_form_round_trip(request.body);
    if let (Some(delivery), Some(payload)) = (delivery, check_payload(&request)) {
        check_decisions(delivery.event(), payload.json());
    }
});

fn check_delivery(request: &Message<'_>) -> Option<Delivery> {
    let raw_id = request.header(DELIVERY_HEADER);
    if let Some(raw) = raw_id {
        check_delivery_id(raw);
    }
    match Delivery::from_headers(|name| request.header(name)) {
        Ok(delivery) => {
            assert_eq!(
                Some(delivery.event().as_bytes()),
                request.header(EVENT_HEADER)
            );
            assert_eq!(Some(delivery.id().as_str().as_bytes()), raw_id);
            Some(delivery)
        }
        Err(error) => {
            let message = clean_message(&error);
            assert!(
                message.contains(error.header()),
                "`{message}` does not name {}",
                error.header()
            );
            None
        }
    }
}

fn check_delivery_id(raw: &[u8]) {
    match DeliveryId::from_bytes(raw) {
        Ok(id) => {
            assert_eq!(id.as_str().as_bytes(), raw);
            assert_eq!(id.to_string(), id.as_str());
            assert_eq!(id.as_str().parse::<DeliveryId>().as_ref(), Ok(&id));
            let json = serde_json::to_string(&id).expect("a string serializes");
            assert_eq!(json, format!("\"{id}\""), "the id needs no escaping");
            let back: DeliveryId = serde_json::from_str(&json).expect("an id reads back");
            assert_eq!(back, id);
        }
        Err(error) => {
            clean_message(&error);
            if let Ok(text) = std::str::from_utf8(raw) {
                assert_eq!(text.parse::<DeliveryId>(), Err(error.clone()));
                let json = serde_json::to_string(text).expect("a string serializes");
                let refused = serde_json::from_str::<DeliveryId>(&json)
                    .expect_err("serde accepted an id from_bytes refused");
                assert!(
                    refused.to_string().contains(&error.to_string()),
                    "serde said `{refused}`, from_bytes `{error}`"
                );
            }
        }
    }
}

fn check_payload<'a>(request: &Message<'a>) -> Option<Payload<'a>> {
    let content_type = request.header("content-type");
    match Payload::decode(content_type, request.body) {
        Ok(payload) => {
            if payload.format() == PayloadFormat::Json {
                assert_same(
                    payload.json(),
                    request.body,
                    "a JSON payload is not its body",
                );
            }
            assert_same(
                &payload.clone().into_json(),
                payload.json(),
                "into_json changed the JSON",
            );
            Some(payload)
        }
        Err(error) => {
            clean_message(&error);
            if !error.is_unsupported_media_type() {
                // Only a form body can be at fault, and its parameters (charset=utf-8) change nothing.
                assert_eq!(Payload::decode(Some(FORM), request.body), Err(error));
            }
            None
        }
    }
}

/// `body` sent as a form's percent-encoded `payload` field decodes back to `body`.
fn check_form_round_trip(body: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut form = Vec::with_capacity(8 + 3 * body.len());
    form.extend_from_slice(b"payload=");
    for &byte in body {
        match byte {
            b' ' => form.push(b'+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => form.push(byte),
            _ => form.extend_from_slice(&[
                b'%',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0x0f)],
            ]),
        }
    }
    let decoded = Payload::decode(Some(FORM), &form);
    match body.iter().find(|byte| !byte.is_ascii_whitespace()) {
        None => assert_eq!(decoded, Err(PayloadError::EmptyPayloadField)),
        Some(b'%') => assert_eq!(decoded, Err(PayloadError::DoublyEncoded)),
        Some(_) => {
            let payload = decoded.expect("a well-formed form decodes");
            assert_eq!(payload.format(), PayloadFormat::Form);
            assert_same(payload.json(), body, "the form round trip changed the body");
        }
    }
    // The same body as JSON is the body itself, whatever it holds.
    let json = Payload::decode(Some(JSON), body).expect("a JSON body is never refused");
    assert_same(json.json(), body, "a JSON payload is not its body");
}

fn check_decisions(event: &str, json: &[u8]) {
    let rule = TriggerRule::default();
    let fast = rule.decide(event, json);
    let decoded = Event::decode(event, json);
    match &decoded {
        Ok(decoded) => assert_eq!(decoded.name(), event),
        Err(error) => {
            clean_message(error);
        }
    }
    let slow = decoded
        .as_ref()
        .ok()
        .map(|decoded| rule.decide_event(decoded));

    if let (Ok(fast), Some(Ok(slow))) = (&fast, &slow) {
        assert_eq!(fast, slow, "decide and decide_event disagree");
    }
    if event == IssuesEvent::NAME {
        assert_eq!(
            fast.is_ok(),
            matches!(slow, Some(Ok(_))),
            "decide gave {fast:?}, Event::decode + decide_event {slow:?}"
        );
    }
    match &fast {
        Ok(Decision::Trigger(trigger)) => check_trigger(&rule, trigger),
        Ok(Decision::Cancel(cancel)) => {
            assert!((1..=booty_event::MAX_ISSUE_NUMBER).contains(&cancel.issue_number));
        }
        Ok(Decision::Ignored(reason)) => {
            reason.to_string();
        }
        Err(error) => {
            clean_message(error);
        }
    }
}

fn check_trigger(rule: &TriggerRule, trigger: &IssueTrigger) {
    assert_eq!(trigger.label.name, rule.label());
    let stored = serde_json::to_vec(trigger).expect("a trigger serializes");
    let back: IssueTrigger = serde_json::from_slice(&stored).expect("a trigger reads back");
    assert_eq!(&back, trigger);
}

/// Asserts two byte strings are equal, showing them as escaped text (bodies are mostly JSON) if not.
fn assert_same(found: &[u8], expected: &[u8], what: &str) {
    assert!(
        found == expected,
        "{what}:\n found    {:?}\n expected {:?}",
        String::from_utf8_lossy(found),
        String::from_utf8_lossy(expected)
    );
}

/// An error's message, checked to hold no control character (a request must not break a log line).
fn clean_message(error: &impl Display) -> String {
    let message = error.to_string();
    assert!(
        !message.chars().any(char::is_control),
        "control character in `{}`",
        message.escape_debug()
    );
    message
}
