//! The request headers the edge reads, as `HeaderName`s made at compile time. `HeaderMap::get` with a
//! `&str` first parses it into a name (checking and lowercasing it byte by byte) and only then hashes it,
//! on every call; a delivery reads a dozen headers.

use booty_event::{DELIVERY_HEADER, Delivery, EVENT_HEADER};
use booty_signature::HEADER_NAME as SIGNATURE_HEADER;
use hyper::HeaderMap;
use hyper::header::{HeaderName, HeaderValue};

/// `X-GitHub-Delivery`.
pub(crate) static DELIVERY: HeaderName = HeaderName::from_static(DELIVERY_HEADER);
/// `X-GitHub-Event`.
pub(crate) static EVENT: HeaderName = HeaderName::from_static(EVENT_HEADER);
/// `X-Hub-Signature-256`.
pub(crate) static SIGNATURE: HeaderName = HeaderName::from_static(SIGNATURE_HEADER);
/// GitHub's legacy HMAC-SHA1 header, sent next to `X-Hub-Signature-256`.
pub(crate) static LEGACY_SIGNATURE: HeaderName = HeaderName::from_static("x-hub-signature");

/// Every header [`Delivery::from_headers`] may ask for.
static DELIVERY_HEADERS: [HeaderName; 8] = {
    let names = Delivery::HEADERS;
    [
        HeaderName::from_static(names[0]),
        HeaderName::from_static(names[1]),
        HeaderName::from_static(names[2]),
        HeaderName::from_static(names[3]),
        HeaderName::from_static(names[4]),
        HeaderName::from_static(names[5]),
        HeaderName::from_static(names[6]),
        HeaderName::from_static(names[7]),
    ]
};

/// The value of the header `name` (lowercase, as [`Delivery::from_headers`] asks), found by its
/// prepared name when it is one of the delivery's.
pub(crate) fn delivery_header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h HeaderValue> {
    match DELIVERY_HEADERS.iter().find(|known| known.as_str() == name) {
        Some(known) => headers.get(known),
        None => headers.get(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prepared_names_are_the_ones_asked_for() {
        let mut headers = HeaderMap::new();
        for (n, name) in Delivery::HEADERS.iter().enumerate() {
            headers.insert(*name, HeaderValue::from(n));
        }
        headers.insert("x-other", HeaderValue::from_static("other"));
        for (n, name) in Delivery::HEADERS.iter().enumerate() {
            assert_eq!(delivery_header(&headers, name), Some(&HeaderValue::from(n)));
        }
        assert_eq!(
            delivery_header(&headers, "x-other"),
            Some(&HeaderValue::from_static("other"))
        );
        assert_eq!(delivery_header(&headers, "x-absent"), None);
        assert_eq!(
            [&DELIVERY, &EVENT, &SIGNATURE, &LEGACY_SIGNATURE].map(HeaderName::as_str),
            [
                DELIVERY_HEADER,
                EVENT_HEADER,
                "x-hub-signature-256",
                "x-hub-signature"
            ]
        );
    }
}
