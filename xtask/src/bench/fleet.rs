//! `cargo xtask bench ingest --store STORE [--processes N]`: the `booty` binary's accepted path, with N
//! processes sharing one store.
//!
//! Each run starts fresh `booty serve` processes (with PostgreSQL, in a fresh schema that `psql` creates
//! and drops), so no run inherits another's waiting jobs. Every process has one worker, held for the whole
//! run by the first job (its command sleeps), and every delivery is about the same issue, so nothing else
//! runs: what is measured is webhook in, job stored, `202` out, plus what a real fleet does on the side
//! (notifications waking the idle worker of the other process, lease renewals). The processes log at
//! `info`, as deployed, to a pipe that is read and discarded.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

/// How long a process may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The processes of one run, and the schema they share (PostgreSQL).
pub(super) struct Fleet {
    processes: Vec<Child>,
    pub(super) addrs: Vec<SocketAddr>,
    schema: Option<Schema>,
}

/// What serves the deliveries.
#[derive(Clone, Copy, Debug)]
pub(super) enum Server<'a> {
    /// This `booty` binary, as `booty serve` with the setup's store.
    Booty(&'a Path),
    /// `@octokit/webhooks` on Node: the directory holding `server.mjs` and its `node_modules` (see
    /// [`super::octokit`]). No store: the setup's store is ignored and one process is started.
    Octokit(&'a Path),
    /// booty-edge's `ingest_server` example at this path, serving `payload`'s deliveries: the edge alone
    /// (no logging, a sink that decides like booty's and accepts at once), what booty's own layers are
    /// measured against. Or its `floor_server`, which takes the same command line. No store, one process.
    Edge { binary: &'a Path, payload: &'a Path },
}

/// What every process of a fleet is started with.
pub(super) struct Setup<'a> {
    pub(super) server: Server<'a>,
    pub(super) store: &'a str,
    pub(super) processes: usize,
    pub(super) secret: &'a str,
    pub(super) label: &'a str,
    /// A directory for configurations, workspaces and the repository the held job clones.
    pub(super) dir: &'a Path,
    /// The core every process is pinned to with `taskset` (which execs it, so the pid stays booty's).
    pub(super) pin: Option<usize>,
    /// A program and its arguments that run each server (valgrind, for `bench instructions`), exec'ing
    /// it in the same process; empty to run it directly.
    pub(super) wrapper: &'a [String],
    /// The repository jobs clone (`repo_url`), instead of a local one made in `dir`.
    pub(super) repo_url: Option<&'a str>,
}

impl Fleet {
    /// Starts the processes (and the schema); `run` names the schema apart from other runs'.
    pub(super) fn start(setup: &Setup<'_>, run: usize) -> anyhow::Result<Self> {
        let booty = match setup.server {
            Server::Booty(booty) => booty,
            Server::Octokit(dir) => {
                let (child, addr) =
                    super::octokit::start(dir, setup.secret, setup.label, setup.pin)?;
                return Ok(Self {
                    processes: vec![child],
                    addrs: vec![addr],
                    schema: None,
                });
            }
            Server::Edge { binary, payload } => {
                let (child, addr, _) = super::ingest::start_edge(
                    binary,
                    setup.secret,
                    setup.label,
                    payload,
                    setup.pin,
                    setup.wrapper,
                )?;
                return Ok(Self {
                    processes: vec![child],
                    addrs: vec![addr.parse().context("the edge's address")?],
                    schema: None,
                });
            }
        };
        let schema = Schema::for_store(setup.store, run)?;
        let store = schema
            .as_ref()
            .map_or_else(|| setup.store.to_owned(), Schema::store_url);
        let repo = repository(setup.dir)?;
        let mut fleet = Self {
            processes: Vec::new(),
            addrs: Vec::new(),
            schema,
        };
        for index in 0..setup.processes {
            let dir = setup.dir.join(format!("run{run}-process{index}"));
            std::fs::create_dir_all(&dir)?;
            let (child, addr) = start_process(setup, booty, &store, &repo, &dir)?;
            fleet.processes.push(child);
            fleet.addrs.push(addr);
        }
        Ok(fleet)
    }

    /// The process ids, to read their CPU time.
    pub(super) fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.processes.iter().map(Child::id)
    }

    /// The largest peak resident set (`VmHWM`, KiB) of the processes so far.
    pub(super) fn peak_rss_kib(&self) -> anyhow::Result<u64> {
        self.pids()
            .map(peak_rss_kib)
            .try_fold(0, |peak, rss| Ok(peak.max(rss?)))
    }

    /// Stops every process, waits for them, and drops the schema. A process started with its stdin
    /// piped (the edge's example) stops when it closes; the others get SIGTERM.
    pub(super) fn stop(mut self) -> anyhow::Result<()> {
        for child in &mut self.processes {
            if let Some(stdin) = child.stdin.take() {
                drop(stdin);
                continue;
            }
            let status = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status()?;
            if !status.success() {
                bail!("could not signal server process {}", child.id());
            }
        }
        for mut child in std::mem::take(&mut self.processes) {
            let status = child.wait()?;
            if !status.success() {
                bail!("server process {} exited with {status}", child.id());
            }
        }
        if let Some(schema) = self.schema.take() {
            schema.drop_it()?;
        }
        Ok(())
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(schema) = self.schema.take() {
            let _ = schema.drop_it();
        }
    }
}

/// A schema of the run's own in the PostgreSQL database named by the store URL.
struct Schema {
    /// The URL as given, which `psql` understands too.
    url: String,
    name: String,
}

impl Schema {
    fn for_store(store: &str, run: usize) -> anyhow::Result<Option<Self>> {
        if !(store.starts_with("postgres://") || store.starts_with("postgresql://")) {
            return Ok(None);
        }
        let schema = Self {
            url: store.to_owned(),
            name: format!("booty_bench_{}_{run}", std::process::id()),
        };
        schema.psql(&format!(
            "DROP SCHEMA IF EXISTS {0} CASCADE; CREATE SCHEMA {0}",
            schema.name
        ))?;
        Ok(Some(schema))
    }

    fn store_url(&self) -> String {
        let separator = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{separator}options[search_path]={}", self.url, self.name)
    }

    fn psql(&self, sql: &str) -> anyhow::Result<()> {
        let output = Command::new("psql")
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url,
                "-c",
                sql,
            ])
            .output()
            .context("running psql (the PostgreSQL client) to prepare the benchmark's schema")?;
        if !output.status.success() {
            bail!(
                "psql failed: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(())
    }

    fn drop_it(self) -> anyhow::Result<()> {
        self.psql(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name))
    }
}

/// A one-commit git repository for the held job to clone (built with the git CLI, as tests do).
pub(crate) fn repository(dir: &Path) -> anyhow::Result<PathBuf> {
    let repo = dir.join("origin");
    if repo.exists() {
        return Ok(repo);
    }
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("README.md"), "bench\n")?;
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "."],
        &["commit", "-q", "-m", "bench"],
    ] {
        let status = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "bench")
            .env("GIT_AUTHOR_EMAIL", "bench@booty.invalid")
            .env("GIT_COMMITTER_NAME", "bench")
            .env("GIT_COMMITTER_EMAIL", "bench@booty.invalid")
            .status()
            .context("running git to make the benchmark's repository")?;
        if !status.success() {
            bail!("git {args:?} failed");
        }
    }
    Ok(repo)
}

/// Starts one `booty serve` and waits for its `listening` line.
fn start_process(
    setup: &Setup<'_>,
    booty: &Path,
    store: &str,
    repo: &Path,
    dir: &Path,
) -> anyhow::Result<(Child, SocketAddr)> {
    let quoted = |text: &str| serde_json::to_string(text).expect("strings serialize");
    // `--store sqlite` (synchronous NORMAL) or `sqlite-full`: a new database file in this run's directory.
    let sqlite = |level: &str| {
        (
            format!("sqlite:{}", dir.join("booty.db").display()),
            level.to_owned(),
        )
    };
    let (store, synchronous) = match store {
        "sqlite" => sqlite("normal"),
        "sqlite-full" => sqlite("full"),
        other => (other.to_owned(), "normal".to_owned()),
    };
    let repo_url = setup
        .repo_url
        .map_or_else(|| repo.display().to_string(), str::to_owned);
    let config = [
        ("webhook_secret", quoted(setup.secret)),
        ("repo_url", quoted(&repo_url)),
        // The local repository stands for the one the fixture's payloads come from.
        (
            "repositories",
            format!("[{}]", quoted(crate::soak::FIXTURE_REPOSITORY)),
        ),
        ("trigger_label", quoted(setup.label)),
        ("store", quoted(&store)),
        ("sqlite_synchronous", quoted(&synchronous)),
        (
            "workspace_root",
            quoted(&dir.join("workspaces").display().to_string()),
        ),
        ("listen", quoted("127.0.0.1:0")),
        ("admin_listen", quoted("127.0.0.1:0")),
        ("workers", "1".to_owned()),
        ("queue_capacity", "100000000".to_owned()),
        ("job_command", r#"["sleep", "100000"]"#.to_owned()),
        ("shutdown_grace_secs", "0".to_owned()),
    ]
    .map(|(key, value)| format!("{key} = {value}\n"))
    .concat();
    let config_path = dir.join("booty.toml");
    std::fs::write(&config_path, config)?;
    let mut child = super::ingest::wrapped(setup.wrapper, booty, setup.pin)
        .args(["serve", "--config"])
        .arg(&config_path)
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", booty.display()))?;
    let stdout = child.stdout.take().context("booty's stdout is piped")?;
    let (found, listening) = mpsc::channel();
    // Reads the log to its end: the address from the `listening` line, the rest discarded.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if line.contains(r#""message":"listening""#) {
                let _ = found.send(line);
            }
        }
    });
    // Under valgrind, starting takes many times as long.
    let timeout = if setup.wrapper.is_empty() {
        START_TIMEOUT
    } else {
        START_TIMEOUT * 6
    };
    let line = listening
        .recv_timeout(timeout)
        .context("booty did not start listening (is the store reachable?)")?;
    let value: serde_json::Value = serde_json::from_str(&line)?;
    let addr = value["webhook_addr"]
        .as_str()
        .context("no webhook_addr in the listening line")?
        .parse()?;
    Ok((child, addr))
}

/// The peak resident set of process `pid` (`VmHWM` in `/proc/PID/status`), in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    status_kib(pid, "VmHWM")
}

/// A `kB` field of `/proc/PID/status`, such as `VmRSS` or `VmHWM`.
pub(crate) fn status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().strip_suffix("kB")?.trim().parse().ok())
        .with_context(|| format!("no {field} in {path}"))
}
