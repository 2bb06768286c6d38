//! The `booty` binary: configuration, logging and composition of the crates.
//!
//! Not wired yet; see issue 7. It exits with a message rather than pretending to serve.

#![allow(clippy::print_stderr, reason = "a CLI reports its errors on stderr")]

fn main() -> std::process::ExitCode {
    eprintln!("booty: the service is not composed yet (the crates are being built first)");
    std::process::ExitCode::from(1)
}
