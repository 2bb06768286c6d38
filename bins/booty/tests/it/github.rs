//! A GitHub App's credentials through the binary, against the fake GitHub (booty-testkit), which speaks
//! GitHub's REST protocol and serves its repositories over smart HTTP only to tokens it minted.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use booty_testkit::github::{CLIENT_ID, Caller, FakeGitHub};
use serde_json::{Value, json};

use crate::support::toml_value::V;
use crate::support::{Booty, check, labeled_payload, store_config};

/// The fake GitHub on a runtime of its own, its clock kept with the real one (the binary signs its JWTs
/// with the real clock).
pub(crate) struct Fake {
    pub(crate) github: FakeGitHub,
    ticking: Arc<AtomicBool>,
    _runtime: tokio::runtime::Runtime,
}

impl Fake {
    pub(crate) fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let github = runtime.block_on(FakeGitHub::start());
        let ticking = Arc::new(AtomicBool::new(true));
        let clock = github.clock().clone();
        let running = Arc::clone(&ticking);
        std::thread::spawn(move || {
            let mut last = Instant::now();
            while running.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                clock.advance(last.elapsed());
                last = Instant::now();
            }
        });
        Self {
            github,
            ticking,
            _runtime: runtime,
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.ticking.store(false, Ordering::SeqCst);
    }
}

/// The App's settings: its client id, its key in a file, the fake's API.
pub(crate) fn app_settings(fake: &FakeGitHub, dir: &Path) -> Vec<(&'static str, V)> {
    let key = dir.join("app.pem");
    std::fs::write(&key, &fake.app_key().pkcs1_pem).unwrap();
    vec![
        ("github_app_id", V::from(CLIENT_ID)),
        (
            "github_app_private_key_file",
            V::from(key.display().to_string()),
        ),
        ("github_api_url", V::from(fake.api_url())),
    ]
}

/// The fixture's trigger, for `full_name`, from `installation` (none: a repository webhook).
pub(crate) fn trigger_for(
    dir: &Path,
    full_name: &str,
    installation: Option<u64>,
) -> std::path::PathBuf {
    let mut payload: Value =
        serde_json::from_slice(&std::fs::read(labeled_payload(dir, "agent:builder")).unwrap())
            .unwrap();
    payload["repository"]["full_name"] = Value::from(full_name);
    match installation {
        Some(id) => payload["installation"] = json!({ "id": id, "node_id": "MDIz" }),
        None => {
            payload.as_object_mut().unwrap().remove("installation");
        }
    }
    let path = dir.join(format!(
        "trigger-{}-{}.json",
        full_name.replace('/', "_"),
        installation.unwrap_or(0)
    ));
    std::fs::write(&path, serde_json::to_vec(&payload).unwrap()).unwrap();
    path
}

#[test]
fn with_app_credentials_each_clone_uses_an_installation_token_narrowed_to_its_repository() {
    let fake = Fake::start();
    let github = &fake.github;
    github.add_installation(
        77,
        "octo-org",
        &[
            ("contents", "write"),
            ("issues", "write"),
            ("pull_requests", "write"),
            ("metadata", "read"),
        ],
    );
    github.add_repository("octo-org/hello", Some(77));
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records.txt");
    let command = format!("cat README.md >> {0}; env >> {0}", records.display());
    let mut settings = store_config(Path::new("."), dir.path(), "memory", &command);
    settings.insert("repo_url", V::from(github.git_url("octo-org/hello")));
    settings.insert("repositories", V::L(vec!["octo-org/hello".to_owned()]));
    settings.extend(app_settings(github, dir.path()));
    let booty = Booty::start(dir.path(), &settings, &[]);

    // An App's webhook names its installation; a repository webhook does not, and booty looks it up.
    for installation in [Some(77), None] {
        let sent = booty.send(
            &trigger_for(dir.path(), "octo-org/hello", installation),
            "issues",
            None,
            false,
        );
        assert_eq!(sent.status, 202, "{:?}", sent.body);
        let job = booty.wait_for_final(sent.body["job_id"].as_str().unwrap());
        assert_eq!(job["state"], "succeeded", "{job}");
    }
    let recorded = std::fs::read_to_string(&records).unwrap();
    assert_eq!(
        recorded.matches("# octo-org/hello").count(),
        2,
        "{recorded}"
    );

    // One token, minted for this repository alone and booty's permissions, reused by the second clone.
    let mints = github.mints();
    assert_eq!(mints.len(), 1, "{mints:?}");
    assert_eq!(mints[0].installation, 77);
    assert_eq!(
        mints[0].repositories.as_deref(),
        Some(&["hello".to_owned()][..])
    );
    let permissions: Vec<(&str, &str)> = mints[0]
        .permissions
        .iter()
        .map(|(name, level)| (name.as_str(), level.as_str()))
        .collect();
    assert_eq!(
        permissions,
        [
            ("contents", "write"),
            ("issues", "write"),
            ("pull_requests", "write")
        ]
    );
    // Every fetch carried it, and the job command never saw it.
    let fetches = github.requests_for("git-upload-pack");
    assert!(!fetches.is_empty());
    assert!(
        fetches
            .iter()
            .all(|seen| seen.caller == Caller::Installation(0)),
        "{fetches:?}"
    );
    assert!(
        !recorded.contains(&mints[0].token),
        "the job command saw the token"
    );
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    let lookups = github.requests_for("apps/get-repo-installation");
    assert_eq!(lookups.len(), 1, "{lookups:?}");
    // The metrics counted GitHub's answers, by operation template (no names, no ids).
    let metrics = scrape(booty.admin);
    for line in [
        "booty_github_requests_total{operation=\"POST /app/installations/{id}/access_tokens\",code=\"201\"} 1",
        "booty_github_requests_total{operation=\"GET /repos/{owner}/{repo}/installation\",code=\"200\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(!metrics.contains("octo-org"), "{metrics}");
    let (status, log) = booty.terminate();
    assert!(status.success());
    let text: String = log.lines().iter().map(Value::to_string).collect();
    assert!(!text.contains(&mints[0].token), "the token reached the log");
}

#[test]
fn check_parses_the_apps_key_and_names_a_bad_one_without_showing_it() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let mut app = String::new();
    for (key, value) in app_settings(&fake.github, dir.path()) {
        writeln!(app, "{key} = {}", value.render()).unwrap();
    }
    let base = "webhook_secret = \"s\"\nrepo_url = \".\"\nrepositories = [\"octo/repo\"]\nstore = \"memory\"\n";
    let (code, stdout, stderr) = check(dir.path(), &format!("{base}{app}"), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("github_app_id = \"{CLIENT_ID}\"")),
        "{stdout}"
    );
    assert!(
        stdout.contains("-bit RSA key; a JWT signed with it"),
        "{stdout}"
    );

    let garbage = "-----BEGIN RSA PRIVATE KEY-----\nbm90IGEga2V5IGF0IGFsbA==\n-----END RSA PRIVATE KEY-----\n";
    std::fs::write(dir.path().join("app.pem"), garbage).unwrap();
    let (code, _, stderr) = check(dir.path(), &format!("{base}{app}"), &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid `github_app_private_key_file` in TOML file check.toml"),
        "{stderr}"
    );
    assert!(!stderr.contains("bm90IGEga2V5"), "{stderr}");

    let (code, _, stderr) = check(
        dir.path(),
        &format!("{base}github_app_id = \"{CLIENT_ID}\"\n"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains("needs `github_app_private_key_file` too"),
        "{stderr}"
    );
}

#[test]
fn each_trigger_works_on_its_own_repository_and_only_the_allowed_ones_are_served() {
    let fake = Fake::start();
    let github = &fake.github;
    let permissions = [
        ("contents", "write"),
        ("issues", "write"),
        ("pull_requests", "write"),
        ("metadata", "read"),
    ];
    github.add_installation(77, "octo-org", &permissions);
    github.add_installation(78, "other", &permissions);
    for (full_name, installation) in [("octo-org/a", 77), ("octo-org/b", 77), ("other/c", 78)] {
        github.add_repository(full_name, Some(installation));
    }
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("records");
    std::fs::create_dir(&records).unwrap();
    let command = format!(
        "{{ cat README.md; env; }} > {}/\"$BOOTY_JOB_ID\"",
        records.display()
    );
    let mut settings = store_config(Path::new("."), dir.path(), "memory", &command);
    settings.remove("repo_url");
    settings.insert("repositories", V::L(vec!["octo-org/*".to_owned()]));
    let host = github
        .git_url("x/y")
        .trim_end_matches("/x/y.git")
        .to_owned();
    settings.insert("github_url", V::from(host));
    settings.extend(app_settings(github, dir.path()));
    let booty = Booty::start(dir.path(), &settings, &[]);

    // A and B at the same time; B's payload names a clone URL elsewhere, which must not matter.
    let payload_a = trigger_for(dir.path(), "octo-org/a", Some(77));
    let mut b: Value = serde_json::from_slice(
        &std::fs::read(trigger_for(dir.path(), "octo-org/b", Some(77))).unwrap(),
    )
    .unwrap();
    b["repository"]["clone_url"] = Value::from("http://127.0.0.1:9/elsewhere/evil.git");
    let payload_b = dir.path().join("b.json");
    std::fs::write(&payload_b, serde_json::to_vec(&b).unwrap()).unwrap();
    let sent: Vec<_> = std::thread::scope(|scope| {
        let sends: Vec<_> = [&payload_a, &payload_b]
            .into_iter()
            .map(|payload| scope.spawn(|| booty.send(payload, "issues", None, false)))
            .collect();
        sends.into_iter().map(|send| send.join().unwrap()).collect()
    });
    let mut job_ids = Vec::new();
    for answer in &sent {
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        job_ids.push(answer.body["job_id"].as_str().unwrap().to_owned());
    }
    // C is not served; a bot's label starts nothing.
    let refused = booty.send(
        &trigger_for(dir.path(), "other/c", Some(78)),
        "issues",
        None,
        false,
    );
    assert_eq!(
        (refused.status, &refused.body["reason"]),
        (200, &Value::from("repository_not_allowed"))
    );
    let mut by_bot: Value = serde_json::from_slice(&std::fs::read(&payload_a).unwrap()).unwrap();
    by_bot["sender"]["type"] = Value::from("Bot");
    let bot_payload = dir.path().join("bot.json");
    std::fs::write(&bot_payload, serde_json::to_vec(&by_bot).unwrap()).unwrap();
    let ignored = booty.send(&bot_payload, "issues", None, false);
    assert_eq!(
        (ignored.status, &ignored.body["reason"]),
        (200, &Value::from("sender_is_bot"))
    );

    for (job_id, repository) in job_ids.iter().zip(["octo-org/a", "octo-org/b"]) {
        let job = booty.wait_for_final(job_id);
        assert_eq!(job["state"], "succeeded", "{job}");
        assert_eq!(job["repository"], repository);
        assert_eq!(job["installation_id"], 77);
        let recorded = std::fs::read_to_string(records.join(job_id)).unwrap();
        assert!(
            recorded.starts_with(&format!("# {repository}\n")),
            "{job_id} cloned: {recorded}"
        );
        for mint in github.mints() {
            assert!(
                !recorded.contains(&mint.token),
                "{job_id}'s command saw a token"
            );
        }
    }
    let (_, jobs) = booty.admin_get("/jobs");
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "{jobs}");
    // One token per repository, each narrowed to it; every fetch carried its own.
    let mut minted: Vec<Vec<String>> = github
        .mints()
        .iter()
        .map(|mint| mint.repositories.clone().unwrap_or_default())
        .collect();
    minted.sort();
    assert_eq!(minted, [vec!["a".to_owned()], vec!["b".to_owned()]]);
    let fetches = github.requests_for("git-upload-pack");
    assert!(
        fetches
            .iter()
            .all(|seen| matches!(seen.caller, Caller::Installation(_))),
        "{fetches:?}"
    );
    assert!(github.violations().is_empty(), "{:?}", github.violations());
}

/// `GET /metrics` on the admin listener (no token configured): the exposition.
pub(crate) fn scrape(admin: std::net::SocketAddr) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(admin).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}
