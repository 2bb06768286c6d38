//! A trigger's whole life through `booty serve`, and the ways it can end.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::support::toml_value::V;
use crate::support::{Booty, SECRET, git_repository, labeled_payload};

const TOKEN: &str = "ghs_e2eTokenThatMustNeverLeak";

/// A job command that records what a job sees into `{records}/{job_id}.txt` (outside the workspace) and
/// copies the event file next to it.
fn recording_command(records: &Path) -> V {
    let script = format!(
        r#"out="{records}/$BOOTY_JOB_ID"
{{
  echo "cwd=$(pwd)"
  echo "branch=$(git rev-parse --abbrev-ref HEAD)"
  echo "commits=$(git rev-list --count HEAD)"
  echo "files=$(ls | tr '\n' ' ')"
  env | grep '^BOOTY_' | sort
  env | grep -c -e '{TOKEN}' -e '{SECRET}' | sed 's/^/leaks=/'
}} > "$out.txt"
cp "$BOOTY_EVENT_PATH" "$out.event.json"
echo "job says hello""#,
        records = records.display()
    );
    V::L(vec!["sh".into(), "-c".into(), script])
}

fn base_config(dir: &Path) -> BTreeMap<&'static str, V> {
    let repo = git_repository(dir);
    let workspaces = dir.join("workspaces");
    BTreeMap::from([
        ("repo_url", V::from(repo.display().to_string())),
        ("store", V::from("memory")),
        ("workspace_root", V::from(workspaces.display().to_string())),
    ])
}

fn recorded(records: &Path, job_id: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(records.join(format!("{job_id}.txt"))).unwrap();
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

fn workspace_dirs(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The job's lifecycle messages, in order, each carrying the job id, and its output with the job's fields.
fn assert_lifecycle_logged(booty: &Booty, job_id: &str, delivery: &str) {
    // The lifecycle, in order, every line carrying the job id (and the job's other fields).
    booty.log.wait_for("workspace_cleaned", |line| {
        line["message"] == "workspace_cleaned"
    });
    let messages = booty.log.messages_for_job(job_id);
    let lifecycle: Vec<&str> = messages
        .iter()
        .map(String::as_str)
        .filter(|message| {
            [
                "job_started",
                "workspace_ready",
                "workspace_cleaned",
                "job_succeeded",
            ]
            .contains(message)
        })
        .collect();
    assert_eq!(
        lifecycle,
        [
            "job_started",
            "workspace_ready",
            "workspace_cleaned",
            "job_succeeded"
        ],
        "{messages:?}"
    );
    // The delivery's one line: what it was about and what became of it.
    let answered = booty.log.wait_for("the delivery's line", |line| {
        line["message"] == "webhook_answered" && line["delivery_id"] == delivery
    });
    assert_eq!(answered["level"], "INFO", "{answered}");
    assert_eq!(answered["status"], 202, "{answered}");
    assert_eq!(answered["outcome"], "accepted", "{answered}");
    assert_eq!(answered["job_id"], job_id, "{answered}");
    assert_eq!(answered["event"], "issues", "{answered}");
    assert_eq!(answered["action"], "labeled", "{answered}");
    assert_eq!(
        answered["repository"], "Codertocat/Hello-World",
        "{answered}"
    );
    assert_eq!(answered["issue_number"], 1, "{answered}");
    assert!(answered["latency_ms"].is_number(), "{answered}");
    assert!(
        !messages.iter().any(|message| message == "job_accepted"),
        "job_accepted is a debug line now: {messages:?}"
    );
    let output = booty
        .log
        .wait_for("job output", |line| line["message"] == "job_output");
    assert_eq!(output["line"], "job says hello");
    assert_eq!(output["job_id"], job_id);
    assert_eq!(output["issue_number"], 1);
    assert_eq!(output["delivery_id"], delivery);
}

#[test]
fn a_labeled_issue_becomes_a_job_on_its_branch_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records");
    std::fs::create_dir(&records).unwrap();
    let mut config = base_config(dir.path());
    config.insert("job_command", recording_command(&records));
    let booty = Booty::start(dir.path(), &config, &[("BOOTY_GITHUB_TOKEN", TOKEN)]);
    let payload = labeled_payload(dir.path(), "agent:builder");

    let sent = booty.send(&payload, "issues", None, false);
    assert_eq!(sent.status, 202, "{sent:?}");
    assert!(sent.exit.success());
    let job_id = format!("1-{}", sent.delivery);
    assert_eq!(
        sent.body,
        serde_json::json!({"status": "accepted", "job_id": job_id})
    );

    let job = booty.wait_for_final(&job_id);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["issue_number"], 1);
    assert_eq!(job["repository"], "Codertocat/Hello-World");
    assert_eq!(job["delivery_id"], sent.delivery.as_str());
    assert_eq!(job["error"], Value::Null);

    let seen = recorded(&records, &job_id);
    let workspace = &seen["BOOTY_WORKSPACE"];
    assert_eq!(&seen["cwd"], workspace);
    assert_eq!(seen["branch"], "agent/issue-1");
    assert_eq!(seen["commits"], "1", "depth 1 by default");
    assert_eq!(seen["files"], "README.md src.txt ");
    assert_eq!(seen["BOOTY_JOB_ID"], job_id);
    assert_eq!(seen["BOOTY_ISSUE_NUMBER"], "1");
    assert_eq!(
        seen["BOOTY_ISSUE_TITLE"],
        "Spelling error in the README file"
    );
    assert_eq!(
        seen["BOOTY_ISSUE_URL"],
        "https://github.com/Codertocat/Hello-World/issues/1"
    );
    assert_eq!(seen["BOOTY_REPOSITORY"], "Codertocat/Hello-World");
    assert_eq!(seen["BOOTY_BRANCH"], "agent/issue-1");
    assert_eq!(seen["BOOTY_BASE_BRANCH"], "main");
    assert_eq!(
        seen["leaks"], "0",
        "the command must not see the token or the webhook secret"
    );
    let event_path = Path::new(&seen["BOOTY_EVENT_PATH"]);
    assert!(
        !event_path.starts_with(workspace),
        "event file inside the workspace"
    );
    assert!(!event_path.exists(), "event file left behind");
    let event = std::fs::read(records.join(format!("{job_id}.event.json"))).unwrap();
    assert_eq!(
        event,
        std::fs::read(&payload).unwrap(),
        "the event file is the payload as sent"
    );

    assert!(!Path::new(workspace).exists(), "workspace left behind");
    assert!(workspace_dirs(&dir.path().join("workspaces")).is_empty());

    assert_lifecycle_logged(&booty, &job_id, &sent.delivery);

    let (status, log) = booty.terminate();
    assert!(status.success(), "{status}");
    let text = log.lines().iter().map(Value::to_string).collect::<String>();
    assert!(
        !text.contains(TOKEN) && !text.contains(SECRET),
        "a secret reached the log"
    );
}

#[test]
fn redeliveries_duplicates_other_labels_and_form_hooks_get_the_contracts_answers() {
    let dir = tempfile::tempdir().unwrap();
    let booty = Booty::start(dir.path(), &base_config(dir.path()), &[]);
    let payload = labeled_payload(dir.path(), "agent:builder");

    let first = booty.send(&payload, "issues", None, false);
    assert_eq!(first.status, 202, "{first:?}");
    let again = booty.send(&payload, "issues", Some(&first.delivery), false);
    assert_eq!(again.status, 200);
    let job_id = format!("1-{}", first.delivery);
    assert_eq!(
        again.body,
        serde_json::json!({"status": "already_processed", "job_id": job_id})
    );
    assert!(again.exit.success());

    let other = labeled_payload(dir.path(), "bug");
    let ignored = booty.send(&other, "issues", None, false);
    assert_eq!(ignored.status, 200);
    assert_eq!(ignored.body["status"], "ignored");
    assert_eq!(
        ignored.body["reason"],
        "label `bug` is not the trigger label `agent:builder`"
    );

    let form = booty.send(&payload, "issues", None, true);
    assert_eq!(form.status, 202, "{form:?}");

    assert_eq!(booty.wait_for_final(&job_id)["state"], "succeeded");
    let (status, jobs) = booty.admin_get("/jobs");
    assert_eq!(status, 200);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "{jobs}");
    assert_eq!(booty.admin_get("/jobs/1-unknown").0, 404);
}

#[test]
fn a_failing_command_fails_the_job_with_its_exit_code_and_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path());
    let script = "echo 'cannot build: missing tool' >&2; exit 7";
    config.insert(
        "job_command",
        V::L(vec!["sh".into(), "-c".into(), script.into()]),
    );
    let booty = Booty::start(dir.path(), &config, &[]);
    let sent = booty.send(
        &labeled_payload(dir.path(), "agent:builder"),
        "issues",
        None,
        false,
    );
    assert_eq!(sent.status, 202);

    let job = booty.wait_for_final(&format!("1-{}", sent.delivery));
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["attempts"], 1, "a non-zero exit is permanent: no retry");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("exit status: 7"), "{error}");
    assert!(error.contains("cannot build: missing tool"), "{error}");
    booty
        .log
        .wait_for("job_failed", |line| line["message"] == "job_failed");
    assert!(workspace_dirs(&dir.path().join("workspaces")).is_empty());
}

#[test]
fn sigterm_cancels_a_job_that_outlives_the_grace_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path());
    config.insert("job_command", V::L(vec!["sleep".into(), "300".into()]));
    config.insert("shutdown_grace_secs", V::I(1));
    let booty = Booty::start(dir.path(), &config, &[]);
    let sent = booty.send(
        &labeled_payload(dir.path(), "agent:builder"),
        "issues",
        None,
        false,
    );
    assert_eq!(sent.status, 202);
    let started = booty.log.wait_for("job_command_started", |line| {
        line["message"] == "job_command_started"
    });
    let command_pid = started["pid"].as_u64().unwrap();

    let (status, log) = booty.terminate();
    assert!(status.success(), "{status}");
    let complete = log.wait_for("shutdown_complete", |line| {
        line["message"] == "shutdown_complete"
    });
    assert_eq!(complete["cancelled"], 1, "{complete}");
    assert!(
        !Path::new(&format!("/proc/{command_pid}/cmdline")).exists()
            || std::fs::read_to_string(format!("/proc/{command_pid}/stat"))
                .unwrap()
                .contains(") Z "),
        "the job command outlived booty"
    );
    assert!(workspace_dirs(&dir.path().join("workspaces")).is_empty());
}

#[test]
fn sigterm_lets_a_job_finish_within_the_grace() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = base_config(dir.path());
    let records = dir.path().join("records");
    std::fs::create_dir(&records).unwrap();
    // Waits for SIGTERM to have been sent (the test touches `go`), then finishes normally.
    let go = dir.path().join("go");
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; touch {records}/$BOOTY_JOB_ID.done",
        go = go.display(),
        records = records.display()
    );
    config.insert("job_command", V::L(vec!["sh".into(), "-c".into(), script]));
    config.insert("shutdown_grace_secs", V::I(30));
    let booty = Booty::start(dir.path(), &config, &[]);
    let sent = booty.send(
        &labeled_payload(dir.path(), "agent:builder"),
        "issues",
        None,
        false,
    );
    assert_eq!(sent.status, 202);
    booty.log.wait_for("job_command_started", |line| {
        line["message"] == "job_command_started"
    });

    crate::support::signal_pid(booty.pid(), "TERM");
    booty.log.wait_for("shutdown_started", |line| {
        line["message"] == "shutdown_started"
    });
    std::fs::write(&go, "").unwrap();
    let (status, log) = booty.terminate();
    assert!(status.success(), "{status}");
    let complete = log.wait_for("shutdown_complete", |line| {
        line["message"] == "shutdown_complete"
    });
    assert_eq!(complete["cancelled"], 0, "{complete}");
    assert!(records.join(format!("1-{}.done", sent.delivery)).exists());
    let job_id = format!("1-{}", sent.delivery);
    assert!(
        log.messages_for_job(&job_id)
            .contains(&"job_succeeded".to_owned())
    );
}

#[test]
fn sigterm_does_not_wait_for_a_clone_stuck_on_a_silent_server() {
    let dir = tempfile::tempdir().unwrap();
    // Accepts connections and never answers, so the clone blocks on a read until its 300 s deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/repo.git", silent.local_addr().unwrap());
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in silent.incoming() {
            let Ok(stream) = stream else { return };
            if held_tx.send(stream).is_err() {
                return;
            }
        }
    });
    let config = BTreeMap::from([
        ("repo_url", V::from(url)),
        ("store", V::from("memory")),
        (
            "workspace_root",
            V::from(dir.path().join("workspaces").display().to_string()),
        ),
        ("clone_timeout_secs", V::I(300)),
        ("shutdown_grace_secs", V::I(1)),
    ]);
    let booty = Booty::start(dir.path(), &config, &[]);
    let sent = booty.send(
        &labeled_payload(dir.path(), "agent:builder"),
        "issues",
        None,
        false,
    );
    assert_eq!(sent.status, 202);
    // The clone has connected: it is now blocked on the silent server.
    let _held = held_rx.recv_timeout(crate::support::DEADLINE).unwrap();

    // Exit must come well before the clone's deadline (the wait is bounded by the support's DEADLINE).
    let (status, log) = booty.terminate();
    assert!(status.success(), "{status}");
    log.wait_for("shutdown_complete", |line| {
        line["message"] == "shutdown_complete"
    });
}
