//! `cargo xtask bench [--quick]`: every benchmark the crates define, plus two whole-system runs, in one
//! report.
//!
//! 1. The crates' criterion benchmarks ([`super::criterion`]), medians read back from criterion's files.
//! 2. Ingest: the release `booty` binary (see [`super::fleet`]) pinned to one core with `taskset`, the load
//!    generator ([`super::load`]) pinned to the other, signed 12 KB `issues.labeled` deliveries with a new
//!    delivery id per request: once with the payload's label as the trigger (every answer `202`, every
//!    delivery a stored job) and once with another trigger label (every answer `200 ignored`), at each
//!    connection count, for each store of `--stores`. Each run starts a fresh process (and store); the
//!    report gives the medians of the runs and the largest peak RSS (`VmHWM`). The runs take turns: the
//!    first run of every configuration, then the second of each, and so on, so a shared machine whose
//!    speed drifts over minutes slows every store alike and the stores' ratios hold.
//!    Beside booty, in the same turns: `@octokit/webhooks` on Node (see [`super::octokit`]) and the edge
//!    alone, booty-edge's `ingest_server` example (no logging, a sink that decides like booty's and
//!    accepts at once), which says what booty's own layers add to the HTTP exchange, the HMAC and the
//!    decode; and the floor, booty-edge's `floor_server` example (a bare hyper server doing the work a
//!    trigger needs and nothing else), which says what this machine allows, so reports from different
//!    machines compare as ratios to it.
//! 3. Clone: `booty-workspace`'s `clone` benchmark (gix against the git CLI over loopback smart HTTP), run
//!    through `cargo bench` and read back from its `result` line.
//!
//! The table goes to the terminal and to `target/bench/report.md` and `report.json`.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::criterion::{self, Target};
use super::fleet::{Server, Setup};
use super::ingest::{self, Load, SECRET};
use super::octokit;
use super::report::{CloneResult, Failure, IngestRow, Machine, Report, load_average};
use crate::shell::{self, cargo, project_root};

/// Options of `cargo xtask bench` without a subcommand.
#[derive(Debug, Args)]
pub(crate) struct AllArgs {
    /// A smoke run (about 3.5 minutes with a warm build): short criterion measurements, one ingest run of
    /// 2 s per configuration, one clone of each kind.
    #[arg(long)]
    quick: bool,
    /// The stores the ingest runs use: `memory`, `sqlite`, or a `postgres://` URL.
    #[arg(long, value_delimiter = ',', default_value = "memory,sqlite")]
    stores: Vec<String>,
    /// Connection counts of the ingest runs.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    connections: Vec<usize>,
    /// Parts to leave out.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<Part>,
    /// Another `booty` binary (say, a release build of `main`) measured in the same runs, taking turns
    /// with this tree's, so the report sets the two side by side on the same machine at the same time.
    #[arg(long, value_name = "PATH")]
    baseline: Option<std::path::PathBuf>,
}

/// The parts of the whole run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    Criterion,
    Ingest,
    /// The `@octokit/webhooks` rows of the ingest part.
    Octokit,
    /// The rows of the edge alone (booty-edge's `ingest_server` example) in the ingest part.
    Edge,
    /// The rows of the floor (booty-edge's `floor_server` example, a bare hyper server doing the same
    /// work) in the ingest part.
    Floor,
    Clone,
}

/// How long each part runs.
struct Plan {
    ingest_runs: usize,
    ingest_seconds: f64,
    ingest_warmup: f64,
    clone_runs: usize,
}

const FULL: Plan = Plan {
    ingest_runs: 3,
    ingest_seconds: 5.0,
    ingest_warmup: 1.0,
    clone_runs: 5,
};

const QUICK: Plan = Plan {
    ingest_runs: 1,
    ingest_seconds: 2.0,
    ingest_warmup: 0.5,
    clone_runs: 1,
};

/// The core `booty` runs on, and the load generator's.
const SERVER_CORE: usize = 0;
const LOAD_CORE: usize = 1;

/// How the report names the edge alone.
const EDGE_ALONE: &str = "booty-edge alone (ingest_server: no logging, no store)";

/// How the report names the floor: the least any server does for these deliveries on this machine.
const FLOOR: &str = "floor (floor_server: bare hyper, HMAC, 4-field decode, in-memory dedupe)";

/// The label of the payload (`issues.labeled.json`), and one that is not it.
const PAYLOAD_LABEL: &str = "bug";
const OTHER_LABEL: &str = "agent:builder";

pub(crate) fn run(args: &AllArgs) -> anyhow::Result<()> {
    let plan = if args.quick { QUICK } else { FULL };
    let mut report = Report {
        mode: if args.quick { "quick" } else { "full" },
        machine: Machine::now(),
        criterion: Vec::new(),
        ingest: Vec::new(),
        ingest_failures: Vec::new(),
        clone: None,
        skipped: args
            .skip
            .iter()
            .map(|part| format!("{part:?}").to_lowercase())
            .collect(),
    };
    let root = project_root();
    let out_dir = ingest::release_dir()
        .parent()
        .context("the release directory has a parent")?
        .to_path_buf();
    if std::env::var_os("BOOTY_TEST_POSTGRES_URL").is_none()
        && !args.skip.contains(&Part::Criterion)
    {
        println!(
            "bench: BOOTY_TEST_POSTGRES_URL is not set, so booty-queue's store_insert measures the memory store only"
        );
    }
    build(args)?;
    let targets = criterion::targets()?;

    if !args.skip.contains(&Part::Criterion) {
        report.criterion = criterion::run(&targets, args.quick, &out_dir.join("criterion"))?;
    }
    if !args.skip.contains(&Part::Ingest) {
        ingest::ensure_taskset()?;
        let payload = root.join("crates/booty-event/tests/fixtures/issues.labeled.json");
        let octokit = if args.skip.contains(&Part::Octokit) {
            None
        } else {
            match octokit::install()? {
                Ok(dir) => Some(dir),
                Err(reason) => {
                    println!("bench: the @octokit/webhooks rows are skipped: {reason}");
                    None
                }
            }
        };
        let edge = ingest::release_dir().join("examples/ingest_server");
        let floor = ingest::release_dir().join("examples/floor_server");
        let servers = Servers {
            booty: &ingest::release_dir().join("booty"),
            baseline: args.baseline.as_deref(),
            octokit: octokit.as_deref(),
            edge: (!args.skip.contains(&Part::Edge)).then_some(edge.as_path()),
            floor: (!args.skip.contains(&Part::Floor)).then_some(floor.as_path()),
            payload: &payload,
        };
        ingest_stores(
            &servers,
            &args.stores,
            &payload,
            &plan,
            &args.connections,
            &mut report,
        )?;
    }
    if !args.skip.contains(&Part::Clone) {
        let target = targets
            .iter()
            .find(|target| target.package == "booty-workspace" && target.name == "clone")
            .context("booty-workspace has no `clone` benchmark")?;
        report.clone = Some(clone(target, plan.clone_runs)?);
    }

    report.machine.load_after = load_average();
    let dir = out_dir.join("bench");
    report.write(&dir)?;
    println!("\n{}", report.markdown());
    println!(
        "bench: wrote {} and report.json",
        dir.join("report.md").display()
    );
    if !report.ingest_failures.is_empty() {
        let stores: Vec<&str> = report
            .ingest_failures
            .iter()
            .map(|failure| failure.store.as_str())
            .collect();
        bail!(
            "the ingest runs of {} failed (see the report; `--stores` chooses the stores, `--skip octokit` leaves Node out)",
            stores.join(", ")
        );
    }
    Ok(())
}

/// Builds in release what the ingest part runs: `booty`, the load generator and, unless their rows are
/// skipped, the edge's `ingest_server` and `floor_server` examples.
fn build(args: &AllArgs) -> anyhow::Result<()> {
    shell::run(
        "build booty and the load generator (release)",
        cargo().args([
            "build",
            "--release",
            "--locked",
            "-p",
            "booty",
            "-p",
            "xtask",
        ]),
    )?;
    let examples: Vec<&str> = [(Part::Edge, "ingest_server"), (Part::Floor, "floor_server")]
        .into_iter()
        .filter(|(part, _)| !args.skip.contains(part))
        .map(|(_, example)| example)
        .collect();
    if !args.skip.contains(&Part::Ingest) && !examples.is_empty() {
        let mut build = cargo();
        build.args(["build", "--release", "--locked", "-p", "booty-edge"]);
        for example in examples {
            build.args(["--example", example]);
        }
        shell::run("build the edge alone and the floor (release)", &mut build)?;
    }
    Ok(())
}

/// A store as the report names it: a PostgreSQL URL is just `postgres`.
fn shown_store(store: &str) -> &str {
    if store.starts_with("postgres") {
        "postgres"
    } else {
        store
    }
}

/// What the ingest part measures: this tree's `booty`, and beside it a baseline `booty`,
/// `@octokit/webhooks`, the edge alone and the floor when there are.
struct Servers<'a> {
    booty: &'a std::path::Path,
    baseline: Option<&'a std::path::Path>,
    octokit: Option<&'a std::path::Path>,
    /// The edge's `ingest_server` example.
    edge: Option<&'a std::path::Path>,
    /// The edge's `floor_server` example.
    floor: Option<&'a std::path::Path>,
    /// The payload the examples sign.
    payload: &'a std::path::Path,
}

/// One ingest configuration: what serves, with which store, the deliveries sent and a connection count.
struct Config<'a> {
    server: Server<'a>,
    /// The server as the report names it.
    name: String,
    store: &'a str,
    event: &'static str,
    label: &'static str,
    status: u16,
    connections: usize,
}

impl<'a> Config<'a> {
    /// Every configuration, in the report's order: each store with this tree's `booty` (and the
    /// baseline's right after it), then the servers with no store: `@octokit/webhooks`, the edge alone,
    /// the floor.
    fn all(servers: &Servers<'a>, stores: &'a [String], connections: &[usize]) -> Vec<Self> {
        let mut booties = vec![(Server::Booty(servers.booty), "booty".to_owned())];
        if let Some(baseline) = servers.baseline {
            booties.push((
                Server::Booty(baseline),
                format!("booty baseline ({})", baseline.display()),
            ));
        }
        let mut served: Vec<(Server<'a>, String, &'a str)> = Vec::new();
        for store in stores {
            for (server, name) in &booties {
                served.push((*server, name.clone(), store));
            }
        }
        if let Some(dir) = servers.octokit {
            served.push((Server::Octokit(dir), octokit::describe(dir), "none"));
        }
        // Both examples take the same command line: the fleet starts either as `Server::Edge`.
        for (binary, name) in [(servers.edge, EDGE_ALONE), (servers.floor, FLOOR)] {
            if let Some(binary) = binary {
                let payload = servers.payload;
                served.push((Server::Edge { binary, payload }, name.to_owned(), "none"));
            }
        }
        let mut configs = Vec::new();
        for (server, name, store) in served {
            for (event, label, status) in [
                ("trigger", PAYLOAD_LABEL, 202),
                ("ignored", OTHER_LABEL, 200),
            ] {
                for &connections in connections {
                    configs.push(Config {
                        server,
                        name: name.clone(),
                        store,
                        event,
                        label,
                        status,
                        connections,
                    });
                }
            }
        }
        configs
    }

    /// The key a failed run is remembered under: the server and its store.
    fn failure_key(&self) -> String {
        format!("{} / {}", self.name, shown_store(self.store))
    }
}

/// Every ingest configuration of every store, their runs taking turns (see the module documentation),
/// appended to the report; a server and store whose run fails is reported as failed and not run again.
fn ingest_stores(
    servers: &Servers<'_>,
    stores: &[String],
    payload: &std::path::Path,
    plan: &Plan,
    connections: &[usize],
    report: &mut Report,
) -> anyhow::Result<()> {
    let release = ingest::release_dir();
    let body = std::fs::read(payload)
        .with_context(|| format!("the payload {} is not readable", payload.display()))?;
    let signature = booty_signature::sign(SECRET.as_bytes(), &body);
    let xtask = release.join("xtask");
    let dir = std::env::temp_dir().join(format!("booty-bench-{}", std::process::id()));
    let configs = Config::all(servers, stores, connections);
    let mut runs: Vec<Vec<ingest::Run>> = configs.iter().map(|_| Vec::new()).collect();
    let mut run_number = 0;
    for run in 1..=plan.ingest_runs {
        for (config, runs) in configs.iter().zip(&mut runs) {
            let store = shown_store(config.store);
            let key = config.failure_key();
            if report.failed(&key) {
                continue;
            }
            // A directory per store, so the runs of one store never see another's files.
            let dir = dir.join(store);
            std::fs::create_dir_all(&dir)?;
            let setup = Setup {
                server: config.server,
                store: config.store,
                processes: 1,
                secret: SECRET,
                label: config.label,
                dir: &dir,
                pin: Some(SERVER_CORE),
                wrapper: &[],
                repo_url: None,
            };
            let load = Load {
                xtask: &xtask,
                pin: Some(LOAD_CORE),
                signature: &signature,
                payload,
                seconds: plan.ingest_seconds,
                warmup: plan.ingest_warmup,
                expect: config.status,
            };
            println!(
                "bench ingest: {}, {store} store, {} deliveries (answered {}), server on core {SERVER_CORE}, load on core {LOAD_CORE}",
                config.name, config.event, config.status
            );
            match ingest::measure_fleet_run(&setup, &load, config.connections, run, &mut run_number)
            {
                Ok(measured) => runs.push(measured),
                Err(err) => {
                    eprintln!("bench: {key} was not measured: {err:#}");
                    report.ingest_failures.push(Failure {
                        store: key,
                        error: format!("{err:#}"),
                    });
                }
            }
        }
    }
    for (config, runs) in configs.iter().zip(&runs) {
        if runs.is_empty() || report.failed(&config.failure_key()) {
            continue;
        }
        let measured = ingest::Measured::of_runs(runs);
        report.ingest.push(IngestRow {
            server: config.name.clone(),
            store: shown_store(config.store).to_owned(),
            event: config.event,
            status: config.status,
            connections: config.connections,
            runs: runs.len(),
            requests_per_second: measured.outcome.per_second,
            p50_us: measured.outcome.p50_us,
            p99_us: measured.outcome.p99_us,
            max_us: measured.outcome.max_us,
            cpu_us_per_request: measured.cpu_us,
            peak_rss_kib: measured.peak_rss_kib,
        });
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    Ok(())
}

/// Runs the clone benchmark, echoing its output, and reads its `result` line.
fn clone(target: &Target, runs: usize) -> anyhow::Result<CloneResult> {
    let mut command = target.cargo_bench();
    let mut child = command
        .args(["--runs", &runs.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .context("starting the clone benchmark")?;
    let stdout = child.stdout.take().context("the bench's stdout is piped")?;
    let mut result = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        if line.starts_with("result ") {
            result = Some(line);
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("the clone benchmark failed ({status})");
    }
    let line = result.context("the clone benchmark printed no result line")?;
    parse_clone(&line)
}

fn parse_clone(line: &str) -> anyhow::Result<CloneResult> {
    let field = |name: &str| -> anyhow::Result<&str> {
        line.split(' ')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
            .with_context(|| format!("no {name} in the clone result {line:?}"))
    };
    let number = |name: &str| -> anyhow::Result<u64> {
        field(name)?
            .parse()
            .with_context(|| format!("{name} is not a whole number in {line:?}"))
    };
    let seconds = |name: &str| -> anyhow::Result<f64> {
        field(name)?
            .parse()
            .with_context(|| format!("{name} is not a number in {line:?}"))
    };
    Ok(CloneResult {
        runs: number("runs")?,
        files: number("files")?,
        commits: number("commits")?,
        pack_kib: number("pack_kib")?,
        gix_seconds: seconds("gix_seconds")?,
        gix_rss_kib: number("gix_rss_kib")?,
        git_seconds: seconds("git_seconds")?,
        git_rss_kib: number("git_rss_kib")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clone_result_line_is_read_back() {
        let result = parse_clone(
            "result runs=5 files=20000 commits=2000 pack_kib=102400 gix_seconds=3.210 \
             gix_rss_kib=123456 git_seconds=2.500 git_rss_kib=65432",
        )
        .unwrap();
        assert_eq!(result.runs, 5);
        assert_eq!(result.files, 20_000);
        assert_eq!(result.pack_kib, 102_400);
        assert!((result.gix_seconds - 3.21).abs() < 1e-9);
        assert_eq!(result.git_rss_kib, 65_432);
        assert!(parse_clone("result runs=5").is_err());
    }
}
