//! Recovering the deliveries GitHub could not deliver, through the binary, against the fake GitHub's
//! delivery log: what was missed runs once, what booty had or GitHub saw answered is left alone, what cannot
//! matter is never fetched, and the stored point carries a restart.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

use booty_testkit::github::{Caller, DeliverySeed, FakeGitHub, Fault, Hook};
use serde_json::{Value, json};

use crate::github::{Fake, app_settings, scrape, trigger_for};
use crate::support::toml_value::V;
use crate::support::{Booty, booty_in, check, lines, store_config};

const REPO: &str = "octo-org/hello";
const INSTALLATION: u64 = 77;

/// The fake with one App installation and one repository.
fn fake() -> Fake {
    let fake = Fake::start();
    fake.github.add_installation(
        INSTALLATION,
        "octo-org",
        &[
            ("contents", "write"),
            ("issues", "write"),
            ("pull_requests", "write"),
            ("metadata", "read"),
        ],
    );
    fake.github.add_repository(REPO, Some(INSTALLATION));
    fake
}

/// A process on `store` whose job command appends `$BOOTY_ISSUE_NUMBER $BOOTY_JOB_ID` to `records.txt`
/// (after waiting for `gate` to exist, if given), recovering the App hook's deliveries.
fn settings(
    github: &FakeGitHub,
    dir: &Path,
    store: &str,
    gate: Option<&Path>,
) -> BTreeMap<&'static str, V> {
    let records = dir.join("records.txt");
    let wait = gate.map_or(String::new(), |gate| {
        format!("while [ ! -e {} ]; do sleep 0.05; done; ", gate.display())
    });
    let command = format!(
        "{wait}echo \"$BOOTY_ISSUE_NUMBER $BOOTY_JOB_ID\" >> {}",
        records.display()
    );
    let mut settings = store_config(Path::new("."), dir, store, &command);
    settings.insert("repo_url", V::from(github.git_url(REPO)));
    settings.insert("repositories", V::L(vec![REPO.to_owned()]));
    settings.insert("recovery_max_age_secs", V::I(3_600));
    settings.extend(app_settings(github, dir));
    settings
}

/// The trigger payload for issue `number` of the repository, labelled `label`.
fn payload(dir: &Path, number: u64, label: &str) -> Value {
    let mut payload: Value =
        serde_json::from_slice(&std::fs::read(trigger_for(dir, REPO, Some(INSTALLATION))).unwrap())
            .unwrap();
    payload["issue"]["number"] = json!(number);
    payload["label"]["name"] = json!(label);
    payload
}

fn seed(guid: &str, event: &str, action: &str, status_code: u16, payload: Value) -> DeliverySeed {
    DeliverySeed {
        guid: guid.to_owned(),
        event: event.to_owned(),
        action: Some(action.to_owned()),
        status_code,
        payload,
    }
}

fn ago(seconds: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(seconds)
}

/// The GitHub delivery ids booty fetched one by one.
fn fetched(github: &FakeGitHub) -> Vec<u64> {
    github
        .requests_for("apps/get-webhook-delivery")
        .iter()
        .map(|seen| {
            let path = seen.target.split('?').next().unwrap();
            path.rsplit('/').next().unwrap().parse().unwrap()
        })
        .collect()
}

/// Issue numbers the job command ran for, sorted.
fn ran(dir: &Path) -> Vec<u64> {
    let mut issues: Vec<u64> = lines(&dir.join("records.txt"))
        .iter()
        .map(|line| line.split(' ').next().unwrap().parse().unwrap())
        .collect();
    issues.sort_unstable();
    issues
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_mins(1);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The GitHub delivery ids of what [`seed_missed_log`] put in the log.
struct Seeded {
    first: u64,
    other: u64,
    twelve: u64,
    answered: u64,
    irrelevant: Vec<u64>,
}

/// The App hook's log after booty was down: issue 10's trigger (which booty had accepted) recorded as
/// failed, issues 11 and 12 missed, issue 13 failed then answered, a trigger older than the window, a
/// missed `labeled` of another label, and 240 deliveries that cannot start a job: three pages.
fn seed_missed_log(github: &FakeGitHub, dir: &Path) -> Seeded {
    let app = Hook::App;
    let trigger = |number| payload(dir, number, "agent:builder");
    let add = |seed: &DeliverySeed, seconds| github.add_delivery_sent_at(&app, seed, ago(seconds));
    add(
        &seed("guid-too-old", "issues", "labeled", 502, trigger(19)),
        7_200,
    );
    add(
        &seed("guid-accepted", "issues", "labeled", 504, trigger(10)),
        1_500,
    );
    let first = add(
        &seed("guid-11", "issues", "labeled", 502, trigger(11)),
        1_400,
    );
    let mut irrelevant = Vec::new();
    for n in 0..120 {
        irrelevant.push(add(
            &seed(&format!("push-{n}"), "push", "none", 502, json!({})),
            1_300 - n,
        ));
        let opened = seed(&format!("opened-{n}"), "issues", "opened", 0, trigger(30));
        irrelevant.push(add(&opened, 1_300 - n));
    }
    let other = add(
        &seed(
            "guid-other",
            "issues",
            "labeled",
            502,
            payload(dir, 14, "bug"),
        ),
        1_000,
    );
    // Issue 12 failed twice (a redelivery failed too): one guid, one job.
    add(&seed("guid-12", "issues", "labeled", 0, trigger(12)), 900);
    let twelve = add(&seed("guid-12", "issues", "labeled", 502, trigger(12)), 800);
    // Issue 13 failed, then GitHub saw it answered: left alone, never fetched.
    let answered = add(&seed("guid-13", "issues", "labeled", 502, trigger(13)), 700);
    add(&seed("guid-13", "issues", "labeled", 200, trigger(13)), 600);
    assert!(github.deliveries(&app).len() > 200);

    assert!(github.deliveries(&app).len() > 200);
    Seeded {
        first,
        other,
        twelve,
        answered,
        irrelevant,
    }
}

#[test]
fn missed_triggers_run_once_after_start_up_and_a_restart_resumes_from_the_stored_point() {
    let fake = fake();
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = settings(github, dir, "sqlite:booty.db", None);

    // booty accepts issue 10's trigger, but answers too late for GitHub, which records a failure.
    let booty = Booty::start(dir, &config, &[]);
    let accepted = dir.join("accepted.json");
    std::fs::write(
        &accepted,
        serde_json::to_vec(&payload(dir, 10, "agent:builder")).unwrap(),
    )
    .unwrap();
    let sent = booty.send(&accepted, "issues", Some("guid-accepted"), false);
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    booty.wait_for_final(sent.body["job_id"].as_str().unwrap());
    assert!(booty.terminate().0.success());
    assert_eq!(ran(dir), [10]);

    // While booty was down: over three pages of the App hook's log, mostly what cannot matter.
    let seeded = seed_missed_log(github, dir);
    // The first start's pass read the log while it was empty.
    let listed_before = github.requests_for("apps/list-webhook-deliveries").len();
    assert_eq!(listed_before, 1);
    assert!(fetched(github).is_empty());
    let booty = Booty::start(dir, &config, &[]);
    let completed = booty.log.wait_for("recovery_completed", |line| {
        line["message"] == "recovery_completed"
    });
    assert_eq!(completed["pages"], 3, "{completed}");
    assert_eq!(completed["submitted"], 2, "{completed}");
    let lists = github.requests_for("apps/list-webhook-deliveries")[listed_before..].to_vec();
    assert_eq!(lists.len(), 3, "{lists:?}");
    assert!(lists[0].target.contains("per_page=100"), "{lists:?}");
    assert!(lists[1].target.contains("cursor="), "{lists:?}");
    // Fetched: issue 11, issue 12's newest attempt, and the other label's (which the rule then ignores).
    let mut fetched_ids = fetched(github);
    fetched_ids.sort_unstable();
    assert_eq!(fetched_ids, [seeded.first, seeded.other, seeded.twelve]);
    assert!(!fetched_ids.contains(&seeded.answered));
    assert!(seeded.irrelevant.iter().all(|id| !fetched_ids.contains(id)));
    wait_until("issues 11 and 12 ran", || ran(dir).len() == 3);
    let recovered: Vec<Value> = booty
        .log
        .lines()
        .into_iter()
        .filter(|line| line["message"] == "delivery_recovered")
        .collect();
    assert_eq!(recovered.len(), 2, "{recovered:?}");
    assert_eq!(recovered[0]["delivery_id"], "guid-11");
    assert_eq!(recovered[0]["job_id"], "11-guid-11");
    assert_eq!(recovered[0]["event"], "issues");
    assert_eq!(recovered[0]["action"], "labeled");
    assert_eq!(recovered[1]["delivery_id"], "guid-12");
    // The operator's numbers count them too.
    let metrics = scrape(booty.admin);
    assert!(
        metrics
            .lines()
            .any(|line| line == "booty_deliveries_recovered_total 2"),
        "{metrics}"
    );
    for job in ["11-guid-11", "12-guid-12"] {
        assert_eq!(booty.wait_for_final(job)["state"], "succeeded");
    }
    assert!(booty.terminate().0.success());
    assert_eq!(ran(dir), [10, 11, 12]);

    // Issue 15 is missed while booty is down again: the next start reads one page and stops there.
    let fifteen = github.add_delivery_sent_at(
        &Hook::App,
        &seed(
            "guid-15",
            "issues",
            "labeled",
            502,
            payload(dir, 15, "agent:builder"),
        ),
        ago(90),
    );
    let booty = Booty::start(dir, &config, &[]);
    let completed = booty.log.wait_for("recovery_completed", |line| {
        line["message"] == "recovery_completed"
    });
    assert_eq!(completed["pages"], 1, "{completed}");
    assert_eq!(completed["submitted"], 1, "{completed}");
    assert_eq!(booty.wait_for_final("15-guid-15")["state"], "succeeded");
    assert_eq!(
        github.requests_for("apps/list-webhook-deliveries").len(),
        listed_before + 4
    );
    assert_eq!(fetched(github).last(), Some(&fifteen));
    assert_eq!(fetched(github).len(), 4);
    assert!(booty.terminate().0.success());
    assert_eq!(ran(dir), [10, 11, 12, 15]);
    assert!(github.violations().is_empty(), "{:?}", github.violations());
}

#[test]
fn a_full_queue_stops_the_pass_and_the_next_pass_picks_up_what_it_left() {
    let fake = fake();
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let gate = dir.join("gate");
    let mut config = settings(github, dir, "sqlite:booty.db", Some(&gate));
    // One job running and one waiting fill it: the third of the missed triggers finds it full.
    config.insert("workers", V::I(1));
    config.insert("queue_capacity", V::I(1));
    config.insert("recovery_interval_secs", V::I(1));
    for (n, number) in [21, 22, 23].into_iter().enumerate() {
        github.add_delivery_sent_at(
            &Hook::App,
            &seed(
                &format!("guid-{number}"),
                "issues",
                "labeled",
                502,
                payload(dir, number, "agent:builder"),
            ),
            ago(600 - n as u64),
        );
    }
    let booty = Booty::start(dir, &config, &[]);
    let stopped = booty.log.wait_for("recovery_stopped", |line| {
        line["message"] == "recovery_stopped"
    });
    assert!(
        stopped["error"].as_str().unwrap().contains("full"),
        "{stopped}"
    );
    std::fs::write(&gate, "").unwrap();
    wait_until("every missed trigger ran", || ran(dir).len() == 3);
    for number in [21, 22, 23] {
        let job = format!("{number}-guid-{number}");
        assert_eq!(booty.wait_for_final(&job)["state"], "succeeded");
    }
    // A later pass finds nothing more to do.
    booty.log.wait_for("a pass with nothing left", |line| {
        line["message"] == "recovery_completed" && line["submitted"] == 0
    });
    assert!(booty.terminate().0.success());
    assert_eq!(ran(dir), [21, 22, 23]);
}

#[test]
fn a_rate_limit_in_the_middle_of_a_pass_is_waited_out() {
    let fake = fake();
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = settings(github, dir, "memory", None);
    github.add_delivery_sent_at(
        &Hook::App,
        &seed(
            "guid-31",
            "issues",
            "labeled",
            0,
            payload(dir, 31, "agent:builder"),
        ),
        ago(300),
    );
    // The list is read; fetching the delivery meets a spent primary limit for two seconds.
    github.inject(
        "apps/get-webhook-delivery",
        Fault::PrimaryLimit {
            reset_in: Duration::from_secs(2),
        },
        1,
    );
    let booty = Booty::start(dir, &config, &[]);
    booty.log.wait_for("the rate limit", |line| {
        line["message"] == "github_rate_limited"
    });
    assert_eq!(booty.wait_for_final("31-guid-31")["state"], "succeeded");
    let completed = booty.log.wait_for("recovery_completed", |line| {
        line["message"] == "recovery_completed"
    });
    assert_eq!(completed["submitted"], 1, "{completed}");
    assert!(booty.terminate().0.success());
    assert_eq!(ran(dir), [31]);
}

#[test]
fn recover_dry_run_lists_what_a_pass_would_submit_and_submits_none() {
    let fake = fake();
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = settings(github, dir, "sqlite:booty.db", None);
    let app = Hook::App;
    let add = |guid: &str, number, label: &str, seconds| {
        github.add_delivery_sent_at(
            &app,
            &seed(guid, "issues", "labeled", 502, payload(dir, number, label)),
            ago(seconds),
        )
    };
    add("guid-41", 41, "agent:builder", 500);
    add("guid-other", 42, "bug", 400);
    add("guid-43", 43, "agent:builder", 300);
    let mut text = String::new();
    let mut with_listen = config.clone();
    with_listen.insert("webhook_secret", V::from("s"));
    for (key, value) in &with_listen {
        writeln!(text, "{key} = {}", value.render()).unwrap();
    }
    std::fs::write(dir.join("booty.toml"), text).unwrap();

    let (code, stdout, stderr) = booty_in(dir, &["recover", "--dry-run"], &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let would: Vec<&str> = stdout
        .lines()
        .filter(|line| line.ends_with("would submit"))
        .collect();
    assert_eq!(would.len(), 2, "{stdout}");
    assert!(would[0].starts_with("missed guid-41 "), "{stdout}");
    assert!(would[1].starts_with("missed guid-43 "), "{stdout}");
    assert!(
        stdout.contains("missed guid-other (issues labeled") && stdout.contains("ignored"),
        "{stdout}"
    );
    assert!(stdout.contains("would_submit 2"), "{stdout}");
    assert!(ran(dir).is_empty());

    // Nothing was submitted, and the stored point did not move: the service's pass submits the same two.
    let booty = Booty::start(dir, &config, &[]);
    let completed = booty.log.wait_for("recovery_completed", |line| {
        line["message"] == "recovery_completed"
    });
    assert_eq!(completed["submitted"], 2, "{completed}");
    for job in ["41-guid-41", "43-guid-43"] {
        assert_eq!(booty.wait_for_final(job)["state"], "succeeded");
    }
    assert!(booty.terminate().0.success());
    assert_eq!(ran(dir), [41, 43]);

    // A one-shot pass afterwards finds them known.
    let (code, stdout, stderr) = booty_in(dir, &["recover", "--since", "1h"], &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("submitted 0"), "{stdout}");
    assert!(!stdout.contains("would submit"), "{stdout}");
}

#[test]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
fn two_processes_on_postgres_run_every_missed_trigger_once() {
    use crate::postgres::{Schema, process_dir, url};

    let fake = fake();
    let github = &fake.github;
    let schema = Schema::create(url());
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let numbers = [51, 52, 53, 54, 55];
    for (n, number) in numbers.into_iter().enumerate() {
        github.add_delivery_sent_at(
            &Hook::App,
            &seed(
                &format!("guid-{number}"),
                "issues",
                "labeled",
                502,
                payload(dir, number, "agent:builder"),
            ),
            ago(900 - n as u64),
        );
    }
    // Both processes record into the one file of the test's folder.
    let config = settings(github, dir, &schema.store(), None);
    let (first, second) = std::thread::scope(|scope| {
        let start = |name: &str| {
            let process = process_dir(dir, name);
            let config = config.clone();
            scope.spawn(move || Booty::start(&process, &config, &[]))
        };
        let (a, b) = (start("a"), start("b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    wait_until("every missed trigger ran", || {
        ran(dir).len() == numbers.len()
    });
    for number in numbers {
        let job = format!("{number}-guid-{number}");
        assert_eq!(first.wait_for_final(&job)["state"], "succeeded");
    }
    // Each delivery was fetched once: one process recovered, the other skipped or found them known.
    let mut fetched_ids = fetched(github);
    fetched_ids.sort_unstable();
    fetched_ids.dedup();
    assert_eq!(fetched(github).len(), numbers.len());
    assert_eq!(fetched_ids.len(), numbers.len());
    let recovered = |booty: &Booty| {
        booty
            .log
            .lines()
            .iter()
            .filter(|line| line["message"] == "delivery_recovered")
            .count()
    };
    assert_eq!(recovered(&first) + recovered(&second), numbers.len());
    assert!(first.terminate().0.success());
    assert!(second.terminate().0.success());
    assert_eq!(ran(dir), numbers);
}

#[test]
fn a_repository_webhook_is_recovered_with_a_token_allowed_to_read_its_hooks() {
    let fake = Fake::start();
    let github = &fake.github;
    github.add_installation(
        INSTALLATION,
        "octo-org",
        &[
            ("contents", "write"),
            ("issues", "write"),
            ("pull_requests", "write"),
            ("metadata", "read"),
            ("repository_hooks", "read"),
        ],
    );
    github.add_repository(REPO, Some(INSTALLATION));
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut config = settings(github, dir, "memory", None);
    config.insert("recovery_hook", V::from(format!("repos/{REPO}/hooks/9")));
    let hook = Hook::Repository(REPO.to_owned(), 9);
    // A repository webhook's payload names no installation: booty looks it up.
    let mut trigger = payload(dir, 61, "agent:builder");
    trigger.as_object_mut().unwrap().remove("installation");
    github.add_delivery_sent_at(
        &hook,
        &seed("guid-61", "issues", "labeled", 502, trigger),
        ago(300),
    );
    // The App hook's log is not this hook's: its missed trigger stays missed.
    github.add_delivery_sent_at(
        &Hook::App,
        &seed(
            "guid-62",
            "issues",
            "labeled",
            502,
            payload(dir, 62, "agent:builder"),
        ),
        ago(300),
    );
    let booty = Booty::start(dir, &config, &[]);
    let completed = booty.log.wait_for("recovery_completed", |line| {
        line["message"] == "recovery_completed"
    });
    assert_eq!(completed["hook"], format!("repos/{REPO}/hooks/9"));
    assert_eq!(completed["submitted"], 1, "{completed}");
    assert_eq!(booty.wait_for_final("61-guid-61")["state"], "succeeded");
    assert!(
        github
            .requests_for("apps/list-webhook-deliveries")
            .is_empty()
    );
    let fetched = github.requests_for("repos/get-webhook-delivery");
    assert_eq!(fetched.len(), 1, "{fetched:?}");
    // Read with an installation token narrowed to this repository and to reading its hooks.
    let mints = github.mints();
    assert!(
        mints.iter().any(|mint| {
            mint.repositories.as_deref() == Some(&["hello".to_owned()][..])
                && mint.permissions.get("repository_hooks").map(String::as_str) == Some("read")
                && mint.permissions.len() == 1
        }),
        "{mints:?}"
    );
    assert!(booty.terminate().0.success());
    assert_eq!(ran(dir), [61]);
    assert!(github.violations().is_empty(), "{:?}", github.violations());
}

#[test]
fn check_shows_the_recovery_keys_and_names_a_bad_hook() {
    let fake = Fake::start();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let mut app = String::new();
    for (key, value) in app_settings(&fake.github, dir) {
        writeln!(app, "{key} = {}", value.render()).unwrap();
    }
    let base = "webhook_secret = \"s\"\nrepo_url = \".\"\nrepositories = [\"octo/repo\"]\nstore = \"memory\"\n";
    let (code, stdout, stderr) = check(dir, &format!("{base}{app}"), &[]);
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "recovery = true",
        "recovery_hook = \"app\"",
        "recovery_interval_secs = 300",
        "recovery_max_age_secs = 259200",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }
    // Without an App there is nothing to read the deliveries with: off.
    let (code, stdout, stderr) = check(dir, base, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("recovery = false"), "{stdout}");

    for (hook, says) in [
        ("repos/octo/hooks/1", "is not a webhook"),
        ("repos/octo/repo/hooks/twelve", "is not a number"),
        ("repos/octo/../x/hooks/1", "invalid"),
    ] {
        let toml = format!("{base}{app}recovery_hook = \"{hook}\"\n");
        let (code, _, stderr) = check(dir, &toml, &[]);
        assert_eq!(code, 2, "{hook}: {stderr}");
        assert!(
            stderr.contains("invalid `recovery_hook` in TOML file check.toml")
                && stderr.contains(says),
            "{hook}: {stderr}"
        );
    }
    let toml = format!("{base}recovery_hook = \"repos/octo/repo/hooks/1\"\n");
    let (code, _, stderr) = check(dir, &toml, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("invalid `recovery_hook`") && stderr.contains("needs credentials"),
        "{stderr}"
    );
    // An App's events come through its own webhook; an organization's is read with a token.
    let toml = format!("{base}{app}recovery_hook = \"orgs/octo/hooks/1\"\n");
    let (code, _, stderr) = check(dir, &toml, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("read with `github_token`"), "{stderr}");
    let toml = format!("{base}github_token = \"t\"\nrecovery_hook = \"orgs/octo/hooks/1\"\n");
    let (code, stdout, stderr) = check(dir, &toml, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("recovery_hook = \"orgs/octo/hooks/1\""),
        "{stdout}"
    );
    let toml = format!("{base}github_token = \"t\"\nrecovery_hook = \"orgs/octo/hooks/twelve\"\n");
    let (code, _, stderr) = check(dir, &toml, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("is not a number"), "{stderr}");
    // `booty recover` says why it cannot run.
    std::fs::write(dir.join("booty.toml"), base).unwrap();
    let (code, _, stderr) = booty_in(dir, &["recover", "--dry-run"], &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("recovery is off"), "{stderr}");
}

#[test]
fn an_organization_webhook_is_recovered_with_the_configured_token() {
    let fake = Fake::start();
    let github = &fake.github;
    github.add_repository(REPO, None);
    github.set_pat("ghp_recovery_test_token");
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let command = format!(
        "echo \"$BOOTY_ISSUE_NUMBER $BOOTY_JOB_ID\" >> {}",
        dir.join("records.txt").display()
    );
    let mut config = store_config(Path::new("."), dir, "memory", &command);
    config.insert("repo_url", V::from(github.git_url(REPO)));
    config.insert("repositories", V::L(vec![REPO.to_owned()]));
    config.insert("github_token", V::from("ghp_recovery_test_token"));
    config.insert("github_api_url", V::from(github.api_url()));
    config.insert("recovery_hook", V::from("orgs/octo-org/hooks/12"));
    let mut trigger = payload(dir, 71, "agent:builder");
    trigger.as_object_mut().unwrap().remove("installation");
    github.add_delivery_sent_at(
        &Hook::Organization("octo-org".to_owned(), 12),
        &seed("guid-71", "issues", "labeled", 502, trigger),
        ago(300),
    );
    let booty = Booty::start(dir, &config, &[]);
    let completed = booty.log.wait_for("recovery_completed", |line| {
        line["message"] == "recovery_completed"
    });
    assert_eq!(completed["hook"], "orgs/octo-org/hooks/12");
    assert_eq!(completed["submitted"], 1, "{completed}");
    assert_eq!(booty.wait_for_final("71-guid-71")["state"], "succeeded");
    let reads = github.requests_for("orgs/get-webhook-delivery");
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert!(
        github
            .requests_for("orgs/list-webhook-deliveries")
            .iter()
            .chain(&reads)
            .all(|seen| seen.caller == Caller::Pat)
    );
    let (status, log) = booty.terminate();
    assert!(status.success());
    let text: String = log.lines().iter().map(Value::to_string).collect();
    assert!(
        !text.contains("ghp_recovery_test_token"),
        "the token reached the log"
    );
    assert_eq!(ran(dir), [71]);
    assert!(github.violations().is_empty(), "{:?}", github.violations());
}

#[test]
fn recover_stores_the_missed_triggers_for_the_service_to_run() {
    let fake = fake();
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let config = settings(github, dir, "sqlite:booty.db", None);
    github.add_delivery_sent_at(
        &Hook::App,
        &seed(
            "guid-81",
            "issues",
            "labeled",
            502,
            payload(dir, 81, "agent:builder"),
        ),
        ago(400),
    );
    let mut text = String::from("webhook_secret = \"s\"\n");
    for (key, value) in &config {
        writeln!(text, "{key} = {}", value.render()).unwrap();
    }
    std::fs::write(dir.join("booty.toml"), text).unwrap();
    let (code, stdout, stderr) = booty_in(dir, &["recover"], &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("missed guid-81 (issues labeled")
            && stdout.contains("submitted job 81-guid-81"),
        "{stdout}"
    );
    assert!(stdout.ends_with("submitted 1\n"), "{stdout}");
    // The one-shot process runs nothing: the job waits in the store for the service.
    assert!(ran(dir).is_empty());

    let booty = Booty::start(dir, &config, &[]);
    assert_eq!(booty.wait_for_final("81-guid-81")["state"], "succeeded");
    let completed = booty.log.wait_for("recovery_completed", |line| {
        line["message"] == "recovery_completed"
    });
    assert_eq!(completed["submitted"], 0, "{completed}");
    assert_eq!(github.requests_for("apps/get-webhook-delivery").len(), 1);
    assert!(booty.terminate().0.success());
    assert_eq!(ran(dir), [81]);
}
