//! Depth-1 clone + checkout of a sizeable repository over smart HTTP on loopback: this crate (gix) next to
//! `git clone --depth 1 --single-branch`, each in its own child process, timed and measured side by side.
//!
//! Run it with `cargo bench -p booty-workspace --bench clone` (add `-- --runs 7` for more runs), or as part
//! of `cargo xtask bench`, which reads the `result` line it prints last. It needs
//! the `git` CLI and `/usr/bin/time`. The repository (20,000 files, 2,000 commits, about 100 MB of history)
//! is generated with `git fast-import` on the first run and cached under `target/tmp/`.
//!
//! The gix side is this same binary started again with `--gix-clone URL BRANCH ROOT`, so both sides pay
//! for starting a process, and `/usr/bin/time` reports the peak resident memory of each (for `git`, the
//! largest of its processes: `git clone` runs `git-remote-http` and `git index-pack` alongside it).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark reports to its user"
)]
#![allow(
    clippy::unwrap_used,
    reason = "benchmark set-up: a failed step should stop the run loudly"
)]

#[allow(
    dead_code,
    reason = "shared with the integration tests, which use the rest of it"
)]
#[path = "../tests/it/support/repo.rs"]
mod repo;
#[allow(
    dead_code,
    reason = "shared with the integration tests, which use the rest of it"
)]
#[path = "../tests/it/support/server.rs"]
mod server;

use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use booty_workspace::{WorkspaceConfig, WorkspaceManager, WorkspaceRequest};

const FILES: usize = 20_000;
const COMMITS: usize = 2_000;
/// Files rewritten by each commit after the first.
const CHANGES_PER_COMMIT: usize = 15;
const BRANCH: &str = "main";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, url, branch, root] = args.as_slice()
        && flag == "--gix-clone"
    {
        gix_clone(url, branch, Path::new(root));
        return;
    }
    let runs = args
        .iter()
        .position(|arg| arg == "--runs")
        .and_then(|at| args.get(at + 1))
        .map_or(5, |runs| runs.parse().expect("--runs takes a number"));
    compare(runs);
}

/// The child process of the gix side: one `prepare`, then exit without removing the workspace (the parent
/// removes it outside the timing, as it does for `git clone`'s directory).
fn gix_clone(url: &str, branch: &str, root: &Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut config = WorkspaceConfig::new(root);
    config.clone_timeout = Duration::from_mins(10);
    let manager = WorkspaceManager::new(config);
    let request = WorkspaceRequest::new(url, branch, 1);
    let workspace = runtime
        .block_on(manager.prepare(&request, std::future::pending()))
        .unwrap_or_else(|err| panic!("gix clone failed: {err}"));
    println!("{}", workspace.path().display());
    std::process::exit(0);
}

struct Sample {
    seconds: f64,
    max_rss_kib: u64,
}

fn compare(runs: usize) {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("booty-workspace-clone-bench");
    let project_root = cache.join("project_root");
    // The name carries the shape, so changing a constant generates a new repository instead of reusing one.
    let repo = format!("f{FILES}-c{COMMITS}-m{CHANGES_PER_COMMIT}.git");
    let bare = project_root.join(&repo);
    if !bare.join("booty-bench-complete").exists() {
        generate(&bare);
    }
    let pack_bytes: u64 = std::fs::read_dir(bare.join("objects/pack"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    let tip = repo::run_git(&bare, &["rev-parse", BRANCH]);
    let server = server::GitServer::start(&project_root);
    let url = server.url(&repo);
    println!(
        "clone bench: {FILES} files, {COMMITS} commits, {:.1} MiB of packs, {url}; {runs} runs each, alternating",
        mib(pack_bytes / 1024)
    );

    let scratch = tempfile::tempdir_in(&cache).unwrap();
    let mut gix = Vec::new();
    let mut cli = Vec::new();
    // One unmeasured run of each warms the page cache and the server.
    for run in 0..=runs {
        let gix_sample = run_gix(&url, scratch.path(), &tip);
        let cli_sample = run_cli(&url, scratch.path(), &tip);
        if run == 0 {
            continue;
        }
        println!(
            "run {run}: gix {:.2} s {:.1} MiB | git {:.2} s {:.1} MiB",
            gix_sample.seconds,
            mib(gix_sample.max_rss_kib),
            cli_sample.seconds,
            mib(cli_sample.max_rss_kib)
        );
        gix.push(gix_sample);
        cli.push(cli_sample);
    }
    let (gix_seconds, cli_seconds) = (
        median(gix.iter().map(|s| s.seconds)),
        median(cli.iter().map(|s| s.seconds)),
    );
    let gix_rss = gix.iter().map(|s| s.max_rss_kib).max().unwrap();
    let cli_rss = cli.iter().map(|s| s.max_rss_kib).max().unwrap();
    println!(
        "median wall time: booty-workspace (gix) {gix_seconds:.2} s, git clone {cli_seconds:.2} s"
    );
    println!(
        "peak RSS (max over runs): booty-workspace (gix) {:.1} MiB, git clone {:.1} MiB",
        mib(gix_rss),
        mib(cli_rss)
    );
    println!(
        "ratio gix/git: time {:.2}, peak RSS {:.2}",
        gix_seconds / cli_seconds,
        mib(gix_rss) / mib(cli_rss)
    );
    // For `cargo xtask bench`, which runs this benchmark and reads this line back.
    println!(
        "result runs={runs} files={FILES} commits={COMMITS} pack_kib={} gix_seconds={gix_seconds:.3} \
         gix_rss_kib={gix_rss} git_seconds={cli_seconds:.3} git_rss_kib={cli_rss}",
        pack_bytes / 1024
    );
}

fn mib(kib: u64) -> f64 {
    f64::from(u32::try_from(kib).expect("less than 4 TiB")) / 1024.0
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut values: Vec<f64> = values.collect();
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `/usr/bin/time`, set to write the child's peak RSS (KiB) to `report`; append the command to measure.
fn time(report: &Path) -> Command {
    let mut command = Command::new("/usr/bin/time");
    command
        .arg("--format=%M")
        .arg("--output")
        .arg(report)
        .stdin(Stdio::null());
    command
}

/// Runs a command built by [`time`], returning its wall time, peak RSS and standard output.
fn measure(mut command: Command, report: &Path) -> (Sample, String) {
    let start = Instant::now();
    let output = command
        .output()
        .expect("/usr/bin/time runs (Debian package `time`)");
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let max_rss_kib = std::fs::read_to_string(report)
        .unwrap()
        .lines()
        .last()
        .and_then(|line| line.trim().parse().ok())
        .expect("/usr/bin/time reports the peak RSS in KiB");
    (
        Sample {
            seconds,
            max_rss_kib,
        },
        String::from_utf8(output.stdout).unwrap(),
    )
}

fn run_gix(url: &str, scratch: &Path, tip: &str) -> Sample {
    let report = scratch.join("time-gix");
    let mut command = time(&report);
    command
        .arg(std::env::current_exe().unwrap())
        .arg("--gix-clone")
        .arg(url)
        .arg(BRANCH)
        .arg(scratch);
    let (sample, stdout) = measure(command, &report);
    let workspace = PathBuf::from(stdout.trim());
    assert_eq!(repo::run_git(&workspace, &["rev-parse", "HEAD"]), tip);
    std::fs::remove_dir_all(&workspace).unwrap();
    sample
}

fn run_cli(url: &str, scratch: &Path, tip: &str) -> Sample {
    let report = scratch.join("time-git");
    let dest = scratch.join("git-clone");
    let mut command = time(&report);
    repo::clean_git_env(&mut command, scratch);
    command
        .args([
            "git",
            "clone",
            "--quiet",
            "--depth",
            "1",
            "--single-branch",
            "--branch",
            BRANCH,
            url,
        ])
        .arg(&dest);
    let (sample, _) = measure(command, &report);
    assert_eq!(repo::run_git(&dest, &["rev-parse", "HEAD"]), tip);
    std::fs::remove_dir_all(&dest).unwrap();
    sample
}

/// Writes the benchmark repository with `git fast-import`: a first commit with [`FILES`] files of 1-5 KiB of
/// word-like text, then commits that each rewrite [`CHANGES_PER_COMMIT`] of them.
fn generate(bare: &Path) {
    println!(
        "generating {} (once; cached under target/tmp)",
        bare.display()
    );
    let started = Instant::now();
    if bare.exists() {
        std::fs::remove_dir_all(bare).unwrap();
    }
    std::fs::create_dir_all(bare).unwrap();
    repo::run_git(
        bare,
        &["init", "--quiet", "--bare", "--initial-branch", BRANCH],
    );
    let mut import = repo::git(bare)
        .args(["fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, import.stdin.take().unwrap());
    let mut rng = SplitMix(0x0b00_7ee5);
    let words: Vec<String> = (0..4096)
        .map(|_| {
            let len = 3 + rng.below(8);
            (0..len)
                .map(|_| char::from(b'a' + u8::try_from(rng.below(26)).unwrap()))
                .collect()
        })
        .collect();
    let path = |file: usize| format!("src/m{:03}/f{:05}.txt", file / 100, file);
    let content = |rng: &mut SplitMix| {
        let target = 1024 + rng.below(4096);
        let mut text = String::with_capacity(target + 80);
        while text.len() < target {
            for _ in 0..10 {
                text.push_str(&words[rng.below(words.len())]);
                text.push(' ');
            }
            text.push('\n');
        }
        text
    };
    for commit in 0..COMMITS {
        let message = format!("commit {commit}\n");
        write!(
            out,
            "commit refs/heads/{BRANCH}\ncommitter Booty Bench <bench@booty.invalid> {} +0000\ndata {}\n{message}",
            1_700_000_000 + commit * 60,
            message.len()
        )
        .unwrap();
        let changed: Vec<usize> = if commit == 0 {
            (0..FILES).collect()
        } else {
            (0..CHANGES_PER_COMMIT).map(|_| rng.below(FILES)).collect()
        };
        for file in changed {
            let text = content(&mut rng);
            write!(
                out,
                "M 100644 inline {}\ndata {}\n{text}\n",
                path(file),
                text.len()
            )
            .unwrap();
        }
        out.write_all(b"\n").unwrap();
    }
    out.write_all(b"done\n").unwrap();
    drop(out);
    assert!(import.wait().unwrap().success(), "git fast-import failed");
    std::fs::write(bare.join("booty-bench-complete"), "").unwrap();
    println!("generated in {:.0} s", started.elapsed().as_secs_f64());
}

/// `SplitMix64`: small, deterministic, good enough for filler text.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % bound as u64).unwrap()
    }
}
