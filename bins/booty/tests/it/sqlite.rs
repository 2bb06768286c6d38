//! The SQLite store through the binary (`store = "sqlite:PATH"`): accepted deliveries survive `kill -9`,
//! duplicates stay duplicates after a restart, and a file booty cannot use stops `serve` at start-up with
//! the path in the message.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::toml_value::V;
use crate::support::{
    Booty, DEADLINE, git_repository, lines, payload_for_issue, serve_once, store_config,
};

/// The configuration of a process on the database `db`, running `command` through `sh -c`.
fn config(repo: &Path, dir: &Path, db: &Path, command: &str) -> BTreeMap<&'static str, V> {
    store_config(repo, dir, &format!("sqlite:{}", db.display()), command)
}

#[test]
fn accepted_jobs_survive_kill_9_and_run_once_and_their_deliveries_stay_duplicates() {
    const DELIVERIES: u64 = 50;
    const ISSUES: u64 = 10;
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let db = dir.path().join("booty.db");
    let (started, done) = (dir.path().join("started.txt"), dir.path().join("done.txt"));
    // Slow enough that the kill finds jobs running and jobs waiting; both files are outside the
    // workspace, which is removed when a job ends.
    let command = format!(
        "echo \"$BOOTY_JOB_ID\" >> {started}; sleep 0.3; echo \"$BOOTY_JOB_ID\" >> {done}",
        started = started.display(),
        done = done.display()
    );
    let settings = config(&repo, dir.path(), &db, &command);
    let payloads: Vec<_> = (1..=ISSUES)
        .map(|issue| payload_for_issue(dir.path(), issue))
        .collect();

    let first = Booty::start(dir.path(), &settings, &[]);
    let mut job_ids = BTreeSet::new();
    for n in 0..DELIVERIES {
        let delivery = format!("crash-{n}");
        let issue = n % ISSUES + 1;
        let sent = first.send(
            &payloads[usize::try_from(issue - 1).unwrap()],
            "issues",
            Some(&delivery),
            false,
        );
        let job_id = format!("{issue}-{delivery}");
        assert_eq!(sent.status, 202, "{delivery}: {:?}", sent.body);
        assert_eq!(sent.body["job_id"], job_id.as_str());
        job_ids.insert(job_id);
    }
    // Mid-way: some jobs are done, the rest are running or waiting.
    let deadline = Instant::now() + DEADLINE;
    while lines(&done).len() < 10 {
        assert!(Instant::now() < deadline, "jobs never finished");
        std::thread::sleep(Duration::from_millis(20));
    }
    crate::support::signal_pid(first.pid(), "KILL");
    drop(first);
    let done_at_kill = lines(&done).len();
    assert!(
        done_at_kill < 50,
        "every job finished before the kill; nothing was tested"
    );

    let second = Booty::start(dir.path(), &settings, &[]);
    let mut recovered = 0;
    for job_id in &job_ids {
        let job = second.wait_for_final(job_id);
        assert_eq!(job["state"], "succeeded", "{job}");
        let ran = lines(&done).iter().filter(|id| *id == job_id).count();
        match job["attempts"].as_u64().unwrap() {
            // Waiting (or done) at the kill: it ran exactly once.
            1 => assert_eq!(ran, 1, "{job_id} ran {ran} times: {job}"),
            // Running at the kill: the restart took it back and counted the lost attempt; its first
            // command may or may not have got as far as writing its line.
            2 => {
                assert!((1..=2).contains(&ran), "{job_id} ran {ran} times: {job}");
                recovered += 1;
                second.log.wait_for("job_requeued", |line| {
                    line["message"] == "job_requeued"
                        && line["job_id"] == job_id.as_str()
                        && line["reason"] == "recovered"
                });
            }
            _ => panic!("{job_id} took more attempts than a kill explains: {job}"),
        }
    }
    assert!(recovered > 0, "no job was running at the kill");
    let ran: BTreeSet<String> = lines(&done).into_iter().collect();
    assert_eq!(ran, job_ids, "every accepted job ran, and no other");

    // GitHub redelivering any of them is told it was already processed, with the original job.
    for n in 0..DELIVERIES {
        let delivery = format!("crash-{n}");
        let issue = n % ISSUES + 1;
        let sent = second.send(
            &payloads[usize::try_from(issue - 1).unwrap()],
            "issues",
            Some(&delivery),
            false,
        );
        assert_eq!(sent.status, 200, "{delivery}: {:?}", sent.body);
        assert_eq!(sent.body["status"], "already_processed");
        assert_eq!(sent.body["job_id"], format!("{issue}-{delivery}").as_str());
    }
    let (status, _) = second.terminate();
    assert!(status.success());
}

#[test]
fn a_second_process_on_the_same_file_stops_at_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let db = dir.path().join("shared.db");
    let settings = config(&repo, dir.path(), &db, "true");
    let first = Booty::start(dir.path(), &settings, &[]);

    let (code, stderr, stdout) = serve_once(dir.path(), &settings);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot open the SQLite store (`store`)")
            && stderr.contains(&format!("SQLite database {} is in use", db.display())),
        "{stderr}"
    );
    assert!(!stdout.contains("\"listening\""), "it never listened");
    let (status, _) = first.terminate();
    assert!(status.success());
}

#[test]
fn a_corrupt_or_unwritable_file_stops_serve_at_start_up_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(
        &corrupt,
        "this is not a database, it is a text file ".repeat(200),
    )
    .unwrap();
    let (code, stderr, _) = serve_once(dir.path(), &config(&repo, dir.path(), &corrupt, "true"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "SQLite database {} is corrupt or not a database",
            corrupt.display()
        )),
        "{stderr}"
    );

    // Under a regular file: no directory to create it in, which the configuration check already says.
    let unplaceable = dir.path().join("plain-file").join("booty.db");
    std::fs::write(dir.path().join("plain-file"), "").unwrap();
    let (code, stderr, _) =
        serve_once(dir.path(), &config(&repo, dir.path(), &unplaceable, "true"));
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "the directory {} of the SQLite file does not exist",
            dir.path().join("plain-file").display()
        )),
        "{stderr}"
    );

    // On a read-only file system (root ignores permission bits, not a read-only mount).
    let disk = booty_testkit::Tmpfs::mount(1 << 20);
    disk.set_read_only(true);
    let unwritable = disk.path().join("booty.db");
    let (code, stderr, _) = serve_once(dir.path(), &config(&repo, dir.path(), &unwritable, "true"));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot open SQLite database {} for writing",
            unwritable.display()
        )),
        "{stderr}"
    );
}
