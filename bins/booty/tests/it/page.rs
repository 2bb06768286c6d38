//! The jobs page of `booty serve` in a real browser: headless Chromium loads the list and a job page, the
//! test reads the DOM it built (`--dump-dom`), presses retry and cancel by sending the forms' `POST`s as
//! the browser would and reading the pages back, and writes a screenshot of each page under
//! `target/tmp/admin-page/` for a person to look at.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::toml_value::V;
use crate::support::{Booty, DEADLINE, chromium, git_repository, payload_for_issue};

/// Where the screenshots go.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("admin-page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn dom(profile: &Path, url: &str) -> String {
    chromium(profile, &["--dump-dom"], url)
}

fn screenshot(profile: &Path, url: &str, name: &str, width: u32) {
    let path = screenshots().join(name);
    let _ = std::fs::remove_file(&path);
    chromium(
        profile,
        &[
            &format!("--screenshot={}", path.display()),
            &format!("--window-size={width},900"),
        ],
        url,
    );
    let png = std::fs::read(&path).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "{} is a PNG", path.display());
}

/// The `action` of the form whose button has `id`, in `dom`.
fn form_action(dom: &str, button: &str) -> String {
    let at = dom
        .find(&format!("id=\"{button}\""))
        .unwrap_or_else(|| panic!("no {button} button in\n{dom}"));
    let form = &dom[..at][dom[..at].rfind("<form").unwrap()..];
    let action = form.split("action=\"").nth(1).unwrap();
    action[..action.find('"').unwrap()].to_owned()
}

/// What the browser sends when the button of a form is pressed on the page at `origin`: a form-encoded
/// `POST` from the same origin. Returns (status, head).
fn press(addr: SocketAddr, action: &str, origin: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST {action} HTTP/1.1\r\nHost: {addr}\r\nOrigin: {origin}\r\nSec-Fetch-Site: same-origin\r\n\
         Accept: text/html\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let head = response.split("\r\n\r\n").next().unwrap().to_owned();
    (head.split(' ').nth(1).unwrap().parse().unwrap(), head)
}

/// Loads `url` until its DOM contains `needle`.
fn dom_until(profile: &Path, url: &str, needle: &str) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let dom = dom(profile, url);
        if dom.contains(needle) {
            return dom;
        }
        assert!(
            Instant::now() < deadline,
            "{url} never showed {needle:?}:\n{dom}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_jobs_page_lists_shows_retries_and_cancels_in_a_real_browser() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("chromium-profile");
    let repo = git_repository(dir.path());
    // Issue 2's job runs until it is stopped; every other fails, saying why.
    let command = "if [ \"$BOOTY_ISSUE_NUMBER\" = 2 ]; then sleep 60; fi; \
                   echo \"checked out $BOOTY_BRANCH\"; echo 'tests failed: 3 of 12' >&2; exit 3";
    let config = BTreeMap::from([
        ("repo_url", V::from(repo.display().to_string())),
        ("store", V::from("memory")),
        (
            "workspace_root",
            V::from(dir.path().join("workspaces").display().to_string()),
        ),
        (
            "job_command",
            V::L(vec!["sh".into(), "-c".into(), command.into()]),
        ),
        ("lease_secs", V::I(3)),
    ]);
    let booty = Booty::start(dir.path(), &config, &[]);
    let base = format!("http://{}", booty.admin);

    let failing = booty.send(&payload_for_issue(dir.path(), 1), "issues", None, false);
    assert_eq!(failing.status, 202);
    let failing = failing.body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(booty.wait_for_final(&failing)["state"], "failed");

    // The list: the job, its state and repository, the filter form.
    let list = dom(&profile, &format!("{base}/"));
    assert!(
        list.contains(&format!("data-job-id=\"{failing}\"")),
        "{list}"
    );
    assert!(list.contains("data-state=\"failed\""), "{list}");
    assert!(list.contains("Codertocat/Hello-World"), "{list}");
    assert!(list.contains("<select name=\"state\">"), "{list}");
    let filtered = dom(&profile, &format!("{base}/?state=succeeded"));
    assert!(filtered.contains("id=\"empty\""), "{filtered}");
    screenshot(&profile, &format!("{base}/"), "jobs.png", 1200);
    screenshot(&profile, &format!("{base}/"), "jobs-narrow.png", 390);

    // The job page: the error, the output the command printed, a retry button and no cancel button.
    let job_url = format!("{base}/jobs/{failing}");
    let page = dom(&profile, &job_url);
    assert!(page.contains("data-state=\"failed\""), "{page}");
    assert!(page.contains("checked out agent/issue-1"), "{page}");
    assert!(page.contains("tests failed: 3 of 12"), "{page}");
    assert!(!page.contains("id=\"cancel\""), "{page}");
    screenshot(&profile, &job_url, "job.png", 1200);

    // Retry, as the button does: back to the job's page, and the job runs (and fails) again.
    let retry = form_action(&page, "retry");
    assert_eq!(retry, format!("/jobs/{failing}/retry"));
    let (status, head) = press(booty.admin, &retry, &base);
    assert_eq!(status, 303, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("location: /jobs/{failing}")),
        "{head}"
    );
    // The same form from another site's page changes nothing.
    let (status, _) = press(booty.admin, &retry, "http://evil.example");
    assert_eq!(status, 403);
    let again = dom_until(&profile, &job_url, "<dt>Attempts</dt><dd>2</dd>");
    assert!(again.contains("data-state=\"failed\""), "{again}");

    // Cancel a running job from its page.
    let running = booty.send(&payload_for_issue(dir.path(), 2), "issues", None, false);
    let running = running.body["job_id"].as_str().unwrap().to_owned();
    let running_url = format!("{base}/jobs/{running}");
    let page = dom_until(&profile, &running_url, "data-state=\"running\"");
    assert!(!page.contains("id=\"retry\""), "{page}");
    let (status, head) = press(booty.admin, &form_action(&page, "cancel"), &base);
    assert_eq!(status, 303, "{head}");
    let cancelled = dom_until(&profile, &running_url, "data-state=\"cancelled\"");
    assert!(
        cancelled.contains("cancelled by an operator"),
        "{cancelled}"
    );
    let (status, _) = booty.terminate();
    assert!(status.success());
}
