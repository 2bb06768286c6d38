//! `cargo xtask bench ingest`: the edge's throughput and latency on one core.
//!
//! Builds the `ingest_server` example (the edge on a current-thread runtime with a sink that accepts
//! instantly) and this xtask in release, starts the server pinned to one core with `taskset`, then runs the
//! load generator ([`super::load`]) pinned to the other core, several runs per connection count, and reports
//! each run and the medians. Every request carries a signed 12 KB `issues.labeled` payload and a new
//! delivery id, and every answer must be `202`; any other answer fails the benchmark.
//!
//! Besides requests per second and latency, it reports the server's CPU time per request (from
//! `/proc/PID/stat`), which the other processes on a shared machine disturb far less than the wall clock:
//! `1 s / (CPU per request)` is what one uncontended core could serve.
//!
//! With `--store STORE` it measures the `booty` binary instead, storing every job (`memory`; `sqlite` or
//! `sqlite-full`, a fresh database file per run at synchronous `normal` or `full`; or a `postgres://`
//! URL), with `--processes N` processes sharing the store and the connections spread over them; see
//! [`super::fleet`]. Nothing is pinned then (the database needs the cores too; `cargo xtask bench` pins
//! the one-process runs), each run starts fresh processes, and the CPU column is the `booty` processes'
//! (not the database's).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use clap::Args;

use super::fleet::{self, Fleet, Setup};
use super::load::Outcome;
use crate::shell::{self, cargo, project_root};

/// The secret the server verifies with; the server prints the matching signature.
pub(super) const SECRET: &str = "bench secret, not a real one";

/// Options of `cargo xtask bench ingest`.
#[derive(Debug, Args)]
pub(crate) struct IngestArgs {
    /// Connection counts to measure, each in its own runs.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    connections: Vec<usize>,
    /// Runs per connection count; the report gives each run and the median.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of load before each run's measurement starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// The payload: GitHub's `issues.labeled` example (about 12 KB).
    #[arg(
        long,
        default_value = "crates/booty-event/tests/fixtures/issues.labeled.json"
    )]
    payload: PathBuf,
    /// The trigger label, which must be the payload's label for the server to answer 202.
    #[arg(long, default_value = "bug")]
    label: String,
    /// The core the server runs on.
    #[arg(long, default_value_t = 0)]
    server_core: usize,
    /// The core the load generator runs on.
    #[arg(long, default_value_t = 1)]
    load_core: usize,
    /// Measure the `booty` binary with this store (`memory`, `sqlite`, `sqlite-full` or `postgres://...`,
    /// a URL `psql` accepts too) instead of the edge alone.
    #[arg(long)]
    store: Option<String>,
    /// With `--store`: `booty` processes sharing it.
    #[arg(long, default_value_t = 1, requires = "store")]
    processes: usize,
}

pub(crate) fn run(args: &IngestArgs) -> anyhow::Result<()> {
    if let Some(store) = &args.store {
        return run_fleet(args, store);
    }
    let root = project_root();
    let payload = root.join(&args.payload);
    let size = std::fs::metadata(&payload)
        .with_context(|| format!("the payload {} is not readable", payload.display()))?
        .len();
    ensure_taskset()?;
    shell::run(
        "build the server (release)",
        cargo().args([
            "build",
            "--release",
            "-p",
            "booty-edge",
            "--example",
            "ingest_server",
        ]),
    )?;
    shell::run(
        "build the load generator (release)",
        cargo().args(["build", "--release", "-p", "xtask"]),
    )?;
    let release = release_dir();

    let server = Server::start(&release.join("examples/ingest_server"), args, &payload)?;
    println!(
        "bench ingest: {size}-byte payload, server on core {} at {}, load on core {}, {} s per run after {} s warmup",
        args.server_core, server.addr, args.load_core, args.seconds, args.warmup
    );
    let mut report = Vec::new();
    let load = Load {
        xtask: &release.join("xtask"),
        pin: Some(args.load_core),
        signature: &server.signature,
        payload: &payload,
        seconds: args.seconds,
        warmup: args.warmup,
        expect: 202,
    };
    for &connections in &args.connections {
        let mut outcomes = Vec::new();
        for run in 1..=args.runs {
            let cpu_before = server.cpu_seconds()?;
            let outcome = load.run(std::slice::from_ref(&server.addr), connections)?;
            #[expect(
                clippy::cast_precision_loss,
                reason = "request counts are far below 2^52"
            )]
            let cpu_us = (server.cpu_seconds()? - cpu_before) * 1e6 / outcome.total_requests as f64;
            println!(
                "  {connections:>3} connections, run {run}: {}",
                describe(&outcome, cpu_us)
            );
            outcomes.push((outcome, cpu_us));
        }
        report.push((connections, median(&outcomes)));
    }
    server.stop()?;
    print_medians(args.runs, &report);
    Ok(())
}

fn print_medians(runs: usize, report: &[(usize, (Outcome, f64))]) {
    println!("bench ingest: medians of {runs} runs");
    for (connections, (median, cpu_us)) in report {
        println!(
            "  {connections:>3} connections: {}",
            describe(median, *cpu_us)
        );
    }
}

/// `--store`: `booty serve` processes sharing a store, fresh for every run.
fn run_fleet(args: &IngestArgs, store: &str) -> anyhow::Result<()> {
    let root = project_root();
    let payload = root.join(&args.payload);
    let body = std::fs::read(&payload)
        .with_context(|| format!("the payload {} is not readable", payload.display()))?;
    shell::run(
        "build booty (release)",
        cargo().args(["build", "--release", "-p", "booty"]),
    )?;
    shell::run(
        "build the load generator (release)",
        cargo().args(["build", "--release", "-p", "xtask"]),
    )?;
    let release = release_dir();
    let dir = std::env::temp_dir().join(format!("booty-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let setup = Setup {
        server: fleet::Server::Booty(&release.join("booty")),
        store,
        processes: args.processes,
        secret: SECRET,
        label: &args.label,
        dir: &dir,
        pin: None,
        wrapper: &[],
        repo_url: None,
    };
    let signature = booty_signature::sign(SECRET.as_bytes(), &body);
    let load = Load {
        xtask: &release.join("xtask"),
        pin: None,
        signature: &signature,
        payload: &payload,
        seconds: args.seconds,
        warmup: args.warmup,
        expect: 202,
    };
    let shown = if store.starts_with("postgres") {
        "postgres"
    } else {
        store
    };
    println!(
        "bench ingest: booty with store {shown}, {} process(es), {} byte payload, {} s per run after {} s warmup",
        args.processes,
        body.len(),
        args.seconds,
        args.warmup
    );
    let mut report = Vec::new();
    let mut run_number = 0;
    for &connections in &args.connections {
        let measured = measure_fleet(&setup, &load, connections, args.runs, &mut run_number)?;
        report.push((connections, (measured.outcome, measured.cpu_us)));
    }
    std::fs::remove_dir_all(&dir)?;
    print_medians(args.runs, &report);
    Ok(())
}

/// The release directory of this workspace's target directory.
pub(super) fn release_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from)
        .join("release")
}

/// The medians of several runs of one fleet configuration, and the largest peak RSS of any run.
pub(super) struct Measured {
    pub(super) outcome: Outcome,
    /// Server CPU time per request, in microseconds.
    pub(super) cpu_us: f64,
    /// The largest `VmHWM` of a `booty` process over the runs, in KiB.
    pub(super) peak_rss_kib: u64,
}

/// `runs` runs of `load` at `connections` against fresh fleets of `setup`, each printed as it ends;
/// `run_number` counts runs across calls so every run gets a schema (or directory) of its own.
pub(super) fn measure_fleet(
    setup: &Setup<'_>,
    load: &Load<'_>,
    connections: usize,
    runs: usize,
    run_number: &mut usize,
) -> anyhow::Result<Measured> {
    let runs = (1..=runs)
        .map(|run| measure_fleet_run(setup, load, connections, run, run_number))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Measured::of_runs(&runs))
}

/// What one run measured: the load's outcome, the server's CPU per request (µs), its peak RSS (KiB).
pub(super) type Run = (Outcome, f64, u64);

/// Run `run` of `load` at `connections` against a fresh fleet of `setup`, printed as it ends.
pub(super) fn measure_fleet_run(
    setup: &Setup<'_>,
    load: &Load<'_>,
    connections: usize,
    run: usize,
    run_number: &mut usize,
) -> anyhow::Result<Run> {
    let ticks = ticks_per_second()?;
    let cpu = |fleet: &Fleet| -> anyhow::Result<f64> {
        fleet.pids().map(|pid| cpu_seconds(pid, ticks)).sum()
    };
    *run_number += 1;
    let fleet = Fleet::start(setup, *run_number)?;
    let addrs: Vec<String> = fleet.addrs.iter().map(ToString::to_string).collect();
    let cpu_before = cpu(&fleet)?;
    let outcome = load.run(&addrs, connections)?;
    #[expect(
        clippy::cast_precision_loss,
        reason = "request counts are far below 2^52"
    )]
    let cpu_us = (cpu(&fleet)? - cpu_before) * 1e6 / outcome.total_requests as f64;
    let rss = fleet.peak_rss_kib()?;
    fleet.stop()?;
    println!(
        "  {connections:>3} connections, run {run}: {}  peak RSS {:.1} MiB",
        describe(&outcome, cpu_us),
        kib_to_mib(rss)
    );
    Ok((outcome, cpu_us, rss))
}

impl Measured {
    /// The medians of `runs` (at least one), and their largest peak RSS.
    pub(super) fn of_runs(runs: &[Run]) -> Self {
        let outcomes: Vec<(Outcome, f64)> = runs
            .iter()
            .map(|(outcome, cpu_us, _)| (*outcome, *cpu_us))
            .collect();
        let (outcome, cpu_us) = median(&outcomes);
        Self {
            outcome,
            cpu_us,
            peak_rss_kib: runs.iter().map(|(_, _, rss)| *rss).max().unwrap_or(0),
        }
    }
}

/// KiB as MiB, for printing.
pub(super) fn kib_to_mib(kib: u64) -> f64 {
    #[expect(
        clippy::cast_precision_loss,
        reason = "memory sizes are far below 2^52 KiB"
    )]
    let kib = kib as f64;
    kib / 1024.0
}

pub(super) fn ensure_taskset() -> anyhow::Result<()> {
    if !shell::installed("taskset") {
        bail!(
            "taskset (util-linux) is needed to pin the server and the load generator to their cores"
        );
    }
    Ok(())
}

/// `program` run by `wrapper` (a program and its arguments; none when empty), with `taskset` on `core`
/// when one is given.
pub(super) fn wrapped(wrapper: &[String], program: &Path, core: Option<usize>) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut command = pinned(first, core);
            command.args(rest).arg(program);
            command
        }
        None => pinned(program, core),
    }
}

/// `program`, run with `taskset` on `core` when one is given.
pub(super) fn pinned(program: impl AsRef<std::ffi::OsStr>, core: Option<usize>) -> Command {
    match core {
        Some(core) => {
            let mut taskset = Command::new("taskset");
            taskset.arg("-c").arg(core.to_string()).arg(program);
            taskset
        }
        None => Command::new(program),
    }
}

/// The `ingest_server` example, pinned to its core; it stops when its stdin closes.
struct Server {
    child: Child,
    addr: String,
    signature: String,
    /// Clock ticks per second, the unit of `/proc/PID/stat`'s CPU times.
    ticks_per_second: f64,
}

/// Starts the `ingest_server` example at `binary` (pinned to `core` when given) and reads what it prints:
/// the child (which stops when its stdin, kept piped, closes), its address and the payload's signature.
pub(super) fn start_edge(
    binary: &Path,
    secret: &str,
    label: &str,
    payload: &Path,
    core: Option<usize>,
    wrapper: &[String],
) -> anyhow::Result<(Child, String, String)> {
    let mut child = wrapped(wrapper, binary, core)
        .args(["--secret", secret, "--label", label, "--payload"])
        .arg(payload)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let stdout = child
        .stdout
        .take()
        .context("the server's stdout is piped")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut line = |prefix: &str| -> anyhow::Result<String> {
        let line = lines
            .next()
            .with_context(|| format!("the server exited before printing {prefix:?}"))??;
        line.strip_prefix(prefix)
            .map(str::to_owned)
            .with_context(|| format!("expected {prefix:?} from the server, got {line:?}"))
    };
    let addr = line("listening on ")?;
    let signature = line("signature ")?;
    Ok((child, addr, signature))
}

impl Server {
    fn start(binary: &Path, args: &IngestArgs, payload: &Path) -> anyhow::Result<Self> {
        let (child, addr, signature) = start_edge(
            binary,
            SECRET,
            &args.label,
            payload,
            Some(args.server_core),
            &[],
        )?;
        let ticks_per_second = ticks_per_second()?;
        Ok(Self {
            child,
            addr,
            signature,
            ticks_per_second,
        })
    }

    /// User plus system CPU time the server has used so far. `taskset` execs the server, so the child's
    /// pid is the server's.
    fn cpu_seconds(&self) -> anyhow::Result<f64> {
        cpu_seconds(self.child.id(), self.ticks_per_second)
    }

    fn stop(mut self) -> anyhow::Result<()> {
        drop(self.child.stdin.take());
        let status = self.child.wait()?;
        if !status.success() {
            bail!("the server exited with {status}");
        }
        Ok(())
    }
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s CPU times.
fn ticks_per_second() -> anyhow::Result<f64> {
    let ticks = Command::new("getconf").arg("CLK_TCK").output()?;
    String::from_utf8(ticks.stdout)?
        .trim()
        .parse()
        .context("getconf CLK_TCK did not print a number")
}

/// User plus system CPU time process `pid` has used so far.
fn cpu_seconds(pid: u32, ticks_per_second: f64) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // Fields after the command name, which is in parentheses and may contain spaces; utime and
    // stime are fields 14 and 15 of the whole line, so 12 and 13 after the name.
    let after_name = stat
        .rsplit_once(')')
        .context("no command name in /proc stat")?
        .1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields
        .get(11..13)
        .context("short /proc stat line")?
        .iter()
        .map(|field| field.parse::<f64>())
        .sum::<Result<f64, _>>()?;
    Ok(ticks / ticks_per_second)
}

/// How the load generator is run.
pub(super) struct Load<'a> {
    /// The release xtask binary, whose hidden `bench load` is the load generator.
    pub(super) xtask: &'a Path,
    /// The core to pin it to, if any.
    pub(super) pin: Option<usize>,
    pub(super) signature: &'a str,
    pub(super) payload: &'a Path,
    /// Seconds measured per run.
    pub(super) seconds: f64,
    /// Seconds of load before the measurement starts.
    pub(super) warmup: f64,
    /// The status every answer must have.
    pub(super) expect: u16,
}

impl Load<'_> {
    pub(super) fn run(&self, addrs: &[String], connections: usize) -> anyhow::Result<Outcome> {
        let mut command = pinned(self.xtask, self.pin);
        command.args(["bench", "load", "--signature", self.signature]);
        for addr in addrs {
            command.args(["--addr", addr]);
        }
        let output = command
            .arg("--payload")
            .arg(self.payload)
            .args(["--connections", &connections.to_string()])
            .args(["--seconds", &self.seconds.to_string()])
            .args(["--warmup", &self.warmup.to_string()])
            .args(["--expect", &self.expect.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .context("running the load generator")?;
        if !output.status.success() {
            bail!("the load generator failed ({})", output.status);
        }
        let stdout = String::from_utf8(output.stdout)?;
        let line = stdout
            .lines()
            .find(|line| line.starts_with("result "))
            .with_context(|| format!("no result line from the load generator: {stdout:?}"))?;
        let outcome = Outcome::from_line(line)?;
        if outcome.errors > 0 {
            bail!(
                "{} of {} answers were not {} (is the trigger label the payload's label?)",
                outcome.errors,
                outcome.requests,
                self.expect
            );
        }
        Ok(outcome)
    }
}

pub(super) fn describe(outcome: &Outcome, cpu_us: f64) -> String {
    format!(
        "{:>7.0} req/s  p50 {:>7.1} us  p99 {:>7.1} us  max {:>8.1} us  server CPU {:>5.1} us/req ({:.0} req/s per core)",
        outcome.per_second,
        outcome.p50_us,
        outcome.p99_us,
        outcome.max_us,
        cpu_us,
        1e6 / cpu_us
    )
}

/// The median of each measure across runs, taken separately.
fn median(outcomes: &[(Outcome, f64)]) -> (Outcome, f64) {
    let of = |measure: &dyn Fn(&(Outcome, f64)) -> f64| {
        let mut values: Vec<f64> = outcomes.iter().map(measure).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let of_count = |measure: &dyn Fn(&Outcome) -> u64| {
        let mut values: Vec<u64> = outcomes
            .iter()
            .map(|(outcome, _)| measure(outcome))
            .collect();
        values.sort_unstable();
        values[values.len() / 2]
    };
    let median = Outcome {
        requests: of_count(&|outcome| outcome.requests),
        total_requests: of_count(&|outcome| outcome.total_requests),
        errors: outcomes.iter().map(|(outcome, _)| outcome.errors).sum(),
        per_second: of(&|(outcome, _)| outcome.per_second),
        p50_us: of(&|(outcome, _)| outcome.p50_us),
        p99_us: of(&|(outcome, _)| outcome.p99_us),
        max_us: of(&|(outcome, _)| outcome.max_us),
    };
    (median, of(&|(_, cpu_us)| *cpu_us))
}
