//! Correlation ids: the delivery id when the request has a usable one, otherwise a generated id.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use booty_event::DeliveryId;
use hyper::HeaderMap;
use hyper::header::HeaderValue;

use crate::names;

/// A random prefix per process, so ids from two runs (or two instances) do not collide. `RandomState` is
/// seeded from the OS, which spares a dependency on a random number crate for 64 bits of seed.
static PREFIX: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(0x00b0_0717_u64));
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The request id for a request with these headers. The delivery header is echoed when it is a valid
/// delivery id by booty-event's rule (1 to 64 letters, digits and `-`), even before the signature is
/// checked: it is only a correlation id, and a client sees its own value back. Anything else gets a
/// generated id such as `edge-5f0c27e1a9d3b64c-17`.
pub(crate) fn for_request(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&names::DELIVERY)
        .filter(|value| DeliveryId::from_bytes(value.as_bytes()).is_ok())
        .cloned()
        .unwrap_or_else(generate)
}

/// A new id, unique within this process and unlikely to repeat across processes.
pub(crate) fn generate() -> HeaderValue {
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("edge-{:016x}-{sequence}", *PREFIX);
    HeaderValue::try_from(id).expect("hex digits, digits and dashes are a valid header value")
}

#[cfg(test)]
mod tests {
    use booty_event::DELIVERY_HEADER;

    use super::*;

    #[test]
    fn a_delivery_id_is_echoed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            DELIVERY_HEADER,
            HeaderValue::from_static("72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        );
        assert_eq!(
            for_request(&headers),
            "72d3162e-cc78-11e3-81ab-4c9367dc0958"
        );
    }

    #[test]
    fn missing_or_unusable_delivery_ids_get_distinct_generated_ids() {
        let mut headers = HeaderMap::new();
        let first = for_request(&headers);
        headers.insert(DELIVERY_HEADER, HeaderValue::from_static("has space"));
        let second = for_request(&headers);
        headers.insert(DELIVERY_HEADER, HeaderValue::from_static(""));
        let third = for_request(&headers);
        for id in [&first, &second, &third] {
            assert!(id.to_str().unwrap().starts_with("edge-"), "{id:?}");
        }
        assert_ne!(first, second);
        assert_ne!(second, third);
        let long = "a".repeat(booty_event::MAX_DELIVERY_ID_LEN + 1);
        headers.insert(DELIVERY_HEADER, HeaderValue::try_from(long).unwrap());
        assert!(for_request(&headers).to_str().unwrap().starts_with("edge-"));
    }
}
