//! The edge on one thread with a sink that routes like booty-service's and accepts every trigger
//! instantly: the server half of `cargo xtask bench ingest`.
//!
//! ```text
//! ingest_server --secret SECRET --label LABEL --payload FILE
//! ```
//!
//! Binds `127.0.0.1:0` and prints two lines: `listening on ADDR` and `signature sha256=...` (the
//! `X-Hub-Signature-256` of FILE under SECRET, so the load generator needs no HMAC of its own). It serves
//! on a current-thread runtime, so pinning the process to one core (`taskset -c 0`) measures one core,
//! and stops when its standard input is closed.

#![allow(
    clippy::print_stdout,
    reason = "an example program that reports its address to the process that started it"
)]

use std::io::{BufRead, Write};
use std::sync::Arc;

use booty_edge::EdgeConfig;
use booty_event::TriggerRule;
use booty_signature::{Verifier, sign};

#[path = "../benches/support/accept.rs"]
mod accept;

use accept::Accept;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut secret = None;
    let mut label = None;
    let mut payload = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--secret" => secret = Some(value),
            "--label" => label = Some(value),
            "--payload" => payload = Some(value),
            _ => return Err(format!("unknown argument {flag}").into()),
        }
    }
    let secret = secret.ok_or("--secret is required")?;
    let payload = std::fs::read(payload.ok_or("--payload is required")?)?;
    let config = EdgeConfig::new(Verifier::new(&secret)?);
    let rule = match label {
        Some(label) => TriggerRule::new(label)?,
        None => TriggerRule::default(),
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", listener.local_addr()?)?;
        writeln!(stdout, "signature {}", sign(secret.as_bytes(), &payload))?;
        stdout.flush()?;
        drop(stdout);
        let stdin_closed = tokio::task::spawn_blocking(|| {
            // Read (and ignore) lines until the parent closes the pipe.
            for _ in std::io::stdin().lock().lines() {}
        });
        booty_edge::serve(listener, config, Arc::new(Accept(rule)), async {
            let _ = stdin_closed.await;
        })
        .await?;
        Ok(())
    })
}
