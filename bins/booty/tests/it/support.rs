//! Test support: a real `booty` process on ephemeral ports, a real git repository, and small HTTP helpers.
//!
//! [`Booty::start`] writes a configuration file, starts the built binary with it, reads its JSON log from
//! stdout on a thread (every line is kept, and waiters are woken per line), and learns the bound addresses
//! from the `listening` line. Waits are bounded by [`DEADLINE`] so a hang is a failure with the log
//! attached, never a stuck test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any wait may take before the test fails.
pub(crate) const DEADLINE: Duration = Duration::from_mins(1);

/// The repository the fixture's payloads come from.
pub(crate) const FIXTURE_REPOSITORY: &str = "Codertocat/Hello-World";

/// The webhook secret every test configuration uses.
pub(crate) const SECRET: &str = "e2e-webhook-secret";

/// The built binary under test.
pub(crate) fn booty_bin() -> &'static str {
    env!("CARGO_BIN_EXE_booty")
}

/// A git repository with a `main` branch of two commits and a `develop` branch, built with the git CLI
/// (tests only; the binary never runs git).
pub(crate) fn git_repository(dir: &Path) -> PathBuf {
    let repo = dir.join("origin");
    std::fs::create_dir_all(&repo).unwrap();
    let git = |args: &[&str]| {
        let status = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Booty Test")
            .env("GIT_AUTHOR_EMAIL", "test@booty.invalid")
            .env("GIT_COMMITTER_NAME", "Booty Test")
            .env("GIT_COMMITTER_EMAIL", "test@booty.invalid")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "git {args:?} failed");
    };
    git(&["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("README.md"), "hello\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first"]);
    std::fs::write(repo.join("src.txt"), "code\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "second"]);
    git(&["branch", "develop"]);
    repo
}

/// The real `issues`/`labeled` payload (booty-event's fixture) with its label renamed.
pub(crate) fn labeled_payload(dir: &Path, label: &str) -> PathBuf {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../crates/booty-event/tests/fixtures/issues.labeled.json"
    );
    let mut payload: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture).unwrap()).unwrap();
    payload["label"]["name"] = Value::from(label);
    let path = dir.join(format!("labeled-{}.json", label.replace(':', "_")));
    std::fs::write(&path, serde_json::to_vec(&payload).unwrap()).unwrap();
    path
}

/// The fixture's `issues.labeled` payload for issue `number` (so jobs fall into several lanes).
pub(crate) fn payload_for_issue(dir: &Path, number: u64) -> PathBuf {
    let base = labeled_payload(dir, "agent:builder");
    let mut payload: Value = serde_json::from_slice(&std::fs::read(&base).unwrap()).unwrap();
    payload["issue"]["number"] = Value::from(number);
    let path = dir.join(format!("issue-{number}.json"));
    std::fs::write(&path, serde_json::to_vec(&payload).unwrap()).unwrap();
    path
}

/// The configuration of a process on `store` with its workspaces under `dir`, running `command` through
/// `sh -c` with 3 workers: what the store tests (SQLite, PostgreSQL) start the binary with.
pub(crate) fn store_config(
    repo: &Path,
    dir: &Path,
    store: &str,
    command: &str,
) -> BTreeMap<&'static str, toml_value::V> {
    use toml_value::V;
    BTreeMap::from([
        ("repo_url", V::from(repo.display().to_string())),
        ("store", V::from(store)),
        (
            "workspace_root",
            V::from(dir.join("workspaces").display().to_string()),
        ),
        (
            "job_command",
            V::L(vec!["sh".into(), "-c".into(), command.to_owned()]),
        ),
        ("workers", V::I(3)),
        ("queue_capacity", V::I(1_000)),
        ("shutdown_grace_secs", V::I(5)),
    ])
}

/// The lines of a file a job command appends to (none if it does not exist yet).
pub(crate) fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The JSON log of a running (or finished) process, shared with the thread that reads it.
#[derive(Clone, Default)]
pub(crate) struct Log(Arc<(Mutex<Vec<Value>>, Condvar)>);

impl Log {
    fn push(&self, line: Value) {
        let (lines, changed) = &*self.0;
        lines.lock().unwrap().push(line);
        changed.notify_all();
    }

    /// Every line so far.
    pub(crate) fn lines(&self) -> Vec<Value> {
        self.0.0.lock().unwrap().clone()
    }

    /// Waits for a line matching `predicate` and returns it.
    pub(crate) fn wait_for(&self, what: &str, predicate: impl Fn(&Value) -> bool) -> Value {
        let (lines, changed) = &*self.0;
        let deadline = Instant::now() + DEADLINE;
        let mut guard = lines.lock().unwrap();
        loop {
            if let Some(line) = guard.iter().find(|line| predicate(line)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no log line for {what}; log:\n{}",
                render(&guard)
            );
            guard = changed.wait_timeout(guard, left).unwrap().0;
        }
    }

    /// Lines whose `message` is `message` and whose `job_id` is `job_id`.
    pub(crate) fn messages_for_job(&self, job_id: &str) -> Vec<String> {
        self.lines()
            .iter()
            .filter(|line| line["job_id"] == job_id)
            .filter_map(|line| line["message"].as_str().map(str::to_owned))
            .collect()
    }
}

fn render(lines: &[Value]) -> String {
    lines
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `booty serve` process.
pub(crate) struct Booty {
    child: Child,
    pub(crate) log: Log,
    pub(crate) webhook: SocketAddr,
    pub(crate) admin: SocketAddr,
}

impl Booty {
    /// Starts `booty serve` with `config` (TOML keys; `listen` and `admin_listen` default to port 0) and
    /// extra environment variables, and waits until it listens.
    pub(crate) fn start(
        dir: &Path,
        config: &BTreeMap<&str, toml_value::V>,
        env: &[(&str, &str)],
    ) -> Self {
        let mut text = String::new();
        let mut config = config.clone();
        config
            .entry("listen")
            .or_insert_with(|| "127.0.0.1:0".into());
        config
            .entry("admin_listen")
            .or_insert_with(|| "127.0.0.1:0".into());
        config
            .entry("webhook_secret")
            .or_insert_with(|| SECRET.into());
        // A local `repo_url` stands for the fixture's repository, the one its payloads name.
        if config.contains_key("repo_url") {
            config
                .entry("repositories")
                .or_insert_with(|| toml_value::V::L(vec![FIXTURE_REPOSITORY.to_owned()]));
        }
        for (key, value) in &config {
            writeln!(text, "{key} = {}", value.render()).unwrap();
        }
        let config_path = dir.join("booty.toml");
        std::fs::write(&config_path, text).unwrap();
        Self::start_file(dir, &config_path, env)
    }

    /// Starts `booty serve --config CONFIG` in `dir` with extra environment variables (`BOOTY_*` ones
    /// override the file), and waits until it listens.
    pub(crate) fn start_file(dir: &Path, config_path: &Path, env: &[(&str, &str)]) -> Self {
        let mut child = Command::new(booty_bin())
            .args(["serve", "--config"])
            .arg(config_path)
            .current_dir(dir)
            .envs(env.iter().copied())
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let log = Log::default();
        let stdout = child.stdout.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|err| panic!("log line is not JSON ({err}): {line}"));
                sink.push(value);
            }
        });
        let listening = log.wait_for("listening", |line| line["message"] == "listening");
        let addr = |key: &str| listening[key].as_str().unwrap().parse().unwrap();
        Self {
            webhook: addr("webhook_addr"),
            admin: addr("admin_addr"),
            child,
            log,
        }
    }

    /// The webhook URL.
    pub(crate) fn webhook_url(&self) -> String {
        format!("http://{}/webhooks/github", self.webhook)
    }

    /// `booty send` of `payload` as event `event`, optionally with a given delivery id.
    pub(crate) fn send(
        &self,
        payload: &Path,
        event: &str,
        delivery: Option<&str>,
        form: bool,
    ) -> Sent {
        self.send_signed(payload, event, delivery, form, SECRET)
    }

    /// [`Booty::send`] signed with `secret`.
    pub(crate) fn send_signed(
        &self,
        payload: &Path,
        event: &str,
        delivery: Option<&str>,
        form: bool,
        secret: &str,
    ) -> Sent {
        let mut command = Command::new(booty_bin());
        command.arg("send").arg(payload).args([
            "--event",
            event,
            "--url",
            &self.webhook_url(),
            "--secret",
            secret,
        ]);
        if let Some(delivery) = delivery {
            command.args(["--delivery", delivery]);
        }
        if form {
            command.arg("--form");
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let mut lines = stdout.lines();
        let delivery = lines
            .next()
            .unwrap()
            .strip_prefix("delivery ")
            .unwrap()
            .to_owned();
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let body: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
        Sent {
            delivery,
            status,
            body,
            exit: output.status,
        }
    }

    /// `GET` on the admin listener: (status, JSON body).
    pub(crate) fn admin_get(&self, path: &str) -> (u16, Value) {
        http_get(self.admin, path)
    }

    /// Polls `GET /jobs/{id}` until the job is in a final state, and returns it.
    pub(crate) fn wait_for_final(&self, job_id: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (status, job) = self.admin_get(&format!("/jobs/{job_id}"));
            if status == 200
                && ["succeeded", "failed", "abandoned", "cancelled"]
                    .contains(&job["state"].as_str().unwrap())
            {
                return job;
            }
            assert!(
                Instant::now() < deadline,
                "job {job_id} not final: {job}; log:\n{}",
                render(&self.log.lines())
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// [`Booty::wait_for_final`] on a listener that needs the admin token `token`.
    pub(crate) fn wait_for_final_with(&self, job_id: &str, token: &str) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut stream = TcpStream::connect(self.admin).unwrap();
            write!(
                stream,
                "GET /jobs/{job_id} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
                 Connection: close\r\n\r\n",
                self.admin
            )
            .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            let body = response.split_once("\r\n\r\n").unwrap().1;
            let job: Value = serde_json::from_str(body).unwrap();
            if ["succeeded", "failed", "abandoned", "cancelled"]
                .contains(&job["state"].as_str().unwrap_or_default())
            {
                return job;
            }
            assert!(Instant::now() < deadline, "job {job_id} not final: {job}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub(crate) fn terminate(mut self) -> (ExitStatus, Log) {
        signal(&self.child, "TERM");
        let status = wait_with_deadline(&mut self.child);
        (status, self.log.clone())
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Booty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Headless Chromium with `args` then `url`: its stdout. Without Chromium the test fails (it is installed
/// on the machines and by `.ci/run`).
pub(crate) fn chromium(profile: &Path, args: &[&str], url: &str) -> String {
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run `chromium` ({err}): this test needs headless Chromium (Debian: apt-get install -y chromium; .ci/run installs it)"
            )
        });
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut out = String::new();
            pipe.read_to_string(&mut out).unwrap();
            out
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let log = stderr.join().unwrap();
            assert!(status.success(), "chromium {args:?} {url}: {status}\n{log}");
            break;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let log = stderr.join().unwrap();
            panic!("chromium {args:?} {url} did not finish:\n{log}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    stdout.join().unwrap()
}

/// Sends a signal by name with `kill(1)`.
pub(crate) fn signal(child: &Child, name: &str) {
    signal_pid(child.id(), name);
}

/// Sends a signal by name to a process id with `kill(1)`.
pub(crate) fn signal_pid(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_with_deadline(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "booty did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What `booty send` printed.
#[derive(Debug)]
pub(crate) struct Sent {
    pub(crate) delivery: String,
    pub(crate) status: u16,
    pub(crate) body: Value,
    pub(crate) exit: ExitStatus,
}

/// A one-shot HTTP/1.1 GET: (status, JSON body).
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

/// Runs `booty serve` with `settings` (a secret and ephemeral ports unless given) in `dir` until it exits:
/// (exit code, stderr, stdout).
pub(crate) fn serve_once(
    dir: &Path,
    settings: &BTreeMap<&str, toml_value::V>,
) -> (Option<i32>, String, String) {
    let mut settings = settings.clone();
    for (key, value) in [
        ("webhook_secret", "s"),
        ("listen", "127.0.0.1:0"),
        ("admin_listen", "127.0.0.1:0"),
    ] {
        settings.entry(key).or_insert_with(|| value.into());
    }
    if settings.contains_key("repo_url") {
        settings
            .entry("repositories")
            .or_insert_with(|| toml_value::V::L(vec![FIXTURE_REPOSITORY.to_owned()]));
    }
    let mut text = String::new();
    for (key, value) in &settings {
        writeln!(text, "{key} = {}", value.render()).unwrap();
    }
    std::fs::write(dir.join("once.toml"), text).unwrap();
    let output = Command::new(booty_bin())
        .args(["serve", "--config", "once.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8(output.stderr).unwrap(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// `booty check` with a configuration file: (exit code, stdout, stderr).
pub(crate) fn check(dir: &Path, toml: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    std::fs::write(dir.join("check.toml"), toml).unwrap();
    booty_in(dir, &["check", "--config", "check.toml"], env)
}

/// `booty ARGS` in `dir` with only `env` set besides `PATH` (so nothing of the test's own environment, such
/// as `BOOTY_TEST_POSTGRES_URL`, reaches it): (exit code, stdout, stderr).
pub(crate) fn booty_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let output = Command::new(booty_bin())
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// TOML values for test configurations.
pub(crate) mod toml_value {
    /// A TOML value: a string, an integer or a list of strings.
    #[derive(Clone, Debug)]
    pub(crate) enum V {
        S(String),
        I(i64),
        L(Vec<String>),
        B(bool),
    }

    impl V {
        pub(crate) fn render(&self) -> String {
            match self {
                V::S(text) => serde_json::to_string(text).unwrap(),
                V::I(number) => number.to_string(),
                V::B(flag) => flag.to_string(),
                V::L(items) => serde_json::to_string(items).unwrap(),
            }
        }
    }

    impl From<&str> for V {
        fn from(text: &str) -> Self {
            V::S(text.to_owned())
        }
    }

    impl From<String> for V {
        fn from(text: String) -> Self {
            V::S(text)
        }
    }

    impl From<i64> for V {
        fn from(number: i64) -> Self {
            V::I(number)
        }
    }

    impl From<Vec<String>> for V {
        fn from(items: Vec<String>) -> Self {
            V::L(items)
        }
    }
}
