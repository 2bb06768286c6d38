//! What the two bench servers (`ingest_server`, `floor_server`) share with the process that starts them
//! (`cargo xtask bench`): the command line `--secret SECRET --label LABEL --payload FILE`, the two lines
//! they print once listening, and stopping when their standard input closes.

use std::io::{BufRead, Write};
use std::net::SocketAddr;

use booty_signature::sign;

/// The command line.
pub(crate) struct Args {
    pub(crate) secret: String,
    /// The trigger label; the server's default without one.
    pub(crate) label: Option<String>,
    /// The payload the load generator sends, read from `--payload FILE`.
    pub(crate) payload: Vec<u8>,
}

impl Args {
    /// Reads the process's arguments, and the payload file they name.
    pub(crate) fn parse() -> Result<Self, Box<dyn std::error::Error>> {
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
        Ok(Self {
            secret: secret.ok_or("--secret is required")?,
            label,
            payload: std::fs::read(payload.ok_or("--payload is required")?)?,
        })
    }

    /// Prints `listening on ADDR` and `signature sha256=...` (the payload's `X-Hub-Signature-256`
    /// under the secret, so the load generator needs no HMAC of its own).
    pub(crate) fn announce(&self, addr: SocketAddr) -> std::io::Result<()> {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {addr}")?;
        writeln!(
            stdout,
            "signature {}",
            sign(self.secret.as_bytes(), &self.payload)
        )?;
        stdout.flush()
    }
}

/// Completes when the parent closes the server's standard input: the signal to stop.
pub(crate) fn stdin_closed() -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(|| {
        // Read (and ignore) lines until the pipe closes.
        for _ in std::io::stdin().lock().lines() {}
    })
}
