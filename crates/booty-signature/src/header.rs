//! The header value format: `sha256=` followed by 64 hex digits.

use ring::hmac;

/// The header GitHub puts the signature in (lowercase, as HTTP/2 and `http::HeaderName` spell it).
pub const HEADER_NAME: &str = "x-hub-signature-256";

/// What every `X-Hub-Signature-256` value starts with.
pub const PREFIX: &str = "sha256=";

/// Length of an HMAC-SHA256 tag in bytes.
pub(crate) const TAG_LEN: usize = 32;

/// Signs `body` with `secret` and returns the header value GitHub would send:
/// `sha256=` followed by 64 lowercase hex digits.
///
/// ```
/// let value = booty_signature::sign(b"secret", b"{}");
/// assert!(value.starts_with("sha256=") && value.len() == 7 + 64);
/// ```
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, body);
    let mut out = String::with_capacity(PREFIX.len() + 2 * TAG_LEN);
    out.push_str(PREFIX);
    for byte in tag.as_ref() {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
    out
}

fn hex_digit(nibble: u8) -> char {
    char::from(b"0123456789abcdef"[usize::from(nibble)])
}

/// Why a header value could not even be read as a SHA-256 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// The value names another algorithm, such as the legacy `sha1=` header.
    Algorithm,
    /// Not 64 hex digits after the prefix.
    Digest,
}

/// Parses `sha256=<64 hex digits>` into the raw tag. Upper-case hex is accepted; nothing else is:
/// no whitespace, no other prefix, no other length.
pub(crate) fn parse(value: &[u8]) -> Result<[u8; TAG_LEN], Malformed> {
    let digits = value
        .strip_prefix(PREFIX.as_bytes())
        .ok_or(Malformed::Algorithm)?;
    if digits.len() != 2 * TAG_LEN {
        return Err(Malformed::Digest);
    }
    let mut tag = [0u8; TAG_LEN];
    for (byte, pair) in tag.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Ok(tag)
}

fn nibble(digit: u8) -> Result<u8, Malformed> {
    match digit {
        b'0'..=b'9' => Ok(digit - b'0'),
        b'a'..=b'f' => Ok(digit - b'a' + 10),
        b'A'..=b'F' => Ok(digit - b'A' + 10),
        _ => Err(Malformed::Digest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_round_trips_sign() {
        let value = sign(b"k", b"body");
        let tag = parse(value.as_bytes()).unwrap();
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"k");
        assert_eq!(tag.as_slice(), hmac::sign(&key, b"body").as_ref());
    }

    #[test]
    fn parse_accepts_upper_case_hex() {
        let value = sign(b"k", b"body");
        let upper = format!("{PREFIX}{}", value[PREFIX.len()..].to_ascii_uppercase());
        assert_eq!(parse(upper.as_bytes()), parse(value.as_bytes()));
    }

    #[test]
    fn parse_classifies_what_is_wrong() {
        let digits = "ab".repeat(32);
        assert_eq!(
            parse(format!("sha1={}", &digits[..40]).as_bytes()),
            Err(Malformed::Algorithm)
        );
        assert_eq!(
            parse(format!("SHA256={digits}").as_bytes()),
            Err(Malformed::Algorithm)
        );
        assert_eq!(
            parse(format!("sha256={}", &digits[..62]).as_bytes()),
            Err(Malformed::Digest)
        );
        assert_eq!(
            parse(format!("sha256={digits}00").as_bytes()),
            Err(Malformed::Digest)
        );
        assert_eq!(
            parse(format!("sha256={}zz", &digits[..62]).as_bytes()),
            Err(Malformed::Digest)
        );
        assert_eq!(parse(b"sha256="), Err(Malformed::Digest));
        assert_eq!(parse(b""), Err(Malformed::Algorithm));
        assert!(parse(format!("sha256={digits}").as_bytes()).is_ok());
    }
}
