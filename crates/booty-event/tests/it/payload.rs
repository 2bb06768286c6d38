//! Payload decoding: both content types GitHub uses, on the real `issues`/`labeled` payload, and every way
//! a body can be wrong.

use booty_event::{
    DecodeError, Event, Payload, PayloadError, PayloadFormat, TriggerError, TriggerRule,
};

use crate::{form_body, form_encode, issues_labeled};

const JSON: &[u8] = b"application/json";
const FORM: &[u8] = b"application/x-www-form-urlencoded";

#[test]
fn json_bodies_are_passed_through() {
    let body = issues_labeled();
    for content_type in [
        JSON,
        b"application/json; charset=utf-8",
        b"Application/Json;Charset=\"UTF-8\"",
    ] {
        let payload = Payload::decode(Some(content_type), &body).unwrap();
        assert_eq!(payload.format(), PayloadFormat::Json);
        assert_eq!(payload.json(), body.as_slice());
        assert_eq!(payload.into_json(), body);
    }
}

#[test]
fn the_real_issues_labeled_payload_form_encoded_decodes_to_the_same_event() {
    let json = issues_labeled();
    let form = form_body(&json);
    // The encoding is real work: no brace, quote or space survives it, and spaces became `+`.
    assert!(
        !form
            .iter()
            .any(|byte| matches!(byte, b'{' | b'"' | b' ' | b':' | b'/'))
    );
    assert!(form.contains(&b'+'));

    for content_type in [FORM, b"application/x-www-form-urlencoded; charset=utf-8"] {
        let payload = Payload::decode(Some(content_type), &form).unwrap();
        assert_eq!(payload.format(), PayloadFormat::Form);
        assert_eq!(payload.json(), json.as_slice());
        let from_form = Event::decode("issues", payload.json()).unwrap();
        assert_eq!(from_form, Event::decode("issues", &json).unwrap());
        let rule = TriggerRule::new("bug").unwrap();
        assert_eq!(
            rule.decide("issues", payload.json()).unwrap(),
            rule.decide("issues", &json).unwrap()
        );
        assert_eq!(payload.into_json(), json);
    }
}

#[test]
fn form_encoding_with_lowercase_hex_and_percent_encoded_spaces_decodes_too() {
    let json = issues_labeled();
    let mut form = b"payload=".to_vec();
    for &byte in &json {
        if byte.is_ascii_alphanumeric() {
            form.push(byte);
        } else {
            form.extend(format!("%{byte:02x}").bytes());
        }
    }
    let payload = Payload::decode(Some(FORM), &form).unwrap();
    assert_eq!(payload.json(), json.as_slice());
}

#[test]
fn unsupported_content_types_are_415() {
    let body = issues_labeled();
    let cases: &[(Option<&[u8]>, &str)] = &[
        (
            None,
            "missing Content-Type header; expected application/json or application/x-www-form-urlencoded",
        ),
        (
            Some(b"text/plain"),
            "unsupported content type `text/plain`; expected application/json or application/x-www-form-urlencoded in UTF-8",
        ),
        (
            Some(b"multipart/form-data; boundary=x"),
            "unsupported content type `multipart/form-data; boundary=x`; expected application/json or application/x-www-form-urlencoded in UTF-8",
        ),
        (
            Some(b"application/json; charset=utf-16"),
            "unsupported content type `application/json; charset=utf-16`; expected application/json or application/x-www-form-urlencoded in UTF-8",
        ),
        (
            Some(b"application/vnd.github+json"),
            "unsupported content type `application/vnd.github+json`; expected application/json or application/x-www-form-urlencoded in UTF-8",
        ),
        (
            Some(b"application/xml\n"),
            "unsupported content type `application/xml\\n`; expected application/json or application/x-www-form-urlencoded in UTF-8",
        ),
        (
            Some(b""),
            "unsupported content type ``; expected application/json or application/x-www-form-urlencoded in UTF-8",
        ),
    ];
    for (content_type, message) in cases {
        let err = Payload::decode(*content_type, &body).unwrap_err();
        assert!(err.is_unsupported_media_type(), "{err}");
        assert_eq!(err.to_string(), *message);
    }
}

#[test]
fn bad_form_bodies_are_400_and_say_what_is_wrong() {
    let json = issues_labeled();
    let twice = form_body(&form_encode(&json));
    let mut truncated_escape = form_body(&json);
    truncated_escape.truncate(truncated_escape.len() - 1);
    let cases: Vec<(Vec<u8>, PayloadError, String)> = vec![
        (
            json.clone(),
            PayloadError::MissingPayloadField,
            "form body has no `payload` field".into(),
        ),
        (
            b"payload".to_vec(),
            PayloadError::EmptyPayloadField,
            "form field `payload` is empty".into(),
        ),
        (
            b"payload=".to_vec(),
            PayloadError::EmptyPayloadField,
            "form field `payload` is empty".into(),
        ),
        (
            b"data=%7B%7D".to_vec(),
            PayloadError::MissingPayloadField,
            "form body has no `payload` field".into(),
        ),
        (
            twice,
            PayloadError::DoublyEncoded,
            "form field `payload` is percent-encoded twice".into(),
        ),
        (
            [form_body(&json), b"&".to_vec(), form_body(b"{}")].concat(),
            PayloadError::DuplicatePayloadField,
            "form body has more than one `payload` field".into(),
        ),
        (
            truncated_escape.clone(),
            PayloadError::PercentEscape {
                offset: truncated_escape.len() - 2,
            },
            format!(
                "invalid percent escape at byte {} of the form body",
                truncated_escape.len() - 2
            ),
        ),
        (
            b"payload=%7B%22a%22%3A%G1%7D".to_vec(),
            PayloadError::PercentEscape { offset: 21 },
            "invalid percent escape at byte 21 of the form body".into(),
        ),
    ];
    for (body, error, message) in cases {
        let err = Payload::decode(Some(FORM), &body).unwrap_err();
        assert!(!err.is_unsupported_media_type(), "{err}");
        assert_eq!(err, error);
        assert_eq!(err.to_string(), message);
    }
}

#[test]
fn truncated_json_says_where_it_broke() {
    let json = issues_labeled();
    for cut in [1, 2, 100, json.len() / 2, json.len() - 1] {
        let truncated = &json[..cut];
        let err = Event::decode("issues", truncated).unwrap_err();
        assert!(matches!(err, DecodeError::Json { .. }), "cut {cut}: {err}");
        // The fixture is one line, so the error's column is the end of what was given.
        assert_eq!(err.position(), Some((1, cut)), "cut {cut}: {err}");
        let message = err.to_string();
        assert!(
            message.starts_with("malformed `issues` payload: EOF while parsing"),
            "{message}"
        );
        assert!(
            message.ends_with(&format!("at line 1 column {cut}")),
            "{message}"
        );

        let TriggerError::Decode(err) = TriggerRule::default()
            .decide("issues", truncated)
            .unwrap_err()
        else {
            panic!("cut {cut}: not a decode error");
        };
        assert_eq!(err.position(), Some((1, cut)));
    }
}

#[test]
fn json_with_trailing_garbage_or_bad_utf8_is_refused() {
    let mut json = issues_labeled();
    json.extend_from_slice(b" {}");
    let err = Event::decode("issues", &json).unwrap_err();
    assert!(err.to_string().contains("trailing characters"), "{err}");

    let mut latin1 = issues_labeled();
    let at = latin1
        .windows(8)
        .position(|window| window == b"Spelling")
        .unwrap();
    latin1[at] = 0xe9;
    let err = Event::decode("issues", &latin1).unwrap_err();
    assert!(
        err.to_string().contains("invalid unicode code point"),
        "{err}"
    );
}

#[test]
fn json_that_is_not_an_object_is_named() {
    for (body, found) in [
        (&b""[..], "empty"),
        (b" \r\n", "empty"),
        (b"[{\"action\":\"labeled\"}]", "an array"),
        (b"\"payload\"", "a string"),
        (b"42", "a number"),
        (b"false", "a boolean"),
        (b"null", "null"),
    ] {
        for event in ["issues", "push", "ping", "star"] {
            let err = Event::decode(event, body).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("`{event}` payload is not a JSON object: it is {found}")
            );
        }
        let err = TriggerRule::default().decide("issues", body).unwrap_err();
        assert!(
            matches!(err, TriggerError::Decode(DecodeError::NotAnObject { found: f, .. }) if f == found),
            "{err}"
        );
    }
    // Not JSON at all: serde_json says where.
    let err = Event::decode("issues", b"payload=%7B%7D").unwrap_err();
    assert_eq!(
        err.to_string(),
        "malformed `issues` payload: expected value at line 1 column 1"
    );
}
