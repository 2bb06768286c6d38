//! Real git repositories for tests and the benchmark, built with the `git` CLI.
//!
//! Everything runs with a fixed author, committer and date and without the host's or user's configuration,
//! so the result does not depend on the machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// `git` with a clean environment: no system or global configuration, fixed identity and dates.
pub(crate) fn git(dir: &Path) -> Command {
    let mut command = Command::new("git");
    clean_git_env(&mut command, dir);
    command
}

/// Runs `command` in `dir` with only what git needs in the environment (for `git` itself, or a wrapper).
pub(crate) fn clean_git_env(command: &mut Command, dir: &Path) {
    command
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "Booty Tests")
        .env("GIT_AUTHOR_EMAIL", "tests@booty.invalid")
        .env("GIT_AUTHOR_DATE", "2024-01-01T00:00:00Z")
        .env("GIT_COMMITTER_NAME", "Booty Tests")
        .env("GIT_COMMITTER_EMAIL", "tests@booty.invalid")
        .env("GIT_COMMITTER_DATE", "2024-01-01T00:00:00Z");
}

/// Runs `git args` in `dir` and returns its standard output; panics with git's error output on failure.
pub(crate) fn run_git(dir: &Path, args: &[&str]) -> String {
    let output = git(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the git CLI runs");
    check(&output, args);
    String::from_utf8(output.stdout)
        .expect("git prints UTF-8 here")
        .trim()
        .to_owned()
}

fn check(output: &Output, args: &[&str]) {
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A bare repository under a served root, with its branches' tips known.
pub(crate) struct Fixture {
    /// The directory the HTTP server serves (`GIT_PROJECT_ROOT`); the repository is `NAME` in it.
    pub(crate) root: PathBuf,
    /// Keeps the directories alive.
    _dir: tempfile::TempDir,
}

/// What [`Fixture::big`] fills its file with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Content {
    /// Zeros: a pack of a few KiB that checks out at full size.
    Compressible,
    /// Pseudo-random bytes: the pack is as big as the file.
    Incompressible,
}

/// The bare repository's name under [`Fixture::root`].
pub(crate) const NAME: &str = "repo.git";

impl Fixture {
    /// `main` with five commits, `release` two commits further, `feature/x` one commit off `main`'s second,
    /// a lightweight and an annotated tag, served as a bare repository.
    pub(crate) fn standard() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        run_git(&work, &["init", "--quiet", "--initial-branch=main"]);
        for i in 1..=5 {
            std::fs::create_dir_all(work.join("src")).unwrap();
            std::fs::write(
                work.join("README.md"),
                format!("# fixture\n\nrevision {i}\n"),
            )
            .unwrap();
            std::fs::write(
                work.join(format!("src/file{i}.txt")),
                format!("content {i}\n"),
            )
            .unwrap();
            run_git(&work, &["add", "--all"]);
            run_git(
                &work,
                &["commit", "--quiet", "-m", &format!("main commit {i}")],
            );
            if i == 2 {
                run_git(&work, &["tag", "v0.2"]);
                run_git(&work, &["branch", "feature/x"]);
            }
        }
        run_git(&work, &["tag", "-a", "v1.0", "-m", "release 1.0"]);
        run_git(&work, &["checkout", "--quiet", "-b", "release"]);
        for i in 1..=2 {
            std::fs::write(work.join("CHANGELOG.md"), format!("release {i}\n")).unwrap();
            run_git(&work, &["add", "--all"]);
            run_git(
                &work,
                &["commit", "--quiet", "-m", &format!("release commit {i}")],
            );
        }
        run_git(&work, &["checkout", "--quiet", "feature/x"]);
        std::fs::write(work.join("feature.txt"), "feature\n").unwrap();
        run_git(&work, &["add", "--all"]);
        run_git(&work, &["commit", "--quiet", "-m", "feature commit"]);
        run_git(&work, &["checkout", "--quiet", "main"]);

        let root = dir.path().join("served");
        std::fs::create_dir(&root).unwrap();
        run_git(
            dir.path(),
            &["clone", "--quiet", "--bare", "work", "served/repo.git"],
        );
        Self { root, _dir: dir }
    }

    /// One commit on `main` adding `big.bin`, `size` bytes of `content`, served as a bare repository.
    pub(crate) fn big(content: Content, size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        run_git(&work, &["init", "--quiet", "--initial-branch=main"]);
        let bytes: Vec<u8> = match content {
            Content::Compressible => vec![0; size],
            Content::Incompressible => {
                // xorshift64: reproducible bytes zlib cannot shrink.
                let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
                std::iter::repeat_with(|| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()
                })
                .flatten()
                .take(size)
                .collect()
            }
        };
        std::fs::write(work.join("big.bin"), bytes).unwrap();
        run_git(&work, &["add", "--all"]);
        run_git(&work, &["commit", "--quiet", "-m", "big file"]);
        let root = dir.path().join("served");
        std::fs::create_dir(&root).unwrap();
        run_git(
            dir.path(),
            &["clone", "--quiet", "--bare", "work", "served/repo.git"],
        );
        Self { root, _dir: dir }
    }

    /// The bare repository's path.
    pub(crate) fn path(&self) -> PathBuf {
        self.root.join(NAME)
    }

    /// The commit `rev` names in the served repository.
    pub(crate) fn rev(&self, rev: &str) -> String {
        run_git(&self.path(), &["rev-parse", &format!("{rev}^{{commit}}")])
    }

    /// `file://` URL of the served repository.
    pub(crate) fn file_url(&self) -> String {
        format!("file://{}", self.path().display())
    }
}
