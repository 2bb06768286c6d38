//! `booty app create` against the fake GitHub, driven as a browser would: the page's form posted to the
//! fake's `settings/apps/new`, GitHub's redirect followed back to the page, the code exchanged; then the
//! configuration it wrote is checked and served.

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use booty_testkit::github::{Caller, FakeGitHub, Fault};
use serde_json::{Value, json};

use crate::github::{Fake, trigger_for};
use crate::support::{Booty, DEADLINE, booty_bin, booty_in};

/// The webhook URL every test gives.
const WEBHOOK_URL: &str = "https://booty.example.com/webhooks/github";

/// The permissions booty's manifest asks for.
fn booty_permissions() -> Value {
    json!({"contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"})
}

/// A running `booty app create` against `fake`, writing into `output`.
pub(crate) struct Create {
    child: Child,
    /// The page's address, from the first line it printed.
    pub(crate) page: SocketAddr,
    stdout: Option<JoinHandle<String>>,
    first_line: String,
}

impl Create {
    pub(crate) fn start(fake: &FakeGitHub, output: &Path, name: &str, extra: &[&str]) -> Self {
        let mut command = Self::command(output, name);
        command
            .args(["--github-url", &fake.web_url()])
            .args(["--github-api-url", &fake.api_url()])
            .args(extra);
        Self::spawn(&mut command)
    }

    /// `booty app create` writing into `output`, without a GitHub host.
    fn command(output: &Path, name: &str) -> Command {
        let mut command = Command::new(booty_bin());
        command
            .args(["app", "create", "--webhook-url", WEBHOOK_URL])
            .args(["--name", name, "--no-browser", "--output"])
            .arg(output)
            .env_remove("RUST_LOG");
        command
    }

    fn spawn(command: &mut Command) -> Self {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first_line = String::new();
        stdout.read_line(&mut first_line).unwrap();
        let page = first_line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("no page address in {first_line:?}"))
            .parse()
            .unwrap();
        let stdout = std::thread::spawn(move || {
            let mut rest = String::new();
            stdout.read_to_string(&mut rest).unwrap();
            rest
        });
        Self {
            child,
            page,
            stdout: Some(stdout),
            first_line,
        }
    }

    /// Waits for the command to end: (exit code, everything it printed, its stderr).
    pub(crate) fn finish(mut self) -> (i32, String, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "booty app create did not end");
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let stdout = format!(
            "{}{}",
            self.first_line,
            self.stdout.take().unwrap().join().unwrap()
        );
        (status.code().unwrap(), stdout, stderr)
    }
}

impl Drop for Create {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange: (status, headers, body).
fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        write!(head, "{name}: {value}\r\n").unwrap();
    }
    write!(head, "Content-Length: {}\r\n\r\n", body.len()).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The value of the first `name="..."` attribute after `after` in `html`, unescaped.
fn attribute(html: &str, after: &str, name: &str) -> String {
    let from = html
        .find(after)
        .unwrap_or_else(|| panic!("{after} in {html}"));
    let start = html[from..].find(&format!("{name}=\"")).unwrap() + from + name.len() + 2;
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// What a browser does with the page: loads it, posts its form where its `action` says (the fake), and
/// gets GitHub's redirect. Returns the form's action, the manifest it carried, and where GitHub redirects.
fn post_the_form(page: SocketAddr) -> (String, Value, String) {
    let (status, _, html) = request(page, "GET", "/", &[], "");
    assert_eq!(status, 200, "{html}");
    let action = attribute(&html, "<form", "action");
    let manifest = attribute(&html, "name=\"manifest\"", "value");
    let url = url::Url::parse(&action).unwrap();
    let addr: SocketAddr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
        .parse()
        .unwrap();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("manifest", &manifest)
        .finish();
    let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let (status, headers, answer) = request(
        addr,
        "POST",
        &target,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        &body,
    );
    assert_eq!(status, 302, "{answer}");
    let location = headers
        .iter()
        .find(|(name, _)| name == "location")
        .map(|(_, value)| value.clone())
        .unwrap();
    (action, serde_json::from_str(&manifest).unwrap(), location)
}

/// The browser following GitHub's redirect back to the page: (status, page).
fn follow(location: &str) -> (u16, String) {
    let url = url::Url::parse(location).unwrap();
    let addr: SocketAddr = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
        .parse()
        .unwrap();
    let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    let (status, _, body) = request(addr, "GET", &target, &[], "");
    (status, body)
}

/// `name`'s value in `location`'s query.
fn query_value(location: &str, name: &str) -> String {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap()
}

/// The files in `dir`, by name, with their contents.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn app_create_writes_a_configuration_that_check_passes_and_serve_mints_tokens_with() {
    let fake = Fake::start();
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("app");
    let create = Create::start(github, &output, "booty e2e", &[]);

    let (action, manifest, location) = post_the_form(create.page);
    assert!(
        action.starts_with(&format!("{}/settings/apps/new?state=", github.web_url())),
        "{action}"
    );
    assert_eq!(manifest["name"], "booty e2e");
    assert_eq!(manifest["default_events"], json!(["issues"]));
    assert_eq!(manifest["default_permissions"], booty_permissions());
    assert_eq!(manifest["hook_attributes"]["url"], WEBHOOK_URL);
    assert_eq!(
        manifest["redirect_url"],
        format!("http://{}/callback", create.page)
    );
    let state = action.split_once("state=").unwrap().1.to_owned();
    assert_eq!(state.len(), 64, "{state}");
    assert_eq!(query_value(&location, "state"), state);

    let (status, page) = follow(&location);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("the GitHub App is ready"), "{page}");
    let (code, stdout, stderr) = create.finish();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let app = &github.created_apps()[0];
    assert!(app.converted);
    assert_eq!(app.manifest, manifest);

    // The key and the secrets, readable by the owner only; the configuration names them.
    let secret = app.webhook_secret.clone().unwrap();
    for (name, contents) in [
        ("github-app.private-key.pem", app.pem.clone()),
        ("github-app.webhook-secret", format!("{secret}\n")),
        (
            "github-app.client-secret",
            format!("{}\n", app.client_secret),
        ),
    ] {
        let path = output.join(name);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), contents, "{name}");
        assert_eq!(mode(&path), 0o600, "{name}");
        assert!(stdout.contains(&path.display().to_string()), "{stdout}");
    }
    let config = std::fs::read_to_string(output.join("booty.toml")).unwrap();
    assert!(
        config.contains(&format!("github_app_id = \"{}\"", app.client_id)),
        "{config}"
    );
    assert!(
        config.contains("repositories = [\"octocat/*\"]"),
        "{config}"
    );
    // What it printed: where to install the App, and no secret.
    let install = format!("{}/apps/booty-e2e/installations/new", github.web_url());
    assert!(stdout.contains(&install), "{stdout}");
    let key_line = app.pem.lines().nth(1).unwrap();
    for hidden in [key_line, &secret, &app.client_secret, &app.code] {
        assert!(
            !stdout.contains(hidden) && !stderr.contains(hidden),
            "{stdout}\n{stderr}"
        );
    }

    let (code, checked, stderr) = booty_in(&output, &["check", "--config", "booty.toml"], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        checked.contains("-bit RSA key; a JWT signed with it"),
        "{checked}"
    );
    assert!(
        checked.contains("webhook_secret = \"<redacted>\""),
        "{checked}"
    );

    // Installed on octocat/hello, the App's configuration serves a labelled issue there.
    github.add_installation_of(
        app.id,
        91,
        "octocat",
        &[
            ("contents", "write"),
            ("issues", "write"),
            ("pull_requests", "write"),
            ("metadata", "read"),
        ],
    );
    github.add_repository("octocat/hello", Some(91));
    let workspaces = dir.path().join("workspaces").display().to_string();
    let booty = Booty::start_file(
        &output,
        &output.join("booty.toml"),
        &[
            ("BOOTY_LISTEN", "127.0.0.1:0"),
            ("BOOTY_ADMIN_LISTEN", "127.0.0.1:0"),
            ("BOOTY_STORE", "memory"),
            ("BOOTY_WORKSPACE_ROOT", &workspaces),
        ],
    );
    let trigger = trigger_for(dir.path(), "octocat/hello", Some(91));
    let sent = booty.send_signed(&trigger, "issues", None, false, &secret);
    assert_eq!(sent.status, 202, "{:?}", sent.body);
    let job = booty.wait_for_final(sent.body["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    let mints = github.mints();
    assert_eq!(mints.len(), 1, "{mints:?}");
    assert_eq!(mints[0].installation, 91);
    assert_eq!(
        mints[0].repositories.as_deref(),
        Some(&["hello".to_owned()][..])
    );
    let minting = github.requests_for("apps/create-installation-access-token");
    assert!(
        minting
            .iter()
            .all(|seen| seen.caller == Caller::App && seen.status == 201),
        "{minting:?}"
    );
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    let (status, _) = booty.terminate();
    assert!(status.success());
}

#[test]
fn an_expired_or_used_code_a_wrong_state_or_no_answer_ends_with_a_clear_message_and_writes_nothing()
{
    let fake = Fake::start();
    let github = &fake.github;
    let expect_nothing_written = |dir: &Path| assert_eq!(files(dir), Vec::new());

    // Expired: the redirect followed more than an hour after GitHub issued the code.
    let expired = tempfile::tempdir().unwrap();
    let create = Create::start(github, expired.path(), "booty expired", &[]);
    let (_, _, location) = post_the_form(create.page);
    github.clock().advance(Duration::from_mins(61));
    let (status, page) = follow(&location);
    assert_eq!(status, 400, "{page}");
    let (code, stdout, stderr) = create.finish();
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("GitHub does not know the manifest code: it expired (a code lasts an hour) or was used already; nothing was written"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{}/settings/apps", github.web_url())),
        "{stderr}"
    );
    let code_value = query_value(&location, "code");
    assert!(!stderr.contains(&code_value) && !page.contains(&code_value));
    expect_nothing_written(expired.path());

    // Used: something exchanged the code before booty could.
    let used = tempfile::tempdir().unwrap();
    let create = Create::start(github, used.path(), "booty used", &[]);
    let (_, _, location) = post_the_form(create.page);
    let api: SocketAddr = github.web_url()["http://".len()..].parse().unwrap();
    let (status, _, _) = request(
        api,
        "POST",
        &format!(
            "/app-manifests/{}/conversions",
            query_value(&location, "code")
        ),
        &[
            ("Accept", "application/vnd.github+json"),
            ("X-GitHub-Api-Version", "2022-11-28"),
            ("User-Agent", "someone-else"),
        ],
        "",
    );
    assert_eq!(status, 201);
    let (status, _) = follow(&location);
    assert_eq!(status, 400);
    let (code, _, stderr) = create.finish();
    assert_eq!(code, 1);
    assert!(stderr.contains("or was used already"), "{stderr}");
    expect_nothing_written(used.path());

    // A wrong state: the code is not even exchanged.
    let forged = tempfile::tempdir().unwrap();
    let create = Create::start(github, forged.path(), "booty forged", &[]);
    let (_, _, location) = post_the_form(create.page);
    let state = query_value(&location, "state");
    let wrong = location.replace(&state, &"0".repeat(state.len()));
    let (status, page) = follow(&wrong);
    assert_eq!(status, 400);
    assert!(page.contains("state"), "{page}");
    let (code, _, stderr) = create.finish();
    assert_eq!(code, 1);
    assert!(
        stderr.contains("carried a `state` that is not the one this run's page sent (an old tab, or a page elsewhere): the code was not exchanged and nothing was written"),
        "{stderr}"
    );
    let apps = github.created_apps();
    assert!(
        !apps[2].converted,
        "the code of a forged redirect was exchanged"
    );
    expect_nothing_written(forged.path());
    // A second redirect is not taken either: the command has ended.
    assert!(TcpStream::connect(create_page_of(&location)).is_err());

    // No answer within the time limit.
    let waited = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let create = Create::start(
        github,
        waited.path(),
        "booty waited",
        &["--timeout-secs", "1"],
    );
    let (code, _, stderr) = create.finish();
    assert_eq!(code, 1);
    assert!(
        stderr.contains(
            "no redirect back from GitHub within 1 s (`--timeout-secs`): nothing was written"
        ),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    expect_nothing_written(waited.path());
    assert!(github.violations().is_empty(), "{:?}", github.violations());
}

/// The page's address a redirect goes back to.
fn create_page_of(location: &str) -> SocketAddr {
    let url = url::Url::parse(location).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap())
        .parse()
        .unwrap()
}

#[test]
fn an_existing_booty_toml_is_left_alone_and_an_existing_key_stops_the_command_before_it_starts() {
    let fake = Fake::start();
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    // A configuration naming a GitHub host (as for GitHub Enterprise Server), and nothing else booty needs.
    let mine = format!(
        "# mine\nstore = \"memory\"\ngithub_url = \"{}\"\ngithub_api_url = \"{}\"\n",
        github.web_url(),
        github.api_url()
    );
    std::fs::write(dir.path().join("booty.toml"), &mine).unwrap();

    // For an organization, on the configuration's host; the configuration goes beside booty.toml.
    let create = Create::spawn(
        Create::command(Path::new("."), "booty acme")
            .args(["--org", "acme"])
            .current_dir(dir.path()),
    );
    let (action, _, location) = post_the_form(create.page);
    assert!(
        action.starts_with(&format!(
            "{}/organizations/acme/settings/apps/new?state=",
            github.web_url()
        )),
        "{action}"
    );
    assert_eq!(follow(&location).0, 200);
    let (code, stdout, stderr) = create.finish();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("booty.toml")).unwrap(),
        mine
    );
    let fragment = dir.path().join("booty.github-app.toml");
    assert!(
        stdout.contains(&format!(
            "{} exists and was left as it is (`--force` overwrites it): the App's settings are in {}",
            dir.path().canonicalize().unwrap().join("booty.toml").display(),
            fragment.canonicalize().unwrap().display()
        )),
        "{stdout}"
    );
    let written = std::fs::read_to_string(&fragment).unwrap();
    assert!(written.contains("repositories = [\"acme/*\"]"), "{written}");
    assert!(
        written.contains(&format!("github_url = \"{}\"", github.web_url())),
        "{written}"
    );
    assert_eq!(github.created_apps()[0].owner, "acme");

    // Run again: the key is there, so nothing starts and nothing changes.
    let before = files(dir.path());
    let output = dir.path().display().to_string();
    let (code, stdout, stderr) = booty_in(
        dir.path(),
        &[
            "app",
            "create",
            "--webhook-url",
            WEBHOOK_URL,
            "--github-url",
            &github.web_url(),
            "--no-browser",
            "--output",
            &output,
        ],
        &[],
    );
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains("github-app.private-key.pem exists; `booty app create` does not overwrite a key or a secret (it may be another App's): move it away, choose another `--output`, or pass `--force`"),
        "{stderr}"
    );
    assert!(!stdout.contains("http://"), "the page was served: {stdout}");
    assert_eq!(files(dir.path()), before);
    assert_eq!(github.created_apps().len(), 1);

    // With --force, booty.toml and the key are replaced, and the key is the owner's alone again.
    let key = dir.path().join("github-app.private-key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let create = Create::start(github, dir.path(), "booty forced", &["--force"]);
    let (_, _, location) = post_the_form(create.page);
    assert_eq!(follow(&location).0, 200);
    let (code, stdout, stderr) = create.finish();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let second = &github.created_apps()[1];
    assert_eq!(std::fs::read_to_string(&key).unwrap(), second.pem);
    assert_eq!(mode(&key), 0o600);
    let config = std::fs::read_to_string(dir.path().join("booty.toml")).unwrap();
    assert!(
        config.contains(&format!("github_app_id = \"{}\"", second.client_id)),
        "{config}"
    );
}

#[test]
fn the_time_limit_does_not_cut_off_a_code_being_exchanged() {
    let fake = Fake::start();
    let github = &fake.github;
    // GitHub answers the exchange only after the command's time limit has passed.
    github.inject(
        "apps/create-from-manifest",
        Fault::Slow(Duration::from_secs(10)),
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let create = Create::start(github, dir.path(), "booty slow", &["--timeout-secs", "6"]);
    let (_, _, location) = post_the_form(create.page);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "the form took too long to test this"
    );
    let (status, page) = follow(&location);
    assert_eq!(status, 200, "{page}");
    assert!(started.elapsed() > Duration::from_secs(6));
    let (code, stdout, stderr) = create.finish();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let app = &github.created_apps()[0];
    assert_eq!(
        std::fs::read_to_string(dir.path().join("github-app.private-key.pem")).unwrap(),
        app.pem
    );
    // A redirect after the outcome is not taken: the listener is gone.
    assert!(TcpStream::connect(create_page_of(&location)).is_err());
}

#[test]
fn the_browser_opener_gets_the_page_and_the_desktop_session_but_none_of_bootys_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let seen = dir.path().join("opener.txt");
    let opener = bin.join(if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    });
    // Writes its argument and its whole environment, then a marker the test waits for.
    std::fs::write(
        &opener,
        format!(
            "#!/bin/sh\n{{ echo \"url=$1\"; /usr/bin/env; }} > {0}.tmp && /bin/mv {0}.tmp {0}\n",
            seen.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());

    let output = dir.path().join("app");
    let mut command = Command::new(booty_bin());
    command
        .args([
            "app",
            "create",
            "--webhook-url",
            WEBHOOK_URL,
            "--name",
            "opener",
        ])
        .arg("--output")
        .arg(&output)
        .env_remove("RUST_LOG")
        .env("PATH", &path)
        .env("DISPLAY", ":42")
        .env("BROWSER", "firefox")
        .env("BOOTY_WEBHOOK_SECRET", "sentinel-webhook-secret")
        .env("GITHUB_TOKEN", "sentinel-github-token")
        .env("AWS_SECRET_ACCESS_KEY", "sentinel-aws");
    let create = Create::spawn(&mut command);

    let deadline = Instant::now() + DEADLINE;
    while !seen.exists() {
        assert!(Instant::now() < deadline, "the opener was never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&seen).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines.contains(&format!("url=http://{}/", create.page).as_str()),
        "the opener was not given the page: {text}"
    );
    for expected in ["DISPLAY=:42", "BROWSER=firefox", &format!("PATH={path}")] {
        assert!(
            lines.contains(&expected),
            "no {expected} in the opener's environment: {text}"
        );
    }
    for secret in [
        "sentinel-webhook-secret",
        "sentinel-github-token",
        "sentinel-aws",
    ] {
        assert!(!text.contains(secret), "the opener saw {secret}: {text}");
    }
    drop(create);
}
