//! The App's credentials and JWT: key formats, refusals that name what is wrong, the JWT GitHub accepts, and
//! the recovery from a clock that disagrees with GitHub's.

use std::time::Duration;

use booty_github::{AppCredentials, AppId, Credentials, ErrorKind, GitHub, KeyError};
use booty_testkit::github::{APP_ID, CLIENT_ID, Caller, Fault};
use booty_testkit::keys::{generate, openssl};

use crate::support::{INSTALLATION, config, fake, github, hello};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jwt_is_accepted_with_the_app_id_or_the_client_id_and_either_key_format() {
    let fake = fake().await;
    let key = fake.app_key();
    for (id, pem) in [
        (AppId::Id(APP_ID), &key.pkcs1_pem),
        (CLIENT_ID.parse().unwrap(), &key.pkcs8_pem),
    ] {
        let app = AppCredentials::from_pem(id, pem.as_bytes()).unwrap();
        assert_eq!(app.key_bits(), 2048);
        let github = GitHub::new(Credentials::App(app), config(&fake)).unwrap();
        assert_eq!(
            github.installation_for_repository(&hello()).await.unwrap(),
            INSTALLATION
        );
    }
    let seen = fake.requests_for("apps/get-repo-installation");
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|seen| seen.caller == Caller::App && seen.status == 200)
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_from_another_key_or_for_another_app_is_refused() {
    let fake = fake().await;
    let stranger = generate(2048);
    let wrong_key =
        AppCredentials::from_pem(AppId::Id(APP_ID), stranger.pkcs1_pem.as_bytes()).unwrap();
    let wrong_app =
        AppCredentials::from_pem(AppId::Id(APP_ID + 1), fake.app_key().pkcs1_pem.as_bytes())
            .unwrap();
    for (app, message) in [
        (wrong_key, "A JSON web token could not be decoded"),
        (wrong_app, "Integration not found"),
    ] {
        let github = GitHub::new(Credentials::App(app), config(&fake)).unwrap();
        let err = github
            .installation_for_repository(&hello())
            .await
            .unwrap_err();
        match err.kind() {
            ErrorKind::Unauthorized { message: got } => assert_eq!(got, message),
            other => panic!("{other:?}"),
        }
        assert_eq!(err.status(), Some(401));
        assert!(!err.is_retryable());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_behind_or_ahead_of_githubs_is_corrected_once_from_its_date_header() {
    // GitHub an hour ahead: our `exp` is in its past. An hour behind: our `iat` is in its future.
    for skew in [3600, -3600] {
        let fake = fake().await;
        fake.set_skew(skew);
        let github = github(&fake);
        assert_eq!(
            github.installation_for_repository(&hello()).await.unwrap(),
            INSTALLATION
        );
        let seen = fake.requests_for("apps/get-repo-installation");
        assert_eq!(
            seen.iter().map(|seen| seen.status).collect::<Vec<_>>(),
            [401, 200],
            "skew {skew}"
        );
        // The offset is kept: the next JWT is right the first time, and so is the token it mints.
        let token = github.token_for(INSTALLATION, &hello()).await.unwrap();
        assert_eq!(
            fake.requests_for("apps/create-installation-access-token")
                .len(),
            1
        );
        assert!(fake.requests_for("apps/create-installation-access-token")[0].status == 201);
        // The token's lifetime is GitHub's hour, whatever our clock says: reused 54 minutes on.
        fake.clock().advance(Duration::from_mins(54));
        let again = github.token_for(INSTALLATION, &hello()).await.unwrap();
        assert_eq!(again.expose(), token.expose(), "skew {skew}");
        assert_eq!(fake.mints().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jwt_refused_again_after_the_correction_is_final() {
    let fake = fake().await;
    let expired = "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires";
    fake.inject(
        "apps/get-repo-installation",
        Fault::Refuse {
            status: 401,
            message: expired.to_owned(),
        },
        2,
    );
    let err = github(&fake)
        .installation_for_repository(&hello())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Unauthorized { message } if message == expired),
        "{err}"
    );
    // One correction, one retry, no loop.
    assert_eq!(fake.requests_for("apps/get-repo-installation").len(), 2);
}

#[test]
fn keys_that_are_not_pem_rsa_keys_are_refused_saying_what_they_are() {
    let ec_sec1 = openssl(
        &["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
        None,
    );
    let ec_pkcs8 = openssl(&["pkcs8", "-topk8", "-nocrypt"], Some(&ec_sec1));
    let small = generate(1024);
    let public = openssl(&["rsa", "-pubout"], Some(small.pkcs8_pem.as_bytes()));
    let cases: [(&[u8], &str); 5] = [
        (
            &ec_sec1,
            "is a `EC PRIVATE KEY` PEM section, not an RSA private key",
        ),
        (
            &ec_pkcs8,
            "ring refuses the github app private key (PKCS#8): WrongAlgorithm",
        ),
        (
            small.pkcs1_pem.as_bytes(),
            "ring refuses the github app private key (PKCS#1): TooSmall",
        ),
        (&public, "is a `PUBLIC KEY` PEM section"),
        (b"ghp_not_a_key", "is not PEM"),
    ];
    for (pem, expected) in cases {
        let err = AppCredentials::from_pem(AppId::Id(1), pem).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(shown.contains(expected), "{expected:?} not in {shown}");
        // No line of the key's body is ever echoed.
        let text = String::from_utf8_lossy(pem);
        for line in text
            .lines()
            .filter(|line| line.len() > 20 && !line.starts_with("-----"))
        {
            assert!(!shown.contains(line), "the error shows the key: {shown}");
        }
    }
    let missing = AppCredentials::from_pem_file(AppId::Id(1), "/nonexistent/app.pem").unwrap_err();
    assert!(matches!(missing, KeyError::Read { .. }));
    assert!(
        missing
            .to_string()
            .contains("reading the github app private key /nonexistent/app.pem"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_loads_like_the_bytes_and_app_calls_need_app_credentials() {
    let fake = fake().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.pem");
    std::fs::write(&path, &fake.app_key().pkcs1_pem).unwrap();
    let app = AppCredentials::from_pem_file(CLIENT_ID.parse().unwrap(), &path).unwrap();
    assert_eq!(app.id(), &AppId::ClientId(CLIENT_ID.to_owned()));

    fake.set_pat("ghp_testkit_pat");
    let token_client = GitHub::new(
        Credentials::Token(booty_github::Token::new("ghp_testkit_pat")),
        config(&fake),
    )
    .unwrap();
    let err = token_client
        .app()
        .list_hook_deliveries(None)
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Credentials { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "github: GET /app/hook/deliveries: this call needs github app credentials, and the client has a token"
    );
    assert!(fake.requests_for("apps/list-webhook-deliveries").is_empty());
}
