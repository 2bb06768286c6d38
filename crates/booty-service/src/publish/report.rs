//! What the issue is told: the job's comment (found again by a hidden marker), the pull request's body,
//! and the markers that remember what booty pushed.

use std::fmt::Write as _;

/// The most of a command's output a comment shows.
pub(crate) const MAX_TAIL_BYTES: usize = 4000;

/// The marker that names a comment's job: `<!-- booty:job ID -->`.
pub(crate) fn job_marker(job_id: &str) -> String {
    format!("<!-- booty:job {job_id} -->")
}

/// The marker recording a commit booty pushed (or was about to push): `<!-- booty:pushed SHA -->`.
pub(crate) fn pushed_marker(sha: &str) -> String {
    format!("<!-- booty:pushed {sha} -->")
}

/// The commits recorded by [`pushed_marker`]s in `text`.
pub(crate) fn pushed_commits(text: &str) -> Vec<String> {
    text.match_indices("<!-- booty:pushed ")
        .filter_map(|(at, prefix)| {
            let rest = &text[at + prefix.len()..];
            let sha = rest.split_once(" -->")?.0;
            (sha.len() >= 40 && sha.chars().all(|c| c.is_ascii_hexdigit())).then(|| sha.to_owned())
        })
        .collect()
}

/// Where a job stands, as its comment says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Status {
    /// Running (the clone or the command).
    Started {
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// Pushing the branch (recorded before the push, so a crash leaves the record behind).
    Publishing,
    /// A pull request was opened or updated.
    PullRequest {
        /// Its link.
        url: String,
        /// Whether it existed already.
        updated: bool,
    },
    /// The branch was pushed (no pull request: `publish = "branch"`).
    Branch {
        /// The branch.
        branch: String,
        /// The commit.
        sha: String,
    },
    /// The command finished with nothing to publish.
    NothingToChange,
    /// The command ran but publishing is off.
    Done,
    /// This attempt failed and the job will be tried again.
    Retrying {
        /// Why.
        reason: String,
    },
    /// The job failed for good.
    Failed {
        /// Why (GitHub's message when GitHub refused).
        reason: String,
        /// The last lines of the command's output, if it ran and failed.
        tail: Vec<String>,
        /// What to fix, when booty knows.
        hint: Option<String>,
    },
}

/// The comment's text: markers first (hidden), then what happened; it ends with the link when there is one.
pub(crate) fn comment(
    job_id: &str,
    pushed: &[String],
    note: Option<&str>,
    status: &Status,
    secrets: &[&str],
) -> String {
    let mut text = job_marker(job_id);
    text.push('\n');
    for sha in pushed {
        text.push_str(&pushed_marker(sha));
        text.push('\n');
    }
    if let Some(note) = note {
        text.push_str(note);
        text.push_str("\n\n");
    }
    let body = match status {
        Status::Started { attempt: 1 } => {
            format!("booty is working on this issue (job `{job_id}`).")
        }
        Status::Started { attempt } => {
            format!("booty is working on this issue (job `{job_id}`, attempt {attempt}).")
        }
        Status::Publishing => format!("booty's job `{job_id}` is pushing its work."),
        Status::PullRequest {
            url,
            updated: false,
        } => {
            format!("booty's job `{job_id}` opened a pull request: {url}")
        }
        Status::PullRequest { url, updated: true } => {
            format!("booty's job `{job_id}` updated the pull request: {url}")
        }
        Status::Branch { branch, sha } => {
            format!("booty's job `{job_id}` pushed `{sha}` to the branch `{branch}`.")
        }
        Status::NothingToChange => format!(
            "booty's job `{job_id}` finished without changing anything, so there is no pull request."
        ),
        Status::Done => format!("booty's job `{job_id}` finished (publishing is off)."),
        Status::Retrying { reason } => {
            format!("booty's job `{job_id}` hit a problem and will try again: {reason}")
        }
        Status::Failed { reason, tail, hint } => {
            let mut body = format!("booty's job `{job_id}` failed: {reason}");
            if !tail.is_empty() {
                body.push_str("\n\nThe command's output ended with:\n\n````\n");
                body.push_str(&bounded_tail(tail));
                body.push_str("\n````");
            }
            if let Some(hint) = hint {
                let _ = write!(body, "\n\n{hint}");
            }
            body
        }
    };
    text.push_str(&body);
    redact(&text, secrets)
}

/// The last lines of `tail` that fit in [`MAX_TAIL_BYTES`], whole lines (a longer last line is cut).
fn bounded_tail(tail: &[String]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    let mut size = 0;
    for line in tail.iter().rev() {
        if size + line.len() + 1 > MAX_TAIL_BYTES {
            if kept.is_empty() {
                let mut start = line.len() - MAX_TAIL_BYTES;
                while !line.is_char_boundary(start) {
                    start += 1;
                }
                kept.push(&line[start..]);
            }
            break;
        }
        size += line.len() + 1;
        kept.push(line);
    }
    kept.reverse();
    // A line of backquotes in the output cannot close the block early.
    kept.join("\n").replace("````", "'```")
}

/// `text` with every known secret, and anything shaped like a GitHub token, replaced by `[redacted]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|secret| secret.len() >= 4) {
        text = text.replace(secret, "[redacted]");
    }
    for prefix in ["ghs_", "ghp_", "gho_", "ghu_", "ghr_", "github_pat_"] {
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(at) = rest.find(prefix) {
            out.push_str(&rest[..at]);
            let after = &rest[at + prefix.len()..];
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len >= 16 {
                out.push_str("[redacted]");
            } else {
                out.push_str(&rest[at..at + prefix.len() + len]);
            }
            rest = &after[len..];
        }
        out.push_str(rest);
        text = out;
    }
    text
}

/// The pull request's body: the command's own (`pr-body.md`) or none, then `Closes #N`, the job, and the
/// commit booty pushed.
pub(crate) fn pull_body(own: Option<&str>, issue: u64, job_id: &str, sha: &str) -> String {
    let mut body = String::new();
    if let Some(own) = own.map(str::trim).filter(|own| !own.is_empty()) {
        body.push_str(own);
        body.push_str("\n\n");
    }
    let _ = write!(
        body,
        "Closes #{issue}\n\nMade by booty's job `{job_id}`.\n{}",
        pushed_marker(sha)
    );
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn pushed_markers_are_read_back_and_nothing_else_is() {
        let text = comment("7-abc", &[SHA.to_owned()], None, &Status::Publishing, &[]);
        assert!(text.starts_with("<!-- booty:job 7-abc -->\n"));
        assert_eq!(pushed_commits(&text), [SHA]);
        assert!(
            pushed_commits("<!-- booty:pushed nothex!nothex!nothex!nothex!nothex!nothe -->")
                .is_empty()
        );
        let body = pull_body(Some("My change"), 7, "7-abc", SHA);
        assert!(body.starts_with("My change\n\nCloses #7\n"));
        assert_eq!(pushed_commits(&body), [SHA]);
    }

    #[test]
    fn failures_show_a_bounded_tail_without_secrets() {
        let mut tail: Vec<String> = (0..100).map(|i| format!("{i:0>100}")).collect();
        tail.push("token=s3cr3t-value and ghs_ABCDEFGHIJKLMNOPQRSTUVWXYZ012345".to_owned());
        let status = Status::Failed {
            reason: "exit status: 1".to_owned(),
            tail,
            hint: None,
        };
        let text = comment("1-x", &[], None, &status, &["s3cr3t-value"]);
        assert!(!text.contains("s3cr3t-value"), "{text}");
        assert!(!text.contains("ghs_ABCDEF"), "{text}");
        assert!(text.contains("token=[redacted] and [redacted]"), "{text}");
        assert!(text.len() < MAX_TAIL_BYTES + 500, "{}", text.len());
        // The newest lines are kept, the oldest dropped.
        assert!(text.contains(&format!("{:0>100}", 99)));
        assert!(!text.contains(&format!("{:0>100}", 0)));
    }

    #[test]
    fn the_comment_ends_pointing_at_the_pull_request() {
        let url = "https://github.com/o/r/pull/100";
        let status = Status::PullRequest {
            url: url.to_owned(),
            updated: false,
        };
        assert!(comment("1-x", &[], Some("a note"), &status, &[]).ends_with(url));
    }
}
