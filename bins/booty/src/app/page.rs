//! The App's manifest and the loopback pages: the one whose form carries the manifest to GitHub, and the
//! ones the redirect back is answered with.

use booty_service::escape_html;
use serde_json::{Value, json};

/// What the App says about itself on GitHub.
const DESCRIPTION: &str = "booty: a labelled issue becomes a ready workspace on agent/issue-N.";

/// The events booty acts on: `issues` (`labeled` starts a job, `unlabeled` and `closed` cancel it).
pub(crate) const EVENTS: &[&str] = &["issues"];

/// The App's manifest (GitHub's documented manifest parameters): booty's permissions (those its
/// installation tokens are narrowed to, and `metadata: read`, which every App has), the `issues` event,
/// the webhook, and the redirect back to the page.
pub(crate) fn manifest(name: &str, webhook_url: &str, redirect_url: &str) -> Value {
    let mut permissions =
        serde_json::to_value(booty_github::Permissions::booty()).expect("permissions serialize");
    if let Some(map) = permissions.as_object_mut() {
        map.insert("metadata".to_owned(), json!("read"));
    }
    // The homepage GitHub requires: where the App's webhooks go, without the path.
    let homepage = url::Url::parse(webhook_url).map_or_else(
        |_| webhook_url.to_owned(),
        |url| url.origin().ascii_serialization(),
    );
    json!({
        "name": name,
        "url": homepage,
        "description": DESCRIPTION,
        "public": false,
        "hook_attributes": {"url": webhook_url, "active": true},
        "redirect_url": redirect_url,
        "default_events": EVENTS,
        "default_permissions": permissions,
    })
}

/// Where the form posts: `{web}/settings/apps/new?state=...`, or the organization's.
pub(crate) fn form_action(web: &str, org: Option<&str>, state: &str) -> String {
    match org {
        Some(org) => format!("{web}/organizations/{org}/settings/apps/new?state={state}"),
        None => format!("{web}/settings/apps/new?state={state}"),
    }
}

/// The page: a form posting the manifest to GitHub, sent as soon as the page loads (the button is there
/// for a browser without JavaScript), and the manifest shown.
pub(crate) fn render(action: &str, manifest: &Value) -> String {
    let compact = manifest.to_string();
    let pretty = serde_json::to_string_pretty(manifest).unwrap_or_else(|_| compact.clone());
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>booty: create the GitHub App</title>
</head>
<body>
<h1>booty: create the GitHub App</h1>
<p>This page sends GitHub the App's manifest below. GitHub asks you to confirm (you can change the name
there), makes the App, and sends you back here; booty then writes its key and configuration.</p>
<form id="manifest-form" method="post" action="{action}">
<input type="hidden" name="manifest" value="{manifest}">
<button type="submit">Create the App on GitHub</button>
</form>
<pre>{pretty}</pre>
<script>document.getElementById("manifest-form").submit();</script>
</body>
</html>
"#,
        action = escape_html(action),
        manifest = escape_html(&compact),
        pretty = escape_html(&pretty),
    )
}

/// A page with a heading and a paragraph, and a link when there is one.
pub(crate) fn message(title: &str, text: &str, link: Option<&str>) -> String {
    let link = link
        .filter(|href| href.starts_with("https://") || href.starts_with("http://"))
        .map(|href| format!("<p><a href=\"{0}\">{0}</a></p>\n", escape_html(href)))
        .unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>booty: {title}</title>\n</head>\n<body>\n<h1>{title}</h1>\n<p>{text}</p>\n{link}</body>\n</html>\n",
        title = escape_html(title),
        text = escape_html(text),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_asks_for_what_booty_uses() {
        let manifest = manifest(
            "booty-test",
            "https://booty.example.com/webhooks/github",
            "http://127.0.0.1:5/callback",
        );
        assert_eq!(manifest["url"], "https://booty.example.com");
        assert_eq!(manifest["default_events"], json!(["issues"]));
        assert_eq!(
            manifest["default_permissions"],
            json!({"contents": "write", "issues": "write", "pull_requests": "write", "metadata": "read"})
        );
        assert_eq!(
            manifest["hook_attributes"]["url"],
            "https://booty.example.com/webhooks/github"
        );
        assert_eq!(manifest["redirect_url"], "http://127.0.0.1:5/callback");
    }

    #[test]
    fn the_page_carries_the_manifest_escaped() {
        let manifest = json!({"name": "a\"<b>&'"});
        let html = render("https://github.com/settings/apps/new?state=ab", &manifest);
        assert!(
            html.contains(r#"value="{&quot;name&quot;:&quot;a\&quot;&lt;b&gt;&amp;&#39;&quot;}""#)
        );
        assert!(html.contains(r#"action="https://github.com/settings/apps/new?state=ab""#));
        assert!(!html.contains("<b>"));
        assert_eq!(
            form_action("https://ghe.example", Some("acme"), "s"),
            "https://ghe.example/organizations/acme/settings/apps/new?state=s"
        );
    }
}
