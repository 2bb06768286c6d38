//! Fuzz target `signature`: `X-Hub-Signature-256` parsing and verification, and sign/verify round trips.
//!
//! Every input is used twice.
//!
//! 1. As a request ([`booty_fuzz::Message`]): its `x-hub-signature-256` header (absent when the input has
//!    none) and its body go to a verifier holding GitHub's test-vector secret, and to one holding a new
//!    secret with the test-vector secret as the previous one. Each answer must equal what GitHub's rules
//!    say, worked out here without the crate's parser: `Missing` without a header, `Algorithm` without the
//!    `sha256=` prefix, `Malformed` unless 64 hex digits follow, `Ok` exactly when the digits (in either
//!    case) are the HMAC of the body under one of the secrets, `Mismatch` otherwise.
//! 2. As [`arbitrary`] data for a [`Rotation`]: a current secret, previous secrets and a body. Empty
//!    secrets must be refused and named; otherwise the body signed with any of the secrets verifies, in
//!    lower or upper case, and the same signature with one digit changed does not.

#![no_main]

use std::sync::LazyLock;

use arbitrary::{Arbitrary, Unstructured};
use booty_fuzz::Message;
use booty_signature::{HEADER_NAME, PREFIX, Rejection, SecretError, Verifier, VerifyError, sign};
use libfuzzer_sys::fuzz_target;

/// The secret of GitHub's test vector, so the seed made from the vector reaches the accepting path.
const GITHUB_SECRET: &[u8] = b"It's a Secret to Everybody";
/// The current secret of the rotating verifier, which keeps [`GITHUB_SECRET`] as its previous one.
const NEW_SECRET: &[u8] = b"the secret after a rotation";

static ONE_SECRET: LazyLock<Verifier> =
    LazyLock::new(|| Verifier::new(GITHUB_SECRET).expect("the secret is not empty"));
static TWO_SECRETS: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::with_previous(NEW_SECRET, [GITHUB_SECRET]).expect("the secrets are not empty")
});

fuzz_target!(|data: &[u8]| {
    check_request(&Message::parse(data));
    if let Ok(rotation) = Rotation::arbitrary_take_rest(Unstructured::new(data)) {
        rotation.check();
    }
});

fn check_request(request: &Message<'_>) {
    let header = request.header(HEADER_NAME);
    for (verifier, secrets) in [
        (&*ONE_SECRET, &[GITHUB_SECRET][..]),
        (&*TWO_SECRETS, &[NEW_SECRET, GITHUB_SECRET][..]),
    ] {
        let answer = verifier.verify(header, request.body);
        assert_eq!(
            answer,
            expected(header, request.body, secrets),
            "{} secret(s), header {:?}",
            secrets.len(),
            header.map(String::from_utf8_lossy)
        );
        if let Err(error) = answer {
            assert!(!error.to_string().chars().any(char::is_control), "{error}");
        }
    }
}

/// What `verify` must answer, from GitHub's rules for the header rather than from the crate's parser.
fn expected(header: Option<&[u8]>, body: &[u8], secrets: &[&[u8]]) -> Result<(), VerifyError> {
    let header = header.ok_or(VerifyError::Missing)?;
    let Some(digits) = header.strip_prefix(PREFIX.as_bytes()) else {
        return Err(VerifyError::Rejected(Rejection::Algorithm));
    };
    if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(VerifyError::Rejected(Rejection::Malformed));
    }
    let signed_with =
        |secret: &&[u8]| sign(secret, body).as_bytes()[PREFIX.len()..].eq_ignore_ascii_case(digits);
    if secrets.iter().any(signed_with) {
        Ok(())
    } else {
        Err(VerifyError::Rejected(Rejection::Mismatch))
    }
}

/// Secrets of a rotation and a body signed with one of them.
#[derive(Debug, Arbitrary)]
struct Rotation<'a> {
    current: &'a [u8],
    previous: Vec<&'a [u8]>,
    /// Picks the signing secret: the current one, then the previous ones, modulo their count.
    signer: u8,
    body: &'a [u8],
}

impl Rotation<'_> {
    fn check(&self) {
        let built = Verifier::with_previous(self.current, self.previous.iter().copied());
        let first_empty = self.previous.iter().position(|secret| secret.is_empty());
        let verifier = match (built, self.current.is_empty(), first_empty) {
            (Ok(verifier), false, None) => verifier,
            (Err(SecretError::EmptyCurrent), true, _) => return,
            (Err(SecretError::EmptyPrevious { index }), false, Some(first)) => {
                assert_eq!(index, first, "the wrong empty secret was named");
                return;
            }
            (built, _, _) => panic!(
                "secrets {:?} + {:?} gave {built:?}",
                self.current, self.previous
            ),
        };
        let secrets: Vec<&[u8]> = std::iter::once(self.current)
            .chain(self.previous.iter().copied())
            .collect();
        assert_eq!(verifier.secret_count(), secrets.len());

        let secret = secrets[usize::from(self.signer) % secrets.len()];
        let header = sign(secret, self.body);
        assert_eq!(verifier.verify(Some(header.as_bytes()), self.body), Ok(()));

        let upper = format!("{PREFIX}{}", header[PREFIX.len()..].to_ascii_uppercase());
        assert_eq!(verifier.verify(Some(upper.as_bytes()), self.body), Ok(()));

        // Another tag: no secret of the set signs the body into it, short of a 2^-256 chance.
        let mut tampered = header.into_bytes();
        let last = tampered.last_mut().expect("a signature is 71 bytes long");
        *last = if *last == b'0' { b'1' } else { b'0' };
        assert_eq!(
            verifier.verify(Some(&tampered), self.body),
            Err(VerifyError::Rejected(Rejection::Mismatch))
        );
    }
}
