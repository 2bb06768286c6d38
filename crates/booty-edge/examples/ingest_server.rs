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

use std::sync::Arc;

use booty_edge::EdgeConfig;
use booty_event::TriggerRule;
use booty_signature::Verifier;

#[path = "../benches/support/accept.rs"]
mod accept;
#[path = "../benches/support/bench_server.rs"]
mod bench_server;

use accept::Accept;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = bench_server::Args::parse()?;
    let config = EdgeConfig::new(Verifier::new(&args.secret)?);
    let rule = match &args.label {
        Some(label) => TriggerRule::new(label.clone())?,
        None => TriggerRule::default(),
    };

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        args.announce(listener.local_addr()?)?;
        let stdin_closed = bench_server::stdin_closed();
        booty_edge::serve(listener, config, Arc::new(Accept(rule)), async {
            let _ = stdin_closed.await;
        })
        .await?;
        Ok(())
    })
}
