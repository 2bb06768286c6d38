//! `cargo bench -p booty-github`: what every authenticated call pays before it reaches the network.
//!
//! - `token_for_cached`: [`GitHub::token_for`] when the cache holds a fresh token for the key (the common
//!   case: one mint an hour per repository), against booty-testkit's fake GitHub, which minted it once.
//! - `jwt_sign_rs256`: [`AppCredentials::jwt`], the RS256 signature of a 2048-bit key that every App call
//!   (minting, installation lookups, the App's deliveries) signs afresh.

use std::hint::black_box;
use std::time::SystemTime;

use booty_github::{
    AppCredentials, AppId, Config, Credentials, GitHub, InstallationId, Repository,
};
use booty_testkit::github::{APP_ID, FakeGitHub};
use criterion::{Criterion, criterion_group, criterion_main};

fn tokens(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let fake = runtime.block_on(FakeGitHub::start());
    fake.add_installation(
        7,
        "octo",
        &[
            ("contents", "write"),
            ("issues", "write"),
            ("pull_requests", "write"),
        ],
    );
    fake.add_repository("octo/hello", Some(7));
    let app = AppCredentials::from_pem(AppId::Id(APP_ID), fake.app_key().pkcs1_pem.as_bytes())
        .expect("the test key loads");
    let mut config = Config::default();
    config.api_url = fake.api_url();
    let github = GitHub::new(Credentials::App(app.clone()), config).expect("a client");
    let repository: Repository = "octo/hello".parse().expect("a repository");
    let first = runtime
        .block_on(github.token_for(InstallationId(7), &repository))
        .expect("a token");

    c.bench_function("token_for_cached", |b| {
        b.iter(|| {
            let token = runtime
                .block_on(github.token_for(InstallationId(7), black_box(&repository)))
                .expect("the cached token");
            debug_assert_eq!(token.expose(), first.expose());
            token
        });
    });
    assert_eq!(
        fake.mints().len(),
        1,
        "every lookup was served from the cache"
    );

    c.bench_function("jwt_sign_rs256", |b| {
        b.iter(|| app.jwt(black_box(SystemTime::now())).expect("a signature"));
    });
}

criterion_group!(benches, tokens);
criterion_main!(benches);
