//! `cargo xtask bench instructions`: the user-space instructions each delivery costs, counted by
//! valgrind's callgrind, which gives the same count however busy the machine is.
//!
//! The servers are the ones `cargo xtask bench` times (the `booty` binary with each store, a baseline
//! binary, the floor), started the same way but under `valgrind --tool=callgrind --instr-atstart=no`,
//! pinned to one core, with the load generator on the other; booty's one worker is held by a clone that
//! waits on a server that never answers, where `cargo xtask bench` holds it with a sleeping command. After a warm-up, counting is switched on
//! (`callgrind_control -i on`) for the measured load and off after it; the server is then stopped, and the
//! count callgrind writes at exit is divided by the requests answered. What it cannot see: the kernel
//! (system calls, page faults, waking the load generator), and the CPU itself. valgrind runs ring's
//! SHA-256 on its AVX path where the machine may have SHA-NI, so the HMAC weighs more here than in time.
//! So it compares code, side by side (a change against its baseline, booty against the floor), not
//! machines; the timed rows of `cargo xtask bench` stay the measure of speed.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};

use super::fleet::{Fleet, Server, Setup};
use super::ingest::{self, Load, SECRET};
use super::report::thousands;
use crate::shell::{self, cargo, project_root};

/// The cores the server and the load generator are pinned to.
const SERVER_CORE: usize = 0;
const LOAD_CORE: usize = 1;

/// The label of the payload (`issues.labeled.json`), and one that is not it.
const PAYLOAD_LABEL: &str = "bug";
const OTHER_LABEL: &str = "agent:builder";

/// Options of `cargo xtask bench instructions`.
#[derive(Debug, Args)]
pub(crate) struct InstructionsArgs {
    /// The stores `booty` is counted with (`memory`, `sqlite`, `sqlite-full`).
    #[arg(long, value_delimiter = ',', default_value = "memory,sqlite")]
    stores: Vec<String>,
    /// The deliveries: `ignored` (answered 200) and `trigger` (202, a job stored).
    #[arg(long, value_delimiter = ',', default_value = "ignored,trigger")]
    kinds: Vec<Kind>,
    /// Another `booty` binary (a release build of `main`, say), counted the same way after this tree's.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Leave out the floor (booty-edge's `floor_server` example).
    #[arg(long)]
    no_floor: bool,
    /// Seconds of load counted (under valgrind a server answers some hundreds of requests a second).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Seconds of load before counting starts.
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Concurrent connections of the load generator.
    #[arg(long, default_value_t = 4)]
    connections: usize,
}

/// A kind of delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Ignored,
    Trigger,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Ignored => "ignored",
            Self::Trigger => "trigger",
        }
    }

    /// The trigger label the server is given, and the status every answer must have.
    fn label_and_status(self) -> (&'static str, u16) {
        match self {
            Self::Ignored => (OTHER_LABEL, 200),
            Self::Trigger => (PAYLOAD_LABEL, 202),
        }
    }
}

/// One counted configuration: instructions per request and the requests they are divided by.
struct Counted {
    name: String,
    kind: Kind,
    per_request: f64,
    requests: u64,
}

pub(crate) fn run(args: &InstructionsArgs) -> anyhow::Result<()> {
    ingest::ensure_taskset()?;
    ensure_valgrind()?;
    shell::run(
        "build booty, the load generator and the floor (release)",
        cargo().args([
            "build",
            "--release",
            "--locked",
            "-p",
            "booty",
            "-p",
            "xtask",
            "-p",
            "booty-edge",
            "--example",
            "floor_server",
        ]),
    )?;
    let release = ingest::release_dir();
    let payload = project_root().join("crates/booty-event/tests/fixtures/issues.labeled.json");
    let body = std::fs::read(&payload)
        .with_context(|| format!("the payload {} is not readable", payload.display()))?;
    let signature = booty_signature::sign(SECRET.as_bytes(), &body);
    let dir = std::env::temp_dir().join(format!("booty-bench-instructions-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let floor = release.join("examples/floor_server");
    let booty = release.join("booty");
    let xtask = release.join("xtask");

    let mut servers: Vec<(String, Server<'_>, Option<&str>)> = Vec::new();
    if !args.no_floor {
        let edge = Server::Edge {
            binary: &floor,
            payload: &payload,
        };
        servers.push(("floor".to_owned(), edge, None));
    }
    for store in &args.stores {
        servers.push((
            format!("booty, {store}"),
            Server::Booty(&booty),
            Some(store),
        ));
        if let Some(baseline) = &args.baseline {
            let name = format!("baseline ({}), {store}", baseline.display());
            servers.push((name, Server::Booty(baseline), Some(store)));
        }
    }
    println!(
        "bench instructions: {} s counted after {} s of warm-up, {} connections, server on core {SERVER_CORE}, load on core {LOAD_CORE}",
        args.seconds, args.warmup, args.connections
    );
    let silent = silent_server()?;
    let mut counted = Vec::new();
    for &kind in &args.kinds {
        for (run, (name, server, store)) in servers.iter().enumerate() {
            let plan = Plan {
                server: *server,
                store: store.unwrap_or("memory"),
                kind,
                dir: &dir,
                run,
                silent,
            };
            let (per_request, requests) = count(&plan, args, &xtask, &signature, &payload)?;
            println!(
                "  {name}, {}: {} instructions per request ({requests} requests)",
                kind.name(),
                thousands(per_request),
            );
            counted.push(Counted {
                name: name.clone(),
                kind,
                per_request,
                requests,
            });
        }
    }
    std::fs::remove_dir_all(&dir)?;
    print!("{}", table(&counted));
    Ok(())
}

/// One server, store and kind of delivery to count.
struct Plan<'a> {
    server: Server<'a>,
    store: &'a str,
    kind: Kind,
    /// Where the server's files and callgrind's output go.
    dir: &'a Path,
    /// This count's number, which names its files apart.
    run: usize,
    /// A server that never answers, for the first job's clone to wait on (see [`silent_server`]).
    silent: SocketAddr,
}

/// Counts `plan` under the load `args` describe: the instructions per request, and the requests.
fn count(
    plan: &Plan<'_>,
    args: &InstructionsArgs,
    xtask: &Path,
    signature: &str,
    payload: &Path,
) -> anyhow::Result<(f64, u64)> {
    let (label, expect) = plan.kind.label_and_status();
    let out = plan
        .dir
        .join(format!("callgrind.{}.{}", plan.kind.name(), plan.run));
    let wrapper = valgrind(&out);
    let silent = format!("http://{}/held.git", plan.silent);
    let setup = Setup {
        server: plan.server,
        store: plan.store,
        processes: 1,
        secret: SECRET,
        label,
        dir: plan.dir,
        pin: Some(SERVER_CORE),
        wrapper: &wrapper,
        repo_url: Some(&silent),
    };
    let load = |seconds: f64| Load {
        xtask,
        pin: Some(LOAD_CORE),
        signature,
        payload,
        seconds,
        warmup: 0.0,
        expect,
    };
    let fleet = Fleet::start(&setup, plan.run)?;
    let addrs: Vec<String> = fleet.addrs.iter().map(ToString::to_string).collect();
    let pid = fleet.pids().next().context("no server was started")?;
    load(args.warmup).run(&addrs, args.connections)?;
    counting(pid, true)?;
    let outcome = load(args.seconds).run(&addrs, args.connections)?;
    counting(pid, false)?;
    fleet.stop()?;
    let output = std::fs::read_to_string(&out)
        .with_context(|| format!("callgrind wrote no output to {}", out.display()))?;
    let total = total_instructions(&output)?;
    #[expect(
        clippy::cast_precision_loss,
        reason = "instruction and request counts are far below 2^52"
    )]
    let per_request = total as f64 / outcome.total_requests as f64;
    Ok((per_request, outcome.total_requests))
}

/// A server on loopback that accepts connections and never answers. The first job's clone waits on it
/// (up to `clone_timeout_secs`, 5 minutes), which holds the one worker as `cargo xtask bench`'s sleeping
/// job command does: under valgrind no command can run, because booty runs each under itself
/// (`/proc/self/exe`), and that is valgrind's tool there. Its thread ends with the process.
fn silent_server() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the silent server")?;
    let addr = listener.local_addr()?;
    std::thread::spawn(move || {
        let held: Vec<_> = listener.incoming().map_while(Result::ok).collect();
        drop(held);
    });
    Ok(addr)
}

/// The valgrind command line that counts into `out`, counting off until switched on.
fn valgrind(out: &Path) -> Vec<String> {
    vec![
        "valgrind".to_owned(),
        "--quiet".to_owned(),
        "--tool=callgrind".to_owned(),
        "--instr-atstart=no".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

fn ensure_valgrind() -> anyhow::Result<()> {
    for program in ["valgrind", "callgrind_control"] {
        if !shell::installed(program) {
            bail!("{program} is needed to count instructions (Debian package `valgrind`)");
        }
    }
    Ok(())
}

/// Switches callgrind's counting in process `pid` on or off.
fn counting(pid: u32, on: bool) -> anyhow::Result<()> {
    let output = Command::new("callgrind_control")
        .args(["-i", if on { "on" } else { "off" }, &pid.to_string()])
        .output()
        .context("running callgrind_control")?;
    if !output.status.success() {
        bail!(
            "callgrind_control could not switch counting in process {pid} ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The instructions a callgrind output file counts: its `totals:` line (`summary:` in older files).
fn total_instructions(output: &str) -> anyhow::Result<u64> {
    let line = output
        .lines()
        .rev()
        .find_map(|line| {
            line.strip_prefix("totals:")
                .or_else(|| line.strip_prefix("summary:"))
        })
        .context("the callgrind output has no totals line")?;
    let first = line
        .split_whitespace()
        .next()
        .context("the callgrind totals line is empty")?;
    first
        .parse()
        .with_context(|| format!("the callgrind totals line does not start with a count: {line:?}"))
}

/// The counts as a Markdown table, each beside the floor's for the same kind.
fn table(counted: &[Counted]) -> String {
    let mut table = String::from(
        "\n| server | delivery | instructions per request | requests | ratio to the floor |\n|---|---|---|---|---|\n",
    );
    for row in counted {
        let floor = counted
            .iter()
            .find(|floor| floor.kind == row.kind && floor.name == "floor");
        let ratio = floor.map_or_else(String::new, |floor| {
            format!("{:.2}×", row.per_request / floor.per_request)
        });
        let _ = writeln!(
            table,
            "| {} | {} | {} | {} | {ratio} |",
            row.name,
            row.kind.name(),
            thousands(row.per_request),
            row.requests
        );
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_line_is_the_count() {
        let output = "version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 1200\n\nfn=(1) main\n5 1200\n\ntotals: 1234567\n";
        assert_eq!(total_instructions(output).unwrap(), 1_234_567);
        assert_eq!(total_instructions("events: Ir\nsummary: 42\n").unwrap(), 42);
        let err = total_instructions("events: Ir\n").unwrap_err();
        assert_eq!(err.to_string(), "the callgrind output has no totals line");
        let err = total_instructions("totals: many\n").unwrap_err();
        assert!(err.to_string().contains("\" many\""), "{err}");
    }

    #[test]
    fn counts_read_beside_the_floor() {
        let row = |name: &str, kind, per_request| Counted {
            name: name.to_owned(),
            kind,
            per_request,
            requests: 10,
        };
        let table = table(&[
            row("floor", Kind::Ignored, 500_000.0),
            row("booty, memory", Kind::Ignored, 550_000.0),
            row("booty, memory", Kind::Trigger, 700_000.0),
        ]);
        assert!(
            table.contains("| booty, memory | ignored | 550,000 | 10 | 1.10× |"),
            "{table}"
        );
        assert!(
            table.contains("| booty, memory | trigger | 700,000 | 10 |  |"),
            "{table}"
        );
    }
}
