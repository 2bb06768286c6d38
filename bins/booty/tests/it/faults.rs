//! Faults through the binary: a disk that fills and frees, a second booty on the same directories, a
//! `kill -9` with a job command running, and payloads no environment can hold as sent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::toml_value::V;
use crate::support::{
    Booty, DEADLINE, git_repository, labeled_payload, lines, payload_for_issue, serve_once,
    store_config,
};

/// Whether process `pid` still runs (a zombie, waiting to be reaped, does not).
fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.starts_with(" Z"))
    })
}

/// Waits until `path` holds a line, and returns the first.
fn first_line(path: &Path) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(line) = lines(path).into_iter().next() {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "{} never written",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_full_disk_under_the_sqlite_store_runs_every_job_exactly_once_once_space_returns() {
    const JOBS: u64 = 10;
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let disk = booty_testkit::Tmpfs::mount(8 << 20);
    let runs = dir.path().join("runs.txt");
    let command = format!("echo \"$BOOTY_JOB_ID\" >> {}; sleep 1", runs.display());
    let db = disk.path().join("booty.db");
    let settings = store_config(
        &repo,
        dir.path(),
        &format!("sqlite:{}", db.display()),
        &command,
    );
    let booty = Booty::start(dir.path(), &settings, &[]);
    let mut job_ids = BTreeSet::new();
    for issue in 1..=JOBS {
        let sent = booty.send(&payload_for_issue(dir.path(), issue), "issues", None, false);
        assert_eq!(sent.status, 202, "{:?}", sent.body);
        job_ids.insert(sent.body["job_id"].as_str().unwrap().to_owned());
    }
    // The disk fills while jobs run and wait, for two seconds.
    first_line(&runs);
    disk.fill();
    std::thread::sleep(Duration::from_secs(2));
    disk.free();

    for job_id in &job_ids {
        let job = booty.wait_for_final(job_id);
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    // Each command ran once: no job was handed out again because a write failed.
    let mut ran = lines(&runs);
    ran.sort();
    assert_eq!(ran, job_ids.iter().cloned().collect::<Vec<_>>());
    let (status, log) = booty.terminate();
    assert!(status.success());
    assert!(
        !log.lines()
            .iter()
            .any(|line| line.to_string().contains("non-zero transaction depth")),
        "a failed write left the connection unusable"
    );
}

#[test]
fn a_second_booty_leaves_the_running_ones_workspace_alone() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let started = dir.path().join("started.txt");
    // The job needs its workspace until its end: it fails if its checkout was removed under it.
    let command = format!(
        "pwd >> {}; sleep 4; test -f README.md && git status --short",
        started.display()
    );
    let first_settings = store_config(&repo, dir.path(), "memory", &command);
    let first = Booty::start(dir.path(), &first_settings, &[]);
    let sent = first.send(
        &labeled_payload(dir.path(), "agent:builder"),
        "issues",
        None,
        false,
    );
    assert_eq!(sent.status, 202);
    let workspace = first_line(&started);

    // A second process on the same workspace root: one that cannot bind the first one's port, and one
    // that starts beside it.
    let mut clashing = first_settings.clone();
    clashing.insert("listen", V::from(first.webhook.to_string()));
    let (code, stderr, _) = serve_once(dir.path(), &clashing);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot listen on"), "{stderr}");
    assert!(
        Path::new(&workspace).is_dir(),
        "the failed start removed {workspace}"
    );

    let beside = Booty::start(dir.path(), &first_settings, &[]);
    let swept = beside
        .log
        .wait_for("startup_swept", |line| line["message"] == "startup_swept");
    assert_eq!(swept["workspaces"], 0, "{swept}");
    assert_eq!(swept["workspaces_in_use"], 1, "{swept}");
    assert!(
        Path::new(&workspace).is_dir(),
        "the second booty removed {workspace}"
    );

    let job = first.wait_for_final(sent.body["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    drop(beside);
}

#[test]
fn a_job_command_dies_with_booty_and_the_restart_runs_the_job_again() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let (pids, second) = (dir.path().join("pids.txt"), dir.path().join("second.txt"));
    // First run: a grandchild in the background and the command waiting for it. Second run: done.
    let command = format!(
        "if [ -f {pids} ]; then echo again >> {second}; exit 0; fi; \
         sleep 300 & echo \"$$ $!\" > {pids}; wait",
        pids = pids.display(),
        second = second.display()
    );
    let db = dir.path().join("booty.db");
    let settings = store_config(
        &repo,
        dir.path(),
        &format!("sqlite:{}", db.display()),
        &command,
    );
    let booty = Booty::start(dir.path(), &settings, &[]);
    let sent = booty.send(
        &labeled_payload(dir.path(), "agent:builder"),
        "issues",
        None,
        false,
    );
    assert_eq!(sent.status, 202);
    let line = first_line(&pids);
    let (command_pid, grandchild) = line.split_once(' ').unwrap();
    assert!(alive(command_pid) && alive(grandchild));

    crate::support::signal_pid(booty.pid(), "KILL");
    drop(booty);
    let deadline = Instant::now() + DEADLINE;
    while alive(command_pid) || alive(grandchild) {
        assert!(
            Instant::now() < deadline,
            "the job command outlived booty: {command_pid} {grandchild}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let restarted = Booty::start(dir.path(), &settings, &[]);
    let job = restarted.wait_for_final(sent.body["job_id"].as_str().unwrap());
    assert_eq!(
        (&job["state"], &job["attempts"]),
        (&Value::from("succeeded"), &Value::from(2))
    );
    assert_eq!(lines(&second), ["again"]);
    let swept = restarted
        .log
        .wait_for("startup_swept", |line| line["message"] == "startup_swept");
    assert_eq!(swept["workspaces"], 1, "the first run's workspace: {swept}");
}

#[test]
fn payloads_no_environment_can_hold_as_sent_still_run_and_bad_issue_numbers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let records = dir.path().join("titles.txt");
    let command = format!(
        "printf '%s %s\\n' \"$BOOTY_ISSUE_NUMBER\" \"${{#BOOTY_ISSUE_TITLE}}\" >> {}",
        records.display()
    );
    let settings = store_config(&repo, dir.path(), "memory", &command);
    let booty = Booty::start(dir.path(), &settings, &[]);
    let base: Value = serde_json::from_slice(
        &std::fs::read(labeled_payload(dir.path(), "agent:builder")).unwrap(),
    )
    .unwrap();
    let send_with = |issue: Value, title: String| {
        let mut payload = base.clone();
        payload["issue"]["number"] = issue;
        payload["issue"]["title"] = Value::from(title);
        let path = dir.path().join("payload.json");
        std::fs::write(&path, serde_json::to_vec(&payload).unwrap()).unwrap();
        booty.send(&path, "issues", None, false)
    };

    let mut job_ids = Vec::new();
    for (issue, title) in [(1, "a\u{0}b".to_owned()), (2, "x".repeat(200 * 1024))] {
        let sent = send_with(Value::from(issue), title);
        assert_eq!(sent.status, 202, "{:?}", sent.body);
        job_ids.push(sent.body["job_id"].as_str().unwrap().to_owned());
    }
    for job_id in &job_ids {
        let job = booty.wait_for_final(job_id);
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    let mut titles = lines(&records);
    titles.sort();
    // The NUL is dropped; the long title is cut to 4 KiB (the event file has it whole).
    assert_eq!(titles, ["1 2", "2 4096"]);

    // Beyond what any store can hold: bad input, answered 400 before the store, every time.
    for _ in 0..2 {
        let sent = send_with(Value::from(9_223_372_036_854_775_808_u64), "big".to_owned());
        assert_eq!(sent.status, 400, "{:?}", sent.body);
        assert!(
            sent.body["error"]
                .as_str()
                .unwrap()
                .contains("`issue.number` 9223372036854775808 is out of range"),
            "{:?}",
            sent.body
        );
    }
    let (_, jobs) = booty.admin_get("/jobs");
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "{jobs}");
}

#[test]
fn exit_code_75_asks_for_another_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let marker = dir.path().join("tried");
    let command = format!(
        "if [ -f {marker} ]; then exit 0; fi; touch {marker}; echo 'rate limited' >&2; exit 75",
        marker = marker.display()
    );
    let mut settings: BTreeMap<&str, V> = store_config(&repo, dir.path(), "memory", &command);
    settings.insert("retry_base_secs", V::I(1));
    let booty = Booty::start(dir.path(), &settings, &[]);
    let sent = booty.send(
        &labeled_payload(dir.path(), "agent:builder"),
        "issues",
        None,
        false,
    );
    let job_id = sent.body["job_id"].as_str().unwrap().to_owned();
    let job = booty.wait_for_final(&job_id);
    assert_eq!(
        (&job["state"], &job["attempts"]),
        (&Value::from("succeeded"), &Value::from(2))
    );
    let retrying = booty
        .log
        .wait_for("job_retrying", |line| line["message"] == "job_retrying");
    let error = retrying["error"].as_str().unwrap();
    assert!(
        error.contains("exit status: 75")
            && error.contains("asks for a retry")
            && error.contains("rate limited"),
        "{error}"
    );
}
