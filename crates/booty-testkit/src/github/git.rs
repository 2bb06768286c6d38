//! Git smart HTTP for the fake's repositories: `git http-backend` run as CGI (upload-pack for clones and
//! fetches, receive-pack for pushes), after the fake has checked the Basic credentials.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::Command;

/// Which git service a request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Service {
    /// Clone and fetch: needs `contents: read`.
    UploadPack,
    /// Push: needs `contents: write`.
    ReceivePack,
}

/// A request under `/{owner}/{name}.git/`: the repository's full name and the service, or `None` when the
/// path is not git's.
pub(crate) fn parse(path: &str, query: &str) -> Option<(String, Service)> {
    let trimmed = path.trim_start_matches('/');
    let (repository, rest) = ["/info/refs", "/git-upload-pack", "/git-receive-pack"]
        .iter()
        .find_map(|suffix| trimmed.strip_suffix(suffix).map(|repo| (repo, *suffix)))?;
    let repository = repository.strip_suffix(".git").unwrap_or(repository);
    if repository.split('/').count() != 2 {
        return None;
    }
    let service = match rest {
        "/git-receive-pack" => Service::ReceivePack,
        "/git-upload-pack" => Service::UploadPack,
        _ if query.contains("service=git-receive-pack") => Service::ReceivePack,
        _ => Service::UploadPack,
    };
    Some((repository.to_owned(), service))
}

/// What the backend answered.
pub(crate) struct CgiAnswer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

/// Runs `git http-backend` for one request on the bare repositories under `root`.
pub(crate) async fn serve(
    root: &Path,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> std::io::Result<CgiAnswer> {
    // Repositories live at `owner/name.git`; the request may omit `.git`.
    let path_info = if path.contains(".git/") {
        path.to_owned()
    } else {
        let (repo, rest) = ["/info/refs", "/git-upload-pack", "/git-receive-pack"]
            .iter()
            .find_map(|suffix| path.strip_suffix(suffix).map(|repo| (repo, *suffix)))
            .unwrap_or((path, ""));
        format!("{repo}.git{rest}")
    };
    let mut cgi = Command::new(http_backend());
    cgi.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        // The fake authenticated the request; http-backend only lets a push through for a known user.
        .env("REMOTE_USER", "x-access-token")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path_info)
        .env("QUERY_STRING", query)
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (header, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("git-protocol", "HTTP_GIT_PROTOCOL"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
    ] {
        if let Some((_, value)) = headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(header))
        {
            cgi.env(variable, value);
        }
    }
    let mut child = cgi.spawn()?;
    let mut stdin = child.stdin.take().expect("piped");
    let mut stdout = child.stdout.take().expect("piped");
    let feed = async move {
        stdin.write_all(&body).await?;
        stdin.shutdown().await
    };
    let mut output = Vec::new();
    // The backend may stop reading early (a refused request): its answer is what matters, not the feed's.
    let (_, read) = tokio::join!(feed, stdout.read_to_end(&mut output));
    read?;
    child.wait().await?;

    let split = output
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|at| (at, 4))
        .or_else(|| {
            output
                .windows(2)
                .position(|window| window == b"\n\n")
                .map(|at| (at, 2))
        });
    let (head, body) = match split {
        Some((at, gap)) => (&output[..at], output[at + gap..].to_vec()),
        None => (&output[..], Vec::new()),
    };
    let mut status = 200;
    let mut out_headers = Vec::new();
    for line in String::from_utf8_lossy(head).lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("status") {
            status = value
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok())
                .unwrap_or(500);
        } else {
            out_headers.push((name.to_owned(), value.to_owned()));
        }
    }
    Ok(CgiAnswer {
        status,
        headers: out_headers,
        body,
    })
}

/// `git-http-backend` in git's exec path.
fn http_backend() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let output = std::process::Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("the git CLI runs");
        let exec_path = String::from_utf8(output.stdout).expect("a UTF-8 path");
        Path::new(exec_path.trim()).join("git-http-backend")
    })
}

/// Runs `git ARGS` in `dir`, panicking with git's message on failure (setting up fixtures).
pub(crate) fn git(dir: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "booty-testkit")
        .env("GIT_AUTHOR_EMAIL", "testkit@booty.invalid")
        .env("GIT_COMMITTER_NAME", "booty-testkit")
        .env("GIT_COMMITTER_EMAIL", "testkit@booty.invalid")
        .output()
        .expect("the git CLI runs");
    assert!(
        output.status.success(),
        "git {} in {} failed: {}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Makes a bare repository at `path` with one commit on `main` holding a README.
pub(crate) fn create_bare(path: &Path, full_name: &str) {
    std::fs::create_dir_all(path).expect("creating the repository directory");
    git(
        path,
        &["init", "--quiet", "--bare", "--initial-branch=main"],
    );
    // http-backend refuses pushes unless told otherwise for anonymous users; the fake did the auth.
    git(path, &["config", "http.receivepack", "true"]);
    let blob = {
        let mut child = std::process::Command::new("git")
            .args(["hash-object", "-w", "--stdin"])
            .current_dir(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git hash-object runs");
        std::io::Write::write_all(
            child.stdin.as_mut().expect("piped"),
            format!("# {full_name}\n").as_bytes(),
        )
        .expect("writing the README");
        let output = child.wait_with_output().expect("git hash-object finishes");
        String::from_utf8(output.stdout)
            .expect("a hex id")
            .trim()
            .to_owned()
    };
    let tree = {
        let mut child = std::process::Command::new("git")
            .args(["mktree"])
            .current_dir(path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("git mktree runs");
        std::io::Write::write_all(
            child.stdin.as_mut().expect("piped"),
            format!("100644 blob {blob}\tREADME.md\n").as_bytes(),
        )
        .expect("writing the tree");
        let output = child.wait_with_output().expect("git mktree finishes");
        String::from_utf8(output.stdout)
            .expect("a hex id")
            .trim()
            .to_owned()
    };
    let commit = git(path, &["commit-tree", &tree, "-m", "Initial commit"]);
    git(path, &["update-ref", "refs/heads/main", &commit]);
}

/// The commit `branch` points at in the bare repository at `path`, if the branch exists.
pub(crate) fn branch_head(path: &Path, branch: &str) -> Option<String> {
    let output = std::process::Command::new("git")
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("refs/heads/{branch}^{{commit}}"))
        .current_dir(path)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
