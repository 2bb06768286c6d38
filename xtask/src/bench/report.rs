//! The report of `cargo xtask bench`: one table on the terminal, and the same as `target/bench/report.md`
//! and `target/bench/report.json`, with the machine the numbers came from.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use serde::Serialize;

use super::criterion::Measurement;
use super::ingest::kib_to_mib;

/// Everything one `cargo xtask bench` measured.
#[derive(Debug, Serialize)]
pub(super) struct Report {
    /// `quick` or `full`.
    pub(super) mode: &'static str,
    pub(super) machine: Machine,
    pub(super) criterion: Vec<Measurement>,
    pub(super) ingest: Vec<IngestRow>,
    /// Stores that could not be measured, with the reason.
    pub(super) ingest_failures: Vec<Failure>,
    pub(super) clone: Option<CloneResult>,
    /// Parts left out with `--skip`.
    pub(super) skipped: Vec<String>,
}

/// Where and when the numbers were taken.
#[derive(Debug, Serialize)]
pub(super) struct Machine {
    pub(super) started_utc: String,
    pub(super) commit: String,
    pub(super) nproc: usize,
    pub(super) cpu_model: String,
    pub(super) memory_kib: u64,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages before the run.
    pub(super) load_before: String,
    /// The same after the run.
    pub(super) load_after: String,
}

/// One whole-system ingest configuration: medians over its runs.
#[derive(Debug, Serialize)]
pub(super) struct IngestRow {
    /// What served: `booty`, `booty baseline (PATH)` or `@octokit/webhooks VERSION on Node VERSION`.
    pub(super) server: String,
    /// The store, or `none`.
    pub(super) store: String,
    /// `trigger` (answered 202) or `ignored` (a label that is not the trigger, answered 200).
    pub(super) event: &'static str,
    pub(super) status: u16,
    pub(super) connections: usize,
    pub(super) runs: usize,
    pub(super) requests_per_second: f64,
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    pub(super) max_us: f64,
    /// The server's CPU time per request.
    pub(super) cpu_us_per_request: f64,
    /// The largest `VmHWM` over the runs.
    pub(super) peak_rss_kib: u64,
}

/// A store whose ingest runs failed.
#[derive(Debug, Serialize)]
pub(super) struct Failure {
    pub(super) store: String,
    pub(super) error: String,
}

/// `booty-workspace`'s clone benchmark: medians of wall time, peaks of RSS.
#[derive(Debug, Serialize)]
pub(super) struct CloneResult {
    pub(super) runs: u64,
    pub(super) files: u64,
    pub(super) commits: u64,
    pub(super) pack_kib: u64,
    pub(super) gix_seconds: f64,
    pub(super) gix_rss_kib: u64,
    pub(super) git_seconds: f64,
    pub(super) git_rss_kib: u64,
}

impl Machine {
    /// The machine now; `load_after` is filled in at the end.
    pub(super) fn now() -> Self {
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|line| Some(line.strip_prefix("model name")?.split_once(':')?.1))
                    .map(|model| model.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let memory_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|info| {
                info.lines().find_map(|line| {
                    line.strip_prefix("MemTotal:")?
                        .trim()
                        .strip_suffix("kB")?
                        .trim()
                        .parse()
                        .ok()
                })
            })
            .unwrap_or(0);
        Self {
            started_utc: command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            commit: command_output("git", &["describe", "--always", "--dirty"]),
            nproc: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            cpu_model,
            memory_kib,
            load_before: load_average(),
            load_after: String::new(),
        }
    }
}

/// `/proc/loadavg`'s first three fields.
pub(super) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(crate::shell::project_root())
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |text| text.trim().to_owned())
}

/// `1234567.8` as `1,234,568`.
pub(crate) fn thousands(value: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "rates are positive and far below 2^63"
    )]
    let digits = (value.round().max(0.0) as u64).to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Nanoseconds in the unit that suits them.
fn duration_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

impl Report {
    /// Whether `store` (as shown) is among the stores that could not be measured.
    pub(super) fn failed(&self, store: &str) -> bool {
        self.ingest_failures
            .iter()
            .any(|failure| failure.store == store)
    }

    /// booty's rows against the others measured in the same run: for each store, event and connection
    /// count, requests per second and CPU per request as ratios to the baseline's and to octokit's.
    fn ratios(&self) -> Vec<(String, String)> {
        let mut ratios = Vec::new();
        for ours in self.ingest.iter().filter(|row| row.server == "booty") {
            let others = self.ingest.iter().filter(|other| {
                other.server != "booty"
                    && other.event == ours.event
                    && other.connections == ours.connections
                    && (other.store == ours.store || other.store == "none")
            });
            for other in others {
                ratios.push((
                    format!(
                        "booty ({} store) / {}, {} → {}, {} connections",
                        ours.store, other.server, ours.event, ours.status, ours.connections
                    ),
                    format!(
                        "{:.2}× the requests per second, {:.2}× the CPU per request",
                        ours.requests_per_second / other.requests_per_second,
                        ours.cpu_us_per_request / other.cpu_us_per_request
                    ),
                ));
            }
        }
        ratios
    }

    /// The machine line and the table, in Markdown (which reads as well on a terminal).
    pub(super) fn markdown(&self) -> String {
        let machine = &self.machine;
        let mut out = format!(
            "# cargo xtask bench{}\n\n{}, commit {}: {} CPUs ({}), {:.1} GiB RAM, load average {} before and {} after.\n\n",
            if self.mode == "quick" { " --quick" } else { "" },
            machine.started_utc,
            machine.commit,
            machine.nproc,
            machine.cpu_model,
            kib_to_mib(machine.memory_kib) / 1024.0,
            machine.load_before,
            machine.load_after,
        );
        out.push_str("| benchmark | case | result |\n|---|---|---|\n");
        let mut row = |benchmark: &str, case: &str, result: &str| {
            let _ = writeln!(out, "| {benchmark} | {case} | {result} |");
        };
        for measurement in &self.criterion {
            let mut result = format!("median {}", duration_ns(measurement.median_ns));
            if let Some(rate) = measurement.rate() {
                let _ = write!(result, " ({rate})");
            }
            row(
                &format!("{} `{}`", measurement.package, measurement.target),
                &measurement.id,
                &result,
            );
        }
        for ingest in &self.ingest {
            row(
                &format!("ingest: {}", ingest.server),
                &format!(
                    "{} store, {} → {}, {} connections",
                    ingest.store, ingest.event, ingest.status, ingest.connections
                ),
                &format!(
                    "{} req/s, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {:.0} µs CPU/req, peak RSS {:.1} MiB",
                    thousands(ingest.requests_per_second),
                    ingest.p50_us / 1e3,
                    ingest.p99_us / 1e3,
                    ingest.max_us / 1e3,
                    ingest.cpu_us_per_request,
                    kib_to_mib(ingest.peak_rss_kib)
                ),
            );
        }
        for (case, result) in self.ratios() {
            row("ingest: side by side", &case, &result);
        }
        for failure in &self.ingest_failures {
            row(
                "ingest",
                &failure.store,
                &format!("not measured: {}", failure.error),
            );
        }
        if let Some(clone) = &self.clone {
            let case = format!(
                "depth 1, {} files, {} commits, {:.0} MiB of packs",
                thousands(f64::from(u32::try_from(clone.files).unwrap_or(u32::MAX))),
                clone.commits,
                kib_to_mib(clone.pack_kib)
            );
            row(
                "clone, booty-workspace (gix)",
                &case,
                &format!(
                    "{:.2} s, peak RSS {:.1} MiB",
                    clone.gix_seconds,
                    kib_to_mib(clone.gix_rss_kib)
                ),
            );
            row(
                "clone, git CLI",
                &case,
                &format!(
                    "{:.2} s, peak RSS {:.1} MiB",
                    clone.git_seconds,
                    kib_to_mib(clone.git_rss_kib)
                ),
            );
            #[expect(
                clippy::cast_precision_loss,
                reason = "memory sizes are far below 2^52 KiB"
            )]
            let rss_ratio = clone.gix_rss_kib as f64 / clone.git_rss_kib as f64;
            row(
                "clone, gix / git",
                &format!("median of {} runs each", clone.runs),
                &format!(
                    "time {:.2}×, peak RSS {rss_ratio:.2}×",
                    clone.gix_seconds / clone.git_seconds
                ),
            );
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(out, "\nSkipped: {}.", self.skipped.join(", "));
        }
        out
    }

    /// Writes `report.md` and `report.json` into `dir`.
    pub(super) fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("report.md"), self.markdown())?;
        let mut json = serde_json::to_string_pretty(self)?;
        json.push('\n');
        std::fs::write(dir.join("report.json"), json)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.6), "1,234,568");
    }

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration_ns(512.0), "512.0 ns");
        assert_eq!(duration_ns(2_500.0), "2.50 µs");
        assert_eq!(duration_ns(3_000_000.0), "3.00 ms");
        assert_eq!(duration_ns(1.5e9), "1.50 s");
    }
}
