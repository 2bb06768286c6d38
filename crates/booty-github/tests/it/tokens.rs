//! Installation tokens: narrowed to one repository and booty's permissions, used by git against the same
//! server, cached and refreshed before they expire, minted once for many callers, and retried through
//! GitHub's replication delay.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use booty_github::{Access, Credentials, ErrorKind, GitHub, Permissions, Token};
use booty_testkit::github::{Caller, Fault};

use crate::support::{INSTALLATION, app, config, fake, git, github, hello, other};

fn permissions(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(name, level)| ((*name).to_owned(), (*level).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_narrowed_to_its_repository_and_booty_s_permissions() {
    let fake = fake().await;
    let github = github(&fake);
    let token = github.token_for(INSTALLATION, &hello()).await.unwrap();
    let mints = fake.mints();
    assert_eq!(mints.len(), 1);
    assert_eq!(mints[0].installation, INSTALLATION.0);
    assert_eq!(mints[0].repositories, Some(vec!["hello".to_owned()]));
    assert_eq!(
        mints[0].permissions,
        permissions(&[
            ("contents", "write"),
            ("issues", "write"),
            ("pull_requests", "write")
        ])
    );
    assert_eq!(token.expose(), mints[0].token);
    assert_eq!(token.expires_at(), Some(mints[0].expires_at));
    // The request body said exactly that, and the description's schema took it.
    let body = fake.requests_for("apps/create-installation-access-token")[0]
        .body
        .clone()
        .unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "repositories": ["hello"],
            "permissions": {"contents": "write", "issues": "write", "pull_requests": "write"}
        })
    );

    // git takes it for this repository, and the server that issued it refuses it for another.
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = git(
        dir.path(),
        token.expose(),
        &["clone", "-q", &fake.git_url("octo/hello"), "hello"],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(dir.path().join("hello/README.md").is_file());
    let (ok, stderr) = git(
        dir.path(),
        token.expose(),
        &["clone", "-q", &fake.git_url("octo/other"), "other"],
    )
    .await;
    assert!(!ok && stderr.contains("Repository not found."), "{stderr}");
    // And so does the REST API: another repository of the same installation is not found with it.
    let answer = reqwest::Client::new()
        .get(format!(
            "{}/repos/octo/other/issues/1/comments",
            fake.api_url()
        ))
        .bearer_auth(token.expose())
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header("user-agent", "booty-github-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);

    // With the token, booty pushes its branch.
    let work = dir.path().join("hello");
    std::fs::write(work.join("fix.txt"), "fixed\n").unwrap();
    for args in [
        &["checkout", "-q", "-b", "agent/issue-7"][..],
        &["add", "fix.txt"],
        &["commit", "-q", "-m", "Fix #7"],
    ] {
        let (ok, stderr) = git(&work, "", args).await;
        assert!(ok, "{stderr}");
    }
    let (ok, stderr) = git(
        &work,
        token.expose(),
        &["push", "-q", "origin", "agent/issue-7"],
    )
    .await;
    assert!(ok, "{stderr}");
    assert!(fake.branch_head("octo/hello", "agent/issue-7").is_some());
    let pushes = fake.requests_for("git-receive-pack");
    assert!(
        pushes
            .iter()
            .all(|seen| seen.caller == Caller::Installation(0) || seen.status == 401)
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_contents_write_clones_but_cannot_push() {
    let fake = fake().await;
    let mut config = config(&fake);
    config.permissions = Permissions::none().with("contents", Access::Read);
    let github = GitHub::new(Credentials::App(app(&fake)), config).unwrap();
    let token = github.token_for(INSTALLATION, &hello()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = git(
        dir.path(),
        token.expose(),
        &["clone", "-q", &fake.git_url("octo/hello"), "hello"],
    )
    .await;
    assert!(ok, "{stderr}");
    let work = dir.path().join("hello");
    let (ok, stderr) = git(&work, "", &["commit", "-q", "--allow-empty", "-m", "x"]).await;
    assert!(ok, "{stderr}");
    let (ok, stderr) = git(
        &work,
        token.expose(),
        &["push", "-q", "origin", "HEAD:refs/heads/x"],
    )
    .await;
    assert!(!ok && stderr.contains("403"), "{stderr}");
    assert_eq!(fake.branch_head("octo/hello", "x"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_reused_until_five_minutes_before_it_expires_then_replaced() {
    let fake = fake().await;
    let github = github(&fake);
    let first = github.token_for(INSTALLATION, &hello()).await.unwrap();
    // Another repository is another token.
    let elsewhere = github.token_for(INSTALLATION, &other()).await.unwrap();
    assert_ne!(elsewhere.expose(), first.expose());
    assert_eq!(fake.mints().len(), 2);

    fake.clock().advance(Duration::from_secs(54 * 60 + 59));
    let reused = github.token_for(INSTALLATION, &hello()).await.unwrap();
    assert_eq!(reused.expose(), first.expose());
    assert_eq!(fake.mints().len(), 2);
    // REST calls carry the cached token too.
    let comment = github
        .repository(hello(), Some(INSTALLATION))
        .create_issue_comment(1, "still good")
        .await
        .unwrap();
    assert_eq!(comment.body.as_deref(), Some("still good"));
    assert_eq!(
        fake.requests_for("issues/create-comment")[0].caller,
        Caller::Installation(0)
    );

    // Five minutes before expiry it is replaced, while GitHub would still take it.
    fake.clock().advance(Duration::from_secs(1));
    let fresh = github.token_for(INSTALLATION, &hello()).await.unwrap();
    assert_ne!(fresh.expose(), first.expose());
    assert_eq!(fake.mints().len(), 3);
    assert!(fresh.expires_at() > first.expires_at());

    // The old one really does expire at GitHub an hour after minting.
    fake.clock().advance(Duration::from_mins(5));
    let dir = tempfile::tempdir().unwrap();
    let (ok, _) = git(
        dir.path(),
        first.expose(),
        &["ls-remote", &fake.git_url("octo/hello")],
    )
    .await;
    assert!(!ok, "an expired token was accepted");
    let (ok, stderr) = git(
        dir.path(),
        fresh.expose(),
        &["ls-remote", &fake.git_url("octo/hello")],
    )
    .await;
    assert!(ok, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_callers_share_one_mint() {
    let fake = fake().await;
    // A slow mint, so every caller arrives while it is in flight.
    fake.inject(
        "apps/create-installation-access-token",
        Fault::Slow(Duration::from_millis(300)),
        1,
    );
    let github = github(&fake);
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let mut callers = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let (github, barrier) = (github.clone(), barrier.clone());
        callers.spawn(async move {
            barrier.wait().await;
            github.token_for(INSTALLATION, &hello()).await.unwrap()
        });
    }
    let tokens: Vec<Token> = callers.join_all().await;
    assert_eq!(tokens.len(), 50);
    assert!(
        tokens
            .iter()
            .all(|token| token.expose() == tokens[0].expose())
    );
    assert_eq!(fake.mints().len(), 1);
    assert_eq!(
        fake.requests_for("apps/create-installation-access-token")
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_right_after_minting_is_replication_and_is_retried() {
    let fake = fake().await;
    fake.set_replication_delay(Duration::from_secs(2));
    let github = github(&fake);
    let comment = github
        .repository(hello(), Some(INSTALLATION))
        .create_issue_comment(3, "hello")
        .await
        .unwrap();
    assert_eq!(comment.body.as_deref(), Some("hello"));
    // 1 s, then 2 s: the token was 3 s old when GitHub knew it.
    assert_eq!(
        fake.clock().sleeps(),
        [Duration::from_secs(1), Duration::from_secs(2)]
    );
    let statuses: Vec<u16> = fake
        .requests_for("issues/create-comment")
        .iter()
        .map(|seen| seen.status)
        .collect();
    assert_eq!(statuses, [401, 401, 201]);
    assert_eq!(fake.comments("octo/hello", 3).len(), 1);
    assert_eq!(fake.mints().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_that_outlasts_the_replication_window_fails_and_the_token_is_dropped() {
    let fake = fake().await;
    fake.set_replication_delay(Duration::from_secs(30));
    let github = github(&fake);
    let repo = github.repository(hello(), Some(INSTALLATION));
    let err = repo.list_issue_comments(1, None).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Unauthorized { message } if message == "Bad credentials"),
        "{err}"
    );
    // Waits of 1, 2 and 3 s while the token was younger than 5 s; then the 401 is believed.
    assert_eq!(
        fake.clock().take_sleeps(),
        [1, 2, 3].map(Duration::from_secs)
    );
    // The refused token is forgotten: the next call mints another.
    fake.set_replication_delay(Duration::ZERO);
    repo.list_issue_comments(1, None).await.unwrap();
    assert_eq!(fake.mints().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_installation_is_looked_up_once_when_the_payload_names_none() {
    let fake = fake().await;
    let github = github(&fake);
    let repo = github.repository(hello(), None);
    repo.create_issue_comment(1, "a").await.unwrap();
    repo.create_issue_comment(1, "b").await.unwrap();
    assert_eq!(fake.requests_for("apps/get-repo-installation").len(), 1);
    assert_eq!(repo.token().await.unwrap().expose(), fake.mints()[0].token);
    // Outside the installation: GitHub's 404.
    let err = github
        .repository("stranger/elsewhere".parse().unwrap(), None)
        .create_issue_comment(1, "x")
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(
        err.operation(),
        "GET /repos/stranger/elsewhere/installation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn narrowing_beyond_the_installation_is_githubs_422() {
    let fake = fake().await;
    let github = github(&fake);
    let err = github
        .token_for(INSTALLATION, &"octo/missing".parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::ValidationFailed { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("not accessible to the parent installation"),
        "{err}"
    );
    let err = github
        .installation_token(
            INSTALLATION,
            Some(&hello()),
            &Permissions::none().with("administration", Access::Write),
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("The permissions requested are not granted"),
        "{err}"
    );
    assert!(fake.mints().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_personal_access_token_is_used_as_it_is() {
    let fake = fake().await;
    fake.set_pat("ghp_fake_personal_token_0123456789");
    let github = GitHub::new(
        Credentials::Token(Token::new("ghp_fake_personal_token_0123456789")),
        config(&fake),
    )
    .unwrap();
    let token = github.token_for(INSTALLATION, &hello()).await.unwrap();
    assert_eq!(token.expose(), "ghp_fake_personal_token_0123456789");
    assert_eq!(token.expires_at(), None);
    github
        .repository(hello(), None)
        .create_issue_comment(2, "by token")
        .await
        .unwrap();
    assert_eq!(
        fake.requests_for("issues/create-comment")[0].caller,
        Caller::Pat
    );
    assert!(fake.mints().is_empty());
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = git(
        dir.path(),
        token.expose(),
        &["ls-remote", &fake.git_url("octo/hello")],
    )
    .await;
    assert!(ok, "{stderr}");
}
