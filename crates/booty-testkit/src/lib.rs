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
//!   injects failures on demand ([`github::Fault`]), and serves git smart HTTP (`git http-backend`) to the
//!   same tokens.
//! - [`keys`]: the test App's RSA key, generated at test time with `openssl`.
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
pub mod github;
pub mod keys;
mod tmpfs;

pub use clock::ManualClock;
pub use tmpfs::Tmpfs;
