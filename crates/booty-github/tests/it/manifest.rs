//! The end of GitHub's App manifest flow against the fake: a code exchanged once, without credentials, for
//! an App whose key then works; an expired or used code is `NotFound`, and no error shows the code.

use std::time::Duration;

use booty_github::{AppCredentials, Credentials, ErrorKind, GitHub, Repository};
use booty_testkit::github::Caller;
use serde_json::json;

use crate::support::{config, fake};

/// A manifest as a page would post it.
fn manifest() -> serde_json::Value {
    json!({
        "name": "booty crate test",
        "url": "https://booty.example.com",
        "hook_attributes": {"url": "https://booty.example.com/webhooks/github"},
        "redirect_url": "http://127.0.0.1:9/callback",
        "default_events": ["issues"],
        "default_permissions": {"contents": "write", "issues": "write"},
    })
}

/// The code of the redirect's `Location`.
fn code_of(location: &str) -> String {
    let url = url_query(location);
    url.iter()
        .find(|(name, _)| name == "code")
        .map(|(_, value)| value.clone())
        .unwrap()
}

fn url_query(location: &str) -> Vec<(String, String)> {
    let query = location.split_once('?').unwrap().1;
    query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_exchanged_once_for_an_app_whose_key_works() {
    let fake = fake().await;
    let (status, location) = fake
        .post_manifest(Some("octo"), Some("the-state"), &manifest())
        .await;
    assert_eq!(status, 302);
    let location = location.unwrap();
    assert!(
        location.starts_with("http://127.0.0.1:9/callback?code="),
        "{location}"
    );
    assert!(location.ends_with("&state=the-state"), "{location}");
    let code = code_of(&location);

    // A client without credentials; and one of the test App, which must not send its JWT.
    let anonymous = GitHub::new(Credentials::Anonymous, config(&fake)).unwrap();
    let app = anonymous.create_app_from_manifest(&code).await.unwrap();
    let created = &fake.created_apps()[0];
    assert_eq!(app.id, created.id);
    assert_eq!(app.client_id, created.client_id);
    assert_eq!(app.slug, "booty-crate-test");
    assert_eq!(app.owner.as_ref().unwrap().login, "octo");
    assert_eq!(app.events, ["issues"]);
    assert_eq!(app.permissions["issues"], "write");
    assert_eq!(app.permissions["metadata"], "read");
    assert_eq!(
        app.webhook_secret.as_ref().unwrap().expose(),
        created.webhook_secret.as_deref().unwrap()
    );
    assert!(
        !format!("{app:?}").contains("PRIVATE KEY"),
        "Debug shows the key"
    );
    let seen = fake.requests_for("apps/create-from-manifest");
    assert_eq!(seen.len(), 1);
    assert_eq!((seen[0].status, &seen[0].caller), (201, &Caller::Anonymous));

    // The key GitHub handed out signs JWTs the fake takes for that App, and for no installation of another.
    fake.add_installation_of(
        app.id,
        500,
        "octo",
        &[
            ("contents", "write"),
            ("issues", "write"),
            ("pull_requests", "write"),
        ],
    );
    fake.add_repository("octo/made", Some(500));
    let credentials =
        AppCredentials::from_pem(app.client_id.parse().unwrap(), app.pem.expose().as_bytes())
            .unwrap();
    let github = GitHub::new(Credentials::App(credentials), config(&fake)).unwrap();
    let repo: Repository = "octo/made".parse().unwrap();
    let installation = github.installation_for_repository(&repo).await.unwrap();
    assert_eq!(installation.0, 500);
    github.token_for(installation, &repo).await.unwrap();
    let hello: Repository = "octo/hello".parse().unwrap();
    let err = github
        .installation_for_repository(&hello)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NotFound { .. }), "{err}");

    // Once only; and an error that does not show the code.
    let err = anonymous.create_app_from_manifest(&code).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NotFound { .. }), "{err}");
    assert!(!err.to_string().contains(&code), "{err}");
    assert!(
        err.to_string()
            .contains("/app-manifests/{code}/conversions"),
        "{err}"
    );
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_expires_after_an_hour_and_credentials_are_never_sent_with_it() {
    let fake = fake().await;
    let (_, location) = fake.post_manifest(None, None, &manifest()).await;
    let location = location.unwrap();
    assert!(!location.contains("state="), "{location}");
    let code = code_of(&location);
    fake.clock().advance(Duration::from_hours(1));
    let github = crate::support::github(&fake);
    let err = github.create_app_from_manifest(&code).await.unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::NotFound { .. }), "{err}");
    // The App client held a key, and sent none of it.
    let seen = fake.requests_for("apps/create-from-manifest");
    assert_eq!(seen[0].caller, Caller::Anonymous);
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
    assert_eq!(fake.created_apps()[0].owner, "octocat");

    // What GitHub does not document in a manifest is refused, and nothing is made.
    let mut wrong = manifest();
    wrong["webhook_url"] = json!("https://elsewhere.example");
    let (status, location) = fake.post_manifest(None, None, &wrong).await;
    assert_eq!((status, location), (422, None));
    assert_eq!(fake.created_apps().len(), 1);
    assert!(
        fake.violations()
            .iter()
            .any(|v| v.contains("\"webhook_url\" is not allowed")),
        "{:?}",
        fake.violations()
    );
}
