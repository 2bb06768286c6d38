//! A fake GitHub on loopback, built from GitHub's OpenAPI description: the REST operations booty calls and
//! git smart HTTP, with GitHub's authentication rules and failures on demand.
//!
//! [`FakeGitHub::start`] serves, on `127.0.0.1`, the operations vendored by `cargo xtask fixtures` (see
//! `openapi.rs`). Every request is routed by the description's path templates, its query parameters and
//! JSON body are checked against the operation's schemas (a wrong field is a 422 and a recorded
//! [`FakeGitHub::violations`] entry), and every successful answer is built from the description's example
//! and checked to have the example's shape. The App's JWT is verified (RS256 against the test key, `iss`,
//! the `iat`/`exp` window, on the fake's clock), installation tokens are minted narrowed to the requested
//! repositories and permissions, expire, and are enforced (404 on another repository, 403 naming the missing
//! permission), and the same tokens (or the configured personal access token) authorize clones and pushes
//! through `git http-backend`.
//!
//! The App manifest flow is played too (`manifest.rs`): a form posted to `/settings/apps/new` (or an
//! organization's) is checked against GitHub's documented manifest parameters, makes an App with a freshly
//! generated key ([`FakeGitHub::created_apps`]) and redirects with a one-time code, which
//! `POST /app-manifests/{code}/conversions` exchanges once within the hour; the made App's JWTs are then
//! accepted for the installations [`FakeGitHub::add_installation_of`] gives it.

mod git;
mod jwt;
mod manifest;
mod openapi;
mod rest;
mod schema;
mod server;
mod time;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

use crate::clock::ManualClock;
use crate::keys::{TestKey, test_key};

pub use openapi::Flavor;
pub use time::rfc3339;

/// The test App's numeric id.
pub const APP_ID: u64 = 4242;
/// The test App's client id.
pub const CLIENT_ID: &str = "Iv23liBootyTestkit";
/// The test App's slug (its bot user is `booty-test[bot]`).
pub const APP_SLUG: &str = "booty-test";

/// A fault injected into the next matching requests ([`FakeGitHub::inject`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this status (say 502) without doing anything.
    Status(u16),
    /// Answer this status with this message (GitHub's `{"message": ...}`) without doing anything.
    Refuse {
        /// The status.
        status: u16,
        /// The message.
        message: String,
    },
    /// Do the work (it lands: a comment is made), then answer this status instead.
    StatusAfterApplying(u16),
    /// Answer only after this much real time (for clients' timeouts).
    Slow(Duration),
    /// A secondary rate limit: 429 with `Retry-After: N`, or, without, 403 with GitHub's message. Every
    /// request is refused the same way for `N` seconds (60 without) of the fake's clock.
    SecondaryLimit {
        /// The `Retry-After` seconds, if sent.
        retry_after: Option<u64>,
    },
    /// The primary limit spent: 403 with `x-ratelimit-remaining: 0` and `x-ratelimit-reset` this far
    /// ahead; every request is refused the same way until then.
    PrimaryLimit {
        /// How long until the reset, on the fake's clock.
        reset_in: Duration,
    },
}

/// How a request the fake saw was authorized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No credentials.
    Anonymous,
    /// Credentials the fake refused.
    Refused,
    /// The App's JWT.
    App,
    /// The personal access token.
    Pat,
    /// The installation token of [`FakeGitHub::mints`]`[n]`.
    Installation(usize),
}

/// A request the fake saw.
#[derive(Clone, Debug)]
pub struct Seen {
    /// The operation id (`issues/create-comment`), `git-upload-pack` / `git-receive-pack`, or `unknown`.
    pub operation: String,
    /// The method.
    pub method: String,
    /// Path and query.
    pub target: String,
    /// The status answered.
    pub status: u16,
    /// How it was authorized.
    pub caller: Caller,
    /// The `User-Agent` it carried.
    pub user_agent: Option<String>,
    /// Its JSON body, if it had one.
    pub body: Option<Value>,
}

/// An installation token the fake minted.
#[derive(Clone, Debug)]
pub struct Mint {
    /// The installation.
    pub installation: u64,
    /// The repositories it is narrowed to (`None`: all of the installation's).
    pub repositories: Option<Vec<String>>,
    /// What it may do.
    pub permissions: BTreeMap<String, String>,
    /// The token.
    pub token: String,
    /// When it was minted, and when it expires (the fake's clock).
    pub issued_at: SystemTime,
    /// When it expires.
    pub expires_at: SystemTime,
}

/// An App made through the manifest flow ([`FakeGitHub::created_apps`]): what the form carried, and what
/// the conversion handed out.
#[derive(Clone, Debug)]
pub struct CreatedApp {
    /// Its numeric id.
    pub id: u64,
    /// Its client id.
    pub client_id: String,
    /// Its slug (from its name).
    pub slug: String,
    /// The account that owns it: the organization of `/organizations/{org}/settings/apps/new`, or the
    /// signed-in user (`octocat`).
    pub owner: String,
    /// The manifest as posted (checked against GitHub's documented manifest fields).
    pub manifest: Value,
    /// The `state` the form's URL carried, handed back on the redirect.
    pub state: Option<String>,
    /// The one-time code the redirect carried.
    pub code: String,
    /// When the code was issued (the fake's clock); it expires an hour later.
    pub code_issued_at: SystemTime,
    /// Whether the code was exchanged (`POST /app-manifests/{code}/conversions`); it works once.
    pub converted: bool,
    /// The App's private key, PKCS#1 PEM, as the conversion hands it out.
    pub pem: String,
    /// The webhook secret GitHub generated (none without `hook_attributes`).
    pub webhook_secret: Option<String>,
    /// The OAuth client secret.
    pub client_secret: String,
}

/// Which webhook a delivery belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Hook {
    /// The App's webhook.
    App,
    /// A repository's webhook: `owner/name` and the hook id.
    Repository(String, u64),
    /// An organization's webhook: its login and the hook id.
    Organization(String, u64),
}

/// A delivery to seed ([`FakeGitHub::add_delivery`]).
#[derive(Clone, Debug)]
pub struct DeliverySeed {
    /// The event id (`X-GitHub-Delivery`).
    pub guid: String,
    /// The event name.
    pub event: String,
    /// The action.
    pub action: Option<String>,
    /// The receiver's status code (200 is `OK`; anything else failed).
    pub status_code: u16,
    /// The payload delivered.
    pub payload: Value,
}

pub(crate) struct Installation {
    /// The App installed.
    pub(crate) app_id: u64,
    pub(crate) account: String,
    pub(crate) permissions: BTreeMap<String, String>,
}

pub(crate) struct Repo {
    pub(crate) id: u64,
    pub(crate) owner: String,
    pub(crate) name: String,
    pub(crate) installation: Option<u64>,
    pub(crate) path: PathBuf,
    /// (issue number, comment as answered).
    pub(crate) comments: Vec<(u64, Value)>,
    pub(crate) pulls: Vec<Value>,
    /// (issue or comment, content, login) of each reaction.
    pub(crate) reactions: Vec<(String, String, String, Value)>,
    pub(crate) next_number: u64,
}

pub(crate) struct State {
    pub(crate) skew: i64,
    pub(crate) pat: Option<String>,
    pub(crate) installations: BTreeMap<u64, Installation>,
    /// Apps made through the manifest flow, with their JWT identities.
    pub(crate) created: Vec<(CreatedApp, jwt::AppIdentity)>,
    pub(crate) repos: BTreeMap<String, Repo>,
    /// Each token's index in `mints`.
    pub(crate) tokens: HashMap<String, usize>,
    pub(crate) mints: Vec<Mint>,
    /// Newest first, per hook: deliveries as `GET .../deliveries/{id}` answers them.
    pub(crate) deliveries: BTreeMap<Hook, Vec<Value>>,
    pub(crate) faults: Vec<(String, Fault, usize)>,
    pub(crate) primary_until: Option<SystemTime>,
    pub(crate) secondary_until: Option<(SystemTime, bool)>,
    pub(crate) replication_delay: Duration,
    pub(crate) requests: Vec<Seen>,
    pub(crate) violations: Vec<String>,
    pub(crate) next_id: u64,
    pub(crate) remaining: u64,
}

pub(crate) struct Shared {
    pub(crate) flavor: Flavor,
    pub(crate) clock: ManualClock,
    pub(crate) app: jwt::AppIdentity,
    pub(crate) root: PathBuf,
    pub(crate) base_url: String,
    pub(crate) state: Mutex<State>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("the fake's state lock")
    }

    /// The fake's time: its clock, plus the skew a test set.
    pub(crate) fn now(&self, state: &State) -> SystemTime {
        let skew = Duration::from_secs(state.skew.unsigned_abs());
        if state.skew >= 0 {
            self.clock.now() + skew
        } else {
            self.clock.now() - skew
        }
    }
}

/// The fake GitHub. Dropping it stops the server and removes its repositories.
pub struct FakeGitHub {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: tokio::task::JoinHandle<()>,
    _repositories: TempDir,
}

impl FakeGitHub {
    /// A fake github.com on `127.0.0.1`, on a clock that starts at the real time and moves only when told.
    /// Needs a tokio runtime.
    pub async fn start() -> Self {
        Self::start_with(Flavor::DotCom, ManualClock::starting_now()).await
    }

    /// A fake of `flavor` on `clock`.
    ///
    /// # Panics
    /// When it cannot bind a loopback port or make its temporary directory.
    pub async fn start_with(flavor: Flavor, clock: ManualClock) -> Self {
        let repositories = tempfile::Builder::new()
            .prefix("booty-fake-github-")
            .tempdir()
            .expect("a temporary directory for repositories");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let key: &TestKey = test_key();
        let shared = Arc::new(Shared {
            flavor,
            clock,
            app: jwt::AppIdentity {
                id: APP_ID,
                client_id: CLIENT_ID.to_owned(),
                public_key: key.public_der.clone(),
            },
            root: repositories.path().to_owned(),
            base_url: format!("http://{addr}"),
            state: Mutex::new(State {
                skew: 0,
                pat: None,
                installations: BTreeMap::new(),
                created: Vec::new(),
                repos: BTreeMap::new(),
                tokens: HashMap::new(),
                mints: Vec::new(),
                deliveries: BTreeMap::new(),
                faults: Vec::new(),
                primary_until: None,
                secondary_until: None,
                replication_delay: Duration::ZERO,
                requests: Vec::new(),
                violations: Vec::new(),
                next_id: 1000,
                remaining: 5000,
            }),
        });
        let server = tokio::spawn(server::run(listener, shared.clone()));
        Self {
            shared,
            addr,
            server,
            _repositories: repositories,
        }
    }

    /// The REST API's base URL: `http://127.0.0.1:PORT`, with `/api/v3` for Enterprise Server.
    pub fn api_url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.flavor.prefix())
    }

    /// The web host's URL, `http://127.0.0.1:PORT` (github.com's `https://github.com`, or a GitHub Enterprise
    /// Server's host): where `settings/apps/new` takes a manifest and repositories are cloned from.
    pub fn web_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The clone URL of `full_name` (`http://127.0.0.1:PORT/owner/name.git`).
    pub fn git_url(&self, full_name: &str) -> String {
        format!("http://{}/{full_name}.git", self.addr)
    }

    /// The fake's clock.
    pub fn clock(&self) -> &ManualClock {
        &self.shared.clock
    }

    /// The test App's private key (PKCS#1 and PKCS#8 PEM).
    pub fn app_key(&self) -> &'static TestKey {
        test_key()
    }

    /// Accepts `token` as a personal access token with access to everything.
    pub fn set_pat(&self, token: &str) {
        self.shared.lock().pat = Some(token.to_owned());
    }

    /// Installs the test App on `account` with `permissions` (`[("contents", "write"), ...]`).
    pub fn add_installation(&self, id: u64, account: &str, permissions: &[(&str, &str)]) {
        self.add_installation_of(APP_ID, id, account, permissions);
    }

    /// Installs App `app_id` (the test App's [`APP_ID`], or one of [`FakeGitHub::created_apps`]) on
    /// `account` as installation `id`: its JWT then mints tokens for it, and no other App's does.
    pub fn add_installation_of(
        &self,
        app_id: u64,
        id: u64,
        account: &str,
        permissions: &[(&str, &str)],
    ) {
        self.shared.lock().installations.insert(
            id,
            Installation {
                app_id,
                account: account.to_owned(),
                permissions: permissions
                    .iter()
                    .map(|(name, level)| ((*name).to_owned(), (*level).to_owned()))
                    .collect(),
            },
        );
    }

    /// A repository `owner/name` (a bare git repository with one commit on `main`), in `installation`'s
    /// reach if given. Returns its id.
    ///
    /// # Panics
    /// When `full_name` is not `owner/name` or git fails.
    pub fn add_repository(&self, full_name: &str, installation: Option<u64>) -> u64 {
        let (owner, name) = full_name.split_once('/').expect("owner/name");
        let path = self.shared.root.join(format!("{full_name}.git"));
        git::create_bare(&path, full_name);
        let mut state = self.shared.lock();
        state.next_id += 1;
        let id = state.next_id;
        state.repos.insert(
            full_name.to_owned(),
            Repo {
                id,
                owner: owner.to_owned(),
                name: name.to_owned(),
                installation,
                path,
                comments: Vec::new(),
                pulls: Vec::new(),
                reactions: Vec::new(),
                next_number: 100,
            },
        );
        id
    }

    /// The commit `branch` of `full_name` points at, if it exists.
    pub fn branch_head(&self, full_name: &str, branch: &str) -> Option<String> {
        git::branch_head(&self.shared.root.join(format!("{full_name}.git")), branch)
    }

    /// Adds a delivery to `hook`'s list (newest first), built from the description's `hook-delivery`
    /// example. Returns its id.
    pub fn add_delivery(&self, hook: &Hook, seed: &DeliverySeed) -> u64 {
        rest::add_delivery(&self.shared, hook, seed, false)
    }

    /// [`FakeGitHub::add_delivery`] for a delivery sent at `sent_at` (in the past, say), put where GitHub
    /// would list it: among the others by time, newest first.
    pub fn add_delivery_sent_at(
        &self,
        hook: &Hook,
        seed: &DeliverySeed,
        sent_at: SystemTime,
    ) -> u64 {
        rest::add_delivery_at(&self.shared, hook, seed, sent_at)
    }

    /// Makes the next `times` requests for `operation` (an operation id, or `*` for any REST request) meet
    /// `fault`.
    ///
    /// # Panics
    /// When `times` is 0.
    pub fn inject(&self, operation: &str, fault: Fault, times: usize) {
        assert!(times > 0, "a fault injected zero times");
        self.shared
            .lock()
            .faults
            .push((operation.to_owned(), fault, times));
    }

    /// Sets the fake's clock `seconds` ahead of the shared clock (negative: behind), as if the client's
    /// clock were off by that much.
    pub fn set_skew(&self, seconds: i64) {
        self.shared.lock().skew = seconds;
    }

    /// New installation tokens are refused (401) for this long after minting, as GitHub's replication
    /// delay does.
    pub fn set_replication_delay(&self, delay: Duration) {
        self.shared.lock().replication_delay = delay;
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.lock().requests.clone()
    }

    /// The requests for `operation` so far.
    pub fn requests_for(&self, operation: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|seen| seen.operation == operation)
            .collect()
    }

    /// The Apps made through the manifest flow (`POST /settings/apps/new` with a `manifest`), oldest
    /// first.
    pub fn created_apps(&self) -> Vec<CreatedApp> {
        self.shared
            .lock()
            .created
            .iter()
            .map(|(app, _)| app.clone())
            .collect()
    }

    /// Posts `manifest` as a browser's form would to `/settings/apps/new` (or `org`'s), with `state` in the
    /// query, over HTTP: the status, and the `Location` GitHub redirects to (`redirect_url?code=...`).
    pub async fn post_manifest(
        &self,
        org: Option<&str>,
        state: Option<&str>,
        manifest: &Value,
    ) -> (u16, Option<String>) {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut target = match org {
            Some(org) => format!("/organizations/{org}/settings/apps/new"),
            None => "/settings/apps/new".to_owned(),
        };
        if let Some(state) = state {
            target.push_str("?state=");
            target.push_str(state);
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("manifest", &manifest.to_string())
            .finish();
        let request = format!(
            "POST {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        let mut stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connecting to the fake");
        stream
            .write_all(request.as_bytes())
            .await
            .expect("sending the form");
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .await
            .expect("reading the answer");
        let status = answer
            .get(9..12)
            .and_then(|status| status.parse().ok())
            .expect("an HTTP status line");
        let head = answer.split("\r\n\r\n").next().unwrap_or_default();
        let location = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("location")
                .then(|| value.trim().to_owned())
        });
        (status, location)
    }

    /// Every installation token minted so far.
    pub fn mints(&self) -> Vec<Mint> {
        self.shared.lock().mints.clone()
    }

    /// The comments on `full_name`'s issue `issue`, as GitHub answers them.
    pub fn comments(&self, full_name: &str, issue: u64) -> Vec<Value> {
        self.shared
            .lock()
            .repos
            .get(full_name)
            .map(|repo| {
                repo.comments
                    .iter()
                    .filter(|(number, _)| *number == issue)
                    .map(|(_, comment)| comment.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The pull requests of `full_name`, as GitHub answers them.
    pub fn pulls(&self, full_name: &str) -> Vec<Value> {
        self.shared
            .lock()
            .repos
            .get(full_name)
            .map(|repo| repo.pulls.clone())
            .unwrap_or_default()
    }

    /// The deliveries of `hook`, newest first.
    pub fn deliveries(&self, hook: &Hook) -> Vec<Value> {
        self.shared
            .lock()
            .deliveries
            .get(hook)
            .cloned()
            .unwrap_or_default()
    }

    /// What booty sent that GitHub's description does not allow, and answers of the fake that do not have
    /// the shape of the description's examples. A test that checks nothing else should check this is empty.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    /// One raw HTTP/1.1 exchange: status and body.
    async fn exchange(
        fake: &FakeGitHub,
        method: &str,
        target: &str,
        headers: &str,
        body: &str,
    ) -> (u16, String) {
        let mut stream = tokio::net::TcpStream::connect(fake.addr).await.unwrap();
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            fake.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        let status = answer[9..12].parse().unwrap();
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        (status, body)
    }

    const GOOD: &str = "Authorization: Bearer ghp_pat\r\nAccept: application/vnd.github+json\r\n\
                        X-GitHub-Api-Version: 2022-11-28\r\nUser-Agent: test\r\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_the_description_does_not_allow_is_refused_and_recorded() {
        let fake = FakeGitHub::start().await;
        fake.set_pat("ghp_pat");
        fake.add_repository("octo/hello", None);
        let cases = [
            (
                "POST",
                "/repos/octo/hello/issues/1/reactions",
                GOOD,
                r#"{"content":"thumbs"}"#,
                422,
                "body.content: \"thumbs\" is not one of",
            ),
            (
                "POST",
                "/repos/octo/hello/issues/1/comments",
                GOOD,
                r#"{"body":5}"#,
                422,
                "body.body: 5 is not of type string",
            ),
            (
                "POST",
                "/repos/octo/hello/issues/1/comments",
                GOOD,
                "{}",
                422,
                "required property \"body\" is missing",
            ),
            (
                "GET",
                "/repos/octo/hello/pulls?state=merged",
                GOOD,
                "",
                422,
                "query state: \"merged\" is not one of",
            ),
            (
                "GET",
                "/repos/octo/hello/pulls?sort_by=x",
                GOOD,
                "",
                422,
                "query parameter \"sort_by\" is not a parameter of pulls/list",
            ),
            (
                "GET",
                "/repos/octo/hello/issues/seven/comments",
                GOOD,
                "",
                404,
                "",
            ),
            (
                "DELETE",
                "/repos/octo/hello/pulls",
                GOOD,
                "",
                404,
                "GitHub's description has no DELETE /repos/octo/hello/pulls",
            ),
            (
                "GET",
                "/repos/octo/hello/pulls",
                "Authorization: Bearer ghp_pat\r\nAccept: application/vnd.github+json\r\nX-GitHub-Api-Version: 2022-11-28\r\n",
                "",
                403,
                "User-Agent",
            ),
            (
                "GET",
                "/repos/octo/hello/pulls",
                "Authorization: Bearer ghp_pat\r\nAccept: application/json\r\nX-GitHub-Api-Version: 2022-11-28\r\nUser-Agent: t\r\n",
                "",
                400,
                "Accept",
            ),
        ];
        for (method, target, headers, body, status, violation) in cases {
            let (got, answer) = exchange(&fake, method, target, headers, body).await;
            assert_eq!(got, status, "{method} {target}: {answer}");
            let violations = fake.violations();
            assert!(
                violations.iter().any(|found| found.contains(violation)),
                "{method} {target}: {violation:?} not in {violations:#?}"
            );
        }
        // And what it allows goes through.
        let (status, answer) = exchange(
            &fake,
            "POST",
            "/repos/octo/hello/issues/1/comments",
            GOOD,
            r#"{"body":"ok"}"#,
        )
        .await;
        assert_eq!(status, 201, "{answer}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokens_are_refused_once_expired_and_off_their_repositories() {
        let fake = FakeGitHub::start().await;
        fake.add_installation(1, "octo", &[("issues", "read")]);
        fake.add_repository("octo/a", Some(1));
        fake.add_repository("octo/b", Some(1));
        let token = {
            let mut state = fake.shared.lock();
            let now = fake.shared.now(&state);
            state.mints.push(Mint {
                installation: 1,
                repositories: Some(vec!["a".to_owned()]),
                permissions: [("issues".to_owned(), "read".to_owned())].into(),
                token: "ghs_manual".to_owned(),
                issued_at: now,
                expires_at: now + Duration::from_hours(1),
            });
            state.tokens.insert("ghs_manual".to_owned(), 0);
            "ghs_manual"
        };
        let headers = format!(
            "Authorization: token {token}\r\nAccept: application/vnd.github+json\r\nX-GitHub-Api-Version: 2022-11-28\r\nUser-Agent: t\r\n"
        );
        let list = |repo: &str| format!("/repos/octo/{repo}/issues/1/comments");
        assert_eq!(
            exchange(&fake, "GET", &list("a"), &headers, "").await.0,
            200
        );
        assert_eq!(
            exchange(&fake, "GET", &list("b"), &headers, "").await.0,
            404
        );
        let (status, _) = exchange(&fake, "POST", &list("a"), &headers, r#"{"body":"x"}"#).await;
        assert_eq!(status, 403, "issues: read cannot comment");
        fake.clock().advance(Duration::from_hours(1));
        let (status, body) = exchange(&fake, "GET", &list("a"), &headers, "").await;
        assert_eq!((status, body.contains("Bad credentials")), (401, true));
        assert_eq!(fake.violations(), Vec::<String>::new());
    }
}
