//! Several `booty serve` processes sharing one queue in PostgreSQL (`store = "postgres://..."`), against
//! the server named by `BOOTY_TEST_POSTGRES_URL` (built without it, each test is `ignored`, see `build.rs`;
//! `cargo xtask ci` says so loudly). Each test has a schema of its own, named in the store URL with
//! `options[search_path]` and as the processes' `application_name`, so it can cut exactly its own
//! processes' connections.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use crate::support::toml_value::V;
use crate::support::{Booty, git_repository, lines, payload_for_issue, signal_pid, store_config};

/// The server the tests use, `BOOTY_TEST_POSTGRES_URL`. The tests are ignored when the variable was unset
/// at build time (`build.rs`); should it be unset now all the same (the test binary run by hand, or
/// `--include-ignored`), the test fails saying so, rather than passing without having run.
pub(crate) fn url() -> String {
    std::env::var("BOOTY_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .expect("BOOTY_TEST_POSTGRES_URL is not set, and this test needs its server")
}

/// Runs `future` on a runtime of its own (these tests are synchronous, like the processes they drive).
fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// A schema of the test's own, dropped (with booty's tables in it) when the test ends.
pub(crate) struct Schema {
    base_url: String,
    name: String,
}

impl Schema {
    pub(crate) fn create(base_url: String) -> Self {
        let name = format!(
            "booty_e2e_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let schema = Self { base_url, name };
        schema.execute(&format!("CREATE SCHEMA {}", schema.name));
        schema
    }

    /// The `store` value for the processes of this test.
    pub(crate) fn store(&self) -> String {
        let separator = if self.base_url.contains('?') {
            '&'
        } else {
            '?'
        };
        format!(
            "{}{separator}options[search_path]={name}&application_name={name}",
            self.base_url,
            name = self.name
        )
    }

    fn execute(&self, sql: &str) {
        block_on(async {
            let mut admin = PgConnection::connect(&self.base_url).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&mut admin)
                .await
                .unwrap();
        });
    }

    /// Terminates every connection of this test's processes; returns how many there were.
    fn terminate_connections(&self) -> i64 {
        block_on(async {
            let mut admin = PgConnection::connect(&self.base_url).await.unwrap();
            sqlx::query_scalar(
                "SELECT count(*) FROM (
                     SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1
                 ) AS terminated",
            )
            .bind(&self.name)
            .fetch_one(&mut admin)
            .await
            .unwrap()
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if std::thread::panicking() {
            // Best effort: the test's own failure is the one to report.
            let _ = std::panic::catch_unwind(|| self.execute(&drop));
        } else {
            self.execute(&drop);
        }
    }
}

/// One `booty serve` process's folder: its configuration, log and workspaces, as on its own machine.
pub(crate) fn process_dir(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir(&path).unwrap();
    path
}

#[test]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
fn removing_the_label_cancels_a_job_running_in_the_other_process() {
    let schema = Schema::create(url());
    let dir = tempfile::tempdir().unwrap();
    let (command, pids) = crate::cancel::first_run_waits(dir.path());
    let (a_dir, b_dir) = (process_dir(dir.path(), "a"), process_dir(dir.path(), "b"));
    let start = |process_dir: &Path| {
        Booty::start(
            process_dir,
            &crate::cancel::settings(process_dir, &schema.store(), &command),
            &[],
        )
    };
    let (a, b) = (start(&a_dir), start(&b_dir));
    let sent = a.send(
        &crate::cancel::issue_event(dir.path(), "labeled"),
        "issues",
        None,
        false,
    );
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    let job_id = sent.body["job_id"].as_str().unwrap().to_owned();
    crate::cancel::wait_for_lines(&pids, 1);
    let started_in = |booty: &Booty| {
        booty
            .log
            .lines()
            .iter()
            .any(|line| line["message"] == "job_started" && line["job_id"] == job_id.as_str())
    };
    // The label comes off through the process that is not running the job.
    let (runner, runner_dir, other) = if started_in(&a) {
        (&a, &a_dir, &b)
    } else {
        assert!(started_in(&b), "the job started in neither process");
        (&b, &b_dir, &a)
    };
    crate::cancel::cancel_running_then_relabel(
        dir.path(),
        other,
        (runner, runner_dir),
        &job_id,
        &pids,
    );
}

#[test]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
fn two_processes_share_one_queue_and_run_each_delivery_once() {
    const DELIVERIES: u64 = 200;
    const ISSUES: u64 = 10;
    let base = url();
    let schema = Schema::create(base);
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let ran = dir.path().join("ran.txt");
    let command = format!("echo \"$BOOTY_JOB_ID\" >> {}", ran.display());
    let (a_dir, b_dir) = (process_dir(dir.path(), "a"), process_dir(dir.path(), "b"));
    let a = Booty::start(
        &a_dir,
        &store_config(&repo, &a_dir, &schema.store(), &command),
        &[],
    );
    let b = Booty::start(
        &b_dir,
        &store_config(&repo, &b_dir, &schema.store(), &command),
        &[],
    );
    let payloads: Vec<PathBuf> = (1..=ISSUES)
        .map(|issue| payload_for_issue(dir.path(), issue))
        .collect();

    // Every delivery goes to both processes at once: one thread sends them alternately to A and B, the
    // other sends the same deliveries in the same order to the other process.
    let send_all = |first_to_a: bool| {
        (0..DELIVERIES)
            .map(|n| {
                let to_a = (n % 2 == 0) == first_to_a;
                let target = if to_a { &a } else { &b };
                let delivery = format!("e2e-{n}");
                let sent = target.send(
                    &payloads[usize::try_from(n % ISSUES).unwrap()],
                    "issues",
                    Some(&delivery),
                    false,
                );
                (delivery, sent.status, sent.body)
            })
            .collect::<Vec<_>>()
    };
    let (first, second) = std::thread::scope(|scope| {
        let first = scope.spawn(|| send_all(true));
        let second = scope.spawn(|| send_all(false));
        (first.join().unwrap(), second.join().unwrap())
    });

    let mut expected = BTreeSet::new();
    for (n, ((delivery, one, one_body), (_, other, other_body))) in
        first.iter().zip(&second).enumerate()
    {
        let job_id = format!("{}-{delivery}", n as u64 % ISSUES + 1);
        let mut statuses = [*one, *other];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 202],
            "{delivery}: {one_body} / {other_body}"
        );
        for body in [one_body, other_body] {
            assert_eq!(body["job_id"], job_id.as_str(), "{body}");
        }
        expected.insert(job_id);
    }
    assert_eq!(expected.len(), 200);

    for job_id in &expected {
        let job = a.wait_for_final(job_id);
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 1, "{job}");
    }
    let mut ran_ids = lines(&ran);
    ran_ids.sort();
    assert_eq!(ran_ids.len(), 200, "each job runs exactly once");
    assert_eq!(ran_ids.into_iter().collect::<BTreeSet<_>>(), expected);
    // Both processes ran jobs: the queue really is shared.
    for booty in [&a, &b] {
        let succeeded = booty
            .log
            .lines()
            .iter()
            .filter(|line| line["message"] == "job_succeeded")
            .count();
        assert!(succeeded > 0, "a process ran no job");
    }
    let (a_status, _) = a.terminate();
    let (b_status, _) = b.terminate();
    assert!(a_status.success() && b_status.success());
}

#[test]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
fn jobs_of_a_killed_process_are_finished_by_the_other_once_their_leases_expire() {
    let base = url();
    let schema = Schema::create(base);
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let (started, finished, release) = (
        dir.path().join("started.txt"),
        dir.path().join("finished.txt"),
        dir.path().join("release"),
    );
    // Holds its job until `release` exists.
    let command = format!(
        "echo \"$BOOTY_JOB_ID\" >> {started}; while [ ! -e {release} ]; do sleep 0.05; done; \
         echo \"$BOOTY_JOB_ID\" >> {finished}",
        started = started.display(),
        release = release.display(),
        finished = finished.display()
    );
    let settings = |process: &Path| {
        let mut config = store_config(&repo, process, &schema.store(), &command);
        config.insert("lease_secs", V::I(2));
        config
    };
    let (a_dir, b_dir) = (process_dir(dir.path(), "a"), process_dir(dir.path(), "b"));

    // A alone accepts three jobs (three issues, three workers) and starts them all.
    let a = Booty::start(&a_dir, &settings(&a_dir), &[]);
    let mut job_ids = Vec::new();
    for issue in 1..=3 {
        let sent = a.send(
            &payload_for_issue(dir.path(), issue),
            "issues",
            Some(&format!("kill-{issue}")),
            false,
        );
        assert_eq!(sent.status, 202, "{sent:?}");
        job_ids.push(format!("{issue}-kill-{issue}"));
    }
    let mut commands = Vec::new();
    for job_id in &job_ids {
        let line = a
            .log
            .wait_for(&format!("the job command of {job_id}"), |line| {
                line["message"] == "job_command_started" && line["job_id"] == job_id.as_str()
            });
        commands.push(line["pid"].as_u64().unwrap());
    }

    // B starts while A's leases are live: it must not take A's jobs.
    let b = Booty::start(&b_dir, &settings(&b_dir), &[]);
    for job_id in &job_ids {
        let (status, job) = b.admin_get(&format!("/jobs/{job_id}"));
        assert_eq!(
            (status, job["state"].as_str()),
            (200, Some("running")),
            "{job}"
        );
    }

    // A dies with its job commands, as a machine would.
    signal_pid(a.pid(), "KILL");
    for pid in commands {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .status();
    }
    drop(a);
    std::fs::write(&release, "").unwrap();

    for job_id in &job_ids {
        let job = b.wait_for_final(job_id);
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["attempts"], 2, "{job}");
        b.log.wait_for("job_requeued", |line| {
            line["message"] == "job_requeued"
                && line["job_id"] == job_id.as_str()
                && line["reason"] == "lease_expired"
        });
    }
    let mut finished_ids = lines(&finished);
    finished_ids.sort();
    assert_eq!(finished_ids, job_ids, "each job finished once, by B");
    let mut started_ids = lines(&started);
    started_ids.sort();
    let twice: Vec<String> = job_ids
        .iter()
        .flat_map(|id| [id.clone(), id.clone()])
        .collect();
    assert_eq!(started_ids, twice, "each job started in A, then in B");
    let (status, _) = b.terminate();
    assert!(status.success());
}

#[test]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
fn cutting_the_database_connections_under_load_loses_no_accepted_job() {
    const DELIVERIES: u64 = 100;
    let base = url();
    let schema = Schema::create(base);
    let dir = tempfile::tempdir().unwrap();
    let repo = git_repository(dir.path());
    let ran = dir.path().join("ran.txt");
    let command = format!("echo \"$BOOTY_JOB_ID\" >> {}", ran.display());
    let (a_dir, b_dir) = (process_dir(dir.path(), "a"), process_dir(dir.path(), "b"));
    let a = Booty::start(
        &a_dir,
        &store_config(&repo, &a_dir, &schema.store(), &command),
        &[],
    );
    let b = Booty::start(
        &b_dir,
        &store_config(&repo, &b_dir, &schema.store(), &command),
        &[],
    );
    let payloads: Vec<PathBuf> = (1..=5)
        .map(|issue| payload_for_issue(dir.path(), issue))
        .collect();

    let sending = AtomicBool::new(true);
    let terminated = AtomicI64::new(0);
    let answers = std::thread::scope(|scope| {
        scope.spawn(|| {
            while sending.load(Ordering::SeqCst) {
                // Pacing, not synchronisation: let some deliveries through between cuts.
                std::thread::sleep(Duration::from_millis(150));
                terminated.fetch_add(schema.terminate_connections(), Ordering::SeqCst);
            }
        });
        let mut answers = BTreeMap::new();
        for n in 0..DELIVERIES {
            let delivery = format!("cut-{n}");
            let issue = usize::try_from(n % 5).unwrap();
            // GitHub's redelivery: a refused delivery is sent again, to either process, until answered.
            let mut tries = 0;
            let sent = loop {
                let target = if (n + tries) % 2 == 0 { &a } else { &b };
                let sent = target.send(&payloads[issue], "issues", Some(&delivery), false);
                if sent.status != 503 {
                    break sent;
                }
                tries += 1;
                assert!(
                    tries < 50,
                    "{delivery} refused {tries} times: {:?}",
                    sent.body
                );
            };
            answers.insert(delivery, sent);
        }
        sending.store(false, Ordering::SeqCst);
        answers
    });
    assert!(
        terminated.load(Ordering::SeqCst) > 0,
        "no connection was cut"
    );

    let mut accepted = BTreeSet::new();
    for (delivery, sent) in &answers {
        // A refused delivery whose commit got through after all is found on redelivery: 200, same job.
        assert!([200, 202].contains(&sent.status), "{delivery}: {sent:?}");
        accepted.insert(sent.body["job_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(accepted.len(), usize::try_from(DELIVERIES).unwrap());
    for job_id in &accepted {
        let job = a.wait_for_final(job_id);
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    let ran_ids: BTreeSet<String> = lines(&ran).into_iter().collect();
    assert_eq!(ran_ids, accepted, "every accepted job ran");
    for booty in [a, b] {
        let (status, _) = booty.terminate();
        assert!(status.success());
    }
}

#[test]
fn an_unreachable_database_stops_serve_at_start_up_without_showing_the_password() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    let config = format!(
        "webhook_secret = \"s\"\nrepo_url = \".\"\nrepositories = [\"octo/repo\"]\nstore = \"postgres://booty:hunter2-secret@127.0.0.1:9/booty\"\n\
         workspace_root = \"{}\"\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n",
        dir.path().join("workspaces").display()
    );
    std::fs::write(dir.path().join("booty.toml"), config).unwrap();
    let output = std::process::Command::new(crate::support::booty_bin())
        .args(["serve", "--config", "booty.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("cannot open the PostgreSQL store (`store`)")
            && stderr.contains("could not connect to PostgreSQL database `booty` at 127.0.0.1:9"),
        "{stderr}"
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(!stderr.contains("hunter2") && !stdout.contains("hunter2"));
    assert!(
        !stdout.contains("\"listening\""),
        "it never listened: {stdout}"
    );
}
