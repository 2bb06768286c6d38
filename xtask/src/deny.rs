//! cargo-deny: installing it when missing, and running it.

use crate::shell::{cargo, installed, run};

/// Installs cargo-deny with `cargo install --locked` unless it is already on `PATH`.
pub(crate) fn ensure_installed() -> anyhow::Result<()> {
    if !installed("cargo-deny") {
        println!(
            "xtask: cargo-deny is not installed; installing it with `cargo install --locked cargo-deny`"
        );
        run(
            "install cargo-deny",
            cargo().args(["install", "--locked", "cargo-deny"]),
        )?;
    }
    Ok(())
}

/// The checks that work offline: licenses, bans and sources. Advisories need the advisory database from
/// the network, which CI machines cannot reach; `cargo xtask deny` runs them where it can.
pub(crate) fn run_offline() -> anyhow::Result<()> {
    ensure_installed()?;
    run(
        "cargo deny",
        cargo().args(["deny", "check", "licenses", "bans", "sources"]),
    )
}

/// Every check, advisories included.
pub(crate) fn run_all() -> anyhow::Result<()> {
    ensure_installed()?;
    run("cargo deny", cargo().args(["deny", "check"]))
}
