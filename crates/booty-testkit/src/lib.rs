//! Test support for booty's crates: real faults instead of mocks.
//!
//! - [`Tmpfs`]: a small tmpfs mounted on a temporary directory, which a test fills to make every write
//!   fail with "no space left on device" ([`Tmpfs::fill`]), frees again ([`Tmpfs::free`]), or remounts
//!   read-only. It needs the right to mount (root, or `CAP_SYS_ADMIN`); without it the test fails and says
//!   so, never passes quietly.
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

mod tmpfs;

pub use tmpfs::Tmpfs;
