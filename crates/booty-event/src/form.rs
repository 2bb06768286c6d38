//! `application/x-www-form-urlencoded`: finding and percent-decoding the `payload` field.
//!
//! GitHub sends exactly one field, `payload=<JSON, percent-encoded>`. This is the whole of the format a
//! webhook needs (`&`-separated `key=value` pairs, `+` for space, `%XX` for a byte), written here rather
//! than pulled in as a dependency. Unlike a browser's lenient parser it refuses a malformed escape, so a
//! damaged body is reported instead of decoded into something else.
//!
//! The module stands alone: its [`FormError`] says what is wrong, and `payload.rs` turns it into the
//! public `PayloadError`, which holds the messages.

/// The form field GitHub puts the JSON in.
const FIELD: &[u8] = b"payload";

/// What is wrong with a form body, one case for each of `PayloadError`'s form variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FormError {
    /// No `payload` field.
    MissingField,
    /// More than one `payload` field.
    DuplicateField,
    /// The `payload` field is empty or blank.
    EmptyField,
    /// A `%` at this byte of the body is not followed by two hex digits.
    PercentEscape { offset: usize },
    /// The decoded field still starts with `%`.
    DoublyEncoded,
}

/// Returns the decoded value of the one `payload` field of `body`.
pub(crate) fn payload_field(body: &[u8]) -> Result<Vec<u8>, FormError> {
    let mut found = None;
    let mut offset = 0;
    for pair in body.split(|byte| *byte == b'&') {
        let (key, value) = match pair.iter().position(|byte| *byte == b'=') {
            Some(eq) => (&pair[..eq], Some((&pair[eq + 1..], offset + eq + 1))),
            None => (pair, None),
        };
        if decode(key, offset)? == FIELD {
            if found.is_some() {
                return Err(FormError::DuplicateField);
            }
            found = Some(value.unwrap_or((&[], offset + pair.len())));
        }
        offset += pair.len() + 1;
    }
    let (value, at) = found.ok_or(FormError::MissingField)?;
    let json = decode(value, at)?;
    match json.iter().find(|byte| !byte.is_ascii_whitespace()) {
        None => Err(FormError::EmptyField),
        Some(b'%') => Err(FormError::DoublyEncoded),
        Some(_) => Ok(json),
    }
}

/// Percent-decodes one key or value that starts at byte `offset` of the body (for error messages).
fn decode(raw: &[u8], offset: usize) -> Result<Vec<u8>, FormError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut at = 0;
    while let Some(&byte) = raw.get(at) {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let escape = raw
                    .get(at + 1..at + 3)
                    .and_then(|digits| Some((hex(digits[0])? << 4) | hex(digits[1])?))
                    .ok_or(FormError::PercentEscape {
                        offset: offset + at,
                    })?;
                out.push(escape);
                at += 2;
            }
            _ => out.push(byte),
        }
        at += 1;
    }
    Ok(out)
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_plus_and_escapes_in_any_case() {
        assert_eq!(
            payload_field(b"payload=%7b%22a%22%3A+%22x%2By%26z%22%7D").unwrap(),
            br#"{"a": "x+y&z"}"#
        );
    }

    #[test]
    fn finds_payload_among_other_fields_and_encoded_keys() {
        assert_eq!(payload_field(b"a=1&payload={}&b").unwrap(), b"{}");
        assert_eq!(payload_field(b"pay%6Coad=[1]").unwrap(), b"[1]");
        assert_eq!(payload_field(b"x=%7B&payload=1").unwrap(), b"1");
    }

    #[test]
    fn bad_escapes_report_their_offset() {
        for (body, offset) in [
            (&b"payload=%7"[..], 8),
            (b"payload=%", 8),
            (b"payload={%zz}", 9),
            (b"payload=%%41", 8),
            (b"a=1&b%=2&payload={}", 5),
        ] {
            assert_eq!(
                payload_field(body),
                Err(FormError::PercentEscape { offset }),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn missing_empty_duplicate_and_double_encoding_are_named() {
        assert_eq!(payload_field(b""), Err(FormError::MissingField));
        assert_eq!(
            payload_field(b"payloads={}&Payload={}&payload_={}"),
            Err(FormError::MissingField)
        );
        assert_eq!(payload_field(b"payload"), Err(FormError::EmptyField));
        assert_eq!(payload_field(b"payload=&x=1"), Err(FormError::EmptyField));
        assert_eq!(payload_field(b"payload=++"), Err(FormError::EmptyField));
        assert_eq!(
            payload_field(b"payload={}&payload={}"),
            Err(FormError::DuplicateField)
        );
        assert_eq!(
            payload_field(b"payload=%257B%2522a%2522%253A1%257D"),
            Err(FormError::DoublyEncoded)
        );
    }
}
