//! `cargo xtask fuzz`: run the cargo-fuzz targets in `fuzz/` for a while each, from real payloads.
//!
//! `fuzz/` is its own workspace, built by cargo-fuzz with libFuzzer and the address sanitizer on the nightly
//! toolchain (`rustup run nightly`), so the stable workspace never sees it. For each target asked for (all by
//! default), in turn, with one libFuzzer job each (the machines are shared):
//!
//! 1. the seed corpus is rewritten into `fuzz/corpus/<target>/` as `seed-*` files with stable names: the
//!    `@octokit/webhooks-examples` payloads and `issues.labeled.json` from booty-event's fixtures as
//!    requests (signed `POST /webhooks/github` requests for `edge`, with the other routes and refusals),
//!    and hand-made signature headers around GitHub's test vector. Whatever libFuzzer added to
//!    the folder in earlier runs stays and is reused. Seeds are written in the request format documented
//!    in `fuzz/src/lib.rs` (`name: value` lines, an empty line, the body);
//! 2. `cargo fuzz run` runs the target for `--seconds`;
//! 3. libFuzzer's final statistics are read from its output, which is passed through.
//!
//! Then a table says, per target, the executions, executions per second, the corpus and coverage as
//! libFuzzer counts them, and whether it crashed. A crash fails the task, naming the artifact; turning it
//! into a regression test is described in `docs/reliability.md`.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, bail, ensure};
use serde::Deserialize;

use crate::fixtures::{self, Entry};
use crate::shell::{self, cargo, project_root};

/// The fuzz targets, in the order they run (`fuzz/fuzz_targets/<name>.rs`).
const TARGETS: [&str; 3] = ["signature", "event", "edge"];

/// What `cargo xtask fuzz` takes.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// How long each target runs, in seconds (not counting its build).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// The targets to run, in the order given; all of them when none is named.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    targets: Vec<String>,
}

/// Runs each target for `args.seconds` and prints what libFuzzer reported; fails if any target crashed.
pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    ensure_nightly()?;
    ensure_cargo_fuzz()?;
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        args.targets.iter().map(String::as_str).collect()
    };
    let mut outcomes = Vec::new();
    for target in targets {
        let corpus = project_root().join("fuzz/corpus").join(target);
        let count = write_seeds(&corpus, &seeds(target)?)?;
        println!(
            "xtask fuzz: {target}: {count} seeds in {}; running for {} s",
            corpus.display(),
            args.seconds
        );
        outcomes.push(fuzz(target, &corpus, args.seconds)?);
    }
    println!("\n{}", table(&outcomes, args.seconds));
    let crashes: Vec<String> = outcomes
        .iter()
        .filter(|outcome| !outcome.exit.success())
        .map(|outcome| match &outcome.stats.artifact {
            Some(artifact) => format!("{}: {}", outcome.target, artifact.display()),
            None => format!("{}: exited with {}", outcome.target, outcome.exit),
        })
        .collect();
    if !crashes.is_empty() {
        bail!(
            "fuzzing found crashes; minimise each with `cargo +nightly fuzz tmin TARGET ARTIFACT` and make it a \
             regression test (docs/reliability.md):\n  {}",
            crashes.join("\n  ")
        );
    }
    Ok(())
}

/// cargo-fuzz needs a nightly toolchain; rustup must have one.
fn ensure_nightly() -> anyhow::Result<()> {
    let output = Command::new("rustup")
        .args(["run", "nightly", "cargo", "--version"])
        .output()
        .context("could not start rustup: cargo xtask fuzz needs rustup and a nightly toolchain")?;
    ensure!(
        output.status.success(),
        "no nightly toolchain (`rustup run nightly cargo --version` failed: {}); install one with \
         `rustup toolchain install nightly`",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

/// Installs cargo-fuzz with `cargo install --locked` unless it is already on `PATH`.
fn ensure_cargo_fuzz() -> anyhow::Result<()> {
    if !shell::installed("cargo-fuzz") {
        println!(
            "xtask: cargo-fuzz is not installed; installing it with `cargo install --locked cargo-fuzz`"
        );
        shell::run(
            "install cargo-fuzz",
            cargo().args(["install", "--locked", "cargo-fuzz"]),
        )?;
    }
    Ok(())
}

/// A seed: its file name in the corpus folder, and its bytes.
type Seed = (String, Vec<u8>);

fn seeds(target: &str) -> anyhow::Result<Vec<Seed>> {
    match target {
        "signature" => signature_seeds(),
        "event" => event_seeds(),
        "edge" => edge_seeds(),
        other => bail!("no seeds for fuzz target `{other}`"),
    }
}

/// Replaces the `seed-*` files of `corpus` by `seeds` (so a seed dropped here goes away) and leaves what
/// libFuzzer added alone. Returns how many seeds were written.
fn write_seeds(corpus: &Path, seeds: &[Seed]) -> anyhow::Result<usize> {
    fs::create_dir_all(corpus).with_context(|| format!("creating {}", corpus.display()))?;
    for entry in fs::read_dir(corpus).with_context(|| format!("listing {}", corpus.display()))? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with("seed-"))
        {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    for (name, bytes) in seeds {
        let path = corpus.join(name);
        fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(seeds.len())
}

/// A request in the fuzz input format: `name: value` lines, an empty line, the body.
fn request(headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 256);
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

/// The digest of GitHub's test vector: `Hello, World!` signed with `It's a Secret to Everybody`.
const DIGEST: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
/// HMAC-SHA1 of the same body under the same secret: the legacy `X-Hub-Signature` value.
const SHA1: &str = "01dc10d0c83e72ed246219cdd91669667fe2ca59";

/// GitHub's documented test vector ("Validating webhook deliveries"), and variants of its header that each
/// take another path through the parser.
fn signature_seeds() -> anyhow::Result<Vec<Seed>> {
    const BODY: &[u8] = b"Hello, World!";
    let signed = |name: &str, value: &str, body: &[u8]| {
        (
            format!("seed-{name}"),
            request(&[("x-hub-signature-256", value)], body),
        )
    };
    let labeled = fixture("issues.labeled.json")?;
    Ok(vec![
        signed("github-vector", &format!("sha256={DIGEST}"), BODY),
        signed(
            "github-vector-uppercase",
            &format!("sha256={}", DIGEST.to_ascii_uppercase()),
            BODY,
        ),
        signed("uppercase-prefix", &format!("SHA256={DIGEST}"), BODY),
        signed("sha1", &format!("sha1={SHA1}"), BODY),
        (
            "seed-sha1-only".to_owned(),
            request(&[("x-hub-signature", &format!("sha1={SHA1}"))], BODY),
        ),
        signed("truncated", &format!("sha256={}", &DIGEST[..62]), BODY),
        signed("too-long", &format!("sha256={DIGEST}00"), BODY),
        signed("non-hex", &format!("sha256={}zz", &DIGEST[..62]), BODY),
        signed("empty-digest", "sha256=", BODY),
        signed(
            "other-body",
            &format!("sha256={DIGEST}"),
            b"Hello, World!\n",
        ),
        signed("issues-labeled", &format!("sha256={DIGEST}"), &labeled),
        ("seed-missing".to_owned(), request(&[], BODY)),
    ])
}

/// Every `@octokit/webhooks-examples` payload as a JSON request with GitHub's headers, plus
/// `issues.labeled.json` as a trigger, as a form, with a charset, and with broken headers.
fn event_seeds() -> anyhow::Result<Vec<Seed>> {
    let index = fixture("octokit-webhooks-examples/api.github.com/index.json")?;
    let entries: Vec<Entry<'_>> =
        serde_json::from_slice(&index).context("parsing api.github.com/index.json")?;
    let mut seeds = Vec::new();
    for (n, (event, example)) in entries
        .iter()
        .flat_map(|entry| entry.examples.iter().map(|example| (&entry.name, example)))
        .enumerate()
    {
        #[derive(Deserialize)]
        struct Action {
            action: Option<String>,
        }
        let Action { action } = serde_json::from_str(example.get())?;
        let name = match action {
            Some(action) => format!("seed-octokit-{n:03}-{event}.{action}"),
            None => format!("seed-octokit-{n:03}-{event}"),
        };
        let delivery = format!("00000000-0000-4000-8000-{n:012}");
        let body = fixtures::minify(example.get());
        seeds.push((
            name,
            github_request(event, &delivery, "application/json", body.as_bytes()),
        ));
    }

    let labeled = fixture("issues.labeled.json")?;
    let trigger = trigger_payload()?;
    let form = |json: &[u8]| [&b"payload="[..], &form_encode(json)].concat();
    let guid = GUID;
    let issues =
        |content_type: &str, body: &[u8]| github_request("issues", guid, content_type, body);
    let json = "application/json";
    let form_type = "application/x-www-form-urlencoded";
    seeds.extend([
        (
            "seed-issues-labeled-json".to_owned(),
            issues(json, &labeled),
        ),
        (
            "seed-issues-labeled-json-charset".to_owned(),
            issues("application/json; charset=utf-8", &labeled),
        ),
        (
            "seed-issues-labeled-form".to_owned(),
            issues(form_type, &form(&labeled)),
        ),
        (
            "seed-trigger-json".to_owned(),
            issues(json, trigger.as_bytes()),
        ),
        (
            "seed-trigger-form".to_owned(),
            issues(form_type, &form(trigger.as_bytes())),
        ),
        (
            "seed-content-type-text".to_owned(),
            issues("text/plain", &labeled),
        ),
        (
            "seed-content-type-latin1".to_owned(),
            issues("application/json; charset=latin1", &labeled),
        ),
        (
            "seed-delivery-id-path".to_owned(),
            github_request("issues", "../etc/passwd", json, &labeled),
        ),
        (
            "seed-enterprise".to_owned(),
            request(
                &[
                    ("x-github-event", "issues"),
                    ("x-github-delivery", guid),
                    ("x-github-enterprise-host", "ghe.example.com"),
                    ("x-github-enterprise-version", "3.14.0"),
                    ("content-type", json),
                ],
                trigger.as_bytes(),
            ),
        ),
        (
            "seed-no-github-headers".to_owned(),
            request(&[("content-type", json)], &labeled),
        ),
    ]);
    Ok(seeds)
}

/// Every `event` seed as a signed `POST /webhooks/github`, plus the other routes, unsigned, sha1-only and
/// forged triggers, a streamed (and a broken) trigger body, and each answer a sink can give. The harness
/// knobs (`{signed}`, `x-fuzz-chunk`, `x-fuzz-reset`, `x-fuzz-sink`) are described in
/// `fuzz/fuzz_targets/edge.rs`.
fn edge_seeds() -> anyhow::Result<Vec<Seed>> {
    const WEBHOOK: &[u8] = b"POST /webhooks/github\n";
    const SIGNED: (&str, &str) = ("x-hub-signature-256", "{signed}");
    let mut seeds: Vec<Seed> = event_seeds()?
        .into_iter()
        .map(|(name, event)| {
            let signed = request(&[SIGNED], b"");
            // `request` ends the head with an empty line; the event seed brings its own head and body.
            let head = &signed[..signed.len() - 1];
            (name, [WEBHOOK, head, &event].concat())
        })
        .collect();
    let trigger = trigger_payload()?;
    let webhook = |name: &str, extra: &[(&str, &str)]| {
        let mut headers = vec![
            ("x-github-event", "issues"),
            ("x-github-delivery", GUID),
            ("content-type", "application/json"),
        ];
        headers.extend_from_slice(extra);
        (
            format!("seed-{name}"),
            [WEBHOOK, &request(&headers, trigger.as_bytes())].concat(),
        )
    };
    let bare =
        |name: &str, line: &str| (format!("seed-{name}"), format!("{line}\n\n").into_bytes());
    let (sha1, forged) = (format!("sha1={SHA1}"), format!("sha256={DIGEST}"));
    seeds.extend([
        bare("health", "GET /health"),
        bare("health-post", "POST /health"),
        bare("webhook-get", "GET /webhooks/github"),
        bare("not-found", "GET /webhooks/gitlab"),
        webhook("trigger-unsigned", &[]),
        webhook("trigger-sha1-only", &[("x-hub-signature", &sha1)]),
        webhook("trigger-forged", &[("x-hub-signature-256", &forged)]),
        webhook("trigger-chunked", &[SIGNED, ("x-fuzz-chunk", "1000")]),
        webhook(
            "trigger-reset",
            &[SIGNED, ("x-fuzz-chunk", "4096"), ("x-fuzz-reset", "")],
        ),
        webhook("trigger-duplicate", &[SIGNED, ("x-fuzz-sink", "duplicate")]),
        webhook("trigger-busy", &[SIGNED, ("x-fuzz-sink", "busy")]),
        webhook(
            "trigger-unavailable",
            &[SIGNED, ("x-fuzz-sink", "unavailable")],
        ),
        webhook("trigger-failed", &[SIGNED, ("x-fuzz-sink", "failed")]),
    ]);
    let mut absolute = webhook("trigger-absolute-uri", &[SIGNED]);
    absolute.1 = [
        &b"POST http://127.0.0.1:8080/webhooks/github"[..],
        &absolute.1[WEBHOOK.len() - 1..],
    ]
    .concat();
    seeds.push(absolute);
    Ok(seeds)
}

/// The delivery id of the hand-made seeds (GitHub's example GUID).
const GUID: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

/// `issues.labeled.json` with its `bug` label renamed to the default trigger label: a real trigger.
fn trigger_payload() -> anyhow::Result<String> {
    let labeled = fixture("issues.labeled.json")?;
    Ok(String::from_utf8(labeled)
        .context("issues.labeled.json is not UTF-8")?
        .replace(r#""name":"bug""#, r#""name":"agent:builder""#))
}

/// A request with the headers GitHub sends with every delivery.
fn github_request(event: &str, delivery: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    request(
        &[
            ("user-agent", "GitHub-Hookshot/044aadd"),
            ("x-github-event", event),
            ("x-github-delivery", delivery),
            ("x-github-hook-id", "292430182"),
            ("x-github-hook-installation-target-type", "repository"),
            ("x-github-hook-installation-target-id", "79929171"),
            ("content-type", content_type),
        ],
        body,
    )
}

/// `application/x-www-form-urlencoded` encoding of a value, as a browser or GitHub writes it.
fn form_encode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3 / 2);
    for &byte in value {
        match byte {
            b' ' => out.push(b'+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => out.push(byte),
            _ => out.extend_from_slice(format!("%{byte:02X}").as_bytes()),
        }
    }
    out
}

fn fixture(path: &str) -> anyhow::Result<Vec<u8>> {
    let path = project_root().join(fixtures::FIXTURES).join(path);
    fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// How one target's run ended.
struct Outcome {
    target: String,
    exit: ExitStatus,
    stats: Stats,
}

/// Runs `cargo fuzz run` for one target, passing libFuzzer's output through while reading its statistics.
fn fuzz(target: &str, corpus: &Path, seconds: u64) -> anyhow::Result<Outcome> {
    let mut command = Command::new("rustup");
    command
        .args(["run", "nightly", "cargo", "fuzz", "run", target])
        .arg(corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        // An input that takes 10 s is a hang worth reporting, not a slow machine.
        .args(["-timeout=10", "-print_final_stats=1"])
        .current_dir(project_root())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("could not start {command:?}"))?;
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut stats = Stats::default();
    for line in BufReader::new(stderr).split(b'\n') {
        let line =
            String::from_utf8_lossy(&line.context("reading cargo fuzz's output")?).into_owned();
        eprintln!("{line}");
        stats.read(&line);
    }
    let exit = child.wait().context("waiting for cargo fuzz")?;
    Ok(Outcome {
        target: target.to_owned(),
        exit,
        stats,
    })
}

/// What libFuzzer says about a run: its last status line and its `-print_final_stats=1` block.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    executions: Option<u64>,
    per_second: Option<u64>,
    /// `corp:` of the last status line: inputs in the in-memory corpus / their total size.
    corpus: Option<String>,
    /// `cov:`: coverage points (edges) reached.
    coverage: Option<u64>,
    /// `ft:`: features (edges, counters, comparisons) seen, what libFuzzer steers by.
    features: Option<u64>,
    peak_rss_mb: Option<u64>,
    artifact: Option<PathBuf>,
}

impl Stats {
    fn read(&mut self, line: &str) {
        let stat = |name: &str| {
            line.strip_prefix(name)
                .and_then(|value| value.trim().parse().ok())
        };
        if let Some(value) = stat("stat::number_of_executed_units:") {
            self.executions = Some(value);
        } else if let Some(value) = stat("stat::average_exec_per_sec:") {
            self.per_second = Some(value);
        } else if let Some(value) = stat("stat::peak_rss_mb:") {
            self.peak_rss_mb = Some(value);
        } else if let Some((_, path)) = line.split_once("Test unit written to ") {
            self.artifact = Some(PathBuf::from(path.trim()));
        } else if line.starts_with('#') {
            let mut words = line.split_whitespace();
            while let Some(word) = words.next() {
                match word {
                    "cov:" => self.coverage = words.next().and_then(|value| value.parse().ok()),
                    "ft:" => self.features = words.next().and_then(|value| value.parse().ok()),
                    "corp:" => self.corpus = words.next().map(str::to_owned),
                    _ => {}
                }
            }
        }
    }
}

fn table(outcomes: &[Outcome], seconds: u64) -> String {
    let shown =
        |value: Option<u64>| value.map_or_else(|| "?".to_owned(), |value| value.to_string());
    let mut out = format!(
        "{:<10} {:>8} {:>12} {:>8} {:>14} {:>6} {:>7} {:>8}  result\n",
        "target", "seconds", "executions", "exec/s", "corpus", "cov", "ft", "rss MB"
    );
    for Outcome {
        target,
        exit,
        stats,
    } in outcomes
    {
        let result = match (&stats.artifact, exit.success()) {
            (_, true) => "no crash".to_owned(),
            (Some(artifact), false) => format!("CRASH {}", artifact.display()),
            (None, false) => format!("FAILED ({exit})"),
        };
        writeln!(
            out,
            "{target:<10} {seconds:>8} {:>12} {:>8} {:>14} {:>6} {:>7} {:>8}  {result}",
            shown(stats.executions),
            shown(stats.per_second),
            stats.corpus.as_deref().unwrap_or("?"),
            shown(stats.coverage),
            shown(stats.features),
            shown(stats.peak_rss_mb),
        )
        .expect("writing to a String cannot fail");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_statistics_and_artifacts() {
        let mut stats = Stats::default();
        for line in [
            "#297\tINITED cov: 368 ft: 1415 corp: 257/18Kb exec/s: 0 rss: 47Mb",
            "#73141\tDONE   cov: 370 ft: 1420 corp: 258/19Kb lim: 1051 exec/s: 12190 rss: 241Mb",
            "artifact_prefix='fuzz/artifacts/event/'; Test unit written to fuzz/artifacts/event/crash-0a1b",
            "stat::number_of_executed_units: 73141",
            "stat::average_exec_per_sec:     12190",
            "stat::new_units_added:          1",
            "stat::peak_rss_mb:              241",
        ] {
            stats.read(line);
        }
        assert_eq!(
            stats,
            Stats {
                executions: Some(73_141),
                per_second: Some(12_190),
                corpus: Some("258/19Kb".to_owned()),
                coverage: Some(370),
                features: Some(1420),
                peak_rss_mb: Some(241),
                artifact: Some(PathBuf::from("fuzz/artifacts/event/crash-0a1b")),
            }
        );
    }

    #[test]
    fn requests_read_back_as_headers_then_body() {
        assert_eq!(
            request(&[("a", "1"), ("b", "x y")], b"\n{}"),
            b"a: 1\nb: x y\n\n\n{}"
        );
        assert_eq!(request(&[], b"body"), b"\nbody");
    }

    #[test]
    fn form_encoding_escapes_all_but_unreserved_bytes() {
        assert_eq!(
            form_encode(br#"{"a": "x+y&z=%"} *-._~"#),
            b"%7B%22a%22%3A+%22x%2By%26z%3D%25%22%7D+*-._%7E"
        );
    }

    #[test]
    fn seeds_have_distinct_names_and_the_real_payloads() {
        let signature = signature_seeds().unwrap();
        let event = event_seeds().unwrap();
        let edge = edge_seeds().unwrap();
        for seeds in [&signature, &event, &edge] {
            let mut names: Vec<_> = seeds.iter().map(|(name, _)| name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), seeds.len(), "duplicate seed names");
        }
        // 329 octokit examples plus the hand-made requests around issues.labeled.json.
        assert_eq!(event.len(), 329 + 10);
        let labeled = fixture("issues.labeled.json").unwrap();
        let (_, trigger) = event
            .iter()
            .find(|(name, _)| name == "seed-trigger-json")
            .unwrap();
        assert!(trigger.ends_with(b"}"));
        assert!(
            String::from_utf8_lossy(trigger).contains(r#""label":{"id":1362934389,"node_id":"MDU6TGFiZWwxMzYyOTM0Mzg5","url":"https://api.github.com/repos/Codertocat/Hello-World/labels/bug","name":"agent:builder""#),
            "the trigger seed's label is not the trigger label"
        );
        let (_, json) = event
            .iter()
            .find(|(name, _)| name == "seed-issues-labeled-json")
            .unwrap();
        assert!(json.ends_with(&labeled));
        // Each event seed is also an edge seed, signed by the harness.
        assert_eq!(edge.len(), event.len() + 14);
        let (_, signed) = edge
            .iter()
            .find(|(name, _)| name == "seed-issues-labeled-json")
            .unwrap();
        assert_eq!(
            signed.as_slice(),
            [
                &b"POST /webhooks/github\nx-hub-signature-256: {signed}\n"[..],
                json
            ]
            .concat()
        );
        let (_, absolute) = edge
            .iter()
            .find(|(name, _)| name == "seed-trigger-absolute-uri")
            .unwrap();
        assert!(
            absolute.starts_with(
                b"POST http://127.0.0.1:8080/webhooks/github\nx-github-event: issues\n"
            )
        );
        let (_, vector) = &signature[0];
        assert_eq!(
            vector.as_slice(),
            b"x-hub-signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17\n\nHello, World!"
        );
    }
}
