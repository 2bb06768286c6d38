//! The payload: the JSON document inside a request body, whichever content type GitHub was told to use.

use std::borrow::Cow;

use crate::form::{self, FormError};

/// How the request carried its JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    /// `application/json`: the body is the JSON.
    Json,
    /// `application/x-www-form-urlencoded`: the JSON is the percent-encoded `payload` field.
    Form,
}

/// The JSON document of a webhook request.
///
/// For `application/json` it borrows the body; for a form body it owns the decoded `payload` field. It is
/// not parsed yet: [`Event::decode`](crate::Event::decode) and [`TriggerRule::decide`](crate::TriggerRule::decide)
/// do that, and only as far as they need to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload<'a> {
    json: Cow<'a, [u8]>,
    format: PayloadFormat,
}

impl<'a> Payload<'a> {
    /// Takes the JSON out of a request `body` according to its `Content-Type` header value (`None` when the
    /// request had none): `application/json` or `application/x-www-form-urlencoded`, either optionally with
    /// `charset=utf-8`; the media type and parameter names are case-insensitive.
    ///
    /// # Errors
    /// [`PayloadError::MissingContentType`] and [`PayloadError::UnsupportedContentType`] (an edge answers
    /// 415) for any other content type or charset; the form variants (400) when a form body has no usable
    /// `payload` field.
    pub fn decode(content_type: Option<&[u8]>, body: &'a [u8]) -> Result<Self, PayloadError> {
        let content_type = content_type.ok_or(PayloadError::MissingContentType)?;
        let format = format(content_type).ok_or_else(|| PayloadError::UnsupportedContentType {
            content_type: shown(content_type),
        })?;
        let json = match format {
            PayloadFormat::Json => Cow::Borrowed(body),
            PayloadFormat::Form => Cow::Owned(form::payload_field(body)?),
        };
        Ok(Self { json, format })
    }

    /// The JSON bytes, exactly as GitHub sent them (after percent-decoding, for a form body).
    pub fn json(&self) -> &[u8] {
        &self.json
    }

    /// How the request carried the JSON.
    pub fn format(&self) -> PayloadFormat {
        self.format
    }

    /// The JSON bytes, owned (a copy of the body for `application/json`, the decoded field for a form).
    pub fn into_json(self) -> Vec<u8> {
        self.json.into_owned()
    }
}

/// The format named by a `Content-Type` value, if it is one this crate reads.
fn format(content_type: &[u8]) -> Option<PayloadFormat> {
    let mut parts = content_type.split(|byte| *byte == b';');
    let media_type = trim(parts.next()?);
    let format = if media_type.eq_ignore_ascii_case(b"application/json") {
        PayloadFormat::Json
    } else if media_type.eq_ignore_ascii_case(b"application/x-www-form-urlencoded") {
        PayloadFormat::Form
    } else {
        return None;
    };
    // Both formats are UTF-8 by definition; a parameter saying otherwise is refused, others are ignored.
    for parameter in parts {
        let Some(eq) = parameter.iter().position(|byte| *byte == b'=') else {
            continue;
        };
        if trim(&parameter[..eq]).eq_ignore_ascii_case(b"charset") {
            let value = trim(&parameter[eq + 1..]);
            let value = value
                .strip_prefix(b"\"")
                .and_then(|value| value.strip_suffix(b"\""))
                .unwrap_or(value);
            if !value.eq_ignore_ascii_case(b"utf-8") {
                return None;
            }
        }
    }
    Some(format)
}

fn trim(bytes: &[u8]) -> &[u8] {
    let is_space = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let start = bytes
        .iter()
        .position(|byte| !is_space(byte))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|byte| !is_space(byte))
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}

/// The longest part of a rejected `Content-Type` an error repeats.
const SHOWN_LEN: usize = 100;

/// A header value made safe to put in a message: at most 100 bytes, control characters escaped.
fn shown(value: &[u8]) -> String {
    let cut = &value[..value.len().min(SHOWN_LEN)];
    let mut out: String = String::from_utf8_lossy(cut).escape_debug().collect();
    if cut.len() < value.len() {
        out.push_str("...");
    }
    out
}

/// The body's JSON could not be extracted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadError {
    /// The request has no `Content-Type` header (415).
    #[error(
        "missing Content-Type header; expected application/json or application/x-www-form-urlencoded"
    )]
    MissingContentType,
    /// The content type is neither JSON nor a form, or names a charset other than UTF-8 (415).
    #[error(
        "unsupported content type `{content_type}`; expected application/json or application/x-www-form-urlencoded in UTF-8"
    )]
    UnsupportedContentType {
        /// The header value, escaped and cut to 100 bytes.
        content_type: String,
    },
    /// A form body has no `payload` field (400).
    #[error("form body has no `payload` field")]
    MissingPayloadField,
    /// A form body has more than one `payload` field (400).
    #[error("form body has more than one `payload` field")]
    DuplicatePayloadField,
    /// The form's `payload` field is empty (400).
    #[error("form field `payload` is empty")]
    EmptyPayloadField,
    /// A `%` is not followed by two hex digits (400).
    #[error("invalid percent escape at byte {offset} of the form body")]
    PercentEscape {
        /// Where the `%` is, counting from 0.
        offset: usize,
    },
    /// The `payload` field still starts with `%` after decoding: it was percent-encoded twice (400).
    #[error("form field `payload` is percent-encoded twice")]
    DoublyEncoded,
}

impl From<FormError> for PayloadError {
    fn from(err: FormError) -> Self {
        match err {
            FormError::MissingField => Self::MissingPayloadField,
            FormError::DuplicateField => Self::DuplicatePayloadField,
            FormError::EmptyField => Self::EmptyPayloadField,
            FormError::PercentEscape { offset } => Self::PercentEscape { offset },
            FormError::DoublyEncoded => Self::DoublyEncoded,
        }
    }
}

impl PayloadError {
    /// Whether the content type is at fault (an edge answers 415) rather than the body (400).
    pub fn is_unsupported_media_type(&self) -> bool {
        matches!(
            self,
            Self::MissingContentType | Self::UnsupportedContentType { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        for (value, expected) in [
            (&b"application/json"[..], Some(PayloadFormat::Json)),
            (b"Application/JSON", Some(PayloadFormat::Json)),
            (
                b"application/json; charset=utf-8",
                Some(PayloadFormat::Json),
            ),
            (
                b"application/json;charset=\"UTF-8\"",
                Some(PayloadFormat::Json),
            ),
            (
                b" application/json ;  charset = utf-8 ;",
                Some(PayloadFormat::Json),
            ),
            (b"application/json; version=1", Some(PayloadFormat::Json)),
            (
                b"application/x-www-form-urlencoded",
                Some(PayloadFormat::Form),
            ),
            (
                b"application/x-www-form-urlencoded; charset=utf-8",
                Some(PayloadFormat::Form),
            ),
            (b"application/json; charset=latin1", None),
            (b"application/json; charset=", None),
            (b"application/jsonx", None),
            (b"application/vnd.github+json", None),
            (b"text/json", None),
            (b"text/plain", None),
            (b"multipart/form-data; boundary=x", None),
            (b"", None),
            (b";charset=utf-8", None),
        ] {
            assert_eq!(
                format(value),
                expected,
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn rejected_content_types_are_shown_escaped_and_cut() {
        assert_eq!(
            shown(b"text/plain\r\nx: \xff"),
            "text/plain\\r\\nx: \u{fffd}"
        );
        let long = vec![b'a'; 300];
        assert_eq!(shown(&long), format!("{}...", "a".repeat(100)));
    }
}
