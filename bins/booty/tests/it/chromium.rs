//! `booty app create`'s page in a real browser: headless Chromium loads it, its script posts the manifest
//! form to the fake GitHub, which checks the manifest against GitHub's documented manifest parameters,
//! makes the App and redirects back to the page, where booty exchanges the code. A machine without
//! Chromium fails this test (`.ci/run` installs it); it is never skipped.

use std::collections::BTreeSet;

use serde_json::json;

use crate::app::Create;
use crate::github::Fake;
use crate::support::chromium;

#[test]
fn headless_chromium_sends_github_the_documented_manifest_and_comes_back() {
    let fake = Fake::start();
    let github = &fake.github;
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("app");
    let create = Create::start(github, &output, "booty chromium", &[]);
    let profile = tempfile::tempdir().unwrap();
    // The virtual time budget lets the page's script post the form and the redirects come back before
    // the DOM is dumped.
    let dom = chromium(
        profile.path(),
        &["--virtual-time-budget=30000", "--dump-dom"],
        &format!("http://{}/", create.page),
    );
    let (code, stdout, stderr) = create.finish();
    assert_eq!(
        code, 0,
        "booty: {stdout}\n{stderr}\nchromium's page:\n{dom}"
    );
    assert!(dom.contains("the GitHub App is ready"), "{dom}");

    // The form went to GitHub's settings/apps/new with the page's state, as a browser posts a form.
    let forms = github.requests_for("settings/apps/new");
    assert_eq!(forms.len(), 1, "{forms:?}");
    assert_eq!(forms[0].method, "POST");
    assert_eq!(forms[0].status, 302);
    assert!(
        forms[0].target.starts_with("/settings/apps/new?state="),
        "{}",
        forms[0].target
    );

    // What GitHub received is what booty means, in GitHub's documented manifest fields only (the fake
    // refuses any other field, type or permission level, and records it as a violation).
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    let apps = github.created_apps();
    assert_eq!(apps.len(), 1);
    let manifest = &apps[0].manifest;
    let fields: BTreeSet<&str> = manifest
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        fields,
        BTreeSet::from([
            "name",
            "url",
            "description",
            "public",
            "hook_attributes",
            "redirect_url",
            "default_events",
            "default_permissions",
        ])
    );
    assert_eq!(manifest["name"], "booty chromium");
    assert_eq!(manifest["url"], "https://booty.example.com");
    assert_eq!(manifest["public"], false);
    assert_eq!(
        manifest["hook_attributes"],
        json!({"url": "https://booty.example.com/webhooks/github", "active": true})
    );
    assert_eq!(
        manifest["redirect_url"],
        format!("http://{}/callback", create_page(&stdout))
    );
    assert_eq!(manifest["default_events"], json!(["issues"]));
    assert_eq!(
        manifest["default_permissions"],
        json!({"contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"})
    );
    assert!(apps[0].converted);
    assert_eq!(
        std::fs::read_to_string(output.join("github-app.private-key.pem")).unwrap(),
        apps[0].pem
    );
}

/// The page's `IP:PORT`, from the first line `app create` printed.
fn create_page(stdout: &str) -> &str {
    stdout
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
}
