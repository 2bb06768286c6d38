//! Every typed call against the fake, which checks the requests against GitHub's description and answers
//! with its examples: comments, reactions, pull requests, webhook deliveries, across pages, on github.com
//! and on Enterprise Server.

use booty_github::{
    Access, DeliveryId, ErrorKind, HookId, NewPullRequest, Permissions, PullRequestUpdate,
    PullState, ReactionContent,
};
use booty_testkit::github::{Caller, DeliverySeed, Flavor, Hook};
use serde_json::json;

use crate::support::{INSTALLATION, fake, fake_of, git, github, hello};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_are_created_updated_and_listed_across_pages() {
    let fake = fake().await;
    let repo = github(&fake).repository(hello(), Some(INSTALLATION));
    let first = repo.create_issue_comment(7, "Working on it").await.unwrap();
    assert_eq!(first.body.as_deref(), Some("Working on it"));
    let user = first.user.clone().unwrap();
    assert_eq!(
        (user.login.as_str(), user.kind.as_str()),
        ("booty-test[bot]", "Bot")
    );
    assert!(
        first
            .html_url
            .ends_with(&format!("/issues/7#issuecomment-{}", first.id))
    );
    let updated = repo
        .update_issue_comment(first.id, "Done: #100")
        .await
        .unwrap();
    assert_eq!(
        (updated.id, updated.body.as_deref()),
        (first.id, Some("Done: #100"))
    );
    assert_eq!(fake.comments("octo/hello", 7)[0]["body"], "Done: #100");

    for n in 1..230 {
        repo.create_issue_comment(7, &format!("comment {n}"))
            .await
            .unwrap();
    }
    repo.create_issue_comment(8, "elsewhere").await.unwrap();
    let mut bodies = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = repo.list_issue_comments(7, cursor.as_ref()).await.unwrap();
        pages += 1;
        bodies.extend(page.items.into_iter().map(|comment| comment.body.unwrap()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3, "100 a page");
    assert_eq!(bodies.len(), 230);
    assert_eq!(bodies[0], "Done: #100");
    assert_eq!(bodies[229], "comment 229");
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_are_created_once() {
    let fake = fake().await;
    let repo = github(&fake).repository(hello(), Some(INSTALLATION));
    let eyes = repo
        .create_issue_reaction(7, ReactionContent::Eyes)
        .await
        .unwrap();
    assert_eq!(eyes.content, "eyes");
    let again = repo
        .create_issue_reaction(7, ReactionContent::Eyes)
        .await
        .unwrap();
    assert_eq!(
        again.id, eyes.id,
        "GitHub answers 200 with the existing reaction"
    );
    let comment = repo.create_issue_comment(7, "x").await.unwrap();
    let plus = repo
        .create_issue_comment_reaction(comment.id, ReactionContent::ThumbsUp)
        .await
        .unwrap();
    assert_eq!(plus.content, "+1");
    let statuses: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|seen| seen.operation.starts_with("reactions/"))
        .map(|seen| seen.status)
        .collect();
    assert_eq!(statuses, [201, 200, 201]);
    assert_eq!(
        fake.requests_for("reactions/create-for-issue")[0].body,
        Some(json!({"content": "eyes"}))
    );
    let err = repo
        .create_issue_comment_reaction(999_999, ReactionContent::Heart)
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines, reason = "one pull request's life, in order")]
async fn pull_requests_are_opened_found_by_head_and_updated() {
    let fake = fake().await;
    let github = github(&fake);
    let repo = github.repository(hello(), Some(INSTALLATION));
    // booty pushes its branch first.
    let token = repo.token().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = git(
        dir.path(),
        token.expose(),
        &["clone", "-q", &fake.git_url("octo/hello"), "w"],
    )
    .await;
    assert!(ok, "{stderr}");
    let work = dir.path().join("w");
    for args in [
        &["commit", "-q", "--allow-empty", "-m", "Fix #7"][..],
        &["push", "-q", "origin", "HEAD:refs/heads/agent/issue-7"],
    ] {
        let (ok, stderr) = git(&work, token.expose(), args).await;
        assert!(ok, "{stderr}");
    }

    let none = repo
        .list_pulls_by_head("agent/issue-7", PullState::Open, None)
        .await
        .unwrap();
    assert!(none.items.is_empty() && none.next.is_none());
    let pull = repo
        .create_pull(
            &NewPullRequest::new("Fix #7", "agent/issue-7", "main")
                .body("Closes #7")
                .draft(true),
        )
        .await
        .unwrap();
    assert_eq!(pull.head.name, "agent/issue-7");
    assert_eq!(pull.head.label, "octo:agent/issue-7");
    assert_eq!(
        Some(pull.head.sha.clone()),
        fake.branch_head("octo/hello", "agent/issue-7")
    );
    assert_eq!((pull.base.name.as_str(), pull.draft), ("main", Some(true)));
    assert_eq!(
        fake.requests_for("pulls/create")[0].body,
        Some(
            json!({"title": "Fix #7", "head": "agent/issue-7", "base": "main", "body": "Closes #7", "draft": true})
        )
    );

    let found = repo
        .list_pulls_by_head("agent/issue-7", PullState::Open, None)
        .await
        .unwrap();
    assert_eq!(
        found.items.iter().map(|p| p.number).collect::<Vec<_>>(),
        [pull.number]
    );
    assert!(
        fake.requests_for("pulls/list")[1]
            .target
            .contains("head=octo%3Aagent%2Fissue-7")
    );

    let updated = repo
        .update_pull(
            pull.number,
            &PullRequestUpdate::new().title("Fix #7 (v2)").closed(true),
        )
        .await
        .unwrap();
    assert_eq!(
        (updated.title.as_str(), updated.state.as_str()),
        ("Fix #7 (v2)", "closed")
    );
    let open = repo
        .list_pulls_by_head("octo:agent/issue-7", PullState::Open, None)
        .await
        .unwrap();
    assert!(open.items.is_empty());
    let all = repo
        .list_pulls_by_head("agent/issue-7", PullState::All, None)
        .await
        .unwrap();
    assert_eq!(all.items.len(), 1);

    // A head that does not exist: GitHub's 422 with its errors[].
    let err = repo
        .create_pull(&NewPullRequest::new("x", "agent/issue-404", "main"))
        .await
        .unwrap_err();
    match err.kind() {
        ErrorKind::ValidationFailed { message, errors } => {
            assert_eq!(message, "Validation Failed");
            assert_eq!(errors.len(), 1);
            assert_eq!(
                (
                    errors[0].resource.as_deref(),
                    errors[0].field.as_deref(),
                    errors[0].code.as_deref()
                ),
                (Some("PullRequest"), Some("head"), Some("invalid"))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "github: POST /repos/octo/hello/pulls: validation failed (422): Validation Failed (PullRequest head invalid)"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

fn seed(guid: usize, status_code: u16) -> DeliverySeed {
    DeliverySeed {
        guid: format!("00000000-0000-0000-0000-{guid:012}"),
        event: "issues".to_owned(),
        action: Some("labeled".to_owned()),
        status_code,
        payload: json!({"action": "labeled", "issue": {"number": guid}}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_hook_deliveries_are_paged_by_cursor_read_and_redelivered() {
    let fake = fake().await;
    for n in 0..250 {
        fake.add_delivery(&Hook::App, &seed(n, if n % 10 == 0 { 502 } else { 200 }));
    }
    let app = github(&fake).app();
    let mut all = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = app.list_hook_deliveries(cursor.as_ref()).await.unwrap();
        pages += 1;
        all.extend(page.items);
        match page.next {
            Some(next) => {
                assert!(next.url().contains("cursor=v1_"), "{}", next.url());
                cursor = Some(next);
            }
            None => break,
        }
    }
    assert_eq!((pages, all.len()), (3, 250));
    // Newest first, each once.
    assert_eq!(all[0].guid, seed(249, 200).guid);
    assert_eq!(all[249].guid, seed(0, 200).guid);
    let failed: Vec<_> = all
        .iter()
        .filter(|delivery| !delivery.succeeded())
        .collect();
    assert_eq!(failed.len(), 25);
    assert_eq!(failed[0].status_code, 502);

    let detail = app.hook_delivery(failed[0].id).await.unwrap();
    assert_eq!(detail.delivery.guid, failed[0].guid);
    assert_eq!(
        detail.request.payload,
        Some(json!({"action": "labeled", "issue": {"number": 240}}))
    );
    assert_eq!(
        detail.request.headers.as_ref().unwrap()["X-GitHub-Delivery"],
        json!(failed[0].guid)
    );
    app.redeliver(failed[0].id).await.unwrap();
    let newest = &app.list_hook_deliveries(None).await.unwrap().items[0];
    assert!(newest.redelivery && newest.guid == failed[0].guid && newest.id != failed[0].id);
    let err = app.hook_delivery(DeliveryId(1)).await.unwrap_err();
    assert!(err.is_not_found());
    assert!(
        fake.requests()
            .iter()
            .filter(|seen| seen.operation.starts_with("apps/"))
            .all(|seen| seen.caller == Caller::App)
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_hook_without_deliveries_lists_none_and_backdated_ones_are_listed_by_time() {
    let fake = fake().await;
    let app = github(&fake).app();
    let empty = app.list_hook_deliveries(None).await.unwrap();
    assert!(empty.items.is_empty() && empty.next.is_none());

    let now = fake.clock().now();
    let minutes = |n: u64| std::time::Duration::from_secs(60 * n);
    fake.add_delivery_sent_at(&Hook::App, &seed(1, 200), now - minutes(10));
    fake.add_delivery_sent_at(&Hook::App, &seed(2, 502), now - minutes(30));
    fake.add_delivery_sent_at(&Hook::App, &seed(3, 200), now - minutes(20));
    fake.add_delivery(&Hook::App, &seed(4, 200));
    let listed = app.list_hook_deliveries(None).await.unwrap().items;
    let guids: Vec<&str> = listed
        .iter()
        .map(|delivery| delivery.guid.as_str())
        .collect();
    assert_eq!(
        guids,
        [4, 1, 3, 2]
            .map(|n| seed(n, 200).guid)
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    assert_eq!(listed[3].delivered_at, now - minutes(30));
    assert!(
        listed
            .windows(2)
            .all(|pair| pair[0].delivered_at >= pair[1].delivered_at)
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_and_organization_hook_deliveries_take_their_permissions() {
    let fake = fake().await;
    let hook = HookId(9);
    fake.add_delivery(
        &Hook::Repository("octo/hello".to_owned(), hook.0),
        &seed(1, 200),
    );
    fake.add_delivery(
        &Hook::Organization("octo".to_owned(), hook.0),
        &seed(2, 500),
    );
    let github = github(&fake);

    // booty's default permissions do not include the repository's webhooks: GitHub says which are needed.
    let repo = github.repository(hello(), Some(INSTALLATION));
    let err = repo.list_hook_deliveries(hook, None).await.unwrap_err();
    match err.kind() {
        ErrorKind::Forbidden {
            message,
            permission,
        } => {
            assert_eq!(message, "Resource not accessible by integration");
            assert_eq!(permission.as_deref(), Some("repository_hooks=read"));
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string()
            .ends_with("(needs permission repository_hooks=read)"),
        "{err}"
    );

    let repo = repo.with_permissions(Permissions::none().with("repository_hooks", Access::Write));
    let page = repo.list_hook_deliveries(hook, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let detail = repo.hook_delivery(hook, page.items[0].id).await.unwrap();
    assert_eq!(detail.delivery.guid, seed(1, 200).guid);
    repo.redeliver(hook, page.items[0].id).await.unwrap();
    assert_eq!(
        fake.deliveries(&Hook::Repository("octo/hello".to_owned(), 9))
            .len(),
        2
    );

    let org = github.organization("octo", Some(INSTALLATION)).unwrap();
    let page = org.list_hook_deliveries(hook, None).await.unwrap();
    assert_eq!(page.items[0].status_code, 500);
    org.redeliver(hook, page.items[0].id).await.unwrap();
    assert_eq!(
        org.hook_delivery(hook, page.items[0].id)
            .await
            .unwrap()
            .delivery
            .status_code,
        500
    );
    let org_mint = fake.mints().into_iter().last().unwrap();
    assert_eq!(
        org_mint.repositories, None,
        "an organization's token spans the installation"
    );
    assert!(github.organization("octo/x", None).is_err());
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enterprise_server_is_served_under_api_v3() {
    let fake = fake_of(Flavor::Enterprise).await;
    assert!(fake.api_url().ends_with("/api/v3"));
    fake.add_delivery(&Hook::App, &seed(1, 200));
    fake.add_delivery(&Hook::App, &seed(2, 200));
    let github = github(&fake);
    let repo = github.repository(hello(), None);
    repo.create_issue_comment(1, "on GHES").await.unwrap();
    let app = github.app();
    assert_eq!(app.list_hook_deliveries(None).await.unwrap().items.len(), 2);
    assert!(
        fake.requests()
            .iter()
            .all(|seen| seen.target.starts_with("/api/v3/"))
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_names_booty_the_api_version_and_the_media_type() {
    let fake = fake().await;
    let github = github(&fake);
    github
        .repository(hello(), None)
        .create_issue_comment(1, "hi")
        .await
        .unwrap();
    let seen = fake.requests();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    for seen in &seen {
        assert_eq!(
            seen.user_agent.as_deref(),
            Some(concat!("booty-github/", env!("CARGO_PKG_VERSION")))
        );
    }
    // The fake answers 400 and records a violation for a wrong Accept or API version.
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_git_database_api_makes_a_commit_on_a_branch_that_git_sees() {
    use booty_github::TreeEntry;
    let fake = fake().await;
    let repo = github(&fake).repository(hello(), Some(INSTALLATION));
    let main = repo.get_ref("heads/main").await.unwrap();
    assert_eq!(main.name, "refs/heads/main");
    assert_eq!(
        Some(main.object.sha.clone()),
        fake.branch_head("octo/hello", "main")
    );

    let entries: Vec<TreeEntry> = (0..3)
        .map(|n| TreeEntry::file(format!("src/file{n}.txt"), format!("text {n}\n")))
        .chain([TreeEntry::removed("README.md")])
        .collect();
    let tree = repo.create_tree(None, &entries).await.unwrap();
    let commit = repo
        .create_commit("Three files", &tree.sha, &[&main.object.sha])
        .await
        .unwrap();
    let created = repo
        .create_ref("refs/heads/agent/issue-7", &commit.sha)
        .await
        .unwrap();
    assert_eq!(created.object.sha, commit.sha);
    // A reference with slashes in its name is found again.
    let found = repo.get_ref("heads/agent/issue-7").await.unwrap();
    assert_eq!(found.object.sha, commit.sha);
    assert_eq!(
        fake.branch_head("octo/hello", "agent/issue-7").as_deref(),
        Some(commit.sha.as_str())
    );
    // Moving it back to main is not a fast forward: refused unless forced.
    let refused = repo
        .update_ref("refs/heads/agent/issue-7", &main.object.sha, false)
        .await
        .unwrap_err();
    assert_eq!(refused.status(), Some(422), "{refused:?}");
    let again = repo
        .create_ref("refs/heads/agent/issue-7", &main.object.sha)
        .await
        .unwrap_err();
    assert_eq!(again.status(), Some(422), "{again:?}");
    repo.update_ref("heads/agent/issue-7", &main.object.sha, true)
        .await
        .unwrap();
    assert_eq!(
        fake.branch_head("octo/hello", "agent/issue-7"),
        fake.branch_head("octo/hello", "main")
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}
