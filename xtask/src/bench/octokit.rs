//! The `@octokit/webhooks` row of `cargo xtask bench`: the JavaScript library most GitHub bots receive
//! webhooks with, doing the same work as booty's edge (verify, parse, decide) without a store, so every
//! report shows booty beside it.
//!
//! [`install`] copies `server.mjs` and `package.json` (which pins the version) under
//! `target/bench/octokit` and runs `npm install` there once; [`start`] runs the server with `node`,
//! pinned like booty.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::shell::{self, project_root};

/// The server and its manifest, kept in the tree.
const SERVER: &str = include_str!("octokit/server.mjs");
const PACKAGE: &str = include_str!("octokit/package.json");

/// How long the server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// What the report calls the row's server, e.g. `@octokit/webhooks 14.2.0 on Node v20.20.2`.
pub(super) fn describe(dir: &Path) -> String {
    let version = std::fs::read_to_string(dir.join("node_modules/@octokit/webhooks/package.json"))
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|package| package["version"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned());
    let node = Command::new("node")
        .arg("--version")
        .output()
        .ok()
        .map_or_else(
            || "?".to_owned(),
            |output| String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        );
    format!("@octokit/webhooks {version} on Node {node}")
}

/// Installs the server under `target/bench/octokit`, or says why it cannot: `Ok(Err(reason))` when Node
/// or npm is missing (the row is skipped with that reason), `Err` when the install itself fails.
pub(super) fn install() -> anyhow::Result<Result<PathBuf, String>> {
    for tool in ["node", "npm"] {
        if !shell::installed(tool) {
            return Ok(Err(format!("`{tool}` is not installed")));
        }
    }
    let dir = project_root().join("target/bench/octokit");
    std::fs::create_dir_all(&dir)?;
    let package = dir.join("package.json");
    let stale = std::fs::read_to_string(&package).map_or(true, |text| text != PACKAGE);
    std::fs::write(dir.join("server.mjs"), SERVER)?;
    if stale || !loads(&dir) {
        // A half-written `node_modules` (an interrupted install) is started over, not trusted.
        for leftover in ["node_modules", "package-lock.json"] {
            let path = dir.join(leftover);
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else if path.exists() {
                std::fs::remove_file(&path)?;
            }
        }
        std::fs::write(&package, PACKAGE)?;
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(&dir)
            .status()
            .context("running npm install for the @octokit/webhooks row")?;
        if !status.success() {
            bail!("npm install in {} failed ({status})", dir.display());
        }
        if !loads(&dir) {
            bail!(
                "@octokit/webhooks was installed in {} but node cannot import it",
                dir.display()
            );
        }
    }
    Ok(Ok(dir))
}

/// Whether `node` can import `@octokit/webhooks` from `dir`.
fn loads(dir: &Path) -> bool {
    Command::new("node")
        .args([
            "--input-type=module",
            "--eval",
            "import '@octokit/webhooks';",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// Starts the server installed in `dir` (pinned to `pin` with `taskset`) and waits for its address.
pub(super) fn start(
    dir: &Path,
    secret: &str,
    label: &str,
    pin: Option<usize>,
) -> anyhow::Result<(Child, SocketAddr)> {
    let mut child = super::ingest::pinned("node", pin)
        .args(["server.mjs", secret, label])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .spawn()
        .context("starting node server.mjs")?;
    let stdout = child.stdout.take().context("node's stdout is piped")?;
    let (found, listening) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if let Some(addr) = line.strip_prefix("listening ") {
                let _ = found.send(addr.to_owned());
            }
        }
    });
    let Ok(addr) = listening.recv_timeout(START_TIMEOUT) else {
        let _ = child.kill();
        let _ = child.wait();
        bail!("the @octokit/webhooks server did not start listening");
    };
    Ok((child, addr.parse().context("the server's address")?))
}
