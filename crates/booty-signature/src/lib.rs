//! GitHub's `X-Hub-Signature-256`, signed and verified with `ring`.
//!
//! GitHub signs every webhook body with HMAC-SHA256 under the hook's secret and sends the result as
//! `X-Hub-Signature-256: sha256=<64 lowercase hex digits>`. This crate has two halves:
//!
//! - [`sign`] produces that header value, for tests, load generators and `booty send`;
//! - [`Verifier`] checks a received header against the current secret and any number of previous ones
//!   (for rotation), in constant time, and answers [`Ok`], [`VerifyError::Missing`] or
//!   [`VerifyError::Rejected`].
//!
//! It does no I/O, needs no runtime, and never allocates in proportion to the body. Anything that holds
//! a secret prints it redacted in `Debug`.
//!
//! ```
//! use booty_signature::{Verifier, VerifyError, sign};
//!
//! let body = b"Hello, World!";
//! let header = sign(b"It's a Secret to Everybody", body);
//! assert_eq!(header, "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
//!
//! // During a rotation the old secret stays valid while it is listed.
//! let verifier = Verifier::with_previous("new secret", ["It's a Secret to Everybody"])?;
//! assert!(verifier.verify(Some(header.as_bytes()), body).is_ok());
//! assert_eq!(verifier.verify(None, body), Err(VerifyError::Missing));
//! assert!(matches!(verifier.verify(Some(b"sha1=abc"), body), Err(VerifyError::Rejected(_))));
//! # Ok::<(), booty_signature::SecretError>(())
//! ```

mod header;
mod verifier;

pub use header::{HEADER_NAME, PREFIX, sign};
pub use verifier::{Rejection, SecretError, Verifier, VerifyError};
