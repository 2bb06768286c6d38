//! `booty check` and configuration errors: exit code 2 and a message naming the key.

use crate::support::check;

const GOOD: &str = r#"
webhook_secret = "check-secret-value"
repo_url = "/srv/repo"
github_token = "ghs_checkTokenValue"
previous_webhook_secrets = ["older-secret-value"]
store = "memory"
"#;

#[test]
fn a_good_configuration_prints_effective_values_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = check(dir.path(), GOOD, &[("BOOTY_WORKERS", "8")]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("repo_url = \"/srv/repo\"  # TOML file"),
        "{stdout}"
    );
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
    let both = "webhook_secret = \"inline\"\nwebhook_secret_file = \"secret\"\nrepo_url = \"/r\"\n";
    let (code, _, stderr) = check(dir.path(), both, &[]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains(
            "invalid `webhook_secret`: given both as `webhook_secret` and as `webhook_secret_file`"
        ),
        "{stderr}"
    );

    let from_file = "webhook_secret_file = \"secret\"\nrepo_url = \"/r\"\n";
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
        "repo_url = \"/r\"\n",
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
        stderr.contains("invalid `lease_secs`: must be at least 1"),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_bad_configuration_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "webhook_secret = \"s\"\nrepo_url = \"/r\"\nworkers = 0\n",
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
        "booty: error: invalid `workers`: must be at least 1\n"
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
        stderr.contains("invalid `sqlite_synchronous`: unknown synchronous level `off`"),
        "{stderr}"
    );
}
