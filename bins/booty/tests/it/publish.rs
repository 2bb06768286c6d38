//! The agent's work becomes a pull request: through the built binary, against the fake GitHub with an
//! App's credentials. The branch is checked with `git`, the pull requests and comments as the fake's
//! REST API holds them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use booty_testkit::github::{FakeGitHub, Fault};
use serde_json::{Value, json};

use crate::github::{Fake, app_settings};
use crate::support::toml_value::V;
use crate::support::{Booty, SECRET, labeled_payload, store_config};

const REPO: &str = "octo-org/hello";
const BRANCH_OF_7: &str = "agent/issue-7";

/// An App installed on `octo-org` with `contents` at `contents`, and `octo-org/hello` in its reach.
fn fake_with(contents: &str) -> Fake {
    let fake = Fake::start();
    fake.github.add_installation(
        77,
        "octo-org",
        &[
            ("contents", contents),
            ("issues", "write"),
            ("pull_requests", "write"),
            ("metadata", "read"),
        ],
    );
    fake.github.add_repository(REPO, Some(77));
    fake
}

/// The fixture's trigger for issue `issue` of [`REPO`], from installation 77.
fn trigger(dir: &Path, issue: u64) -> PathBuf {
    let mut payload: Value =
        serde_json::from_slice(&std::fs::read(labeled_payload(dir, "agent:builder")).unwrap())
            .unwrap();
    payload["repository"]["full_name"] = Value::from(REPO);
    payload["installation"] = json!({ "id": 77, "node_id": "MDIz" });
    payload["issue"]["number"] = Value::from(issue);
    payload["issue"]["title"] = Value::from(format!("Fix issue {issue}"));
    let path = dir.join(format!("trigger-{issue}.json"));
    std::fs::write(&path, serde_json::to_vec(&payload).unwrap()).unwrap();
    path
}

/// booty's settings: the fake's repository, the App, `command` through `sh -c`, on `store`.
fn settings(
    github: &FakeGitHub,
    dir: &Path,
    store: &str,
    command: &str,
) -> BTreeMap<&'static str, V> {
    let mut settings = store_config(Path::new("."), dir, store, command);
    settings.insert("repo_url", V::from(github.git_url(REPO)));
    settings.insert("repositories", V::L(vec![REPO.to_owned()]));
    settings.extend(app_settings(github, dir));
    settings
}

/// A command that commits `file` with `text` as an agent would, and records its environment and the
/// workspace's git configuration in `env_log` (outside the workspace).
fn committing(file: &str, text: &str, env_log: &Path) -> String {
    format!(
        "env >> {env}; cat .git/config >> {env}; echo '{text}' > {file} && git add {file} && \
         git -c user.name=agent -c user.email=agent@example.invalid commit -q -m 'agent: {file}'",
        env = env_log.display()
    )
}

/// Runs git in `dir` with a clean configuration; its stdout.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Clones `branch` of [`REPO`] from the fake with a personal access token, as a person would.
fn clone_branch(github: &FakeGitHub, dir: &Path, branch: &str) -> PathBuf {
    github.set_pat("ghp_testReader0123456789");
    let target = dir.join(format!("check-{}", branch.replace('/', "_")));
    let _ = std::fs::remove_dir_all(&target);
    git(
        dir,
        &[
            "-c",
            "http.extraHeader=Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hwX3Rlc3RSZWFkZXIwMTIzNDU2Nzg5",
            "clone",
            "-q",
            "--branch",
            branch,
            &github.git_url(REPO),
            target.to_str().unwrap(),
        ],
    );
    target
}

/// Watches the argv of `root` and every process under it until stopped; returns what it saw.
struct ArgvWatch {
    running: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// The parent of process `pid`, from `/proc/PID/stat` (the field after the parenthesised name).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl ArgvWatch {
    fn start(root: u32) -> Self {
        let running = Arc::new(AtomicBool::new(true));
        let still = Arc::clone(&running);
        let thread = std::thread::spawn(move || {
            let mut seen = std::collections::BTreeSet::new();
            while still.load(Ordering::SeqCst) {
                for entry in std::fs::read_dir("/proc").unwrap().flatten() {
                    let Some(pid) = entry
                        .file_name()
                        .to_str()
                        .and_then(|name| name.parse().ok())
                    else {
                        continue;
                    };
                    let mut ancestor = Some(pid);
                    while let Some(at) = ancestor.filter(|&at| at != root && at > 1) {
                        ancestor = parent_of(at);
                    }
                    if ancestor != Some(root) {
                        continue;
                    }
                    if let Ok(argv) = std::fs::read(entry.path().join("cmdline")) {
                        seen.insert(String::from_utf8_lossy(&argv).replace('\0', " "));
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            seen.into_iter().collect()
        });
        Self {
            running,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Vec<String> {
        self.running.store(false, Ordering::SeqCst);
        self.thread.take().unwrap().join().unwrap()
    }
}

fn comment_bodies(github: &FakeGitHub, issue: u64) -> Vec<String> {
    github
        .comments(REPO, issue)
        .iter()
        .map(|comment| comment["body"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_commit_becomes_one_pull_request_updated_by_the_next_job_and_no_token_leaks() {
    let fake = fake_with("write");
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let env_log = dir.path().join("env.txt");
    let marker = dir.path().join("second");
    // The first job adds one file; the next job (the same issue labelled again) another.
    let command = format!(
        "if [ -e {marker} ]; then {second}; else touch {marker}; {first}; fi",
        marker = marker.display(),
        first = committing("one.txt", "first change", &env_log),
        second = committing("two.txt", "second change", &env_log),
    );
    let settings = settings(github, dir.path(), "memory", &command);
    // What a deployment's environment holds (BOOTY_GITHUB_TOKEN too: the lifecycle tests run a token
    // configuration; here the App's installation tokens stand for it).
    let secrets = [
        ("BOOTY_WEBHOOK_SECRET", SECRET),
        ("DATABASE_URL", "postgres://user:dbpassword@db/booty"),
    ];
    let env: Vec<(&str, &str)> = secrets.to_vec();
    let booty = Booty::start(dir.path(), &settings, &env);
    let watch = ArgvWatch::start(booty.pid());
    let payload = trigger(dir.path(), 7);

    let sent = booty.send(&payload, "issues", None, false);
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    let first_job = sent.body["job_id"].as_str().unwrap().to_owned();
    let job = booty.wait_for_final(&first_job);
    assert_eq!(job["state"], "succeeded", "{job}");

    // The branch is on GitHub with the agent's commit on top of main.
    let head = github
        .branch_head(REPO, BRANCH_OF_7)
        .expect("the branch was pushed");
    let checkout = clone_branch(github, dir.path(), BRANCH_OF_7);
    assert_eq!(git(&checkout, &["rev-parse", "HEAD"]).trim(), head);
    assert_eq!(
        git(&checkout, &["log", "-1", "--format=%s"]).trim(),
        "agent: one.txt"
    );
    assert_eq!(
        std::fs::read_to_string(checkout.join("one.txt")).unwrap(),
        "first change\n"
    );
    let main = github.branch_head(REPO, "main").unwrap();
    assert_eq!(git(&checkout, &["rev-parse", "HEAD~1"]).trim(), main);

    // One pull request from it into main, titled after the issue, closing it.
    let pulls = github.pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:#?}");
    let pull = &pulls[0];
    assert_eq!(pull["head"]["ref"], BRANCH_OF_7);
    assert_eq!(pull["base"]["ref"], "main");
    assert_eq!(pull["title"], "Fix issue 7");
    let body = pull["body"].as_str().unwrap();
    assert!(body.contains("Closes #7"), "{body}");
    assert!(body.contains(&first_job), "{body}");
    let url = pull["html_url"].as_str().unwrap().to_owned();

    // One comment on the issue, ending with the pull request's link.
    let comments = comment_bodies(github, 7);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(comments[0].ends_with(&url), "{}", comments[0]);
    assert!(comments[0].contains(&format!("<!-- booty:job {first_job} -->")));

    // Labelled again: the same pull request is updated, the branch moves, one more comment (this job's).
    let sent = booty.send(&payload, "issues", None, false);
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    let second_job = sent.body["job_id"].as_str().unwrap().to_owned();
    let job = booty.wait_for_final(&second_job);
    assert_eq!(job["state"], "succeeded", "{job}");
    let pulls = github.pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:#?}");
    assert!(pulls[0]["body"].as_str().unwrap().contains(&second_job));
    let new_head = github.branch_head(REPO, BRANCH_OF_7).unwrap();
    assert_ne!(new_head, head);
    let checkout = clone_branch(github, dir.path(), BRANCH_OF_7);
    assert_eq!(
        git(&checkout, &["log", "-1", "--format=%s"]).trim(),
        "agent: two.txt"
    );
    let comments = comment_bodies(github, 7);
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert!(comments[1].contains(&second_job));
    assert!(comments[1].ends_with(&url), "{}", comments[1]);
    assert!(
        comments[1].contains("updated the pull request"),
        "{}",
        comments[1]
    );

    // Pushes carried the installation token; nothing secret reached the command, the log or any argv.
    let pushes = github.requests_for("git-receive-pack");
    assert!(!pushes.is_empty());
    let argv = watch.stop();
    let (status, log) = booty.terminate();
    assert!(status.success());
    let log: String = log.lines().iter().map(Value::to_string).collect();
    let environment = std::fs::read_to_string(&env_log).unwrap();
    let mut secrets: Vec<String> = secrets
        .iter()
        .map(|(_, value)| (*value).to_owned())
        .collect();
    secrets.extend(github.mints().into_iter().map(|mint| mint.token));
    assert_nothing_leaked(&secrets, &environment, &log, &argv);
    assert!(github.violations().is_empty(), "{:?}", github.violations());
}

/// No secret in the command's environment, the log or any argv, and the watch did see git push.
fn assert_nothing_leaked(secrets: &[String], environment: &str, log: &str, argv: &[String]) {
    assert!(secrets.len() > 2, "no installation token was minted");
    for secret in secrets {
        assert!(
            !environment.contains(secret.as_str()),
            "the command saw {secret} (environment or .git/config)"
        );
        assert!(!log.contains(secret.as_str()), "the log has {secret}");
        assert!(
            !argv.iter().any(|line| line.contains(secret.as_str())),
            "an argv has {secret}: {:?}",
            argv.iter().find(|line| line.contains(secret.as_str()))
        );
    }
    assert!(
        argv.iter()
            .any(|line| line.contains("push") && line.contains("--force-with-lease")),
        "the watch never saw git push: {} argvs",
        argv.len()
    );
    for name in [
        "DATABASE_URL",
        "BOOTY_WEBHOOK_SECRET_UNUSED",
        "GIT_CONFIG_VALUE_0",
    ] {
        assert!(!environment.contains(name), "the command got {name}");
    }
}

#[test]
fn nothing_to_change_a_failing_command_and_uncommitted_work_are_told_on_their_issues() {
    let fake = fake_with("write");
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let command = "case $BOOTY_ISSUE_NUMBER in \
         1) true ;; \
         2) for i in $(seq 1 30); do echo \"progress $i\" >&2; done; echo 'boom: the tests failed' >&2; exit 3 ;; \
         3) echo 'left here' > uncommitted.txt ;; \
         esac";
    let settings = settings(github, dir.path(), "memory", command);
    let booty = Booty::start(dir.path(), &settings, &[]);
    let mut jobs = Vec::new();
    for issue in 1..=3 {
        let sent = booty.send(&trigger(dir.path(), issue), "issues", None, false);
        assert_eq!(sent.status, 202, "{:?}", sent.body);
        jobs.push(sent.body["job_id"].as_str().unwrap().to_owned());
    }
    let states: Vec<Value> = jobs.iter().map(|job| booty.wait_for_final(job)).collect();

    // Nothing changed: no branch, no pull request, and the issue is told.
    assert_eq!(states[0]["state"], "succeeded", "{}", states[0]);
    assert_eq!(github.branch_head(REPO, "agent/issue-1"), None);
    let comments = comment_bodies(github, 1);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains("without changing anything"),
        "{}",
        comments[0]
    );

    // A failing command: the job fails, and the comment shows why with the end of its output.
    assert_eq!(states[1]["state"], "failed", "{}", states[1]);
    let comments = comment_bodies(github, 2);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains("failed: job command exit status: 3"),
        "{}",
        comments[0]
    );
    assert!(
        comments[0].contains("boom: the tests failed"),
        "{}",
        comments[0]
    );
    assert!(comments[0].contains("progress 30"), "{}", comments[0]);
    assert!(!comments[0].contains("progress 5\n"), "{}", comments[0]);

    // Work left uncommitted is committed by booty and becomes the pull request.
    assert_eq!(states[2]["state"], "succeeded", "{}", states[2]);
    let checkout = clone_branch(github, dir.path(), "agent/issue-3");
    assert_eq!(
        std::fs::read_to_string(checkout.join("uncommitted.txt")).unwrap(),
        "left here\n"
    );
    let author = git(&checkout, &["log", "-1", "--format=%an <%ae>|%s"]);
    assert!(
        author.starts_with("booty <booty@users.noreply.github.com>|Changes for #3"),
        "{author}"
    );
    assert_eq!(github.pulls(REPO).len(), 1);
    assert!(github.violations().is_empty(), "{:?}", github.violations());
}

#[test]
fn someone_elses_commits_on_the_branch_fail_the_job_and_are_kept() {
    let fake = fake_with("write");
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let env_log = dir.path().join("env.txt");
    let settings = settings(
        github,
        dir.path(),
        "memory",
        &committing("x.txt", "x", &env_log),
    );
    // Someone pushes agent/issue-7 before booty does.
    let theirs = clone_branch(github, dir.path(), "main");
    git(&theirs, &["checkout", "-q", "-b", BRANCH_OF_7]);
    std::fs::write(theirs.join("mine.txt"), "a person's work\n").unwrap();
    git(&theirs, &["add", "mine.txt"]);
    git(
        &theirs,
        &[
            "-c",
            "user.name=p",
            "-c",
            "user.email=p@example.invalid",
            "commit",
            "-q",
            "-m",
            "mine",
        ],
    );
    git(
        &theirs,
        &[
            "-c",
            "http.extraHeader=Authorization: Basic eC1hY2Nlc3MtdG9rZW46Z2hwX3Rlc3RSZWFkZXIwMTIzNDU2Nzg5",
            "push",
            "-q",
            "origin",
            BRANCH_OF_7,
        ],
    );
    let their_head = github.branch_head(REPO, BRANCH_OF_7).unwrap();
    let booty = Booty::start(dir.path(), &settings, &[]);
    let sent = booty.send(&trigger(dir.path(), 7), "issues", None, false);
    let job = booty.wait_for_final(sent.body["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("a commit booty did not push"), "{error}");
    assert!(error.contains(&their_head), "{error}");
    assert_eq!(
        github.branch_head(REPO, BRANCH_OF_7).unwrap(),
        their_head,
        "overwritten"
    );
    assert!(github.pulls(REPO).is_empty());
    let comments = comment_bodies(github, 7);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains("Delete or rename the branch"),
        "{}",
        comments[0]
    );
}

#[test]
fn without_contents_write_the_job_fails_naming_the_permission() {
    let fake = fake_with("read");
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let env_log = dir.path().join("env.txt");
    let settings = settings(
        github,
        dir.path(),
        "memory",
        &committing("x.txt", "x", &env_log),
    );
    let booty = Booty::start(dir.path(), &settings, &[]);
    let sent = booty.send(&trigger(dir.path(), 7), "issues", None, false);
    let job = booty.wait_for_final(sent.body["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("contents: write"), "{error}");
    assert_eq!(github.branch_head(REPO, BRANCH_OF_7), None);
}

#[test]
fn kill_9_between_push_and_pull_request_then_restart_leaves_one_pull_request_and_one_comment() {
    let fake = fake_with("write");
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let env_log = dir.path().join("env.txt");
    let db = dir.path().join("booty.db");
    let settings = settings(
        github,
        dir.path(),
        &format!("sqlite:{}", db.display()),
        &committing("x.txt", "x", &env_log),
    );
    // The pull request's creation is held long enough to kill booty while it waits.
    let held = Duration::from_secs(6);
    github.inject("pulls/create", Fault::Slow(held), 1);
    let first = Booty::start(dir.path(), &settings, &[]);
    let sent = first.send(&trigger(dir.path(), 7), "issues", None, false);
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    let job_id = sent.body["job_id"].as_str().unwrap().to_owned();
    first
        .log
        .wait_for("publish_pushed", |line| line["message"] == "publish_pushed");
    let pushed = github
        .branch_head(REPO, BRANCH_OF_7)
        .expect("pushed before the kill");
    std::thread::sleep(Duration::from_millis(300));
    crate::support::signal_pid(first.pid(), "KILL");
    drop(first);
    assert!(
        github.pulls(REPO).is_empty(),
        "the pull request was made before the kill"
    );

    let second = Booty::start(dir.path(), &settings, &[]);
    let job = second.wait_for_final(&job_id);
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 2, "{job}");
    // The held request has ended by now too (with 422 if booty got there first): one pull request.
    std::thread::sleep(held);
    let pulls = github.pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:#?}");
    assert_eq!(pulls[0]["head"]["ref"], BRANCH_OF_7);
    // The rerun's commit went over the first run's (booty's own, recorded before the push).
    let checkout = clone_branch(github, dir.path(), BRANCH_OF_7);
    assert_eq!(
        git(&checkout, &["log", "-1", "--format=%s"]).trim(),
        "agent: x.txt"
    );
    assert_eq!(git(&checkout, &["rev-list", "--count", "HEAD"]).trim(), "2");
    assert!(!pushed.is_empty());
    let comments = comment_bodies(github, 7);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].ends_with(pulls[0]["html_url"].as_str().unwrap()),
        "{}",
        comments[0]
    );
    let (status, _) = second.terminate();
    assert!(status.success());
}

#[test]
fn answers_lost_after_github_acted_are_found_again_without_running_the_command_twice() {
    let fake = fake_with("write");
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let env_log = dir.path().join("env.txt");
    let runs = dir.path().join("runs.txt");
    let command = format!(
        "echo run >> {}; {}",
        runs.display(),
        committing("x.txt", "x", &env_log)
    );
    let settings = settings(github, dir.path(), "memory", &command);
    // GitHub makes the comment and the pull request, but booty sees a 502 for each (a proxy's timeout).
    github.inject("issues/create-comment", Fault::StatusAfterApplying(502), 1);
    github.inject("pulls/create", Fault::StatusAfterApplying(502), 1);
    let booty = Booty::start(dir.path(), &settings, &[]);
    let sent = booty.send(&trigger(dir.path(), 7), "issues", None, false);
    let job = booty.wait_for_final(sent.body["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["attempts"], 1, "{job}");
    assert_eq!(
        std::fs::read_to_string(&runs).unwrap(),
        "run\n",
        "the command ran again"
    );
    let pulls = github.pulls(REPO);
    assert_eq!(pulls.len(), 1, "{pulls:#?}");
    let comments = comment_bodies(github, 7);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].ends_with(pulls[0]["html_url"].as_str().unwrap()),
        "{}",
        comments[0]
    );
    assert_eq!(github.requests_for("pulls/create").len(), 1);
    let (_, log) = booty.terminate();
    assert!(
        log.lines()
            .iter()
            .any(|line| line["message"] == "pull_request_create_failed"),
        "the lost answer was not noticed"
    );
}

#[test]
fn with_commit_uncommitted_off_uncommitted_work_is_left_out_and_the_issue_is_told() {
    let fake = fake_with("write");
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let mut settings = settings(
        github,
        dir.path(),
        "memory",
        "echo 'left here' > uncommitted.txt",
    );
    settings.insert("commit_uncommitted", V::B(false));
    let booty = Booty::start(dir.path(), &settings, &[]);
    let sent = booty.send(&trigger(dir.path(), 4), "issues", None, false);
    let job = booty.wait_for_final(sent.body["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(github.branch_head(REPO, "agent/issue-4"), None);
    assert!(github.pulls(REPO).is_empty());
    let comments = comment_bodies(github, 4);
    assert_eq!(comments.len(), 1, "{comments:#?}");
    assert!(
        comments[0].contains("booty left them out"),
        "{}",
        comments[0]
    );
    assert!(
        comments[0].contains("without changing anything"),
        "{}",
        comments[0]
    );
}
