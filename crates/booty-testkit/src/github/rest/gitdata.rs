//! The Git database API (blobs, trees, commits, references), backed by the repository's real bare git
//! repository, so what it makes is what `git` then sees.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use super::{Answer, Context, STANDARD, State, json};
use base64::Engine as _;
use serde_json::Value;

/// Runs git in `repo` with `stdin`, extra environment; stdout on success, stderr on failure.
fn run(repo: &Path, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Result<String, String> {
    let mut child = Command::new("git")
        .args(args)
        .current_dir(repo)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| err.to_string())?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(stdin)
        .map_err(|err| err.to_string())?;
    let output = child.wait_with_output().map_err(|err| err.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

fn api(context: &Context<'_>, rest: &str) -> String {
    format!(
        "https://api.github.com/repos/{}/{rest}",
        context.repository()
    )
}

fn repo_path<'s>(context: &Context<'_>, state: &'s State) -> Option<&'s Path> {
    state
        .repos
        .get(&context.repository())
        .map(|repo| repo.path.as_path())
}

fn is_sha(text: &str) -> bool {
    text.len() == 40 && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// `POST /repos/{owner}/{repo}/git/blobs`.
pub(super) fn create_blob(context: &Context<'_>, state: &State) -> Answer {
    let Some(repo) = repo_path(context, state) else {
        return Answer::error(404, "Not Found");
    };
    let text = context.body["content"].as_str().unwrap_or_default();
    let bytes = match context.body["encoding"].as_str().unwrap_or("utf-8") {
        "base64" => match STANDARD.decode(text.replace('\n', "")) {
            Ok(bytes) => bytes,
            Err(_) => return Answer::error(422, "content is not valid Base64"),
        },
        "utf-8" => text.as_bytes().to_vec(),
        _ => return Answer::error(422, "encoding must be utf-8 or base64"),
    };
    match run(repo, &["hash-object", "-w", "--stdin"], &bytes, &[]) {
        Ok(sha) => Answer::ok(
            201,
            json!({"sha": sha, "url": api(context, &format!("git/blobs/{sha}"))}),
        ),
        Err(err) => Answer::error(422, &err),
    }
}

/// `POST /repos/{owner}/{repo}/git/trees`: `base_tree` with the entries applied (a `content` entry is
/// stored as a blob; a `sha: null` entry deletes the path).
pub(super) fn create_tree(context: &Context<'_>, state: &State) -> Answer {
    let Some(repo) = repo_path(context, state) else {
        return Answer::error(404, "Not Found");
    };
    let index = tempfile::NamedTempFile::new_in(repo).expect("a temporary index");
    let index_path = index.path().to_string_lossy().into_owned();
    let env = [("GIT_INDEX_FILE", index_path.as_str())];
    let read = match context.body["base_tree"].as_str() {
        Some(base) if is_sha(base) => run(repo, &["read-tree", base], b"", &env),
        Some(_) => return Answer::error(422, "base_tree is not a tree"),
        None => run(repo, &["read-tree", "--empty"], b"", &env),
    };
    if let Err(err) = read {
        return Answer::error(422, &format!("base_tree: {err}"));
    }
    let entries: Vec<&Value> = context.body["tree"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    // Every `content` stored by one `git hash-object` (a process per file would make the fake, not the
    // API, the cost a benchmark sees).
    let scratch = tempfile::tempdir_in(repo).expect("a scratch directory");
    let mut paths = String::new();
    for (n, entry) in entries.iter().enumerate() {
        if let Some(content) = entry["content"].as_str() {
            let file = scratch.path().join(n.to_string());
            std::fs::write(&file, content).expect("writing a blob's content");
            let _ = writeln!(paths, "{}", file.display());
        }
    }
    let stored = if paths.is_empty() {
        String::new()
    } else {
        match run(
            repo,
            &["hash-object", "-w", "--stdin-paths"],
            paths.as_bytes(),
            &[],
        ) {
            Ok(out) => out,
            Err(err) => return Answer::error(422, &err),
        }
    };
    let mut stored = stored.lines();
    let mut lines = String::new();
    for entry in entries {
        let path = entry["path"].as_str().unwrap_or_default();
        let mode = entry["mode"].as_str().unwrap_or("100644");
        let sha = if entry["content"].is_string() {
            match stored.next() {
                Some(sha) => sha.to_owned(),
                None => return Answer::error(422, "a blob was not stored"),
            }
        } else {
            match &entry["sha"] {
                Value::String(sha) if is_sha(sha) => sha.clone(),
                Value::Null => {
                    let _ = writeln!(lines, "0 {} 0\t{path}", "0".repeat(40));
                    continue;
                }
                _ => return Answer::error(422, "tree.sha is not a valid SHA"),
            }
        };
        let _ = writeln!(lines, "{mode} {sha} 0\t{path}");
    }
    if let Err(err) = run(
        repo,
        &["update-index", "--index-info"],
        lines.as_bytes(),
        &env,
    ) {
        return Answer::error(422, &err);
    }
    let sha = match run(repo, &["write-tree"], b"", &env) {
        Ok(sha) => sha,
        Err(err) => return Answer::error(422, &err),
    };
    // GitHub lists the top level; the description's example has a `size` on every entry, which only blobs
    // have, so the fake lists the blobs at every depth (booty reads only the tree's `sha`).
    let listing = run(repo, &["ls-tree", "-r", "-l", &sha], b"", &[]).unwrap_or_default();
    let entries: Vec<Value> = listing
        .lines()
        .filter_map(|line| {
            let (meta, path) = line.split_once('\t')?;
            let mut meta = meta.split_whitespace();
            let (mode, kind, sha, size) = (meta.next()?, meta.next()?, meta.next()?, meta.next()?);
            let mut entry = json!({
                "path": path, "mode": mode, "type": kind, "sha": sha,
                "url": api(context, &format!("git/{kind}s/{sha}")),
            });
            if let Ok(size) = size.parse::<u64>() {
                entry["size"] = json!(size);
            }
            Some(entry)
        })
        .collect();
    Answer::ok(
        201,
        json!({"sha": sha, "url": api(context, &format!("git/trees/{sha}")), "tree": entries, "truncated": false}),
    )
}

/// `POST /repos/{owner}/{repo}/git/commits`.
pub(super) fn create_commit(context: &Context<'_>, state: &State) -> Answer {
    let Some(repo) = repo_path(context, state) else {
        return Answer::error(404, "Not Found");
    };
    let tree = context.body["tree"].as_str().unwrap_or_default();
    let message = context.body["message"].as_str().unwrap_or_default();
    let mut args = vec!["commit-tree", tree];
    let parents: Vec<&str> = context.body["parents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for parent in &parents {
        args.extend(["-p", parent]);
    }
    let date = super::rfc3339(context.now);
    let name = context.body["author"]["name"]
        .as_str()
        .unwrap_or("booty-test[bot]");
    let email = context.body["author"]["email"]
        .as_str()
        .unwrap_or("bot@booty.invalid");
    let env = [
        ("GIT_AUTHOR_NAME", name),
        ("GIT_AUTHOR_EMAIL", email),
        ("GIT_AUTHOR_DATE", date.as_str()),
        ("GIT_COMMITTER_NAME", name),
        ("GIT_COMMITTER_EMAIL", email),
        ("GIT_COMMITTER_DATE", date.as_str()),
    ];
    let sha = match run(repo, &args, message.as_bytes(), &env) {
        Ok(sha) => sha,
        Err(err) => return Answer::error(422, &err),
    };
    let person = json!({"name": name, "email": email, "date": date});
    let full = context.repository();
    Answer::ok(
        201,
        json!({
            "sha": sha,
            "node_id": STANDARD.encode(format!("commit:{sha}")),
            "url": api(context, &format!("git/commits/{sha}")),
            "html_url": format!("https://github.com/{full}/commit/{sha}"),
            "author": person, "committer": person, "message": message,
            "tree": {"sha": tree, "url": api(context, &format!("git/trees/{tree}"))},
            "parents": parents.iter().map(|parent| json!({
                "sha": parent,
                "url": api(context, &format!("git/commits/{parent}")),
                "html_url": format!("https://github.com/{full}/commit/{parent}"),
            })).collect::<Vec<_>>(),
            "verification": {"verified": true, "reason": "valid", "signature": null, "payload": null, "verified_at": null},
        }),
    )
}

fn reference(context: &Context<'_>, name: &str, sha: &str) -> Value {
    json!({
        "ref": name,
        "node_id": STANDARD.encode(format!("ref:{name}")),
        "url": api(context, &format!("git/{name}")),
        "object": {"type": "commit", "sha": sha, "url": api(context, &format!("git/commits/{sha}"))},
    })
}

/// `GET /repos/{owner}/{repo}/git/ref/{ref}` (`heads/BRANCH`).
pub(super) fn get_ref(context: &Context<'_>, state: &State) -> Answer {
    let Some(repo) = repo_path(context, state) else {
        return Answer::error(404, "Not Found");
    };
    let name = format!("refs/{}", context.parameter("ref"));
    match run(repo, &["rev-parse", "--verify", "--quiet", &name], b"", &[]) {
        Ok(sha) => Answer::ok(200, reference(context, &name, &sha)),
        Err(_) => Answer::error(404, "Not Found"),
    }
}

/// `POST /repos/{owner}/{repo}/git/refs`: a new reference (422 if it exists).
pub(super) fn create_ref(context: &Context<'_>, state: &State) -> Answer {
    let Some(repo) = repo_path(context, state) else {
        return Answer::error(404, "Not Found");
    };
    let name = context.body["ref"].as_str().unwrap_or_default();
    let sha = context.body["sha"].as_str().unwrap_or_default();
    if !name.starts_with("refs/") || name.matches('/').count() < 2 {
        return Answer::error(
            422,
            "Reference name must start with 'refs/' and have at least two slashes.",
        );
    }
    match run(repo, &["update-ref", name, sha, ""], b"", &[]) {
        Ok(_) => Answer::ok(201, reference(context, name, sha)),
        Err(_) => Answer::error(422, "Reference already exists"),
    }
}

/// `PATCH /repos/{owner}/{repo}/git/refs/{ref}`: moves it, only forward unless `force`.
pub(super) fn update_ref(context: &Context<'_>, state: &State) -> Answer {
    let Some(repo) = repo_path(context, state) else {
        return Answer::error(404, "Not Found");
    };
    let name = format!("refs/{}", context.parameter("ref"));
    let sha = context.body["sha"].as_str().unwrap_or_default();
    let Ok(old) = run(repo, &["rev-parse", "--verify", "--quiet", &name], b"", &[]) else {
        return Answer::error(422, "Reference does not exist");
    };
    let force = context.body["force"].as_bool().unwrap_or(false);
    if !force && run(repo, &["merge-base", "--is-ancestor", &old, sha], b"", &[]).is_err() {
        return Answer::error(422, "Update is not a fast forward");
    }
    match run(repo, &["update-ref", &name, sha, &old], b"", &[]) {
        Ok(_) => Answer::ok(200, reference(context, &name, sha)),
        Err(err) => Answer::error(422, &err),
    }
}
