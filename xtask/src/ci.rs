//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.

use crate::deny;
use crate::shell::{self, cargo};

/// Runs fmt, clippy, test, doc and deny; the error names the step that failed.
pub(crate) fn run() -> anyhow::Result<()> {
    step("fmt", || {
        shell::run(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--check"]),
        )
    })?;
    step("clippy", || {
        let args = [
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ];
        shell::run("cargo clippy", cargo().args(args))
    })?;
    step("test", || {
        shell::run(
            "cargo test",
            cargo().args(["test", "--workspace", "--locked"]),
        )
    })?;
    step("doc", || {
        let mut doc = cargo();
        doc.args(["doc", "--workspace", "--no-deps", "--locked"])
            .env("RUSTDOCFLAGS", "-D warnings");
        shell::run("cargo doc", &mut doc)
    })?;
    step("deny", deny::run_offline)?;
    println!("xtask ci: all steps passed");
    Ok(())
}

fn step(name: &str, body: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    println!("xtask ci: == {name} ==");
    body().map_err(|err| err.context(format!("ci step `{name}` failed")))
}
