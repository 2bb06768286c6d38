//! The admin listener of `booty serve`: who may use it, the metrics after real traffic (checked by
//! `promtool`), and the refusal to listen beyond loopback without a token.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::toml_value::V;
use crate::support::{Booty, booty_in, check, git_repository, labeled_payload, payload_for_issue};

const ADMIN_TOKEN: &str = "e2e-admin-token-never-logged";

/// One HTTP/1.1 request on a fresh connection: (status, head, body as text).
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        write!(request, "{name}: {value}\r\n").unwrap();
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

fn config(dir: &Path) -> BTreeMap<&'static str, V> {
    let repo = git_repository(dir);
    BTreeMap::from([
        ("repo_url", V::from(repo.display().to_string())),
        ("store", V::from("memory")),
        (
            "workspace_root",
            V::from(dir.join("workspaces").display().to_string()),
        ),
        ("admin_token", V::from(ADMIN_TOKEN)),
    ])
}

/// The value of the sample `name` (with its labels, as written) in an exposition.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map(|value| value.parse().unwrap())
}

/// `promtool check metrics` on `text`: whether it passed, and what it said. promtool (Debian package
/// `prometheus`) is installed on the machines and by `.ci/run`; without it the test fails.
fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("promtool is needed (Debian package `prometheus`): {err}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

/// A trigger (202), its redelivery (200 duplicate), another label (200 ignored) and an unsigned request
/// (401); then waits for the trigger's job to succeed, reading it with the token. The job's id.
fn real_traffic(booty: &Booty, dir: &Path) -> String {
    let trigger = labeled_payload(dir, "agent:builder");
    let accepted = booty.send(&trigger, "issues", Some("d-1"), false);
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    let job_id = accepted.body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        booty.send(&trigger, "issues", Some("d-1"), false).status,
        200
    );
    let other_label = labeled_payload(dir, "bug");
    assert_eq!(
        booty
            .send(&other_label, "issues", Some("d-2"), false)
            .status,
        200
    );
    let (unsigned, _, _) = exchange(
        booty.webhook,
        "POST",
        "/webhooks/github",
        &[
            ("x-github-event", "issues"),
            ("content-type", "application/json"),
        ],
    );
    assert_eq!(unsigned, 401);
    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    loop {
        let (status, _, body) = exchange(
            booty.admin,
            "GET",
            &format!("/jobs/{job_id}"),
            &[("authorization", &bearer)],
        );
        assert_eq!(status, 200, "{body}");
        let job: Value = serde_json::from_str(&body).unwrap();
        if job["state"] == "succeeded" {
            return job_id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job never succeeded: {job}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn metrics_count_real_traffic_and_promtool_accepts_them() {
    let dir = tempfile::tempdir().unwrap();
    let booty = Booty::start(
        dir.path(),
        &config(dir.path()),
        &[("BOOTY_ADMIN_METRICS_PUBLIC", "true")],
    );
    let job_id = real_traffic(&booty, dir.path());
    let bearer = format!("Bearer {ADMIN_TOKEN}");

    // Metrics are open (admin_metrics_public); everything else still needs the token.
    let (status, head, text) = exchange(booty.admin, "GET", "/metrics", &[]);
    assert_eq!(status, 200, "{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    let expected = [
        (
            "booty_webhook_requests_total{event=\"issues\",code=\"202\"}",
            1.0,
        ),
        (
            "booty_webhook_requests_total{event=\"issues\",code=\"200\"}",
            2.0,
        ),
        (
            "booty_webhook_requests_total{event=\"issues\",code=\"401\"}",
            1.0,
        ),
        ("booty_webhook_request_duration_seconds_count", 4.0),
        (
            "booty_triggers_total{outcome=\"accepted\",reason=\"\"}",
            1.0,
        ),
        (
            "booty_triggers_total{outcome=\"duplicate\",reason=\"\"}",
            1.0,
        ),
        (
            "booty_triggers_total{outcome=\"ignored\",reason=\"label_not_trigger\"}",
            1.0,
        ),
        ("booty_jobs_finished_total{outcome=\"succeeded\"}", 1.0),
        (
            "booty_job_phase_duration_seconds_count{phase=\"queue_wait\"}",
            1.0,
        ),
        (
            "booty_job_phase_duration_seconds_count{phase=\"clone\"}",
            1.0,
        ),
        (
            "booty_job_phase_duration_seconds_count{phase=\"attempt\"}",
            1.0,
        ),
        (
            "booty_job_phase_duration_seconds_bucket{le=\"7200.0\",phase=\"clone\"}",
            1.0,
        ),
        ("booty_jobs{state=\"succeeded\"}", 1.0),
        ("booty_jobs{state=\"queued\"}", 0.0),
    ];
    for (name, value) in expected {
        assert_eq!(sample(&text, name), Some(value), "{name} in\n{text}");
    }
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 1_000_000.0);
    assert!(sample(&text, "process_open_fds").unwrap() > 3.0);
    assert!(!text.contains(ADMIN_TOKEN));
    let (valid, said) = promtool(&text);
    assert!(
        valid,
        "promtool check metrics refused the exposition:\n{said}\n{text}"
    );

    // Without the token: 401, and the job list is not shown.
    let (status, head, body) = exchange(booty.admin, "GET", "/jobs", &[]);
    assert_eq!(status, 401, "{body}");
    assert!(
        head.contains("www-authenticate: Basic realm=\"booty admin\""),
        "{head}"
    );
    assert!(!body.contains(&job_id));
    let (status, _, body) = exchange(booty.admin, "GET", "/jobs", &[("authorization", &bearer)]);
    assert_eq!(status, 200);
    assert!(body.contains(&job_id));
    let (status, log) = booty.terminate();
    assert!(status.success());
    assert!(
        log.lines()
            .iter()
            .any(|line| line["message"] == "admin_unauthorized" && line["path"] == "/jobs"),
        "the refused request is logged"
    );
    assert!(
        !log.lines()
            .iter()
            .any(|line| line.to_string().contains(ADMIN_TOKEN)),
        "the token is never logged"
    );
}

#[test]
fn an_admin_listener_beyond_loopback_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let base = "webhook_secret = \"s\"\nrepo_url = \".\"\nrepositories = [\"octo/repo\"]\n";
    let (code, stdout, stderr) = check(
        dir.path(),
        &format!("{base}admin_listen = \"0.0.0.0:9090\"\n"),
        &[],
    );
    assert_eq!(code, 2, "{stdout}");
    assert_eq!(
        stderr,
        "booty: error: invalid `admin_listen` in TOML file check.toml: 0.0.0.0:9090 is not a loopback \
         address, and no `admin_token` is set: anyone who can reach it could retry and cancel jobs; set \
         `admin_token` (or `admin_token_file`), or listen on 127.0.0.1\n"
    );
    // With a token it may; the token is shown redacted.
    let (code, stdout, stderr) = check(
        dir.path(),
        &format!("{base}admin_listen = \"0.0.0.0:9090\"\nadmin_token = \"{ADMIN_TOKEN}\"\n"),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("admin_token = \"<redacted>\""), "{stdout}");
    assert!(!stdout.contains(ADMIN_TOKEN));
    // A token that cannot travel in a header is named.
    let (code, _, stderr) = check(
        dir.path(),
        &format!("{base}admin_token = \"two words\"\n"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "invalid `admin_token` in TOML file check.toml: the admin token must be visible ASCII"
        ),
        "{stderr}"
    );
}

#[test]
fn booty_jobs_lists_shows_retries_and_cancels_with_the_configured_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = config(dir.path());
    // Issue 2's job runs until stopped; every other fails.
    let command = "if [ \"$BOOTY_ISSUE_NUMBER\" = 2 ]; then sleep 60; fi; echo nope >&2; exit 3";
    settings.insert(
        "job_command",
        V::L(vec!["sh".into(), "-c".into(), command.into()]),
    );
    settings.insert("lease_secs", V::I(3));
    // Only the last 3 bytes of what a job prints are kept.
    settings.insert("job_output_bytes", V::I(3));
    let booty = Booty::start(dir.path(), &settings, &[]);
    let url = format!("http://{}", booty.admin);
    let jobs = |args: &[&str]| {
        let mut all = vec!["jobs", "--url", url.as_str()];
        all.extend_from_slice(args);
        // booty.toml in `dir` holds the token; nothing of it is on the command line.
        booty_in(dir.path(), &all, &[])
    };
    let failed = booty.send(&payload_for_issue(dir.path(), 1), "issues", None, false);
    let failed = failed.body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(
        booty.wait_for_final_with(&failed, ADMIN_TOKEN)["state"],
        "failed"
    );

    let (code, stdout, stderr) = jobs(&["list", "--state", "failed"]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("JOB"), "{stdout}");
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[1].starts_with(&format!("{failed}  failed  1")),
        "{stdout}"
    );
    assert!(lines[1].contains("Codertocat/Hello-World#1"), "{stdout}");
    assert!(
        lines[1].ends_with("job command exit status: 3; stderr ends with: nope"),
        "{stdout}"
    );
    let (code, stdout, _) = jobs(&["list", "--repository", "other/repo"]);
    assert_eq!((code, stdout.lines().count()), (0, 1), "{stdout}");

    let (code, stdout, _) = jobs(&["show", &failed]);
    assert_eq!(code, 0);
    let shown: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        shown["output"], "pe\n",
        "job_output_bytes = 3 keeps the last 3 bytes"
    );

    let (code, stdout, _) = jobs(&["retry", &failed]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(stdout, format!("{failed} queued\n"));
    let (code, stdout, _) = jobs(&["cancel", "9-nope"]);
    assert_eq!(
        (code, stdout.as_str()),
        (1, "HTTP 404: no job with id 9-nope\n")
    );

    let running = booty.send(&payload_for_issue(dir.path(), 2), "issues", None, false);
    let running = running.body["job_id"].as_str().unwrap().to_owned();
    let (code, stdout, _) = jobs(&["cancel", &running]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout == format!("{running} cancelled\n") || stdout == format!("{running} running\n"),
        "{stdout}"
    );
    assert_eq!(
        booty.wait_for_final_with(&running, ADMIN_TOKEN)["state"],
        "cancelled"
    );

    // Without the token in the configuration, the listener refuses.
    std::fs::write(
        dir.path().join("other.toml"),
        "webhook_secret = \"s\"\nrepo_url = \".\"\nrepositories = [\"octo/repo\"]\n",
    )
    .unwrap();
    let (code, stdout, _) = booty_in(
        dir.path(),
        &["jobs", "--config", "other.toml", "--url", &url, "list"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        stdout.starts_with("HTTP 401: this admin listener needs its token"),
        "{stdout}"
    );
    let (status, log) = booty.terminate();
    assert!(status.success());
    assert!(
        !log.lines()
            .iter()
            .any(|line| line.to_string().contains(ADMIN_TOKEN))
    );
}
