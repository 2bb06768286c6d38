//! Correlation ids: the delivery id when the request has a usable one, otherwise a generated id.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use hyper::HeaderMap;
use hyper::header::HeaderValue;

/// The header GitHub puts the delivery GUID in.
pub(crate) const DELIVERY_HEADER: &str = "x-github-delivery";

/// Longer values are not echoed back: a GUID is 36 characters, and an id is for grepping, not storage.
const MAX_ECHOED_LEN: usize = 128;

/// A random prefix per process, so ids from two runs (or two instances) do not collide. `RandomState` is
/// seeded from the OS, which spares a dependency on a random number crate for 64 bits of seed.
static PREFIX: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(0x00b0_0717_u64));
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The request id for a request with these headers. The delivery header is echoed as it came when it is
/// short visible ASCII (before the signature is checked: it is only a correlation id, and a client sees
/// its own value back); anything else gets a generated id such as `edge-5f0c27e1a9d3b64c-17`.
pub(crate) fn for_request(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(DELIVERY_HEADER)
        .filter(|value| is_echoable(value.as_bytes()))
        .cloned()
        .unwrap_or_else(generate)
}

fn is_echoable(value: &[u8]) -> bool {
    !value.is_empty() && value.len() <= MAX_ECHOED_LEN && value.iter().all(u8::is_ascii_graphic)
}

/// A new id, unique within this process and unlikely to repeat across processes.
pub(crate) fn generate() -> HeaderValue {
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
    let id = format!("edge-{:016x}-{sequence}", *PREFIX);
    HeaderValue::try_from(id).expect("hex digits, digits and dashes are a valid header value")
}

#[cfg(test)]
mod tests {
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
        let long = "a".repeat(MAX_ECHOED_LEN + 1);
        headers.insert(DELIVERY_HEADER, HeaderValue::try_from(long).unwrap());
        assert!(for_request(&headers).to_str().unwrap().starts_with("edge-"));
    }
}
