//! booty-github against booty-testkit's fake GitHub: real HTTP over loopback, real `git http-backend`, a
//! real RSA key, GitHub's own OpenAPI description; waits on the fake's clock, so none takes real time.

#![allow(
    clippy::unwrap_used,
    reason = "tests and their support code: a failed setup step should fail the test loudly"
)]

mod auth;
mod calls;
mod failures;
mod manifest;
mod secrets;
mod support;
mod tokens;
