//! How the SQLite store keeps a payload: its JSON compressed with LZ4 (block format, the length of the
//! JSON before it as 4 little-endian bytes), in `booty_jobs.payload_lz4`.
//!
//! A webhook payload (some 12 KB of JSON, much of it the same URLs over and over) shrinks to about a
//! fifth, so a job fits in one page of the file rather than four, and the log and the checkpoint each
//! write one page per job instead of four. Compressing it costs some 5 µs, less than the writes it saves.

/// The longest JSON a stored payload may say it unpacks to: a corrupt length must not make the claim
/// reserve gigabytes. Far above any webhook (GitHub caps them at 25 MB).
const MAX_UNPACKED: usize = 256 * 1024 * 1024;

/// `json`, compressed.
pub(super) fn pack(json: &str) -> Vec<u8> {
    lz4_flex::block::compress_prepend_size(json.as_bytes())
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
    use super::{pack, unpack};

    const WEBHOOK: &str =
        include_str!("../../../../booty-event/tests/fixtures/issues.labeled.json");

    #[test]
    fn a_webhook_packs_to_a_fraction_and_unpacks_byte_for_byte() {
        let packed = pack(WEBHOOK);
        assert!(
            packed.len() * 3 < WEBHOOK.len(),
            "{} bytes packed to {}",
            WEBHOOK.len(),
            packed.len()
        );
        assert_eq!(unpack(&packed).as_deref(), Ok(WEBHOOK));
        assert_eq!(unpack(&pack("")).as_deref(), Ok(""));
    }

    #[test]
    fn damage_is_an_error_that_says_what_is_wrong() {
        let packed = pack(WEBHOOK);
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
