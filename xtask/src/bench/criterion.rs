//! The crates' own benchmarks, for `cargo xtask bench`: every `[[bench]]` target of the workspace that is
//! not a whole-system run (those are [`super::all`]'s), each through `cargo bench`, and criterion's medians
//! read back from the `benchmark.json` and `estimates.json` files it writes under `target/criterion/`.
//!
//! The targets come from `cargo metadata`, so a benchmark a crate adds is run without touching this file; a
//! target's `required-features` are turned on for it. The PostgreSQL parts of `booty-queue`'s
//! `store_insert` run when `BOOTY_TEST_POSTGRES_URL` names a server, and are skipped (the bench says so)
//! otherwise.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::shell::{self, cargo};

/// Benchmark targets that are not criterion benchmarks: `(package, target)`.
pub(super) const NOT_CRITERION: &[(&str, &str)] = &[("booty-workspace", "clone")];

/// One `[[bench]]` target.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) package: String,
    pub(super) name: String,
    required_features: Vec<String>,
}

/// Every benchmark target of the workspace's members, in `cargo metadata`'s order.
pub(super) fn targets() -> anyhow::Result<Vec<Target>> {
    let output = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps", "--locked"])
        .output()
        .context("running cargo metadata")?;
    anyhow::ensure!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout)?;
    let mut targets = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        let package_name = package["name"].as_str().unwrap_or_default();
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_bench = target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bench"));
            if !is_bench {
                continue;
            }
            let required_features = target["required-features"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|feature| feature.as_str().map(str::to_owned))
                .collect();
            targets.push(Target {
                package: package_name.to_owned(),
                name: target["name"].as_str().unwrap_or_default().to_owned(),
                required_features,
            });
        }
    }
    Ok(targets)
}

impl Target {
    /// `cargo bench` for this target alone, with its required features, up to the `--` before the
    /// benchmark's own arguments.
    pub(super) fn cargo_bench(&self) -> std::process::Command {
        let mut command = cargo();
        command.args([
            "bench",
            "--locked",
            "-p",
            &self.package,
            "--bench",
            &self.name,
        ]);
        if !self.required_features.is_empty() {
            command
                .arg("--features")
                .arg(self.required_features.join(","));
        }
        command.arg("--");
        command
    }

    pub(super) fn is_criterion(&self) -> bool {
        !NOT_CRITERION
            .iter()
            .any(|&(package, name)| package == self.package && name == self.name)
    }
}

/// One criterion benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measurement {
    /// The crate whose benchmark it is.
    pub(crate) package: String,
    /// The `[[bench]]` target.
    pub(crate) target: String,
    /// Criterion's id, `group/function/value`.
    pub(crate) id: String,
    /// The median time of one iteration, in nanoseconds.
    pub(crate) median_ns: f64,
    /// Bytes or elements per iteration, when the benchmark declares them.
    pub(crate) throughput: Option<Throughput>,
}

/// What one iteration processes, as criterion's `Throughput` (the kinds booty's benches use).
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Throughput {
    Bytes(u64),
    Elements(u64),
}

impl Measurement {
    /// The throughput per second, e.g. `5.6 GiB/s` or `123,456 elem/s`.
    pub(crate) fn rate(&self) -> Option<String> {
        let per_second = |amount: u64| {
            #[expect(
                clippy::cast_precision_loss,
                reason = "per-iteration amounts are far below 2^52"
            )]
            let amount = amount as f64;
            amount * 1e9 / self.median_ns
        };
        Some(match self.throughput? {
            Throughput::Bytes(bytes) => {
                format!("{:.2} GiB/s", per_second(bytes) / f64::from(1u32 << 30))
            }
            Throughput::Elements(elements) => {
                format!("{} elem/s", super::report::thousands(per_second(elements)))
            }
        })
    }
}

/// Quick settings: short warm-up and measurement, criterion's smallest sample.
const QUICK_ARGS: &[&str] = &[
    "--warm-up-time",
    "0.3",
    "--measurement-time",
    "1",
    "--sample-size",
    "10",
];

/// Runs every criterion target and returns what each measured.
pub(super) fn run(
    targets: &[Target],
    quick: bool,
    criterion_dir: &Path,
) -> anyhow::Result<Vec<Measurement>> {
    let mut measurements = Vec::new();
    for target in targets.iter().filter(|target| target.is_criterion()) {
        let started = SystemTime::now();
        let mut command = target.cargo_bench();
        command.arg("--noplot");
        if quick {
            command.args(QUICK_ARGS);
        }
        shell::run(
            &format!("cargo bench -p {} --bench {}", target.package, target.name),
            &mut command,
        )?;
        let mut found = collect(criterion_dir, started)?;
        found.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        measurements.extend(found.into_iter().map(|(raw, median_ns)| {
            let throughput = raw.throughput();
            Measurement {
                package: target.package.clone(),
                target: target.name.clone(),
                id: raw.id,
                median_ns,
                throughput,
            }
        }));
    }
    Ok(measurements)
}

/// The part of criterion's `benchmark.json` read here.
#[derive(Debug, Deserialize)]
struct RawBenchmark {
    #[serde(rename = "full_id")]
    id: String,
    /// Criterion's `Throughput`, e.g. `{"Bytes": 12288}`; kinds other than bytes and elements are left out.
    throughput: Option<serde_json::Value>,
}

impl RawBenchmark {
    fn throughput(&self) -> Option<Throughput> {
        let throughput = self.throughput.as_ref()?;
        if let Some(bytes) = throughput
            .get("Bytes")
            .or_else(|| throughput.get("BytesDecimal"))
        {
            return bytes.as_u64().map(Throughput::Bytes);
        }
        throughput
            .get("Elements")?
            .as_u64()
            .map(Throughput::Elements)
    }
}

/// Benchmarks whose `new/estimates.json` was written after `since`, with their median in nanoseconds.
fn collect(criterion_dir: &Path, since: SystemTime) -> anyhow::Result<Vec<(RawBenchmark, f64)>> {
    let mut found = Vec::new();
    let mut pending: Vec<PathBuf> = vec![criterion_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if !path.is_dir() {
                continue;
            }
            let estimates = path.join("estimates.json");
            let is_new = path.file_name().is_some_and(|name| name == "new");
            if is_new && estimates.exists() {
                if std::fs::metadata(&estimates)?.modified()? < since {
                    continue;
                }
                let read = |file: &Path| -> anyhow::Result<String> {
                    std::fs::read_to_string(file)
                        .with_context(|| format!("reading {}", file.display()))
                };
                let raw: RawBenchmark = serde_json::from_str(&read(&path.join("benchmark.json"))?)
                    .with_context(|| format!("parsing {}/benchmark.json", path.display()))?;
                let estimates: serde_json::Value = serde_json::from_str(&read(&estimates)?)?;
                let median = estimates["median"]["point_estimate"]
                    .as_f64()
                    .with_context(|| format!("no median in {}", path.display()))?;
                found.push((raw, median));
            } else if !is_new {
                pending.push(path);
            }
        }
    }
    Ok(found)
}
