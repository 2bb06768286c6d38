//! GitHub failing: 5xx retried for calls that can be repeated and not for one that may have landed, slow
//! answers, rate limits waited out (observably, on the shared clock) or refused when too long, and every
//! error kind a caller can act on.

use std::time::Duration;

use booty_github::{Credentials, ErrorKind, GitHub, RateLimit, Token};
use booty_testkit::github::{Fault, rfc3339};

use crate::support::{INSTALLATION, config, fake, github, hello};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_for_a_read_with_backoff() {
    let fake = fake().await;
    let repo = github(&fake).repository(hello(), Some(INSTALLATION));
    repo.create_issue_comment(1, "x").await.unwrap();
    fake.clock().take_sleeps();
    fake.inject("issues/list-comments", Fault::Status(502), 2);
    let page = repo.list_issue_comments(1, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    let statuses: Vec<u16> = fake
        .requests_for("issues/list-comments")
        .iter()
        .map(|seen| seen.status)
        .collect();
    assert_eq!(statuses, [502, 502, 200]);
    // Two backoffs with jitter: 0.5-1 s, then 1-2 s.
    let sleeps = fake.clock().sleeps();
    assert_eq!(sleeps.len(), 2, "{sleeps:?}");
    assert!(sleeps[0] >= Duration::from_millis(500) && sleeps[0] <= Duration::from_secs(1));
    assert!(sleeps[1] >= Duration::from_secs(1) && sleeps[1] <= Duration::from_secs(2));

    // A read that keeps failing gives up after the configured retries, as a retryable error.
    fake.inject("issues/list-comments", Fault::Status(503), 10);
    let err = repo.list_issue_comments(1, None).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Server { status: 503, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(fake.requests_for("issues/list-comments").len(), 3 + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_on_a_create_is_not_retried_because_it_may_have_landed() {
    let fake = fake().await;
    let repo = github(&fake).repository(hello(), Some(INSTALLATION));
    fake.inject("issues/create-comment", Fault::StatusAfterApplying(502), 1);
    let err = repo.create_issue_comment(5, "once").await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Server { status: 502, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    assert_eq!(fake.requests_for("issues/create-comment").len(), 1);
    // It did land: a retry would have made two.
    assert_eq!(fake.comments("octo/hello", 5).len(), 1);
    // An update sets a value, so it is repeated safely.
    let comment = repo.create_issue_comment(5, "v1").await.unwrap();
    fake.inject("issues/update-comment", Fault::StatusAfterApplying(502), 1);
    let updated = repo.update_issue_comment(comment.id, "v2").await.unwrap();
    assert_eq!(updated.body.as_deref(), Some("v2"));
    assert_eq!(fake.requests_for("issues/update-comment").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_answer_times_out_and_only_a_read_is_tried_again() {
    let fake = fake().await;
    let mut config = config(&fake);
    config.timeout = Duration::from_millis(300);
    let github = GitHub::new(Credentials::App(crate::support::app(&fake)), config).unwrap();
    let repo = github.repository(hello(), Some(INSTALLATION));
    repo.list_issue_comments(1, None).await.unwrap();
    fake.clock().take_sleeps();

    fake.inject(
        "issues/list-comments",
        Fault::Slow(Duration::from_secs(3)),
        1,
    );
    repo.list_issue_comments(1, None).await.unwrap();
    assert_eq!(
        fake.clock().take_sleeps().len(),
        1,
        "one retry after the timeout"
    );

    fake.inject(
        "issues/create-comment",
        Fault::Slow(Duration::from_secs(3)),
        1,
    );
    let err = repo.create_issue_comment(1, "slow").await.unwrap_err();
    match err.kind() {
        ErrorKind::Timeout { timeout } => assert_eq!(*timeout, Duration::from_millis(300)),
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        "github: POST /repos/octo/hello/issues/1/comments: no answer within 0.3s"
    );
    assert!(
        fake.clock().take_sleeps().is_empty(),
        "a create is not tried again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failures_are_retried_and_then_reported() {
    // A port nobody listens on: the connection is never made, so even a create may go again.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let fake = fake().await;
    let mut config = config(&fake);
    config.api_url = url;
    let github = GitHub::new(Credentials::Token(Token::new("ghp_x")), config).unwrap();
    let err = github
        .repository(hello(), None)
        .create_issue_comment(1, "x")
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Connection { .. }), "{err}");
    assert!(err.is_retryable());
    assert_eq!(fake.clock().sleeps().len(), 3, "the default three retries");
    assert!(
        std::error::Error::source(&err).is_some(),
        "reqwest's error is the source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_limit_is_waited_out_for_retry_after_or_a_minute() {
    let fake = fake().await;
    let repo = github(&fake).repository(hello(), Some(INSTALLATION));
    repo.list_issue_comments(1, None).await.unwrap();
    fake.clock().take_sleeps();

    fake.inject(
        "issues/create-comment",
        Fault::SecondaryLimit {
            retry_after: Some(30),
        },
        1,
    );
    repo.create_issue_comment(1, "after the limit")
        .await
        .unwrap();
    assert_eq!(fake.clock().take_sleeps(), [Duration::from_secs(30)]);
    let statuses: Vec<u16> = fake
        .requests_for("issues/create-comment")
        .iter()
        .map(|seen| seen.status)
        .collect();
    assert_eq!(
        statuses,
        [429, 201],
        "a rate-limited create was not made, so it is sent again"
    );
    assert_eq!(fake.comments("octo/hello", 1).len(), 1);

    // Without Retry-After: GitHub's message, and at least a minute.
    fake.inject(
        "issues/list-comments",
        Fault::SecondaryLimit { retry_after: None },
        1,
    );
    repo.list_issue_comments(1, None).await.unwrap();
    assert_eq!(fake.clock().take_sleeps(), [Duration::from_mins(1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_primary_limit_is_waited_out_until_its_reset() {
    let fake = fake().await;
    let repo = github(&fake).repository(hello(), Some(INSTALLATION));
    repo.list_issue_comments(1, None).await.unwrap();
    fake.clock().take_sleeps();
    let limited_at = fake.clock().now();
    fake.inject(
        "issues/list-comments",
        Fault::PrimaryLimit {
            reset_in: Duration::from_mins(2),
        },
        1,
    );
    repo.list_issue_comments(1, None).await.unwrap();
    let sleeps = fake.clock().take_sleeps();
    assert_eq!(sleeps.len(), 1);
    assert!(sleeps[0] >= Duration::from_mins(2), "{sleeps:?}");
    assert!(fake.clock().now() >= limited_at + Duration::from_mins(2));
    let statuses: Vec<u16> = fake
        .requests_for("issues/list-comments")
        .iter()
        .map(|seen| seen.status)
        .collect();
    assert_eq!(statuses, [200, 403, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_longer_than_the_caller_allows_is_an_error_saying_until_when() {
    let fake = fake().await;
    let github = github(&fake);
    let repo = github.repository(hello(), Some(INSTALLATION));
    repo.list_issue_comments(1, None).await.unwrap();
    fake.clock().take_sleeps();
    let reset = fake.clock().now() + Duration::from_hours(1);
    fake.inject(
        "issues/list-comments",
        Fault::PrimaryLimit {
            reset_in: Duration::from_hours(1),
        },
        1,
    );
    let impatient = github.with_max_rate_limit_wait(Duration::from_mins(1));
    let err = impatient
        .repository(hello(), Some(INSTALLATION))
        .list_issue_comments(1, None)
        .await
        .unwrap_err();
    match err.kind() {
        ErrorKind::RateLimited {
            limit,
            until,
            max_wait,
        } => {
            assert_eq!(
                (*limit, *until, *max_wait),
                (RateLimit::Primary, reset, Duration::from_mins(1))
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.rate_limited_until(), Some(reset));
    assert!(err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!(
            "github: GET /repos/octo/hello/issues/1/comments: rate limited (primary) until {}, beyond the 60s this call may wait",
            rfc3339(reset)
        )
    );
    assert!(fake.clock().sleeps().is_empty(), "it did not wait at all");
    // The client remembers the spent limit: another call does not even ask until the reset.
    let before = fake.requests().len();
    let err = impatient
        .repository(hello(), Some(INSTALLATION))
        .create_issue_comment(1, "x")
        .await
        .unwrap_err();
    assert_eq!(err.rate_limited_until(), Some(reset));
    assert_eq!(fake.requests().len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_is_its_own_kind() {
    let fake = fake().await;
    fake.set_pat("ghp_good");
    let github = github(&fake);
    let repo = github.repository(hello(), Some(INSTALLATION));

    // 403 naming the permission: a token narrowed to contents only.
    let narrow = repo.clone().with_permissions(
        booty_github::Permissions::none().with("contents", booty_github::Access::Write),
    );
    let err = narrow.create_issue_comment(1, "x").await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Forbidden { permission: Some(p), .. } if p == "issues=write"),
        "{err}"
    );
    assert!(!err.is_retryable());

    // 404.
    let err = repo.update_issue_comment(123_456, "x").await.unwrap_err();
    assert!(err.is_not_found() && err.status() == Some(404), "{err}");

    // Another 4xx.
    fake.inject(
        "pulls/update",
        Fault::Refuse {
            status: 409,
            message: "Conflict".into(),
        },
        1,
    );
    let err = repo
        .update_pull(1, &booty_github::PullRequestUpdate::new().title("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Status { status: 409, message } if message == "Conflict"),
        "{err}"
    );
    assert!(!err.is_retryable());

    // 401 for a token GitHub does not know.
    let stranger = GitHub::new(Credentials::Token(Token::new("ghp_wrong")), config(&fake)).unwrap();
    let err = stranger
        .repository(hello(), None)
        .list_issue_comments(1, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Unauthorized { message } if message == "Bad credentials"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "github: GET /repos/octo/hello/issues/1/comments: github refused the credentials (401): Bad credentials"
    );
    assert!(
        fake.clock().sleeps().is_empty(),
        "a token's 401 is not a new installation token's"
    );
}
