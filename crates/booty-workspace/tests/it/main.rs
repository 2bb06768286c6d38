//! Integration tests for booty-workspace: real repositories served over real smart HTTP (`git http-backend`
//! behind a loopback server demanding Basic authentication), `file://` and plain paths.

#![allow(
    clippy::unwrap_used,
    reason = "tests and their support code: a failed setup step should fail the test loudly"
)]

mod support;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::future::pending;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use booty_testkit::Tmpfs;
use booty_workspace::{
    PrepareError, Swept, Token, Workspace, WorkspaceConfig, WorkspaceManager, WorkspaceRequest,
    sweep,
};
use support::holder::SharedLockHolder;
use support::logs;
use support::repo::{Content, Fixture, NAME, run_git};
use support::server::{GitServer, SilentServer, Stall, closed_port_url};

const USER: &str = "x-access-token";

fn config(root: &Path, token: Option<&str>) -> WorkspaceConfig {
    let mut config = WorkspaceConfig::new(root);
    config.token = token.map(Token::new);
    config
}

fn manager(root: &Path, token: Option<&str>) -> WorkspaceManager {
    WorkspaceManager::new(config(root, token))
}

/// The names in `dir` (empty if it does not exist).
fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|entry| entry.unwrap().path()).collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => panic!("{err}"),
    }
}

/// Every file under `dir` (including `.git`) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
            {
                hits.push(path);
            }
        }
    }
    hits
}

/// The forms a leaked token could take: itself, and inside a Basic `Authorization` value.
fn secret_forms(user: &str, secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")),
    ]
}

/// The error, its `Debug`, and every source in its chain, as one text.
fn error_text(err: &PrepareError) -> String {
    let mut text = format!("{err} {err:?}");
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        write!(text, " | {cause} {cause:?}").unwrap();
        source = cause.source();
    }
    text
}

/// The workspace's refs. `refs/remotes/origin/HEAD` is left out after checking it is what `git clone` makes
/// too: a symbolic ref to the fetched branch (present when that is the remote's default branch).
fn refs(workspace: &Workspace) -> BTreeSet<String> {
    let mut refs: BTreeSet<String> =
        run_git(workspace.path(), &["for-each-ref", "--format=%(refname)"])
            .lines()
            .map(str::to_owned)
            .collect();
    if refs.remove("refs/remotes/origin/HEAD") {
        let target = run_git(
            workspace.path(),
            &["symbolic-ref", "refs/remotes/origin/HEAD"],
        );
        assert_eq!(
            target,
            format!("refs/remotes/origin/{}", workspace.base_branch())
        );
    }
    refs
}

/// What every prepared workspace must look like: HEAD on `agent/issue-N` at `tip`, checked out, private.
fn assert_prepared(workspace: &Workspace, issue: u64, base: &str, tip: &str) {
    let branch = format!("agent/issue-{issue}");
    assert_eq!(workspace.branch(), branch);
    assert_eq!(workspace.base_branch(), base);
    assert_eq!(workspace.head_commit(), tip);
    assert_eq!(workspace.issue_number(), issue);
    let head = std::fs::read_to_string(workspace.path().join(".git/HEAD")).unwrap();
    assert_eq!(head.trim(), format!("ref: refs/heads/{branch}"));
    assert_eq!(run_git(workspace.path(), &["rev-parse", "HEAD"]), tip);
    assert_eq!(run_git(workspace.path(), &["rev-parse", base]), tip);
    // The checkout matches HEAD: nothing modified, nothing missing.
    assert_eq!(run_git(workspace.path(), &["status", "--porcelain"]), "");
    let name = workspace.path().file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(&format!("booty-issue-{issue}-")), "{name}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(workspace.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}

#[tokio::test]
async fn smart_http_clone_with_the_right_token_lands_on_the_agent_branch_at_the_base_tip() {
    let (logs, _guard) = logs::capture();
    let fixture = Fixture::standard();
    let token = "ghs_right_token_1234";
    let server = GitServer::with_basic_auth(&fixture.root, USER, token);
    let root = tempfile::tempdir().unwrap();
    let request = WorkspaceRequest::new(server.url(NAME), "main", 42);

    let workspace = manager(root.path(), Some(token))
        .prepare(&request, pending())
        .await
        .unwrap();

    assert_prepared(&workspace, 42, "main", &fixture.rev("main"));
    assert_eq!(workspace.repository_url(), server.url(NAME));
    assert_eq!(
        std::fs::read_to_string(workspace.path().join("README.md")).unwrap(),
        "# fixture\n\nrevision 5\n"
    );
    // Depth 1: shallow, and the tip is the only commit there is.
    assert!(workspace.path().join(".git/shallow").is_file());
    assert_eq!(
        run_git(workspace.path(), &["rev-list", "--count", "HEAD"]),
        "1"
    );
    // Only the base branch came over: no `release`, no `feature/x`, no tags.
    let expected: BTreeSet<String> = [
        "refs/heads/agent/issue-42",
        "refs/heads/main",
        "refs/remotes/origin/main",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(refs(&workspace), expected);
    assert_eq!(run_git(workspace.path(), &["tag", "--list"]), "");
    // The server saw the credentials on every request; the disk, the logs and the workspace never did.
    let seen = server.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|request| request.authorization.is_some()),
        "{seen:?}"
    );
    for secret in secret_forms(USER, token) {
        assert_eq!(
            files_containing(workspace.path(), &secret),
            Vec::<PathBuf>::new()
        );
        assert!(!logs.text().contains(&secret), "{}", logs.text());
        assert!(!format!("{workspace:?}").contains(&secret));
    }
    let git_config = std::fs::read_to_string(workspace.path().join(".git/config")).unwrap();
    assert!(
        git_config.contains(&format!("url = {}", server.url(NAME))),
        "{git_config}"
    );

    let path = workspace.path().to_owned();
    workspace.close().await.unwrap();
    assert!(!path.exists());
    assert!(logs.text().contains("workspace_cleaned"), "{}", logs.text());
    assert!(
        logs.text().contains(&path.display().to_string()),
        "{}",
        logs.text()
    );
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn file_urls_and_plain_paths_clone_shallow_onto_the_agent_branch() {
    let fixture = Fixture::standard();
    let root = tempfile::tempdir().unwrap();
    let manager = manager(root.path(), Some("a token local clones ignore"));
    for url in [fixture.file_url(), fixture.path().display().to_string()] {
        let request = WorkspaceRequest::new(url.clone(), "release", 7);
        let workspace = manager.prepare(&request, pending()).await.unwrap();
        assert_prepared(&workspace, 7, "release", &fixture.rev("release"));
        assert!(workspace.path().join("CHANGELOG.md").is_file(), "{url}");
        assert!(workspace.path().join(".git/shallow").is_file(), "{url}");
        assert_eq!(
            run_git(workspace.path(), &["rev-list", "--count", "HEAD"]),
            "1",
            "{url}"
        );
        let expected: BTreeSet<String> = [
            "refs/heads/agent/issue-7",
            "refs/heads/release",
            "refs/remotes/origin/release",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(refs(&workspace), expected, "{url}");
    }
    assert_eq!(
        entries(root.path()),
        Vec::<PathBuf>::new(),
        "dropping removed both workspaces"
    );
}

#[tokio::test]
async fn depth_zero_is_the_full_history_of_the_base_branch_only() {
    let fixture = Fixture::standard();
    let server = GitServer::start(&fixture.root);
    let root = tempfile::tempdir().unwrap();
    for (depth, commits) in [(0, "5"), (3, "3")] {
        let mut config = config(root.path(), None);
        config.depth = depth;
        let request = WorkspaceRequest::new(server.url(NAME), "main", 3);
        let workspace = WorkspaceManager::new(config)
            .prepare(&request, pending())
            .await
            .unwrap();
        assert_prepared(&workspace, 3, "main", &fixture.rev("main"));
        assert_eq!(
            run_git(workspace.path(), &["rev-list", "--count", "HEAD"]),
            commits,
            "depth {depth}"
        );
        assert_eq!(
            workspace.path().join(".git/shallow").is_file(),
            depth != 0,
            "depth {depth}"
        );
        let expected: BTreeSet<String> = [
            "refs/heads/agent/issue-3",
            "refs/heads/main",
            "refs/remotes/origin/main",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(refs(&workspace), expected, "depth {depth}");
    }
}

#[tokio::test]
async fn a_token_given_with_the_request_is_used_instead_of_the_configured_one() {
    let fixture = Fixture::standard();
    let minted = "ghs_minted_for_this_repository_only";
    let server = GitServer::with_basic_auth(&fixture.root, USER, minted);
    let root = tempfile::tempdir().unwrap();
    let request = WorkspaceRequest::new(server.url(NAME), "main", 3);
    // The configured token is not the one this server takes: the request's wins.
    let manager = manager(root.path(), Some("ghs_the_configured_one"));
    let err = manager.prepare(&request, pending()).await.unwrap_err();
    assert!(
        matches!(err, PrepareError::Authentication { .. }),
        "{err:?}"
    );
    let workspace = manager
        .prepare(&request.clone().with_token(Token::new(minted)), pending())
        .await
        .unwrap();
    assert_prepared(&workspace, 3, "main", &fixture.rev("main"));
    assert!(!format!("{request:?}").contains(minted));
    for secret in secret_forms(USER, minted) {
        assert_eq!(
            files_containing(workspace.path(), &secret),
            Vec::<PathBuf>::new()
        );
    }
    workspace.close().await.unwrap();
}

#[tokio::test]
async fn wrong_or_missing_token_is_a_permanent_authentication_error_that_leaks_nothing() {
    let (logs, _guard) = logs::capture();
    let fixture = Fixture::standard();
    let right = "ghs_the_right_one_5678";
    let server = GitServer::with_basic_auth(&fixture.root, USER, right);
    let root = tempfile::tempdir().unwrap();
    let request = WorkspaceRequest::new(server.url(NAME), "main", 5);

    let wrong = "ghs_a_wrong_token_9012";
    for token in [Some(wrong), None] {
        let before = server.seen().len();
        let err = manager(root.path(), token)
            .prepare(&request, pending())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PrepareError::Authentication { .. }),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            format!("authentication failed for {}", server.url(NAME))
        );
        // Fast: one refused request (the first one, for the ref advertisement), no retries, no prompt.
        let seen = server.seen();
        assert_eq!(seen.len(), before + 1, "{seen:?}");
        let refused = &seen[before];
        assert_eq!(
            (refused.method.as_str(), refused.target.as_str()),
            ("GET", "/repo.git/info/refs?service=git-upload-pack")
        );
        for secret in secret_forms(USER, wrong)
            .into_iter()
            .chain(secret_forms(USER, right))
        {
            assert!(!error_text(&err).contains(&secret), "{}", error_text(&err));
            assert!(!logs.text().contains(&secret), "{}", logs.text());
        }
        assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
    }
}

#[tokio::test]
async fn credentials_in_the_url_are_used_in_memory_and_shown_nowhere() {
    let (logs, _guard) = logs::capture();
    let fixture = Fixture::standard();
    let secret = "url-secret-3456";
    let server = GitServer::with_basic_auth(&fixture.root, "bot", secret);
    let root = tempfile::tempdir().unwrap();
    let with_credentials = server
        .url(NAME)
        .replace("http://", &format!("http://bot:{secret}@"));

    let request = WorkspaceRequest::new(with_credentials.clone(), "main", 8);
    assert!(!format!("{request:?}").contains(secret));
    let workspace = manager(root.path(), None)
        .prepare(&request, pending())
        .await
        .unwrap();
    assert_prepared(&workspace, 8, "main", &fixture.rev("main"));
    assert_eq!(workspace.repository_url(), server.url(NAME));
    for form in secret_forms("bot", secret) {
        assert_eq!(
            files_containing(workspace.path(), &form),
            Vec::<PathBuf>::new()
        );
    }
    drop(workspace);

    let wrong = with_credentials.replace(secret, "not-the-url-secret");
    let err = manager(root.path(), None)
        .prepare(&WorkspaceRequest::new(wrong, "main", 8), pending())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PrepareError::Authentication { .. }),
        "{err:?}"
    );
    for form in secret_forms("bot", secret)
        .into_iter()
        .chain(["not-the-url-secret".to_owned()])
    {
        assert!(!error_text(&err).contains(&form), "{}", error_text(&err));
        assert!(!logs.text().contains(&form), "{}", logs.text());
    }
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_missing_branch_is_permanent_and_named_with_the_url() {
    let fixture = Fixture::standard();
    let server = GitServer::start(&fixture.root);
    let root = tempfile::tempdir().unwrap();
    for url in [server.url(NAME), fixture.file_url()] {
        let request = WorkspaceRequest::new(url.clone(), "develop", 1);
        let err = manager(root.path(), None)
            .prepare(&request, pending())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PrepareError::BranchNotFound { .. }),
            "{err:?}"
        );
        assert!(!err.is_retryable());
        assert_eq!(
            err.to_string(),
            format!("branch `develop` not found on {url}")
        );
        assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
    }
}

#[tokio::test]
async fn a_missing_repository_is_permanent() {
    let fixture = Fixture::standard();
    let server = GitServer::start(&fixture.root);
    let root = tempfile::tempdir().unwrap();
    let missing_path = fixture.root.join("missing.git");
    for url in [
        server.url("missing.git"),
        format!("file://{}", missing_path.display()),
        missing_path.display().to_string(),
    ] {
        let request = WorkspaceRequest::new(url.clone(), "main", 1);
        let err = manager(root.path(), None)
            .prepare(&request, pending())
            .await
            .unwrap_err();
        assert!(
            matches!(err, PrepareError::RepositoryNotFound { .. }),
            "{url}: {err:?}"
        );
        assert!(!err.is_retryable());
        assert!(
            err.to_string().starts_with("repository not found at "),
            "{err}"
        );
        assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
    }
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_network_error() {
    let root = tempfile::tempdir().unwrap();
    let url = closed_port_url(NAME);
    let request = WorkspaceRequest::new(url.clone(), "main", 1);
    let err = manager(root.path(), Some("tok"))
        .prepare(&request, pending())
        .await
        .unwrap_err();
    assert!(matches!(err, PrepareError::Network { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(err.to_string(), format!("could not reach {url}"));
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn https_goes_through_rustls_with_the_ring_provider() {
    // A listener that records the first bytes the client sends, then hangs up: a TLS ClientHello proves the
    // client built its TLS configuration (a missing crypto provider would panic instead).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::Read as _;
        let (mut stream, _) = listener.accept().unwrap();
        let mut hello = [0u8; 6];
        stream.read_exact(&mut hello).unwrap();
        hello
    });
    let root = tempfile::tempdir().unwrap();
    let request = WorkspaceRequest::new(format!("https://{addr}/{NAME}"), "main", 1);
    let err = manager(root.path(), Some("tok"))
        .prepare(&request, pending())
        .await
        .unwrap_err();
    let hello = reader.join().unwrap();
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    assert_eq!(hello[5], 0x01, "a ClientHello");
    assert!(matches!(err, PrepareError::Network { .. }), "{err:?}");
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_at_the_time_limit() {
    let silent = SilentServer::start();
    let root = tempfile::tempdir().unwrap();
    let mut config = config(root.path(), Some("tok"));
    config.clone_timeout = Duration::from_secs(1);
    let request = WorkspaceRequest::new(silent.url(NAME), "main", 1);
    let err = WorkspaceManager::new(config)
        .prepare(&request, pending())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PrepareError::TimedOut { limit, .. } if limit == Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!("clone of {} did not finish within 1s", silent.url(NAME))
    );
    assert!(silent.connections() >= 1, "the clone did connect");
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn cancellation_mid_clone_stops_it_and_removes_the_directory() {
    let fixture = Fixture::standard();
    let (stall, control) = Stall::new();
    let server = GitServer::start_with(&fixture.root, None, Some(stall));
    let root = tempfile::tempdir().unwrap();
    let manager = manager(root.path(), None);
    let request = WorkspaceRequest::new(server.url(NAME), "main", 11);
    let (cancel, cancelled) = tokio::sync::oneshot::channel::<()>();
    let clone = tokio::spawn(async move {
        manager
            .prepare(&request, async move {
                let _ = cancelled.await;
            })
            .await
    });

    // The server has sent the start of the pack and holds the rest: the clone is under way.
    let stalled = control.stalled;
    tokio::task::spawn_blocking(move || stalled.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        entries(root.path()).len(),
        1,
        "the workspace directory exists mid-clone"
    );
    cancel.send(()).unwrap();
    control.release.send(()).unwrap();

    let err = clone.await.unwrap().unwrap_err();
    assert!(matches!(err, PrepareError::Cancelled { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("clone of {} was cancelled", server.url(NAME))
    );
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[test]
fn dropping_prepare_mid_clone_stops_the_clone_and_removes_its_directory() {
    let fixture = Fixture::standard();
    let (stall, control) = Stall::new();
    let server = GitServer::start_with(&fixture.root, None, Some(stall));
    let root = tempfile::tempdir().unwrap();
    let manager = manager(root.path(), None);
    let request = WorkspaceRequest::new(server.url(NAME), "main", 13);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let clone = tokio::spawn(async move { manager.prepare(&request, pending()).await });
        let stalled = control.stalled;
        tokio::task::spawn_blocking(move || stalled.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            entries(root.path()).len(),
            1,
            "the workspace directory exists mid-clone"
        );
        clone.abort();
        assert!(clone.await.unwrap_err().is_cancelled());
    });
    control.release.send(()).unwrap();
    // Dropping the runtime waits for its blocking threads: the clone's thread has finished after this.
    drop(runtime);
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_panic_in_the_task_holding_a_workspace_removes_it() {
    let fixture = Fixture::standard();
    let root = tempfile::tempdir().unwrap();
    let manager = manager(root.path(), None);
    let request = WorkspaceRequest::new(fixture.file_url(), "main", 12);
    let (path_tx, path_rx) = tokio::sync::oneshot::channel();
    let handler = tokio::spawn(async move {
        let workspace = manager.prepare(&request, pending()).await.unwrap();
        path_tx.send(workspace.path().to_owned()).unwrap();
        panic!(
            "the job handler failed while holding {}",
            workspace.path().display()
        );
    });
    let path = path_rx.await.unwrap();
    assert!(handler.await.unwrap_err().is_panic());
    assert!(!path.exists());
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn two_workspaces_for_the_same_issue_do_not_collide() {
    let (logs, _guard) = logs::capture();
    let fixture = Fixture::standard();
    let server = GitServer::start(&fixture.root);
    let root = tempfile::tempdir().unwrap();
    let manager = manager(root.path(), None);
    let request = WorkspaceRequest::new(server.url(NAME), "main", 9);
    let (first, second) = tokio::join!(
        manager.prepare(&request, pending()),
        manager.prepare(&request, pending())
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_ne!(first.path(), second.path());
    for workspace in [&first, &second] {
        assert_prepared(workspace, 9, "main", &fixture.rev("main"));
    }
    let (first_path, second_path) = (first.path().to_owned(), second.path().to_owned());
    drop(first);
    assert!(!first_path.exists());
    assert!(
        second_path.join("README.md").is_file(),
        "the other workspace is untouched"
    );
    assert!(logs.text().contains(&first_path.display().to_string()));
    assert!(!logs.text().contains(&second_path.display().to_string()));
    second.close().await.unwrap();
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn bad_urls_and_branch_names_are_refused_before_anything_is_created() {
    let root = tempfile::tempdir().unwrap();
    let workspaces = root.path().join("workspaces");
    let manager = manager(&workspaces, None);
    for (url, branch, expected) in [
        (
            "ssh://git@github.com/o/r.git",
            "main",
            "invalid repository URL ssh://github.com/o/r.git: scheme `ssh` is not supported (use https://, http://, file:// or a local path)",
        ),
        (
            "git@github.com:o/r.git",
            "main",
            "invalid repository URL git@github.com:o/r.git: scheme `ssh` is not supported (use https://, http://, file:// or a local path)",
        ),
        (
            "",
            "main",
            "invalid repository URL : not a URL or path git understands",
        ),
        (
            "https://github.com/o/r.git",
            "a..b",
            "invalid base branch name `a..b`",
        ),
        (
            "https://github.com/o/r.git",
            "",
            "invalid base branch name ``",
        ),
        (
            "https://github.com/o/r.git",
            "refs/heads/main",
            "invalid base branch name `refs/heads/main`",
        ),
    ] {
        let err = manager
            .prepare(&WorkspaceRequest::new(url, branch, 1), pending())
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), expected);
        assert!(!err.is_retryable());
    }
    for (url, secret) in [
        ("git://u:hunter2@h/r.git", "hunter2"),
        ("u:hunter4@h:o/r.git", "hunter4"),
        ("http://bot:hunter5@example.com/o/r.git", "hunter5"),
    ] {
        let err = manager
            .prepare(&WorkspaceRequest::new(url, "main", 1), pending())
            .await
            .unwrap_err();
        assert!(matches!(err, PrepareError::InvalidUrl { .. }), "{err:?}");
        assert!(!error_text(&err).contains(secret), "{}", error_text(&err));
    }
    assert!(!workspaces.exists(), "nothing was created");
}

#[tokio::test]
async fn a_token_is_never_sent_over_plain_http_to_another_host() {
    let root = tempfile::tempdir().unwrap();
    let token = "ghs_not_over_plain_http";
    let manager = manager(root.path(), Some(token));
    for (url, host) in [
        ("http://example.com/o/r.git", "example.com"),
        ("http://bot@10.1.2.3:8080/o/r.git", "10.1.2.3"),
        ("http://bot:url-pass@[fe80::1]/o/r.git", "[fe80::1]"),
    ] {
        let err = manager
            .prepare(&WorkspaceRequest::new(url, "main", 1), pending())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "invalid repository URL {}: refusing to send credentials over plain http:// to {host} \
                 (use https://, or a loopback host)",
                booty_workspace::redact_url(url)
            )
        );
        assert!(!err.is_retryable());
        for secret in [token, "url-pass"] {
            assert!(!error_text(&err).contains(secret), "{}", error_text(&err));
        }
    }
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_full_file_system_is_retryable_local_storage_that_names_the_root_and_leaves_nothing() {
    let disk = Tmpfs::mount(1 << 20);
    let root = disk.path().join("workspaces");
    // 3 MiB either way: zeros make a pack of a few KiB that fills the disk at checkout; random bytes fill it
    // while the pack is written.
    for content in [Content::Compressible, Content::Incompressible] {
        let fixture = Fixture::big(content, 3 << 20);
        let server = GitServer::start(&fixture.root);
        let request = WorkspaceRequest::new(server.url(NAME), "main", 4);
        let err = manager(&root, None)
            .prepare(&request, pending())
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{content:?}: {}", error_text(&err));
        assert!(err.is_local_storage(), "{content:?}: {}", error_text(&err));
        assert_eq!(
            err.to_string(),
            format!(
                "could not write the clone of {} under {}",
                server.url(NAME),
                root.display()
            ),
            "{content:?}"
        );
        assert!(
            error_text(&err).contains("No space left on device"),
            "{content:?}: {}",
            error_text(&err)
        );
        assert_eq!(entries(&root), Vec::<PathBuf>::new(), "{content:?}");
    }
}

#[tokio::test]
async fn a_read_only_workspace_root_is_retryable_local_storage() {
    let disk = Tmpfs::mount(1 << 20);
    disk.set_read_only(true);
    let fixture = Fixture::standard();
    let request = WorkspaceRequest::new(fixture.file_url(), "main", 6);
    // The mount point itself, and a root that would have to be created on it.
    for root in [disk.path().to_owned(), disk.path().join("workspaces")] {
        let err = manager(&root, None)
            .prepare(&request, pending())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PrepareError::Workspace { root: named, .. } if *named == root),
            "{err:?}"
        );
        assert!(err.is_retryable(), "{}", error_text(&err));
        assert!(err.is_local_storage());
        assert_eq!(
            err.to_string(),
            format!(
                "could not create a workspace directory under {}",
                root.display()
            )
        );
        assert_eq!(entries(disk.path()), Vec::<PathBuf>::new());
    }
}

#[tokio::test]
async fn a_workspace_root_that_is_not_a_directory_is_permanent() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("workspaces");
    std::fs::write(&file, "a file where the root should be").unwrap();
    let fixture = Fixture::standard();
    let request = WorkspaceRequest::new(fixture.file_url(), "main", 6);
    for root in [file.clone(), file.join("below")] {
        let err = manager(&root, None)
            .prepare(&request, pending())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, PrepareError::Workspace { root: named, .. } if *named == root),
            "{err:?}"
        );
        assert!(!err.is_retryable(), "{}", error_text(&err));
        assert!(err.is_local_storage());
        assert!(
            error_text(&err).contains("ot a directory"),
            "{}",
            error_text(&err)
        );
        assert_eq!(entries(dir.path()), vec![file.clone()]);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "a file where the root should be"
        );
    }
}

#[tokio::test]
async fn a_live_workspace_survives_concurrent_sweeps_that_remove_an_unlocked_leftover() {
    let (logs, _guard) = logs::capture();
    let fixture = Fixture::standard();
    let server = GitServer::start(&fixture.root);
    let root = tempfile::tempdir().unwrap();
    let request = WorkspaceRequest::new(server.url(NAME), "main", 17);
    let workspace = manager(root.path(), None)
        .prepare(&request, pending())
        .await
        .unwrap();
    let leftover = root.path().join("booty-issue-3-crashed");
    std::fs::create_dir_all(leftover.join(".git/objects")).unwrap();
    std::fs::write(leftover.join("file.txt"), "left over").unwrap();

    // Two sweeps at once, on two blocking threads: each opens the directories itself, so even in this process
    // the workspace's lock keeps them out.
    let (first, second) = tokio::join!(sweep(root.path()), sweep(root.path()));
    let (first, second) = (first.unwrap(), second.unwrap());

    // The workspace is whole, and both sweeps said they left it alone.
    assert_prepared(&workspace, 17, "main", &fixture.rev("main"));
    for swept in [&first, &second] {
        assert!(
            swept.in_use.contains(&workspace.path().to_owned()),
            "{swept:?}"
        );
        assert!(
            !swept.removed.contains(&workspace.path().to_owned()),
            "{swept:?}"
        );
    }
    // The leftover was removed by exactly one of them (the other found it gone, or held by the first).
    let mut removed = [first.removed.clone(), second.removed.clone()].concat();
    removed.sort();
    assert_eq!(removed, vec![leftover.clone()]);
    assert!(!leftover.exists());
    // Each sweep logged the workspace it left alone (the leftover may be logged too, by the sweep that found
    // it held by the other).
    let workspace_shown = workspace.path().display().to_string();
    let in_use_lines = logs
        .text()
        .lines()
        .filter(|line| line.contains("workspace_in_use") && line.contains(&workspace_shown))
        .count();
    assert_eq!(in_use_lines, 2, "{}", logs.text());

    let path = workspace.path().to_owned();
    drop(workspace);
    assert!(!path.exists());
    assert_eq!(sweep(root.path()).await.unwrap(), Swept::default());
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_workspace_is_in_use_from_before_its_clone_starts() {
    let fixture = Fixture::standard();
    let (stall, control) = Stall::new();
    let server = GitServer::start_with(&fixture.root, None, Some(stall));
    let root = tempfile::tempdir().unwrap();
    let manager = manager(root.path(), None);
    let request = WorkspaceRequest::new(server.url(NAME), "main", 21);
    let clone = tokio::spawn(async move { manager.prepare(&request, pending()).await });
    let stalled = control.stalled;
    tokio::task::spawn_blocking(move || stalled.recv())
        .await
        .unwrap()
        .unwrap();

    // Mid-clone: the directory exists, half written, and a sweep leaves it alone.
    let mid_clone = entries(root.path());
    assert_eq!(mid_clone.len(), 1);
    let swept = sweep(root.path()).await.unwrap();
    assert_eq!(swept.in_use, mid_clone);
    assert_eq!(swept.removed, Vec::<PathBuf>::new());

    control.release.send(()).unwrap();
    let workspace = clone.await.unwrap().unwrap();
    assert_eq!(workspace.path(), mid_clone[0]);
    assert_prepared(&workspace, 21, "main", &fixture.rev("main"));
}

#[tokio::test]
async fn a_workspace_held_by_another_process_is_skipped_until_that_process_is_killed() {
    let root = tempfile::tempdir().unwrap();
    let held = root.path().join("booty-issue-8-orphaned");
    std::fs::create_dir_all(held.join("src")).unwrap();
    std::fs::write(held.join("src/work.txt"), "the orphaned job's work").unwrap();
    let holder = SharedLockHolder::start(&held);

    let swept = sweep(root.path()).await.unwrap();
    assert_eq!(swept.in_use, vec![held.clone()]);
    assert_eq!(swept.removed, Vec::<PathBuf>::new());
    assert_eq!(
        std::fs::read_to_string(held.join("src/work.txt")).unwrap(),
        "the orphaned job's work"
    );

    // As after `kill -9`: the kernel drops the lock with its last holder.
    holder.kill();
    let swept = sweep(root.path()).await.unwrap();
    assert_eq!(swept.removed, vec![held]);
    assert_eq!(swept.in_use, Vec::<PathBuf>::new());
    assert_eq!(entries(root.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn sweep_removes_only_prefixed_leftovers() {
    let (logs, _guard) = logs::capture();
    let root = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep.txt"), "keep").unwrap();
    let leftovers = [
        root.path().join("booty-issue-1-abc123"),
        root.path().join("booty-issue-22-x"),
    ];
    for leftover in &leftovers {
        std::fs::create_dir_all(leftover.join(".git/objects")).unwrap();
        std::fs::write(leftover.join("file.txt"), "left over").unwrap();
    }
    let kept = [
        root.path().join("booty-issue-3-file"),
        root.path().join("booty-issue-abc-1"),
        root.path().join("booty-db"),
        root.path().join("notes"),
        root.path().join("booty-issue-5-link"),
    ];
    std::fs::write(&kept[0], "a file, not a workspace").unwrap();
    std::fs::create_dir(&kept[1]).unwrap();
    std::fs::create_dir(&kept[2]).unwrap();
    std::fs::write(&kept[3], "notes").unwrap();
    std::os::unix::fs::symlink(outside.path(), &kept[4]).unwrap();

    let swept = sweep(root.path()).await.unwrap();

    assert_eq!(swept.removed, leftovers.to_vec());
    assert_eq!(swept.in_use, Vec::<PathBuf>::new());
    let mut remaining = entries(root.path());
    remaining.sort();
    let mut expected = kept.to_vec();
    expected.sort();
    assert_eq!(remaining, expected);
    assert!(outside.path().join("keep.txt").is_file());
    for leftover in &leftovers {
        assert!(
            logs.text().contains(&leftover.display().to_string()),
            "{}",
            logs.text()
        );
    }
    assert_eq!(
        sweep(root.path().join("missing")).await.unwrap(),
        Swept::default()
    );
}
