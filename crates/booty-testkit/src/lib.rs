//! Test support for booty's crates: real faults and real servers instead of mocks.
//!
//! - [`Tmpfs`]: a small tmpfs mounted on a temporary directory, which a test fills to make every write
//!   fail with "no space left on device" ([`Tmpfs::fill`]), frees again ([`Tmpfs::free`]), or remounts
//!   read-only. It needs the right to mount (root, or `CAP_SYS_ADMIN`); without it the test fails and says
//!   so, never passes quietly.
//! - [`github::FakeGitHub`]: a fake GitHub on loopback built from GitHub's OpenAPI description (the
//!   operations booty calls, vendored by `cargo xtask fixtures`): it verifies the App's JWT, mints
//!   installation tokens that expire on a [`ManualClock`] and enforces their narrowing, checks every request
//!   body against the operation's schema, answers with the description's examples, paginates with `Link`,
//!   injects failures on demand ([`github::Fault`]), serves git smart HTTP (`git http-backend`) to the
//!   same tokens, and plays GitHub's App manifest flow (the `settings/apps/new` form and the code's
//!   conversion, with a freshly generated key).
//! - [`keys`]: the test App's RSA key, generated at test time with `openssl`.
//!
//! With the `http` feature, for the tests of booty's listeners:
//!
//! - `http`: hyper's client over loopback (HTTP/1.1 or h2c) and raw sockets, and an `Answer` that checks
//!   that every answer is JSON with an `x-request-id`;
//! - `logs`: `capture_logs` to read back what a library logged, `line_with` to find a line in it;
//! - `StoreError`: an error with two causes, for checking that a `5xx` logs every cause and sends none.
//!
//! This crate is only ever a dev-dependency (`publish = false`).
//!
//! ```no_run
//! let disk = booty_testkit::Tmpfs::mount(4 << 20);
//! std::fs::write(disk.path().join("a"), b"fits").unwrap();
//! disk.fill();
//! assert!(std::fs::write(disk.path().join("b"), vec![0; 8192]).is_err());
//! disk.free();
//! std::fs::write(disk.path().join("b"), vec![0; 8192]).unwrap();
//! ```

#![allow(
    clippy::missing_panics_doc,
    reason = "test support: every helper panics with a message on failure, as a test would"
)]

mod clock;
#[cfg(feature = "http")]
mod errors;
pub mod github;
#[cfg(feature = "http")]
pub mod http;
pub mod keys;
#[cfg(feature = "http")]
pub mod logs;
mod tmpfs;

pub use clock::ManualClock;
#[cfg(feature = "http")]
pub use errors::{DatabaseError, StoreError};
pub use tmpfs::Tmpfs;
