//! `cargo xtask fixtures`: refresh the fixtures vendored from npm: booty-event's webhook payloads (this
//! module) and the part of GitHub's OpenAPI description booty-testkit's fake GitHub is built from
//! ([`openapi`]).
//!
//! Each package is pinned by version and by the tarball's sha512 so a refresh is reproducible and a changed
//! tarball is noticed. The task runs `npm pack` in a scratch directory and unpacks it with `tar`.
//!
//! The webhook corpus is `@octokit/webhooks-examples` (MIT). The task checks it still has the shape the
//! tests count on, and writes into `crates/booty-event/tests/fixtures/`:
//!
//! - `octokit-webhooks-examples/api.github.com/index.json` and `package.json`, verbatim;
//! - `issues.labeled.json`: the largest `issues`/`labeled` example, as compact JSON in the payload's own key
//!   order (the bytes GitHub would send), read by the edge tests, the benchmarks and fuzz seeds.
//!
//! The tarball ships no licence file; `octokit-webhooks-examples/LICENSE` is kept by hand and left alone.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::shell::project_root;

mod openapi;

/// The package and version the webhook fixtures come from.
const PACKAGE: &str = "@octokit/webhooks-examples@7.6.1";
/// npm's integrity string for that tarball; a different tarball under the same version is refused.
const INTEGRITY: &str = "sha512-De6U3XB6O3DtCa7bKgCMzTHdeopqqZ6SNivMYJnK65ierKL1AnNIA0tkRYCRS7lwGT792d+Ps1WbfHlso6MynQ==";
/// The shape of `api.github.com/index.json` the tests count on.
const EVENTS: usize = 58;
const EXAMPLES: usize = 329;

/// Where the fixtures live, relative to the workspace root.
pub(crate) const FIXTURES: &str = "crates/booty-event/tests/fixtures";

/// One entry of `index.json`: an event name and its example payloads, kept as raw text.
#[derive(Deserialize)]
pub(crate) struct Entry<'a> {
    pub(crate) name: String,
    #[serde(borrow)]
    pub(crate) examples: Vec<&'a RawValue>,
}

/// Refreshes every vendored fixture, printing what changed.
pub(crate) fn run() -> anyhow::Result<()> {
    webhooks()?;
    openapi::run()
}

/// Downloads the pinned webhook examples, checks them and rewrites booty-event's fixtures.
fn webhooks() -> anyhow::Result<()> {
    let scratch = Scratch::new("webhooks")?;
    let tarball = npm_pack(&scratch.0, PACKAGE, INTEGRITY)?;
    untar(&tarball, &scratch.0, &[])?;
    let package = scratch.0.join("package");

    let manifest = fs::read(package.join("package.json")).context("reading package.json")?;
    let license = serde_json::from_slice::<serde_json::Value>(&manifest)
        .context("parsing package.json")?["license"]
        .clone();
    ensure!(
        license == "MIT",
        "{PACKAGE} now declares licence {license}, not MIT: review LICENSE and deny.toml before vendoring it"
    );

    let index = fs::read_to_string(package.join("api.github.com/index.json"))
        .context("reading api.github.com/index.json")?;
    let entries: Vec<Entry<'_>> =
        serde_json::from_str(&index).context("parsing api.github.com/index.json")?;
    let examples: usize = entries.iter().map(|entry| entry.examples.len()).sum();
    ensure!(
        entries.len() == EVENTS && examples == EXAMPLES,
        "{PACKAGE} has {} events and {examples} examples, the tests expect {EVENTS} and {EXAMPLES}",
        entries.len()
    );
    let labeled = largest_issues_labeled(&entries)?;

    let root = project_root().join(FIXTURES);
    let vendored = root.join("octokit-webhooks-examples");
    println!(
        "xtask fixtures: {PACKAGE}: {} events, {examples} examples",
        entries.len()
    );
    write(
        &root,
        &vendored.join("api.github.com/index.json"),
        index.as_bytes(),
    )?;
    write(&root, &vendored.join("package.json"), &manifest)?;
    write(&root, &root.join("issues.labeled.json"), labeled.as_bytes())?;
    ensure!(
        vendored.join("LICENSE").is_file(),
        "{} is missing: the tarball has no licence file, restore it from git",
        vendored.join("LICENSE").display()
    );
    Ok(())
}

/// Runs `npm pack PACKAGE` in `dir`, checks the tarball's integrity and returns its path.
fn npm_pack(dir: &Path, package: &str, expected: &str) -> anyhow::Result<PathBuf> {
    let output = Command::new("npm")
        .args(["pack", package, "--json"])
        .current_dir(dir)
        .output()
        .context("could not start npm (is Node.js installed?)")?;
    if !output.status.success() {
        bail!(
            "npm pack {package} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let packed: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing the output of npm pack --json")?;
    let integrity = packed[0]["integrity"].as_str().unwrap_or_default();
    ensure!(
        integrity == expected,
        "npm pack {package} gave a tarball with integrity {integrity:?}, expected {expected}"
    );
    let filename = packed[0]["filename"]
        .as_str()
        .context("npm pack --json names no filename")?;
    Ok(dir.join(filename))
}

/// Unpacks `members` of `tarball` (all of it when empty) into `dir`.
fn untar(tarball: &Path, dir: &Path, members: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(tarball)
        .arg("-C")
        .arg(dir)
        .args(members)
        .status()
        .context("could not start tar")?;
    ensure!(
        status.success(),
        "tar -xzf {} failed ({status})",
        tarball.display()
    );
    Ok(())
}

/// The largest `issues` example with action `labeled`, minified.
fn largest_issues_labeled(entries: &[Entry<'_>]) -> anyhow::Result<String> {
    #[derive(Deserialize)]
    struct Action<'a> {
        action: Option<&'a str>,
    }
    let issues = entries
        .iter()
        .find(|entry| entry.name == "issues")
        .context("index.json has no `issues` entry")?;
    let mut labeled = Vec::new();
    for example in &issues.examples {
        let Action { action } = serde_json::from_str(example.get())?;
        if action == Some("labeled") {
            labeled.push(minify(example.get()));
        }
    }
    labeled
        .into_iter()
        .max_by_key(String::len)
        .context("index.json has no `issues`/`labeled` example")
}

/// Drops the whitespace between JSON tokens, keeping strings (and so key order and escapes) as they are.
pub(crate) fn minify(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in json.chars() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_ascii_whitespace() {
            out.push(c);
        }
    }
    out
}

/// Writes `bytes` to `path` unless it already holds them, and says which it was.
fn write(root: &Path, path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let shown = path.strip_prefix(root).unwrap_or(path).display();
    let before = fs::read(path).ok();
    let change = match &before {
        Some(old) if old == bytes => {
            println!("  unchanged {shown} ({} bytes)", bytes.len());
            return Ok(());
        }
        Some(old) => format!("updated   {shown} ({} -> {} bytes)", old.len(), bytes.len()),
        None => format!("created   {shown} ({} bytes)", bytes.len()),
    };
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
    println!("  {change}");
    Ok(())
}

/// A scratch directory under the system temp dir, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> anyhow::Result<Self> {
        let dir =
            std::env::temp_dir().join(format!("booty-fixtures-{name}-{}", std::process::id()));
        if dir.exists() {
            fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Self(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(err) = fs::remove_dir_all(&self.0) {
            eprintln!(
                "xtask fixtures: could not remove {}: {err}",
                self.0.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::minify;

    #[test]
    fn minify_keeps_strings_and_order() {
        let pretty = "{\n  \"b\": [1, 2],\n  \"a\": \"x y \\\" }\\\\\",\n  \"c\": {}\n}\n";
        assert_eq!(minify(pretty), r#"{"b":[1,2],"a":"x y \" }\\","c":{}}"#);
        let value: serde_json::Value = serde_json::from_str(pretty).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&minify(pretty)).unwrap(),
            value
        );
    }
}
