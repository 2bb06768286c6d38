//! How the SQLite store keeps a payload: its JSON compressed with LZ4 (block format, the length of the
//! JSON before it as 4 little-endian bytes), in `booty_jobs.payload_lz4`.
//!
//! A webhook payload (some 12 KB of JSON, much of it the same URLs over and over) shrinks to about a
//! fifth, so a job fits in one page of the file rather than four, and the log and the checkpoint each
//! write one page per job instead of four. Compressing it costs some 5 µs, less than the writes it saves.
//!
//! The JSON and the compressor's output are written into buffers each thread keeps from one job to the
//! next; only the packed bytes are a new allocation, of their own size. Serializing into a new `String`
//! and compressing into a new worst-case buffer took two allocations of some 12 KB per webhook (the
//! first grown by doubling from 128 bytes, each step a copy), and freeing them made glibc consolidate its
//! free lists on the submitter's thread.

use std::cell::RefCell;

use serde::Serialize;

/// The longest JSON a stored payload may say it unpacks to: a corrupt length must not make the claim
/// reserve gigabytes. Far above any webhook (GitHub caps them at 25 MB); a longer payload is refused when
/// it is inserted, so it is never stored where no claim could read it back.
const MAX_UNPACKED: usize = 256 * 1024 * 1024;

/// A thread keeps its buffers up to this size; a rare huge payload's are given back.
const KEEP_AT_MOST: usize = 1024 * 1024;

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::new()) };
}

/// The JSON being packed and LZ4's output for it.
struct Scratch {
    json: Vec<u8>,
    lz4: Vec<u8>,
}

impl Scratch {
    const fn new() -> Self {
        Self {
            json: Vec::new(),
            lz4: Vec::new(),
        }
    }

    fn pack(&mut self, payload: &(impl Serialize + ?Sized)) -> Result<Vec<u8>, String> {
        self.json.clear();
        let packed = serde_json::to_writer(&mut self.json, payload)
            .map_err(|err| format!("the payload does not serialize to JSON: {err}"))
            .and_then(|()| compress(&self.json, &mut self.lz4, MAX_UNPACKED));
        for buffer in [&mut self.json, &mut self.lz4] {
            if buffer.capacity() > KEEP_AT_MOST {
                *buffer = Vec::new();
            }
        }
        packed
    }
}

/// `payload` as JSON, compressed; or why it cannot be stored (the words the insert fails with).
pub(super) fn pack(payload: &(impl Serialize + ?Sized)) -> Result<Vec<u8>, String> {
    let kept = SCRATCH.try_with(|scratch| {
        // Serializing runs the payload's own code, which could pack another payload on this thread.
        let mut scratch = scratch.try_borrow_mut().ok()?;
        Some(scratch.pack(payload))
    });
    match kept {
        Ok(Some(packed)) => packed,
        // Busy as above, or this thread's locals are being torn down.
        _ => Scratch::new().pack(payload),
    }
}

/// `json` compressed, with its length before it, unless it is longer than `most_json`; `lz4` is where
/// the compressor writes.
fn compress(json: &[u8], lz4: &mut Vec<u8>, most_json: usize) -> Result<Vec<u8>, String> {
    let length = u32::try_from(json.len())
        .ok()
        .filter(|_| json.len() <= most_json)
        .ok_or_else(|| {
            format!(
                "the payload's JSON is {} bytes, more than the {most_json} a stored payload may hold",
                json.len()
            )
        })?;
    let most = lz4_flex::block::get_maximum_output_size(json.len());
    if lz4.len() < most {
        lz4.resize(most, 0);
    }
    let written = lz4_flex::block::compress_into(json, lz4)
        .map_err(|err| format!("the payload does not compress: {err}"))?;
    let mut packed = Vec::with_capacity(4 + written);
    packed.extend_from_slice(&length.to_le_bytes());
    packed.extend_from_slice(&lz4[..written]);
    Ok(packed)
}

/// The JSON `packed` holds, or why it cannot be read back (the words a claim fails the job with).
pub(super) fn unpack(packed: &[u8]) -> Result<String, String> {
    let (length, compressed) = lz4_flex::block::uncompressed_size(packed)
        .map_err(|err| format!("the stored payload does not decompress: {err}"))?;
    if length > MAX_UNPACKED {
        return Err(format!(
            "the stored payload does not decompress: it says it holds {length} bytes, more than {MAX_UNPACKED}"
        ));
    }
    let json = lz4_flex::block::decompress(compressed, length)
        .map_err(|err| format!("the stored payload does not decompress: {err}"))?;
    if json.len() != length {
        return Err(format!(
            "the stored payload does not decompress: it says it holds {length} bytes, and holds {}",
            json.len()
        ));
    }
    String::from_utf8(json)
        .map_err(|err| format!("the stored payload decompresses to text that is not UTF-8: {err}"))
}

#[cfg(test)]
mod tests {
    use serde::{Serialize, Serializer};
    use serde_json::value::RawValue;

    use super::{KEEP_AT_MOST, SCRATCH, compress, pack, unpack};

    const WEBHOOK: &str =
        include_str!("../../../../booty-event/tests/fixtures/issues.labeled.json");

    fn webhook() -> &'static RawValue {
        serde_json::from_str(WEBHOOK).unwrap()
    }

    #[test]
    fn a_webhook_packs_to_a_fraction_and_unpacks_byte_for_byte() {
        let packed = pack(webhook()).unwrap();
        assert!(
            packed.len() * 3 < WEBHOOK.len(),
            "{} bytes packed to {}",
            WEBHOOK.len(),
            packed.len()
        );
        assert_eq!(unpack(&packed).as_deref(), Ok(WEBHOOK));
        assert_eq!(unpack(&pack("").unwrap()).as_deref(), Ok(r#""""#));
    }

    #[test]
    fn the_format_is_lz4_flex_with_the_length_before_it() {
        // Rows written by the version that called `compress_prepend_size` read back, and the other way.
        assert_eq!(
            pack(webhook()).unwrap(),
            lz4_flex::block::compress_prepend_size(WEBHOOK.as_bytes())
        );
    }

    #[test]
    fn a_thread_reuses_its_buffers_without_leaking_one_payload_into_the_next() {
        let big = pack(webhook()).unwrap();
        let small = pack(&serde_json::json!({"n": 1})).unwrap();
        assert_eq!(unpack(&small).as_deref(), Ok(r#"{"n":1}"#));
        assert_eq!(pack(webhook()).unwrap(), big);
        let kept = SCRATCH.with_borrow(|scratch| scratch.json.capacity());
        assert!(kept >= WEBHOOK.len(), "the JSON buffer kept {kept} bytes");

        // A payload above the size a thread keeps is packed, and its buffers are given back.
        let huge = "x".repeat(2 * KEEP_AT_MOST);
        assert_eq!(
            unpack(&pack(&huge).unwrap()).map(|json| json.len()),
            Ok(huge.len() + 2)
        );
        let (json, lz4) =
            SCRATCH.with_borrow(|scratch| (scratch.json.capacity(), scratch.lz4.capacity()));
        assert!(json <= KEEP_AT_MOST && lz4 <= KEEP_AT_MOST, "{json}, {lz4}");
    }

    /// A payload whose serialization packs another payload on the same thread.
    struct PacksWhileSerialized;

    impl Serialize for PacksWhileSerialized {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            let inner = pack(webhook()).map_err(serde::ser::Error::custom)?;
            serializer.serialize_u64(inner.len() as u64)
        }
    }

    #[test]
    fn packing_inside_a_payloads_serialization_uses_fresh_buffers() {
        let inner = pack(webhook()).unwrap().len();
        let packed = pack(&PacksWhileSerialized).unwrap();
        assert_eq!(unpack(&packed), Ok(inner.to_string()));
    }

    #[test]
    fn json_longer_than_a_stored_payload_may_hold_is_refused_with_its_size() {
        let err = compress(b"[1,2,3]", &mut Vec::new(), 6).unwrap_err();
        assert_eq!(
            err,
            "the payload's JSON is 7 bytes, more than the 6 a stored payload may hold"
        );
        assert!(compress(b"[1,2,3]", &mut Vec::new(), 7).is_ok());
    }

    #[test]
    fn damage_is_an_error_that_says_what_is_wrong() {
        let packed = pack(webhook()).unwrap();
        let with_length = |length: usize| {
            let mut damaged = packed.clone();
            damaged[..4].copy_from_slice(&u32::try_from(length).unwrap().to_le_bytes());
            damaged
        };
        for damaged in [
            packed[..2].to_vec(),
            packed[..packed.len() / 2].to_vec(),
            with_length(10),
        ] {
            let err = unpack(&damaged).unwrap_err();
            assert!(
                err.starts_with("the stored payload does not decompress"),
                "{err}"
            );
        }

        // LZ4 itself stops where the data ends; the length said more.
        let err = unpack(&with_length(WEBHOOK.len() + 100)).unwrap_err();
        assert!(
            err.ends_with(&format!("and holds {}", WEBHOOK.len())),
            "{err}"
        );

        let err = unpack(&with_length(u32::MAX as usize)).unwrap_err();
        assert!(err.contains("more than 268435456"), "{err}");

        let not_text = lz4_flex::block::compress_prepend_size(&[0xff, 0xfe]);
        let err = unpack(&not_text).unwrap_err();
        assert!(err.contains("not UTF-8"), "{err}");
    }
}
