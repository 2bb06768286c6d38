//! Integration tests for booty-signature: GitHub's vector, round trips, rotation and malformed headers.

use booty_signature::{Rejection, Verifier, VerifyError, sign};

/// GitHub's documented test vector ("Validating webhook deliveries").
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &[u8] = b"Hello, World!";
const GITHUB_HEADER: &str =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

/// `SplitMix64`: a small deterministic generator, so a failing case can be reproduced from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, max_len: u64) -> Vec<u8> {
        let len = self.next() % (max_len + 1);
        (0..len).map(|_| self.next().to_le_bytes()[0]).collect()
    }
}

#[test]
fn github_test_vector_signs_and_verifies() {
    assert_eq!(sign(GITHUB_SECRET.as_bytes(), GITHUB_BODY), GITHUB_HEADER);
    let verifier = Verifier::new(GITHUB_SECRET).unwrap();
    assert_eq!(
        verifier.verify(Some(GITHUB_HEADER.as_bytes()), GITHUB_BODY),
        Ok(())
    );
}

#[test]
fn github_test_vector_rejects_other_bytes_and_secrets() {
    let verifier = Verifier::new(GITHUB_SECRET).unwrap();
    let mismatch = Err(VerifyError::Rejected(Rejection::Mismatch));
    assert_eq!(
        verifier.verify(Some(GITHUB_HEADER.as_bytes()), b"Hello, World!\n"),
        mismatch
    );
    assert_eq!(
        verifier.verify(Some(GITHUB_HEADER.as_bytes()), b""),
        mismatch
    );
    let other = Verifier::new("It's a secret to everybody").unwrap();
    assert_eq!(
        other.verify(Some(GITHUB_HEADER.as_bytes()), GITHUB_BODY),
        mismatch
    );
}

#[test]
fn random_bodies_and_secrets_round_trip_and_tampering_is_caught() {
    let mut rng = SplitMix(0x00b0_0417);
    for case in 0..2_000 {
        let mut secret = rng.bytes(96);
        if secret.is_empty() {
            secret.push(0);
        }
        let body = rng.bytes(4096);
        let header = sign(&secret, &body);
        let verifier = Verifier::new(&secret).unwrap();
        assert_eq!(
            verifier.verify(Some(header.as_bytes()), &body),
            Ok(()),
            "case {case}"
        );

        // Flip one bit of the body, then one hex digit of the signature: both must be rejected.
        if !body.is_empty() {
            let mut tampered = body.clone();
            let at = usize::try_from(rng.next() % tampered.len() as u64).unwrap();
            tampered[at] ^= 1 << (rng.next() % 8);
            let result = verifier.verify(Some(header.as_bytes()), &tampered);
            assert_eq!(
                result,
                Err(VerifyError::Rejected(Rejection::Mismatch)),
                "case {case}"
            );
        }
        let mut digits = header.into_bytes();
        let at = 7 + usize::try_from(rng.next() % 64).unwrap();
        digits[at] = if digits[at] == b'0' { b'1' } else { b'0' };
        let result = verifier.verify(Some(&digits), &body);
        assert_eq!(
            result,
            Err(VerifyError::Rejected(Rejection::Mismatch)),
            "case {case}"
        );
    }
}

#[test]
fn rotation_accepts_listed_secrets_and_drops_removed_ones() {
    let old = sign(b"old secret", GITHUB_BODY);
    let older = sign(b"older secret", GITHUB_BODY);
    let new = sign(b"new secret", GITHUB_BODY);

    let during = Verifier::with_previous("new secret", ["old secret", "older secret"]).unwrap();
    assert_eq!(during.secret_count(), 3);
    for header in [&old, &older, &new] {
        assert_eq!(
            during.verify(Some(header.as_bytes()), GITHUB_BODY),
            Ok(()),
            "{header}"
        );
    }

    let after = Verifier::with_previous("new secret", ["old secret"]).unwrap();
    assert_eq!(after.verify(Some(new.as_bytes()), GITHUB_BODY), Ok(()));
    assert_eq!(after.verify(Some(old.as_bytes()), GITHUB_BODY), Ok(()));
    assert_eq!(
        after.verify(Some(older.as_bytes()), GITHUB_BODY),
        Err(VerifyError::Rejected(Rejection::Mismatch)),
    );

    let done = Verifier::new("new secret").unwrap();
    assert_eq!(
        done.verify(Some(old.as_bytes()), GITHUB_BODY),
        Err(VerifyError::Rejected(Rejection::Mismatch)),
    );
}

#[test]
fn missing_header_is_not_a_rejection() {
    let verifier = Verifier::new(GITHUB_SECRET).unwrap();
    assert_eq!(
        verifier.verify(None, GITHUB_BODY),
        Err(VerifyError::Missing)
    );
    assert_eq!(
        VerifyError::Missing.to_string(),
        "missing X-Hub-Signature-256 header"
    );
}

#[test]
fn every_malformed_header_shape_is_rejected_with_its_reason() {
    let verifier = Verifier::new(GITHUB_SECRET).unwrap();
    let digits = &GITHUB_HEADER[7..];
    let sha1 = "sha1=01dc10d0c83e72ed246219cdd91669e2e6f5aa45";
    let cases: Vec<(String, Rejection)> = vec![
        (String::new(), Rejection::Algorithm),
        (sha1.to_owned(), Rejection::Algorithm),
        (format!("sha1={digits}"), Rejection::Algorithm),
        (format!("sha512={digits}"), Rejection::Algorithm),
        (format!("SHA256={digits}"), Rejection::Algorithm),
        (format!("sha256:{digits}"), Rejection::Algorithm),
        (format!(" sha256={digits}"), Rejection::Algorithm),
        (digits.to_owned(), Rejection::Algorithm),
        (format!("{sha1},{GITHUB_HEADER}"), Rejection::Algorithm),
        ("sha256=".to_owned(), Rejection::Malformed),
        (format!("sha256={}", &digits[..63]), Rejection::Malformed),
        (format!("sha256={digits}0"), Rejection::Malformed),
        (format!("{GITHUB_HEADER} "), Rejection::Malformed),
        (format!("{GITHUB_HEADER}\n"), Rejection::Malformed),
        (format!("sha256= {}", &digits[1..]), Rejection::Malformed),
        (format!("sha256={}g", &digits[..63]), Rejection::Malformed),
        (format!("sha256={}", "z".repeat(64)), Rejection::Malformed),
        (format!("sha256=0x{}", &digits[2..]), Rejection::Malformed),
        (
            format!("{GITHUB_HEADER},{GITHUB_HEADER}"),
            Rejection::Malformed,
        ),
        (format!("sha256={}", "0".repeat(64)), Rejection::Mismatch),
    ];
    for (header, reason) in cases {
        assert_eq!(
            verifier.verify(Some(header.as_bytes()), GITHUB_BODY),
            Err(VerifyError::Rejected(reason)),
            "header {header:?}",
        );
    }
    // Bytes that are not even UTF-8 are rejected, not a panic.
    let mut binary = b"sha256=".to_vec();
    binary.extend(std::iter::repeat_n(0xff, 64));
    assert_eq!(
        verifier.verify(Some(&binary), GITHUB_BODY),
        Err(VerifyError::Rejected(Rejection::Malformed)),
    );
}

#[test]
fn upper_case_hex_verifies_like_lower_case() {
    let verifier = Verifier::new(GITHUB_SECRET).unwrap();
    let upper = format!("sha256={}", GITHUB_HEADER[7..].to_ascii_uppercase());
    assert_eq!(verifier.verify(Some(upper.as_bytes()), GITHUB_BODY), Ok(()));
}

#[test]
fn error_messages_never_carry_secrets_or_signatures() {
    let verifier = Verifier::new(GITHUB_SECRET).unwrap();
    let wrong = sign(b"someone else", GITHUB_BODY);
    let err = verifier
        .verify(Some(wrong.as_bytes()), GITHUB_BODY)
        .unwrap_err();
    let shown = format!("{err} {err:?} {verifier:?}");
    assert_eq!(
        err.to_string(),
        "X-Hub-Signature-256 rejected: signature does not match"
    );
    for needle in [GITHUB_SECRET, &wrong[7..], &GITHUB_HEADER[7..]] {
        assert!(!shown.contains(needle), "{shown:?} leaks {needle:?}");
    }
}
