//! What every test starts from: a fake GitHub with an installation and repositories, a client of the test
//! App on the fake's clock, git over the fake's smart HTTP, and a log that the secrets test reads.

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use booty_github::{
    AppCredentials, AppId, Config, Credentials, GitHub, InstallationId, Repository,
};
use booty_testkit::ManualClock;
use booty_testkit::github::{APP_ID, FakeGitHub, Flavor};

/// The installation every test uses, on the account `octo`.
pub(crate) const INSTALLATION: InstallationId = InstallationId(77);

/// The client's clock is the fake's: waits move it and are recorded instead of taking time.
#[derive(Clone)]
pub(crate) struct TestClock(pub(crate) ManualClock);

impl booty_github::Clock for TestClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }

    fn sleep(&self, duration: Duration) -> booty_github::Sleep {
        self.0.sleep(duration);
        Box::pin(tokio::task::yield_now())
    }
}

/// A fake with installation 77 on `octo` (contents, issues, pull requests, repository hooks: write;
/// metadata: read) holding `octo/hello` and `octo/other`, and `stranger/elsewhere` outside it.
pub(crate) async fn fake() -> FakeGitHub {
    fake_of(Flavor::DotCom).await
}

pub(crate) async fn fake_of(flavor: Flavor) -> FakeGitHub {
    logs();
    let fake = FakeGitHub::start_with(flavor, ManualClock::starting_now()).await;
    fake.add_installation(
        INSTALLATION.0,
        "octo",
        &[
            ("contents", "write"),
            ("issues", "write"),
            ("pull_requests", "write"),
            ("repository_hooks", "write"),
            ("organization_hooks", "write"),
            ("metadata", "read"),
        ],
    );
    fake.add_repository("octo/hello", Some(INSTALLATION.0));
    fake.add_repository("octo/other", Some(INSTALLATION.0));
    fake.add_repository("stranger/elsewhere", None);
    fake
}

/// The client's configuration for `fake`: its URL, its clock, short timeouts.
pub(crate) fn config(fake: &FakeGitHub) -> Config {
    let mut config = Config::default();
    config.api_url = fake.api_url();
    config.clock = Arc::new(TestClock(fake.clock().clone()));
    config.timeout = Duration::from_secs(5);
    config
}

/// The test App's credentials (PKCS#1 key, numeric id).
pub(crate) fn app(fake: &FakeGitHub) -> AppCredentials {
    AppCredentials::from_pem(AppId::Id(APP_ID), fake.app_key().pkcs1_pem.as_bytes()).unwrap()
}

/// A client of the test App on `fake`.
pub(crate) fn github(fake: &FakeGitHub) -> GitHub {
    GitHub::new(Credentials::App(app(fake)), config(fake)).unwrap()
}

pub(crate) fn hello() -> Repository {
    "octo/hello".parse().unwrap()
}

pub(crate) fn other() -> Repository {
    "octo/other".parse().unwrap()
}

/// Runs `git ARGS` in `dir` with `token` as the password of `x-access-token` (as an in-memory header),
/// off the runtime's threads; returns whether it succeeded and what it printed on stderr.
pub(crate) async fn git(dir: &std::path::Path, token: &str, args: &[&str]) -> (bool, String) {
    let header = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("x-access-token:{token}"))
    );
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|arg| (*arg).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let output = Command::new("git")
            .arg("-c")
            .arg(format!("http.extraHeader={header}"))
            .args(&args)
            .current_dir(&dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_AUTHOR_NAME", "booty")
            .env("GIT_AUTHOR_EMAIL", "booty@booty.invalid")
            .env("GIT_COMMITTER_NAME", "booty")
            .env("GIT_COMMITTER_EMAIL", "booty@booty.invalid")
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

/// Every log line written so far by any test of this binary (at every level).
pub(crate) fn logged() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = Buffer(buffer.clone());
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        buffer
    })
}

#[derive(Clone)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
