//! Verifying a received header against the current and previous secrets.

use std::fmt;

use ring::hmac;

use crate::header::{self, Malformed};

/// Checks `X-Hub-Signature-256` values against one current secret and any number of previous ones.
///
/// Each check is constant time in the signature (it is `ring::hmac::verify`). A header that matches none of
/// the secrets is tried against all of them, so how long a rejection takes does not depend on which secret
/// came closest; the answer never says either. The secrets are kept only as `ring` HMAC keys, and `Debug`
/// prints how many there are, never their bytes.
#[derive(Clone)]
pub struct Verifier {
    /// The current key first, then the previous ones in the order given.
    keys: Vec<hmac::Key>,
}

impl Verifier {
    /// A verifier that accepts signatures made with `secret` only.
    ///
    /// # Errors
    /// [`SecretError::EmptyCurrent`] if the secret is empty: every body would verify against a key anyone can
    /// guess.
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, SecretError> {
        Self::with_previous(secret, std::iter::empty::<&[u8]>())
    }

    /// A verifier that accepts signatures made with `current` or with any of `previous`, which keeps
    /// deliveries signed with an old secret valid while a rotation is under way. Drop a secret from the list
    /// once GitHub has the new one and it stops being accepted.
    ///
    /// # Errors
    /// [`SecretError::EmptyCurrent`] or [`SecretError::EmptyPrevious`] if any secret is empty.
    pub fn with_previous<I>(current: impl AsRef<[u8]>, previous: I) -> Result<Self, SecretError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let current = current.as_ref();
        if current.is_empty() {
            return Err(SecretError::EmptyCurrent);
        }
        let mut keys = vec![hmac::Key::new(hmac::HMAC_SHA256, current)];
        for (index, secret) in previous.into_iter().enumerate() {
            let secret = secret.as_ref();
            if secret.is_empty() {
                return Err(SecretError::EmptyPrevious { index });
            }
            keys.push(hmac::Key::new(hmac::HMAC_SHA256, secret));
        }
        Ok(Self { keys })
    }

    /// How many secrets are accepted (the current one plus the previous ones).
    pub fn secret_count(&self) -> usize {
        self.keys.len()
    }

    /// Checks the `X-Hub-Signature-256` value (`None` when the request had no such header) against `body`,
    /// the raw bytes exactly as received.
    ///
    /// # Errors
    /// [`VerifyError::Missing`] without a header, [`VerifyError::Rejected`] when the header is malformed,
    /// names another algorithm (such as `sha1=`), or matches none of the secrets.
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> Result<(), VerifyError> {
        let value = header.ok_or(VerifyError::Missing)?;
        let tag = header::parse(value).map_err(|malformed| {
            VerifyError::Rejected(match malformed {
                Malformed::Algorithm => Rejection::Algorithm,
                Malformed::Digest => Rejection::Malformed,
            })
        })?;
        // A rejection tries every key, so its duration says nothing about which secret came close. An
        // accepted signature stops at the first match; its sender already knows a secret.
        if self
            .keys
            .iter()
            .any(|key| hmac::verify(key, body, &tag).is_ok())
        {
            return Ok(());
        }
        Err(VerifyError::Rejected(Rejection::Mismatch))
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secrets", &format_args!("<{} redacted>", self.keys.len()))
            .finish()
    }
}

/// A verifier could not be built from the secrets given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The current webhook secret is empty.
    #[error("the webhook secret is empty")]
    EmptyCurrent,
    /// One of the previous secrets is empty; `index` counts from 0 in the order they were given.
    #[error("previous webhook secret #{index} is empty")]
    EmptyPrevious {
        /// Position of the empty secret in the list of previous secrets.
        index: usize,
    },
}

/// Why a request did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The request has no `X-Hub-Signature-256` header (GitHub answers this with 401).
    #[error("missing X-Hub-Signature-256 header")]
    Missing,
    /// The header is there but does not prove the body was signed with a known secret (403).
    #[error("X-Hub-Signature-256 rejected: {0}")]
    Rejected(Rejection),
}

/// What was wrong with a rejected signature. Safe to log: it never says which secret came closest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The value does not start with `sha256=` (for example a legacy `sha1=` value).
    #[error("not a sha256 signature")]
    Algorithm,
    /// `sha256=` is not followed by exactly 64 hex digits.
    #[error("malformed digest")]
    Malformed,
    /// Well formed, but made with none of the configured secrets (or over other bytes).
    #[error("signature does not match")]
    Mismatch,
}

impl Rejection {
    /// A short, stable name for log fields: `algorithm`, `malformed` or `mismatch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Algorithm => "algorithm",
            Self::Malformed => "malformed",
            Self::Mismatch => "mismatch",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secret_bytes() {
        let verifier = Verifier::with_previous("hunter2-current", ["hunter2-old"]).unwrap();
        let debug = format!("{verifier:?}");
        assert_eq!(debug, "Verifier { secrets: <2 redacted> }");
    }

    #[test]
    fn empty_secrets_are_refused_and_named() {
        assert_eq!(Verifier::new("").unwrap_err(), SecretError::EmptyCurrent);
        let err = Verifier::with_previous("ok", ["old", ""]).unwrap_err();
        assert_eq!(err, SecretError::EmptyPrevious { index: 1 });
        assert_eq!(err.to_string(), "previous webhook secret #1 is empty");
    }
}
