//! No secret (the key, a JWT, a token) in any `Debug` output, error, log line or URL.

use std::time::SystemTime;

use booty_github::{Credentials, Error, GitHub, Token};
use booty_testkit::github::Fault;

use crate::support::{INSTALLATION, app, config, fake, github, hello, logged};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_shows_anywhere() {
    let fake = fake().await;
    let app = app(&fake);
    let jwt = app.jwt(SystemTime::now()).unwrap();
    let github = github(&fake);
    let repo = github.repository(hello(), Some(INSTALLATION));
    let token = github.token_for(INSTALLATION, &hello()).await.unwrap();

    // Errors of every path that handles a secret: a refused token, a refused JWT, a failed mint.
    let mut errors: Vec<Error> = Vec::new();
    // Past the replication window, so the 401 is believed.
    fake.clock().advance(std::time::Duration::from_secs(10));
    fake.inject("issues/create-comment", Fault::Status(401), 1);
    errors.push(repo.create_issue_comment(1, "x").await.unwrap_err());
    fake.inject(
        "apps/get-repo-installation",
        Fault::Refuse {
            status: 401,
            message: "Bad credentials".into(),
        },
        1,
    );
    errors.push(
        github
            .installation_for_repository(&hello())
            .await
            .unwrap_err(),
    );
    fake.inject(
        "apps/create-installation-access-token",
        Fault::Status(422),
        1,
    );
    errors.push(
        github
            .token_for(INSTALLATION, &"octo/other".parse().unwrap())
            .await
            .unwrap_err(),
    );
    let pat = Token::new("ghp_personal_secret_value");
    let pat_client = GitHub::new(Credentials::Token(pat.clone()), config(&fake)).unwrap();
    errors.push(
        pat_client
            .repository(hello(), None)
            .list_issue_comments(1, None)
            .await
            .unwrap_err(),
    );

    let mut shown = vec![
        format!("{token:?}"),
        format!("{jwt:?}"),
        format!("{app:?}"),
        format!("{:?}", Credentials::App(app.clone())),
        format!("{:?}", Credentials::Token(pat.clone())),
        format!("{github:?}"),
        format!("{pat_client:?}"),
        format!("{repo:?}"),
        format!("{:?}", config(&fake)),
    ];
    for err in &errors {
        shown.push(format!("{err} {err:?}"));
        let mut source = std::error::Error::source(err);
        while let Some(cause) = source {
            shown.push(cause.to_string());
            source = cause.source();
        }
    }
    shown.push(logged());
    shown.extend(fake.requests().into_iter().map(|seen| seen.target));

    let mut secrets: Vec<String> = fake.mints().into_iter().map(|mint| mint.token).collect();
    secrets.push(jwt.expose().to_owned());
    secrets.push(pat.expose().to_owned());
    // Every line of the key's body, and its signature part of a JWT.
    secrets.extend(
        fake.app_key()
            .pkcs1_pem
            .lines()
            .chain(fake.app_key().pkcs8_pem.lines())
            .filter(|line| !line.starts_with("-----"))
            .map(str::to_owned),
    );
    secrets.push(jwt.expose().rsplit('.').next().unwrap().to_owned());
    assert!(secrets.len() > 20);
    for text in &shown {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "a secret shows in: {text}");
        }
    }
    // The Debug forms still say what they are.
    assert!(
        shown[0].starts_with("Token(<redacted>, expires 20"),
        "{}",
        shown[0]
    );
    assert_eq!(shown[1], "Jwt(<redacted>)");
    assert!(
        shown[2].contains("AppCredentials { id: Id(4242), key: <redacted> }"),
        "{}",
        shown[2]
    );
}
