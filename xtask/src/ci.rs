//! `cargo xtask ci`: the checks CI runs, in order, stopping at the first failure.
//!
//! A passing run should be short enough to read: cargo runs with `--quiet` (no `Compiling`/`Checking`
//! lines; its warnings, errors and test failures still print in full), libtest then prints a dot per test
//! and each binary's summary, and every step ends with one line saying it passed and how long it took.

use std::time::Instant;

use crate::deny;
use crate::shell::{self, cargo};

/// The PostgreSQL tests run against the server this names; built without it, they are ignored.
const POSTGRES_URL: &str = "BOOTY_TEST_POSTGRES_URL";

/// Runs fmt, clippy, test, doc, deny and the fuzz project's build; the error names the step that failed.
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
            "--quiet",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ];
        shell::run("cargo clippy", cargo().args(args))
    })?;
    let postgres_skipped = std::env::var_os(POSTGRES_URL).is_none_or(|url| url.is_empty());
    step("test", || {
        if postgres_skipped {
            postgres_banner();
        }
        shell::run(
            "cargo test",
            cargo().args(["test", "--quiet", "--workspace", "--locked"]),
        )
    })?;
    step("doc", || {
        let mut doc = cargo();
        doc.args(["doc", "--quiet", "--workspace", "--no-deps", "--locked"])
            .env("RUSTDOCFLAGS", "-D warnings");
        shell::run("cargo doc", &mut doc)
    })?;
    step("deny", deny::run_offline)?;
    step("fuzz", fuzz_project)?;
    println!("xtask ci: all steps passed");
    if postgres_skipped {
        postgres_banner();
    }
    Ok(())
}

/// Says, where nobody can miss it, that a passing run did not test the PostgreSQL store.
fn postgres_banner() {
    let bar = "!".repeat(100);
    eprintln!("{bar}");
    eprintln!(
        "!!! PostgreSQL tests SKIPPED: {POSTGRES_URL} is not set, so every test that needs the server \
         was ignored."
    );
    eprintln!(
        "!!! Set it to a server the tests may create schemas in, as .ci/run does: \
         {POSTGRES_URL}=postgres://postgres@127.0.0.1:5432/test"
    );
    eprintln!("{bar}");
}

/// The cargo-fuzz project lives outside the workspace (fuzzing needs nightly), so the steps above do not
/// see it. This keeps its targets compiling against the crates and its harness tests passing, on stable,
/// sharing the workspace's target directory so the crates are not built twice.
fn fuzz_project() -> anyhow::Result<()> {
    let root = shell::project_root();
    let manifest = root.join("fuzz").join("Cargo.toml");
    let target = root.join("target");
    let mut fmt = cargo();
    fmt.arg("fmt")
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--check");
    shell::run("cargo fmt --check (fuzz/)", &mut fmt)?;
    let mut clippy = cargo();
    clippy
        .args([
            "clippy",
            "--quiet",
            "--all-targets",
            "--locked",
            "--manifest-path",
        ])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target)
        .args(["--", "-D", "warnings"]);
    shell::run("cargo clippy (fuzz/)", &mut clippy)?;
    let mut test = cargo();
    test.args(["test", "--quiet", "--locked", "--manifest-path"])
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target);
    shell::run("cargo test (fuzz/)", &mut test)
}

fn step(name: &str, body: impl FnOnce() -> anyhow::Result<()>) -> anyhow::Result<()> {
    println!("xtask ci: == {name} ==");
    let started = Instant::now();
    body().map_err(|err| err.context(format!("ci step `{name}` failed")))?;
    println!("xtask ci: {name} passed in {:.1?}", started.elapsed());
    Ok(())
}
