//! `booty check` and configuration errors: exit code 2 and a message naming the key.

use crate::support::{booty_in, check};

const GOOD: &str = r#"
webhook_secret = "check-secret-value"
repo_url = "."
repositories = ["Codertocat/Hello-World"]
github_token = "ghs_checkTokenValue"
previous_webhook_secrets = ["older-secret-value"]
store = "memory"
"#;

#[test]
fn a_good_configuration_prints_effective_values_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = check(dir.path(), GOOD, &[("BOOTY_WORKERS", "8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("repo_url = \".\"  # TOML file"), "{stdout}");
    assert!(
        stdout.contains("workers = 8  # environment variable BOOTY_WORKERS"),
        "{stdout}"
    );
    assert!(
        stdout.contains("base_branch = \"main\"  # default"),
        "{stdout}"
    );
    assert!(stdout.contains("lease_secs = 30  # default"), "{stdout}");
    assert!(
        stdout.contains("webhook_secret = \"<redacted>\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("previous_webhook_secrets = [\"<redacted>\"]"),
        "{stdout}"
    );
    for secret in [
        "check-secret-value",
        "ghs_checkTokenValue",
        "older-secret-value",
    ] {
        assert!(
            !stdout.contains(secret) && !stderr.contains(secret),
            "{secret} printed"
        );
    }
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = check(dir.path(), &format!("{GOOD}\nworkrs = 4\n"), &[]);
    assert_eq!(code, 2);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("unknown key `workrs` in TOML file"),
        "{stderr}"
    );
}

#[test]
fn a_missing_secret_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = check(dir.path(), "repo_url = \"/srv/repo\"\n", &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("missing `webhook_secret`"), "{stderr}");
}

#[test]
fn a_secret_given_twice_is_an_error_and_a_file_secret_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("secret"), "from-a-file\n").unwrap();
    let both = "webhook_secret = \"inline\"\nwebhook_secret_file = \"secret\"\nrepo_url = \".\"\nrepositories = [\"octo/repo\"]\n";
    let (code, _, stderr) = check(dir.path(), both, &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "invalid `webhook_secret` in TOML file check.toml: given both as `webhook_secret` (TOML \
             file check.toml) and as `webhook_secret_file` (TOML file check.toml); keep one"
        ),
        "{stderr}"
    );

    let from_file =
        "webhook_secret_file = \"secret\"\nrepo_url = \".\"\nrepositories = [\"octo/repo\"]\n";
    let (code, stdout, stderr) = check(dir.path(), from_file, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(
            "webhook_secret = \"<redacted>\"  # read from the file named by `webhook_secret_file`"
        ),
        "{stdout}"
    );
}

#[test]
fn environment_values_are_typed_by_key_and_bad_ones_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // A numeric secret from the environment stays a string.
    let (code, _, stderr) = check(
        dir.path(),
        "repo_url = \".\"\nrepositories = [\"octo/repo\"]\n",
        &[("BOOTY_WEBHOOK_SECRET", "12345")],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = check(dir.path(), GOOD, &[("BOOTY_WORKERS", "many")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("invalid `workers` in environment variable BOOTY_WORKERS"),
        "{stderr}"
    );
    let (code, _, stderr) = check(dir.path(), GOOD, &[("BOOTY_STORE", "mysql://db")]);
    assert_eq!(code, 2);
    assert!(stderr.contains("invalid `store`"), "{stderr}");
    let (code, _, stderr) = check(dir.path(), GOOD, &[("BOOTY_LEASE_SECS", "0")]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "invalid `lease_secs` in environment variable BOOTY_LEASE_SECS: must be at least 1, not 0"
        ),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_bad_configuration_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "webhook_secret = \"s\"\nrepo_url = \".\"\nrepositories = [\"octo/repo\"]\nworkers = 0\n",
    )
    .unwrap();
    let output = std::process::Command::new(crate::support::booty_bin())
        .args(["serve", "--config", "bad.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty(), "nothing logged: it never started");
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        "booty: error: invalid `workers` in TOML file bad.toml: must be at least 1, not 0\n"
    );
}

#[test]
fn the_sqlite_settings_are_shown_and_a_bad_level_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = GOOD.replace("store = \"memory\"\n", "");
    let (code, stdout, stderr) =
        check(dir.path(), &sqlite, &[("BOOTY_SQLITE_SYNCHRONOUS", "full")]);
    assert_eq!(code, 0, "{stderr}");
    for line in [
        "store = \"sqlite:booty.db\"  # default",
        "sqlite_synchronous = \"full\"  # environment variable BOOTY_SQLITE_SYNCHRONOUS",
        "dedupe_retention_secs = 604800  # default",
    ] {
        assert!(stdout.contains(line), "{line} missing from:\n{stdout}");
    }
    let (code, _, stderr) = check(
        dir.path(),
        &format!("{sqlite}sqlite_synchronous = \"off\"\n"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "invalid `sqlite_synchronous` in TOML file check.toml: expected one of `normal`, `full`, \
             found \"off\""
        ),
        "{stderr}"
    );
}

#[test]
fn the_environment_alone_is_a_configuration_and_a_missing_file_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("BOOTY_WEBHOOK_SECRET", "x"),
        ("BOOTY_REPO_URL", "."),
        ("BOOTY_REPOSITORIES", "[\"octo/repo\"]"),
        ("BOOTY_STORE", "memory"),
    ];
    // No booty.toml here and no --config: the environment is the configuration.
    let (code, stdout, stderr) = booty_in(dir.path(), &["check"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("store = \"memory\"  # environment variable BOOTY_STORE"),
        "{stdout}"
    );
    // A file named on the command line must exist.
    let (code, _, stderr) = booty_in(dir.path(), &["check", "--config", "nope.toml"], &env);
    assert_eq!(code, 2);
    assert_eq!(
        stderr,
        "booty: error: configuration file nope.toml does not exist: pass --config with a file that \
         exists, or leave it out to read booty.toml when there is one and BOOTY_* environment \
         variables\n"
    );
    // Without a file, a missing key says how a file would have helped.
    let (code, _, stderr) = booty_in(dir.path(), &["check"], &env[1..]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "missing `webhook_secret`: set `webhook_secret`, `webhook_secret_file` or \
             BOOTY_WEBHOOK_SECRET (no configuration file was read: pass --config FILE or create \
             booty.toml)"
        ),
        "{stderr}"
    );
}

#[test]
fn wrong_values_are_described_in_words_with_where_they_were_written() {
    let dir = tempfile::tempdir().unwrap();
    for (setting, env, expected) in [
        (
            "workers = \"4\"",
            None,
            "invalid `workers` in TOML file check.toml: expected a whole number of at least 1, found \
             the text \"4\" (write a number without quotes)",
        ),
        (
            "workers = -1",
            None,
            "invalid `workers` in TOML file check.toml: expected a whole number of at least 1, found -1",
        ),
        (
            "log_format = \"xml\"",
            None,
            "invalid `log_format` in TOML file check.toml: expected one of `json`, `pretty`, found \"xml\"",
        ),
        (
            "",
            Some(("BOOTY_LOG_LEVEL", "info,[")),
            "invalid `log_level` in environment variable BOOTY_LOG_LEVEL: ",
        ),
        (
            "listen = \":8080\"",
            None,
            "invalid `listen` in TOML file check.toml: \":8080\" is not an address to listen on: write \
             IP:PORT or HOST:PORT, such as 127.0.0.1:8080 (0.0.0.0:8080 for every interface)",
        ),
        (
            "listen = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:8080\"",
            None,
            "invalid `admin_listen` in TOML file check.toml: 127.0.0.1:8080 is also `listen`: booty \
             cannot listen twice on one address",
        ),
        (
            "store = \"sqlite:missing/booty.db\"",
            None,
            "invalid `store` in TOML file check.toml: the directory missing of the SQLite file does not \
             exist",
        ),
    ] {
        let toml = format!("{}{setting}\n", GOOD.replace("store = \"memory\"\n", ""));
        let env: Vec<(&str, &str)> = env.into_iter().collect();
        let (code, _, stderr) = check(dir.path(), &toml, &env);
        assert_eq!(code, 2, "{setting}: {stderr}");
        assert!(stderr.contains(expected), "{setting}: {stderr}");
        for leak in ["usize", "u32", "signed int", "``"] {
            assert!(!stderr.contains(leak), "{setting}: {stderr}");
        }
    }
    // A host name that resolves is an address too.
    let (code, stdout, stderr) = check(
        dir.path(),
        &format!("{GOOD}listen = \"localhost:8080\"\n"),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("listen = \"127.0.0.1:8080\""), "{stdout}");
}

#[test]
fn repository_urls_are_checked_and_shown_without_their_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let without_repo = GOOD.replace("repo_url = \".\"\n", "");
    let (code, stdout, stderr) = check(
        dir.path(),
        &format!(
            "{without_repo}repo_url = \"https://booty:pa55word@git.example/acme/widgets.git\"\n"
        ),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("repo_url = \"https://git.example/acme/widgets.git\"  # TOML file"),
        "{stdout}"
    );
    assert!(!stdout.contains("pa55word") && !stderr.contains("pa55word"));

    // The token would cross the network in the clear.
    let (code, _, stderr) = check(
        dir.path(),
        &format!("{without_repo}repo_url = \"http://git.example/acme/widgets.git\"\n"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "invalid `repo_url` in TOML file check.toml: invalid repository URL \
             http://git.example/acme/widgets.git: refusing to send credentials over plain http:// to \
             git.example"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("ghs_checkTokenValue"), "{stderr}");

    let (code, _, stderr) = check(
        dir.path(),
        &format!("{without_repo}repo_url = \"/nonexistent/repo\"\n"),
        &[],
    );
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "invalid `repo_url` in TOML file check.toml: /nonexistent/repo does not exist"
        ),
        "{stderr}"
    );
}

#[test]
fn an_invalid_rust_log_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("booty.toml"), GOOD).unwrap();
    let (code, stdout, stderr) = booty_in(dir.path(), &["serve"], &[("RUST_LOG", "info,[")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "nothing logged: it never started");
    assert!(
        stderr.starts_with("booty: error: invalid environment variable RUST_LOG: \"info,[\" is not a tracing filter"),
        "{stderr}"
    );
}

#[test]
fn send_says_what_is_wrong_with_where_it_sends() {
    let dir = tempfile::tempdir().unwrap();
    let payload = crate::support::labeled_payload(dir.path(), "agent:builder");
    let payload = payload.to_str().unwrap();
    // Nothing listens on port 9 (discard) on loopback.
    let (code, _, stderr) = booty_in(
        dir.path(),
        &[
            "send",
            payload,
            "--event",
            "issues",
            "--secret",
            "s",
            "--url",
            "http://127.0.0.1:9/webhooks/github",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with(
            "booty: error: cannot deliver to http://127.0.0.1:9/webhooks/github: is `booty serve` running \
             there?"
        ),
        "{stderr}"
    );
    let (code, _, stderr) = booty_in(
        dir.path(),
        &[
            "send",
            payload,
            "--event",
            "issues",
            "--secret",
            "s",
            "--url",
            "https://127.0.0.1:9/webhooks/github",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "booty: error: cannot deliver to https://127.0.0.1:9/webhooks/github: booty send speaks plain \
         http:// only (send to booty's own listener, not to the TLS proxy in front of it)\n"
    );
}

#[test]
fn pretty_logs_into_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "{GOOD}log_format = \"pretty\"\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n"
    );
    std::fs::write(dir.path().join("booty.toml"), config).unwrap();
    let mut child = std::process::Command::new(crate::support::booty_bin())
        .arg("serve")
        .current_dir(dir.path())
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("listening") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0,
            "no listening line"
        );
        assert!(!line.contains('\u{1b}'), "colour codes in {line:?}");
    }
    crate::support::signal(&child, "TERM");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        rest.contains("shutdown_complete") && !rest.contains('\u{1b}'),
        "{rest}"
    );
}
