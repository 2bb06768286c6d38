//! `cargo bench -p booty-service --bench publish`: issue 21's choice of how booty pushes, measured on a
//! 100-file change against booty-testkit's fake GitHub (loopback, real bare repositories, `git
//! http-backend` for git, GitHub's description for REST).
//!
//! - `git_cli_push_100_files`: [`booty_service::push_commit`], what publishing runs: a bare repository of
//!   booty's own borrowing the workspace's objects, `git push --force-with-lease` with the installation
//!   token in the environment.
//! - `git_database_api_100_files`: the same change through GitHub's Git database API with booty-github:
//!   one `POST git/trees` (the base tree and the 100 files' text inline), `POST git/commits`,
//!   `POST git/refs`. Binary files would need a `POST git/blobs` each on top.
//!
//! Each iteration pushes a commit of its own (100 files of about 2 KB whose text names the iteration) to a
//! new branch, made outside the timed part.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use booty_github::{
    AppCredentials, AppId, Config, Credentials, GitHub, InstallationId, Repository, TreeEntry,
};
use booty_testkit::github::{APP_ID, FakeGitHub};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const FILES: usize = 100;

fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "agent")
        .env("GIT_AUTHOR_EMAIL", "agent@example.invalid")
        .env("GIT_COMMITTER_NAME", "agent")
        .env("GIT_COMMITTER_EMAIL", "agent@example.invalid")
        .output()
        .expect("git runs");
    assert!(
        output.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The 100 files of iteration `n`.
fn files(n: u64) -> Vec<(String, String)> {
    (0..FILES)
        .map(|file| {
            let line = format!("iteration {n}, file {file}: the agent's change\n");
            (
                format!("src/generated/file{file:03}.txt"),
                line.repeat(2048 / line.len()),
            )
        })
        .collect()
}

/// A commit of iteration `n`'s files on top of `base` in `workspace` (not pushed); its id.
fn commit(workspace: &Path, base: &str, n: u64) -> String {
    git(workspace, &["checkout", "-q", "--detach", base]);
    for (path, text) in files(n) {
        let path = workspace.join(path);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a directory");
        std::fs::write(path, text).expect("a file");
    }
    git(workspace, &["add", "--all"]);
    git(
        workspace,
        &["commit", "-q", "-m", &format!("iteration {n}")],
    );
    git(workspace, &["rev-parse", "HEAD"])
}

#[allow(
    clippy::too_many_lines,
    reason = "one setup shared by both measurements reads best in one place"
)]
fn publish(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
    let github = GitHub::new(Credentials::App(app), config).expect("a client");
    let repository: Repository = "octo/hello".parse().expect("a repository");
    let token = runtime
        .block_on(github.token_for(InstallationId(7), &repository))
        .expect("a token");
    let client = github.repository(repository, Some(InstallationId(7)));

    let scratch = tempfile::tempdir().expect("a scratch directory");
    let workspace: PathBuf = scratch.path().join("workspace");
    let url = fake.git_url("octo/hello");
    let header = {
        use base64::Engine as _;
        let pair = base64::engine::general_purpose::STANDARD
            .encode(format!("x-access-token:{}", token.expose()));
        format!("http.extraHeader=Authorization: Basic {pair}")
    };
    git(
        scratch.path(),
        &["-c", &header, "clone", "-q", &url, "workspace"],
    );
    let base = git(&workspace, &["rev-parse", "HEAD"]);
    let base_tree = git(&workspace, &["rev-parse", "HEAD^{tree}"]);

    let mut group = c.benchmark_group("publish");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(20));
    let mut n = 0;
    group.bench_function("git_cli_push_100_files", |b| {
        b.iter_batched(
            || {
                n += 1;
                (n, commit(&workspace, &base, n))
            },
            |(n, sha)| {
                runtime
                    .block_on(booty_service::push_commit(
                        &workspace,
                        scratch.path(),
                        &url,
                        Some(token.expose()),
                        &format!("bench/git-{n}"),
                        &sha,
                        None,
                    ))
                    .expect("the push");
            },
            BatchSize::PerIteration,
        );
    });
    let mut n = 0;
    group.bench_function("git_database_api_100_files", |b| {
        b.iter_batched(
            || {
                n += 1;
                let entries: Vec<TreeEntry> = files(1_000_000 + n)
                    .into_iter()
                    .map(|(path, text)| TreeEntry::file(path, text))
                    .collect();
                (n, entries)
            },
            |(n, entries)| {
                runtime.block_on(async {
                    let tree = client
                        .create_tree(Some(&base_tree), &entries)
                        .await
                        .expect("the tree");
                    let commit = client
                        .create_commit(&format!("iteration {n}"), &tree.sha, &[&base])
                        .await
                        .expect("the commit");
                    client
                        .create_ref(&format!("refs/heads/bench/api-{n}"), &commit.sha)
                        .await
                        .expect("the branch");
                });
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
    // Both made what they should: their first branches hold the 100 files over the base.
    let by_git = fake
        .branch_head("octo/hello", "bench/git-1")
        .expect("pushed with git");
    let by_api = fake
        .branch_head("octo/hello", "bench/api-1")
        .expect("made with the API");
    for head in [by_git, by_api] {
        git(&workspace, &["-c", &header, "fetch", "-q", &url, &head]);
        let added = git(&workspace, &["diff", "--name-only", &base, &head]);
        assert_eq!(added.lines().count(), FILES, "{added}");
    }
    assert!(fake.violations().is_empty(), "{:?}", fake.violations());
}

criterion_group!(benches, publish);
criterion_main!(benches);
