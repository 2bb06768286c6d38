//! `cargo xtask soak [--minutes N] [--store STORE]`: the release `booty` binary under mixed traffic for a
//! while, then checks that nothing was lost, run twice or left behind.
//!
//! The binary runs with a job command (`/bin/sh job.sh`, which appends `$BOOTY_JOB_ID` to a file outside
//! the workspace) and a local repository, so every accepted job really clones and runs. Traffic, each
//! request on its own connection:
//!
//! - triggers: signed `issues.labeled` deliveries with the trigger label, a new delivery id each, spread
//!   over 50 issues (`--rate` per second), answered `202`;
//! - in turn, ten times a second: a duplicate of an accepted delivery (`200 already_processed`), a label
//!   that is not the trigger (`200 ignored`), no signature (`401`), a wrong signature (`403`), a body
//!   announced larger than `max_body_bytes` (`413`) and one streamed past it (`413`, or the connection
//!   reset once the answer is sent), malformed JSON (`400`) and no `X-GitHub-Event` (`400`);
//! - four slow clients that send part of a request head and stall, which the server must drop at its
//!   header timeout (10 s).
//!
//! The first fifth of the run is warm-up. Then traffic pauses until every accepted job has finished and
//! the file descriptor count of the process is steady (the baseline), and runs again for the rest. At the
//! end, after the same idling, it checks: every accepted job ran exactly once (the job command's file) and
//! succeeded exactly once (the log), the newest jobs `GET /jobs` lists are all `succeeded`, every answer
//! was the expected one, every slow client was dropped, the resident set did not grow by more than
//! `--max-rss-growth` percent between the minute after warm-up and the last minute (`VmRSS` sampled every
//! 2 s), no file descriptor more than the baseline is open, no workspace directory is left, and the
//! process exits cleanly on SIGTERM. The figures are printed either way.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;

use crate::bench::fleet::{repository, status_kib};
use crate::shell::{self, cargo, project_root};

/// Options of `cargo xtask soak`.
#[derive(Debug, Args)]
pub(crate) struct SoakArgs {
    /// Minutes of traffic, warm-up included.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// `memory`, `sqlite` (a new file in the run's directory), or a store as booty's `store` key takes it.
    #[arg(long, default_value = "memory")]
    store: String,
    /// Trigger deliveries per second.
    #[arg(long, default_value_t = 10)]
    rate: u32,
    /// Growth of the resident set, in percent of the minute after warm-up, that fails the soak.
    #[arg(long, default_value_t = 50.0)]
    max_rss_growth: f64,
}

/// The repository `issues.labeled.json` (the payload the soak and the bench send) comes from.
pub(crate) const FIXTURE_REPOSITORY: &str = "Codertocat/Hello-World";
const SECRET: &str = "soak secret, not a real one";
const TRIGGER: &str = "agent:builder";
/// Kept small so the oversized bodies are cheap to send.
const MAX_BODY_BYTES: usize = 64 * 1024;
const ISSUES: u64 = 50;
const SLOW_CLIENTS: usize = 4;
/// How long a client waits for an answer before calling it a failure.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the process may take to finish every job and close its connections when traffic stops.
const IDLE_TIMEOUT: Duration = Duration::from_mins(2);
const RSS_EVERY: Duration = Duration::from_secs(2);

pub(crate) fn run(args: &SoakArgs) -> anyhow::Result<()> {
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let warmup = total / 5;
    // The windows compared for RSS: the minute after warm-up and the last minute (shorter for short runs).
    let window = Duration::from_mins(1).min(total / 5);
    shell::run(
        "build booty (release)",
        cargo().args(["build", "--release", "--locked", "-p", "booty"]),
    )?;
    let root = project_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let booty_bin = target.join("release/booty");
    let dir = target.join("soak");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let fixture = std::fs::read_to_string(
        root.join("crates/booty-event/tests/fixtures/issues.labeled.json"),
    )?;
    let traffic = Traffic::new(&fixture)?;
    let booty = Booty::start(&booty_bin, &dir, &args.store)?;
    println!(
        "soak: booty (store {}) pid {} at {}, {:.1} min of traffic ({} triggers/s), warm-up {} s",
        args.store,
        booty.pid(),
        booty.webhook,
        args.minutes,
        args.rate,
        warmup.as_secs()
    );

    let started = Instant::now();
    let fds_at_start = fd_count(booty.pid())?;
    let sampling = AtomicBool::new(true);
    let (rss, tally) = std::thread::scope(|scope| -> anyhow::Result<_> {
        let sampler = scope.spawn(|| sample_rss(booty.pid(), started, &sampling));
        let run = || -> anyhow::Result<(Tally, usize)> {
            let mut tally = Tally::default();
            traffic.run(&booty, args.rate, warmup, &mut tally)?;
            booty.wait_idle(tally.accepted.len())?;
            let baseline = fd_count(booty.pid())?;
            println!(
                "soak: warm-up done at {:.0} s: {} jobs accepted, {baseline} file descriptors when idle",
                started.elapsed().as_secs_f64(),
                tally.accepted.len()
            );
            traffic.run(&booty, args.rate, total.saturating_sub(warmup), &mut tally)?;
            Ok((tally, baseline))
        };
        let result = run();
        sampling.store(false, Ordering::Relaxed);
        let rss = sampler.join().expect("the RSS sampler does not panic")?;
        Ok((rss, result?))
    })?;
    let (tally, fds_baseline) = tally;
    let traffic_end = started.elapsed();
    booty.wait_idle(tally.accepted.len())?;
    let fds = [fds_at_start, fds_baseline, fd_count(booty.pid())?];
    println!(
        "soak: {:.1} min, results:",
        traffic_end.as_secs_f64() / 60.0
    );
    let rss_windows = (warmup, window, traffic_end);
    let failures = check(args, &dir, booty, &tally, &rss, rss_windows, fds)?;
    if !failures.is_empty() {
        bail!("the soak failed {} check(s)", failures.len());
    }
    println!("soak: every check passed");
    Ok(())
}

/// Checks and prints the figures; returns the checks that failed. Stops `booty`.
fn check(
    args: &SoakArgs,
    dir: &Path,
    booty: Booty,
    tally: &Tally,
    rss: &[(Duration, u64)],
    (warmup, window, traffic_end): (Duration, Duration, Duration),
    [fds_at_start, fds_baseline, fds_end]: [usize; 3],
) -> anyhow::Result<Vec<String>> {
    let mut failures = Vec::new();
    let mut check = |ok: bool, what: String| {
        println!("  [{}] {what}", if ok { "ok" } else { "FAIL" });
        if !ok {
            failures.push(what);
        }
    };
    for (kind, counts) in &tally.kinds {
        let unexpected = counts.unexpected;
        check(
            unexpected == 0,
            format!(
                "{kind}: {} sent, {} as expected{}{}",
                counts.sent,
                counts.sent - unexpected,
                counts
                    .note
                    .as_ref()
                    .map_or_else(String::new, |note| format!(", {note}")),
                counts
                    .first_unexpected
                    .as_ref()
                    .map_or_else(String::new, |first| format!("; first unexpected: {first}"))
            ),
        );
    }
    // Every accepted job ran exactly once, and nothing else ran.
    let ran = std::fs::read_to_string(dir.join("jobs-run.txt")).unwrap_or_default();
    let mut runs: HashMap<&str, usize> = HashMap::new();
    for line in ran.lines() {
        *runs.entry(line).or_default() += 1;
    }
    let accepted_once = tally
        .accepted
        .iter()
        .filter(|id| runs.get(id.as_str()) == Some(&1))
        .count();
    let unknown_runs = runs
        .keys()
        .filter(|id| !tally.accepted.iter().any(|accepted| accepted == *id))
        .count();
    check(
        accepted_once == tally.accepted.len() && unknown_runs == 0 && !tally.accepted.is_empty(),
        format!(
            "{} jobs accepted, {accepted_once} ran exactly once (job command's file), {unknown_runs} runs of jobs never accepted",
            tally.accepted.len()
        ),
    );
    let finished = booty.finished();
    let succeeded_once = tally
        .accepted
        .iter()
        .filter(|id| finished.get(id.as_str()) == Some(&(1, 0)))
        .count();
    let failed: usize = finished.values().map(|(_, failed)| failed).sum();
    check(
        succeeded_once == tally.accepted.len() && failed == 0,
        format!("{succeeded_once} jobs logged job_succeeded exactly once, {failed} job_failed"),
    );
    let listed = booty.listed_states()?;
    let not_succeeded: Vec<&String> = listed.iter().filter(|s| *s != "succeeded").collect();
    check(
        not_succeeded.is_empty() && !listed.is_empty(),
        format!(
            "GET /jobs?limit=500: {} newest jobs listed, {} not succeeded {not_succeeded:?}",
            listed.len(),
            not_succeeded.len()
        ),
    );
    let (ok, what) = rss_check(args.max_rss_growth, rss, (warmup, window, traffic_end));
    check(ok, what);
    check(
        fds_end <= fds_baseline,
        format!(
            "file descriptors: {fds_at_start} at start, {fds_baseline} idle after warm-up, {fds_end} idle at the end"
        ),
    );
    let left = entries(&dir.join("workspaces"));
    check(
        left.is_empty(),
        format!("workspace directories left: {} {left:?}", left.len()),
    );
    let status = booty.stop()?;
    check(
        status.success(),
        format!("booty exited with {status} on SIGTERM"),
    );
    Ok(failures)
}

/// Whether the resident set stayed within `max_growth` percent, and the figures; prints the median of
/// each minute.
fn rss_check(
    max_growth: f64,
    rss: &[(Duration, u64)],
    (warmup, window, traffic_end): (Duration, Duration, Duration),
) -> (bool, String) {
    let (early, late, growth) = rss_growth(rss, warmup, window, traffic_end);
    println!(
        "  RSS by minute (median KiB): {}",
        per_minute(rss).join(", ")
    );
    (
        growth <= max_growth,
        format!(
            "RSS: median {early} KiB in the {} s after warm-up, {late} KiB in the last {} s ({growth:+.1}%, limit +{max_growth}%); {} samples, peak {} KiB",
            window.as_secs(),
            window.as_secs(),
            rss.len(),
            rss.iter().map(|(_, kib)| *kib).max().unwrap_or(0)
        ),
    )
}

/// The median of each minute's samples.
fn per_minute(samples: &[(Duration, u64)]) -> Vec<String> {
    let mut minutes: Vec<Vec<u64>> = Vec::new();
    for (at, kib) in samples {
        let minute = usize::try_from(at.as_secs() / 60).unwrap_or(usize::MAX);
        if minutes.len() <= minute {
            minutes.resize(minute + 1, Vec::new());
        }
        minutes[minute].push(*kib);
    }
    minutes
        .into_iter()
        .filter(|values| !values.is_empty())
        .map(|mut values| {
            values.sort_unstable();
            values[values.len() / 2].to_string()
        })
        .collect()
}

/// The names in directory `dir` (none if it is missing).
fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Medians of the two windows and the growth in percent.
fn rss_growth(
    samples: &[(Duration, u64)],
    warmup: Duration,
    window: Duration,
    end: Duration,
) -> (u64, u64, f64) {
    let median = |from: Duration, to: Duration| {
        let mut values: Vec<u64> = samples
            .iter()
            .filter(|(at, _)| *at >= from && *at < to)
            .map(|(_, kib)| *kib)
            .collect();
        values.sort_unstable();
        values.get(values.len() / 2).copied().unwrap_or(0)
    };
    let early = median(warmup, warmup + window);
    let late = median(end.saturating_sub(window), end);
    #[expect(
        clippy::cast_precision_loss,
        reason = "memory sizes are far below 2^52 KiB"
    )]
    let growth = if early == 0 {
        0.0
    } else {
        (late as f64 - early as f64) * 100.0 / early as f64
    };
    (early, late, growth)
}

fn sample_rss(
    pid: u32,
    started: Instant,
    sampling: &AtomicBool,
) -> anyhow::Result<Vec<(Duration, u64)>> {
    let mut samples = Vec::new();
    while sampling.load(Ordering::Relaxed) {
        samples.push((started.elapsed(), status_kib(pid, "VmRSS")?));
        std::thread::sleep(RSS_EVERY);
    }
    Ok(samples)
}

fn fd_count(pid: u32) -> anyhow::Result<usize> {
    let path = format!("/proc/{pid}/fd");
    Ok(std::fs::read_dir(&path)
        .with_context(|| format!("listing {path}"))?
        .count())
}

/// The `booty serve` process and what its log says.
struct Booty {
    child: Child,
    webhook: SocketAddr,
    admin: SocketAddr,
    /// Per job id: `job_succeeded` and `job_failed` lines.
    finished: Arc<Mutex<HashMap<String, (usize, usize)>>>,
}

impl Booty {
    fn start(binary: &Path, dir: &Path, store: &str) -> anyhow::Result<Self> {
        let repo = repository(dir)?;
        let script = dir.join("job.sh");
        std::fs::write(
            &script,
            format!(
                "printf '%s\\n' \"$BOOTY_JOB_ID\" >> '{}'\n",
                dir.join("jobs-run.txt").display()
            ),
        )?;
        let store = if store == "sqlite" {
            format!("sqlite:{}", dir.join("booty.db").display())
        } else {
            store.to_owned()
        };
        let quoted = |text: &str| serde_json::to_string(text).expect("strings serialize");
        let workspaces = dir.join("workspaces");
        std::fs::create_dir_all(&workspaces)?;
        let config = [
            ("webhook_secret", quoted(SECRET)),
            ("repo_url", quoted(&repo.display().to_string())),
            // The local repository stands for the one the fixture's payloads come from.
            ("repositories", format!("[{}]", quoted(FIXTURE_REPOSITORY))),
            ("trigger_label", quoted(TRIGGER)),
            ("store", quoted(&store)),
            ("workspace_root", quoted(&workspaces.display().to_string())),
            ("listen", quoted("127.0.0.1:0")),
            ("admin_listen", quoted("127.0.0.1:0")),
            ("workers", "3".to_owned()),
            ("queue_capacity", "1000".to_owned()),
            ("max_body_bytes", MAX_BODY_BYTES.to_string()),
            (
                "job_command",
                format!("[\"/bin/sh\", {}]", quoted(&script.display().to_string())),
            ),
            ("job_timeout_secs", "60".to_owned()),
            ("shutdown_grace_secs", "10".to_owned()),
        ]
        .map(|(key, value)| format!("{key} = {value}\n"))
        .concat();
        let config_path = dir.join("booty.toml");
        std::fs::write(&config_path, config)?;
        let mut child = Command::new(binary)
            .args(["serve", "--config"])
            .arg(&config_path)
            .current_dir(dir)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("booty's stdout is piped")?;
        let finished = Arc::new(Mutex::new(HashMap::new()));
        let (found, listening) = mpsc::channel();
        let tally = Arc::clone(&finished);
        // Reads the log to its end, counting how each job finished.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let message = value["message"].as_str().unwrap_or_default();
                match message {
                    "listening" => {
                        let _ = found.send(value);
                    }
                    "job_succeeded" | "job_failed" => {
                        let job = value["job_id"].as_str().unwrap_or_default().to_owned();
                        let mut tally = tally.lock().expect("the log reader does not panic");
                        let entry: &mut (usize, usize) = tally.entry(job).or_default();
                        if message == "job_succeeded" {
                            entry.0 += 1;
                        } else {
                            entry.1 += 1;
                        }
                    }
                    _ => {}
                }
            }
        });
        let line = listening
            .recv_timeout(Duration::from_secs(30))
            .context("booty did not start listening (its error is above)")?;
        let addr = |key: &str| -> anyhow::Result<SocketAddr> {
            line[key]
                .as_str()
                .with_context(|| format!("no {key} in the listening line"))?
                .parse()
                .with_context(|| format!("{key} is not an address"))
        };
        Ok(Self {
            webhook: addr("webhook_addr")?,
            admin: addr("admin_addr")?,
            child,
            finished,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn finished(&self) -> HashMap<String, (usize, usize)> {
        self.finished
            .lock()
            .expect("the log reader does not panic")
            .clone()
    }

    /// Waits until `accepted` jobs have finished and the descriptor count has held still for 2 s.
    fn wait_idle(&self, accepted: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + IDLE_TIMEOUT;
        let mut last = (usize::MAX, Instant::now());
        loop {
            let done: usize = self
                .finished()
                .values()
                .map(|(succeeded, failed)| succeeded + failed)
                .sum();
            let fds = fd_count(self.pid())?;
            if fds != last.0 {
                last = (fds, Instant::now());
            }
            if done >= accepted && last.1.elapsed() >= Duration::from_secs(2) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "booty did not go idle within {} s: {done} of {accepted} jobs finished, {fds} descriptors",
                    IDLE_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The states of the newest jobs, from the admin API.
    fn listed_states(&self) -> anyhow::Result<Vec<String>> {
        let request = format!(
            "GET /jobs?limit=500 HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\r\n",
            self.admin
        );
        let (status, body) = exchange(self.admin, request.as_bytes())?;
        if status != 200 {
            bail!("GET /jobs answered {status}: {body}");
        }
        let value: serde_json::Value = serde_json::from_str(&body)?;
        Ok(value["jobs"]
            .as_array()
            .context("GET /jobs has no jobs array")?
            .iter()
            .map(|job| job["state"].as_str().unwrap_or("?").to_owned())
            .collect())
    }

    fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        if !status.success() {
            bail!("could not signal booty ({})", self.pid());
        }
        Ok(self.child.wait()?)
    }
}

impl Drop for Booty {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Counts per kind of request.
#[derive(Default)]
struct Tally {
    /// Job ids answered `202`, in order.
    accepted: Vec<String>,
    kinds: Vec<(&'static str, Counts)>,
}

#[derive(Default)]
struct Counts {
    sent: usize,
    unexpected: usize,
    first_unexpected: Option<String>,
    note: Option<String>,
}

impl Tally {
    fn counts(&mut self, kind: &'static str) -> &mut Counts {
        let at = if let Some(at) = self.kinds.iter().position(|(name, _)| *name == kind) {
            at
        } else {
            self.kinds.push((kind, Counts::default()));
            self.kinds.len() - 1
        };
        &mut self.kinds[at].1
    }

    fn record(&mut self, kind: &'static str, ok: bool, what: impl FnOnce() -> String) {
        let counts = self.counts(kind);
        counts.sent += 1;
        if !ok {
            counts.unexpected += 1;
            if counts.first_unexpected.is_none() {
                counts.first_unexpected = Some(what());
            }
        }
    }

    fn merge(&mut self, other: Self) {
        self.accepted.extend(other.accepted);
        for (kind, counts) in other.kinds {
            let mine = self.counts(kind);
            mine.sent += counts.sent;
            mine.unexpected += counts.unexpected;
            if mine.first_unexpected.is_none() {
                mine.first_unexpected = counts.first_unexpected;
            }
            if counts.note.is_some() {
                mine.note = counts.note;
            }
        }
    }
}

/// Whether an answer (status and body) is the one expected.
type Expected = fn(u16, &str) -> bool;

/// The bodies sent, signed once.
struct Traffic {
    /// Per issue number: the trigger body and its signature.
    triggers: Vec<(Vec<u8>, String)>,
    /// The same payload with a label that is not the trigger.
    ignored: (Vec<u8>, String),
    malformed: (Vec<u8>, String),
    /// Distinguishes this soak's delivery ids from earlier runs'.
    nonce: u32,
    sequence: AtomicU64,
}

impl Traffic {
    fn new(fixture: &str) -> anyhow::Result<Self> {
        let payload: serde_json::Value = serde_json::from_str(fixture)?;
        let signed = |body: Vec<u8>| {
            let signature = booty_signature::sign(SECRET.as_bytes(), &body);
            (body, signature)
        };
        let mut triggers = Vec::new();
        for issue in 1..=ISSUES {
            let mut payload = payload.clone();
            payload["label"]["name"] = TRIGGER.into();
            payload["issue"]["number"] = issue.into();
            triggers.push(signed(serde_json::to_vec(&payload)?));
        }
        Ok(Self {
            triggers,
            ignored: signed(fixture.as_bytes().to_vec()),
            malformed: signed(b"{\"action\": \"labeled\", \"issue\": ".to_vec()),
            nonce: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.subsec_nanos()),
            sequence: AtomicU64::new(0),
        })
    }

    fn delivery_id(&self) -> String {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08x}-50a4-4000-8000-{:012x}",
            self.nonce,
            sequence & 0xffff_ffff_ffff
        )
    }

    /// Sends every kind of traffic for `duration`, adding what happened to `tally`.
    fn run(
        &self,
        booty: &Booty,
        rate: u32,
        duration: Duration,
        tally: &mut Tally,
    ) -> anyhow::Result<()> {
        let until = Instant::now() + duration;
        let addr = booty.webhook;
        // Accepted deliveries, for the duplicates to repeat: (delivery id, issue index).
        let recent: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
        let results = std::thread::scope(|scope| {
            let triggers = scope.spawn(|| self.triggers(addr, rate, until, &recent));
            let mixed = scope.spawn(|| self.mixed(addr, until, &recent));
            let slow: Vec<_> = (0..SLOW_CLIENTS)
                .map(|_| scope.spawn(|| slow_clients(addr, until)))
                .collect();
            let mut results = vec![
                triggers.join().expect("the trigger thread does not panic"),
                mixed.join().expect("the mixed thread does not panic"),
            ];
            results.extend(
                slow.into_iter()
                    .map(|slow| slow.join().expect("slow clients do not panic")),
            );
            results
        });
        for result in results {
            tally.merge(result?);
        }
        Ok(())
    }

    fn triggers(
        &self,
        addr: SocketAddr,
        rate: u32,
        until: Instant,
        recent: &Mutex<Vec<(String, usize)>>,
    ) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let every = Duration::from_secs(1) / rate.max(1);
        let mut next = Instant::now();
        let mut index = 0;
        while next < until {
            let issue = index % self.triggers.len();
            index += 1;
            let (body, signature) = &self.triggers[issue];
            let delivery = self.delivery_id();
            let request = post(
                addr,
                &[
                    ("x-github-event", "issues"),
                    ("x-github-delivery", &delivery),
                    ("x-hub-signature-256", signature),
                ],
                body,
            );
            let (status, answer) = exchange(addr, &request)?;
            let job_id = (status == 202)
                .then(|| serde_json::from_str::<serde_json::Value>(&answer).ok())
                .flatten()
                .and_then(|value| value["job_id"].as_str().map(str::to_owned));
            tally.record("trigger (202 accepted)", job_id.is_some(), || {
                format!("{status} {answer}")
            });
            if let Some(job_id) = job_id {
                tally.accepted.push(job_id);
                let mut recent = recent.lock().expect("no thread panics holding it");
                recent.push((delivery, issue));
                let len = recent.len();
                if len > 100 {
                    recent.drain(..len - 100);
                }
            }
            next += every;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        Ok(tally)
    }

    /// One request of each other kind in turn, ten a second, until `until`.
    fn mixed(
        &self,
        addr: SocketAddr,
        until: Instant,
        recent: &Mutex<Vec<(String, usize)>>,
    ) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
        let mut resets = 0;
        let every = Duration::from_millis(100);
        let mut next = Instant::now();
        let mut turn = 0_usize;
        while next < until {
            turn += 1;
            if turn % 8 == 5 {
                let kind = "streamed oversized (413)";
                if let Some((status, answer)) = streamed_oversized(addr, &self.delivery_id())? {
                    tally.record(kind, status == 413, || format!("{status} {answer}"));
                } else {
                    resets += 1;
                    tally.record(kind, true, String::new);
                }
            } else if let Some((kind, request, expected)) = self.request(turn, addr, recent) {
                let (status, answer) = exchange(addr, &request)?;
                tally.record(kind, expected(status, &answer), || {
                    format!("{status} {answer}")
                });
            }
            next += every;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        if resets > 0 {
            tally.counts("streamed oversized (413)").note = Some(format!(
                "{resets} of them reset by the server after its answer instead of read"
            ));
        }
        Ok(tally)
    }

    /// The request of `turn` in [`Self::mixed`], with its kind and what a right answer is; `None` for a
    /// duplicate before any delivery was accepted.
    fn request(
        &self,
        turn: usize,
        addr: SocketAddr,
        recent: &Mutex<Vec<(String, usize)>>,
    ) -> Option<(&'static str, Vec<u8>, Expected)> {
        let delivery = self.delivery_id();
        let (trigger, trigger_signature) = &self.triggers[0];
        let signed = |delivery: &str, signature: &str, body: &[u8]| {
            post(
                addr,
                &[
                    ("x-github-event", "issues"),
                    ("x-github-delivery", delivery),
                    ("x-hub-signature-256", signature),
                ],
                body,
            )
        };
        Some(match turn % 8 {
            0 => {
                let (delivery, issue) = {
                    let recent = recent.lock().expect("no thread panics holding it");
                    recent.get((turn / 8) % recent.len().max(1)).cloned()?
                };
                let (body, signature) = &self.triggers[issue];
                (
                    "duplicate (200 already_processed)",
                    signed(&delivery, signature, body),
                    |status, answer| status == 200 && answer.contains("already_processed"),
                )
            }
            1 => (
                "other label (200 ignored)",
                signed(&delivery, &self.ignored.1, &self.ignored.0),
                |status, answer| status == 200 && answer.contains("ignored"),
            ),
            2 => (
                "no signature (401)",
                post(
                    addr,
                    &[
                        ("x-github-event", "issues"),
                        ("x-github-delivery", &delivery),
                    ],
                    trigger,
                ),
                |status, _| status == 401,
            ),
            3 => (
                "wrong signature (403)",
                signed(
                    &delivery,
                    &booty_signature::sign(b"not the secret", trigger),
                    trigger,
                ),
                |status, _| status == 403,
            ),
            // Announced too large: the answer comes from the length alone, no body is sent.
            4 => (
                "announced oversized (413)",
                format!(
                    "POST /webhooks/github HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
                     content-type: application/json\r\nx-github-event: issues\r\n\
                     x-github-delivery: {delivery}\r\nx-hub-signature-256: {trigger_signature}\r\n\
                     content-length: {}\r\n\r\n",
                    MAX_BODY_BYTES * 2
                )
                .into_bytes(),
                |status, _| status == 413,
            ),
            6 => (
                "malformed JSON (400)",
                signed(&delivery, &self.malformed.1, &self.malformed.0),
                |status, _| status == 400,
            ),
            _ => (
                "no X-GitHub-Event (400)",
                post(
                    addr,
                    &[
                        ("x-github-delivery", &delivery),
                        ("x-hub-signature-256", trigger_signature),
                    ],
                    trigger,
                ),
                |status, _| status == 400,
            ),
        })
    }
}

/// A `POST /webhooks/github` with a JSON body, closing the connection after the answer.
fn post(addr: SocketAddr, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut head = format!(
        "POST /webhooks/github HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    request
}

/// Sends `request` on a new connection and reads the answer to the end: status and body.
fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.write_all(request)?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("reading an answer from {addr}"))?;
    parse_answer(&answer)
}

fn parse_answer(answer: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(answer);
    let status = text
        .get(9..12)
        .and_then(|digits| digits.parse().ok())
        .with_context(|| format!("not an HTTP answer: {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    Ok((status, body))
}

/// A chunked body streamed past `max_body_bytes`: the answer, or `None` when the server reset the
/// connection (it answers and closes without reading the rest, which resets a socket with unread data).
fn streamed_oversized(addr: SocketAddr, delivery: &str) -> anyhow::Result<Option<(u16, String)>> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    let mut request = format!(
        "POST /webhooks/github HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nx-github-event: issues\r\n\
         x-github-delivery: {delivery}\r\nx-hub-signature-256: sha256={}\r\n\r\n",
        "0".repeat(64)
    )
    .into_bytes();
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..(MAX_BODY_BYTES / chunk.len() + 2) {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    if stream.write_all(&request).is_err() {
        // Reset while sending: the answer may still be readable.
    }
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => parse_answer(&answer).map(Some),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => {
            if answer.is_empty() {
                Ok(None)
            } else {
                parse_answer(&answer).map(Some)
            }
        }
        Err(err) => Err(err).with_context(|| format!("reading an answer from {addr}")),
    }
}

/// Clients that send half a request head and stall, one after the other until `until`: each must be
/// dropped by the server (its header timeout) before [`CLIENT_TIMEOUT`].
fn slow_clients(addr: SocketAddr, until: Instant) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut dropped_after = Vec::new();
    while Instant::now() < until {
        let mut stream =
            TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
        stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
        let sent = Instant::now();
        stream.write_all(b"POST /webhooks/github HTTP/1.1\r\nhost: slow\r\nx-github-event: iss")?;
        let mut answer = Vec::new();
        let dropped = match stream.read_to_end(&mut answer) {
            Ok(_) => true,
            Err(err) => err.kind() == std::io::ErrorKind::ConnectionReset,
        };
        dropped_after.push(sent.elapsed());
        tally.record("slow client (dropped)", dropped, || {
            format!(
                "still open after {} s",
                sent.elapsed().as_secs_f64().round()
            )
        });
    }
    dropped_after.sort();
    if let Some(median) = dropped_after.get(dropped_after.len() / 2) {
        tally.counts("slow client (dropped)").note = Some(format!(
            "median {:.1} s until dropped",
            median.as_secs_f64()
        ));
    }
    Ok(tally)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_growth_compares_the_medians_of_two_windows() {
        let at = Duration::from_secs;
        let samples: Vec<(Duration, u64)> = (0..100).map(|s| (at(s), 1000 + s)).collect();
        let (early, late, growth) = rss_growth(&samples, at(20), at(10), at(100));
        assert_eq!((early, late), (1025, 1095));
        assert!((growth - 70.0 * 100.0 / 1025.0).abs() < 1e-9);
    }

    #[test]
    fn answers_are_read_for_status_and_body() {
        let (status, body) =
            parse_answer(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((status, body.as_str()), (413, "{}"));
        assert!(parse_answer(b"").is_err());
    }
}
