//! Removing the trigger label (or closing the issue) cancels the issue's job, wherever it is: queued, or
//! running (its command is killed and its workspace removed); labelling the issue again starts a new one.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::toml_value::V;
use crate::support::{Booty, DEADLINE, git_repository, labeled_payload, lines, store_config};

/// A job command whose first run waits (it writes its pid, then sleeps) and whose later runs finish.
pub(crate) fn first_run_waits(dir: &Path) -> (String, PathBuf) {
    let pids = dir.join("pids.txt");
    let command = format!(
        "echo $$ >> {pids}; if [ \"$(wc -l < {pids})\" -gt 1 ]; then exit 0; fi; exec sleep 300",
        pids = pids.display()
    );
    (command, pids)
}

/// The settings of a process on `store` running `command`, renewing its leases every second (so a
/// cancellation reaches a running job within about a second).
pub(crate) fn settings(
    dir: &Path,
    store: &str,
    command: &str,
) -> std::collections::BTreeMap<&'static str, V> {
    let repo = git_repository(dir);
    let mut settings = store_config(&repo, dir, store, command);
    settings.insert("lease_secs", V::I(3));
    settings
}

/// The fixture's trigger payload with `action` (`labeled`, `unlabeled`, `closed`).
pub(crate) fn issue_event(dir: &Path, action: &str) -> PathBuf {
    let mut payload: Value =
        serde_json::from_slice(&std::fs::read(labeled_payload(dir, "agent:builder")).unwrap())
            .unwrap();
    payload["action"] = Value::from(action);
    let path = dir.join(format!("{action}.json"));
    std::fs::write(&path, serde_json::to_vec(&payload).unwrap()).unwrap();
    path
}

/// Waits until `path` has `count` lines, and returns them.
pub(crate) fn wait_for_lines(path: &Path, count: usize) -> Vec<String> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let lines = lines(path);
        if lines.len() >= count {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{} never had {count} lines",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether process `pid` still runs (a zombie does not count).
pub(crate) fn alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.starts_with(" Z"))
    })
}

/// The workspaces under `dir`'s workspace root.
pub(crate) fn workspaces(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir.join("workspaces"))
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().path())
                .filter(|path| {
                    path.file_name()
                        .unwrap()
                        .to_string_lossy()
                        .starts_with("booty-issue-")
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Sends `unlabeled` to `booty` for a job running in `runner` (whose workspaces are under
/// `runner_dir/workspaces`): the job ends `cancelled`, its command is dead and its workspace gone; then a
/// relabel runs a new job to success.
pub(crate) fn cancel_running_then_relabel(
    dir: &Path,
    booty: &Booty,
    (runner, runner_dir): (&Booty, &Path),
    job_id: &str,
    pids: &Path,
) {
    let pid = wait_for_lines(pids, 1)[0].clone();
    assert!(alive(&pid));
    let sent = booty.send(&issue_event(dir, "unlabeled"), "issues", None, false);
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    assert_eq!(sent.body["status"], "cancelled", "{:?}", sent.body);
    assert_eq!(sent.body["job_ids"], serde_json::json!([job_id]));

    let job = runner.wait_for_final(job_id);
    assert_eq!(job["state"], "cancelled", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("the trigger label was removed"),
        "{job}"
    );
    let deadline = Instant::now() + DEADLINE;
    while alive(&pid) || !workspaces(runner_dir).is_empty() {
        assert!(
            Instant::now() < deadline,
            "the command ({pid}) or its workspace outlived the cancel"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    runner.log.wait_for("job_cancelled", |line| {
        line["message"] == "job_cancelled" && line["job_id"] == job_id
    });

    let again = booty.send(&issue_event(dir, "labeled"), "issues", None, false);
    assert_eq!(again.status, 202, "{:?}", again.body);
    let job = booty.wait_for_final(again.body["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
}

#[test]
fn removing_the_trigger_label_cancels_a_running_job_and_a_relabel_runs_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (command, pids) = first_run_waits(dir.path());
    let booty = Booty::start(dir.path(), &settings(dir.path(), "memory", &command), &[]);
    let sent = booty.send(&issue_event(dir.path(), "labeled"), "issues", None, false);
    assert_eq!(sent.status, 202);
    let job_id = sent.body["job_id"].as_str().unwrap().to_owned();
    cancel_running_then_relabel(dir.path(), &booty, (&booty, dir.path()), &job_id, &pids);
    // Closing the issue with nothing left to stop changes nothing.
    let closed = booty.send(&issue_event(dir.path(), "closed"), "issues", None, false);
    assert_eq!(
        (closed.status, &closed.body["reason"]),
        (200, &Value::from("no_job_to_cancel"))
    );
}

#[test]
fn on_sqlite_a_job_recovered_after_a_restart_is_cancelled_too() {
    let dir = tempfile::tempdir().unwrap();
    let (command, pids) = first_run_waits(dir.path());
    let store = format!("sqlite:{}", dir.path().join("booty.db").display());
    let settings = settings(dir.path(), &store, &command);
    let first = Booty::start(dir.path(), &settings, &[]);
    let sent = first.send(&issue_event(dir.path(), "labeled"), "issues", None, false);
    let job_id = sent.body["job_id"].as_str().unwrap().to_owned();
    wait_for_lines(&pids, 1);
    crate::support::signal_pid(first.pid(), "KILL");
    drop(first);
    // The restart takes the job back and runs it again (its first command died with booty): it waits.
    std::fs::write(&pids, "").unwrap();
    let restarted = Booty::start(dir.path(), &settings, &[]);
    cancel_running_then_relabel(
        dir.path(),
        &restarted,
        (&restarted, dir.path()),
        &job_id,
        &pids,
    );
}
