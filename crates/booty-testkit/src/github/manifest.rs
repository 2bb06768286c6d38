//! GitHub's App manifest flow, as the fake plays it.
//!
//! The web side (not in the REST description): a page posts a form with a `manifest` field (JSON) to
//! `/settings/apps/new?state=...`, or `/organizations/{org}/settings/apps/new?state=...`. GitHub shows the
//! person a confirmation page; once they press "Create GitHub App" it makes the App and redirects to the
//! manifest's `redirect_url` with `?code=...&state=...`. The fake checks the manifest against the
//! parameters GitHub documents, makes the App at once (the confirmation is the person's, not the
//! client's), with a freshly generated RSA key, and redirects.
//!
//! The REST side (`apps/create-from-manifest`, in the description): `POST /app-manifests/{code}/conversions`,
//! without authentication, hands out the App's id, client id, slug, webhook secret and key, once, within
//! an hour of the code being issued; after that, or for a code it never issued, GitHub answers 404.
//!
//! Source of the parameters: docs.github.com, "Registering a GitHub App from a manifest", section "GitHub
//! App manifest parameters" (the same fields as Probot's `Manifest` type).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use ring::rand::SecureRandom as _;
use serde_json::{Value, json};

use super::server::{Reply, Req};
use super::time::rfc3339;
use super::{CreatedApp, Shared, State, jwt, schema};
use crate::keys;

/// How long a manifest code may be exchanged (GitHub: "The code expires after one hour").
pub(crate) const CODE_LIFETIME: Duration = Duration::from_hours(1);

/// The user the fake's browser session is signed in as, who owns Apps made outside an organization.
pub(crate) const SIGNED_IN_USER: &str = "octocat";

/// The App manifest's parameters as GitHub documents them, as a schema: what the form may carry.
pub(crate) fn manifest_schema() -> Value {
    let url = json!({"type": "string", "minLength": 1});
    json!({
        "type": "object",
        "required": ["url"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 34},
            "url": url,
            "hook_attributes": {
                "type": "object",
                "required": ["url"],
                "additionalProperties": false,
                "properties": {
                    "url": url,
                    "active": {"type": "boolean"},
                },
            },
            "redirect_url": url,
            "callback_urls": {"type": "array", "maxItems": 10, "items": url},
            "setup_url": url,
            "description": {"type": "string"},
            "public": {"type": "boolean"},
            "default_events": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "default_permissions": {
                "type": "object",
                "additionalProperties": {"type": "string", "enum": ["read", "write", "admin"]},
            },
            "request_oauth_on_install": {"type": "boolean"},
            "setup_on_update": {"type": "boolean"},
        },
    })
}

/// Whose App a manifest form makes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Owner {
    /// The signed-in user's (`/settings/apps/new`).
    User,
    /// An organization's (`/organizations/{org}/settings/apps/new`).
    Organization(String),
}

/// Whose App a manifest form's path makes, or `None` when the request is not the form.
pub(crate) fn route(method: &str, path: &str) -> Option<Owner> {
    if method != "POST" {
        return None;
    }
    if path == "/settings/apps/new" {
        return Some(Owner::User);
    }
    let org = path
        .strip_prefix("/organizations/")?
        .strip_suffix("/settings/apps/new")?;
    (!org.is_empty() && !org.contains('/')).then(|| Owner::Organization(org.to_owned()))
}

/// The form's post: the manifest checked, the App made, and the redirect back with a one-time code.
pub(crate) async fn form(shared: &Shared, request: &Req, owner: Owner) -> Reply {
    let state_param = url::form_urlencoded::parse(request.query.as_bytes())
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned());
    let manifest = match read_manifest(request) {
        Ok(manifest) => manifest,
        Err(errors) => {
            let mut state = shared.lock();
            for error in &errors {
                state.violations.push(format!("settings/apps/new: {error}"));
            }
            return page(422, &format!("Invalid manifest: {}", errors.join("; ")));
        }
    };
    // A fresh key, as GitHub makes one per App; openssl takes a moment, so off the async threads.
    let Ok(key) = tokio::task::spawn_blocking(|| keys::generate(2048)).await else {
        return page(500, "booty-testkit: generating the App's key failed");
    };
    let mut state = shared.lock();
    let name = manifest["name"].as_str().map(str::to_owned);
    let id = {
        state.next_id += 1;
        state.next_id
    };
    let name = name.unwrap_or_else(|| format!("app-{id}"));
    let slug = slug(&name);
    if state.created.iter().any(|(app, _)| app.slug == slug) {
        return page(422, &format!("Name {name:?} is already in use"));
    }
    let code = random_hex(20);
    let app = CreatedApp {
        id,
        client_id: format!("Iv23li{}", random_hex(7)),
        slug,
        owner: match owner {
            Owner::User => SIGNED_IN_USER.to_owned(),
            Owner::Organization(org) => org,
        },
        manifest: manifest.clone(),
        state: state_param.clone(),
        code: code.clone(),
        code_issued_at: shared.now(&state),
        converted: false,
        pem: key.pkcs1_pem.clone(),
        webhook_secret: manifest.get("hook_attributes").map(|_| random_hex(20)),
        client_secret: random_hex(20),
    };
    let identity = jwt::AppIdentity {
        id,
        client_id: app.client_id.clone(),
        public_key: key.public_der,
    };
    state.created.push((app, identity));
    drop(state);

    let Some(redirect) = manifest["redirect_url"].as_str() else {
        // Without a redirect_url GitHub shows the App's settings; the code is of no use to anyone then.
        return page(
            201,
            "Your GitHub App was created (no redirect_url in the manifest)",
        );
    };
    let Ok(mut location) = url::Url::parse(redirect) else {
        return page(422, "redirect_url is not a URL");
    };
    location.query_pairs_mut().append_pair("code", &code);
    if let Some(value) = &state_param {
        location.query_pairs_mut().append_pair("state", value);
    }
    Reply {
        status: 302,
        headers: vec![
            ("location".to_owned(), location.to_string()),
            (
                "content-type".to_owned(),
                "text/html; charset=utf-8".to_owned(),
            ),
        ],
        body: Vec::new(),
    }
}

/// The manifest of a form post, checked against the documented parameters; the errors otherwise.
fn read_manifest(request: &Req) -> Result<Value, Vec<String>> {
    let content_type = request.header("content-type").unwrap_or_default();
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        return Err(vec![format!(
            "a form post is application/x-www-form-urlencoded, not {content_type:?}"
        )]);
    }
    let fields: Vec<(String, String)> = url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect();
    let Some((_, text)) = fields.iter().find(|(name, _)| name == "manifest") else {
        return Err(vec!["the form has no `manifest` field".to_owned()]);
    };
    let manifest: Value = serde_json::from_str(text)
        .map_err(|err| vec![format!("the manifest is not JSON: {err}")])?;
    let mut errors = Vec::new();
    schema::validate(&manifest_schema(), &manifest, "manifest", &mut errors);
    if errors.is_empty() {
        Ok(manifest)
    } else {
        Err(errors)
    }
}

/// `POST /app-manifests/{code}/conversions`: the App made for `code`, once, within the hour.
pub(crate) fn convert(
    state: &mut State,
    code: &str,
    now: SystemTime,
    example: Value,
    web_url: &str,
) -> Option<Value> {
    let (app, _) = state.created.iter_mut().find(|(app, _)| app.code == code)?;
    if app.converted || now >= app.code_issued_at + CODE_LIFETIME {
        return None;
    }
    app.converted = true;
    let mut body = example;
    body["id"] = json!(app.id);
    body["slug"] = json!(app.slug);
    body["node_id"] = json!(format!("MDxOkludGVncmF0aW9u{}", app.id));
    body["client_id"] = json!(app.client_id);
    body["client_secret"] = json!(app.client_secret);
    body["webhook_secret"] = json!(app.webhook_secret);
    body["pem"] = json!(app.pem);
    body["name"] = app.manifest.get("name").cloned().unwrap_or(json!(app.slug));
    body["description"] = app
        .manifest
        .get("description")
        .cloned()
        .unwrap_or(json!(""));
    body["external_url"] = app.manifest["url"].clone();
    body["html_url"] = json!(format!("{web_url}/apps/{}", app.slug));
    body["created_at"] = json!(rfc3339(now));
    body["updated_at"] = json!(rfc3339(now));
    let mut permissions = app.manifest["default_permissions"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    // Every App can read metadata, whether or not the manifest asks.
    permissions
        .entry("metadata")
        .or_insert_with(|| json!("read"));
    body["permissions"] = Value::Object(permissions);
    body["events"] = app.manifest["default_events"].clone();
    if body["events"].is_null() {
        body["events"] = json!([]);
    }
    let organization = app.owner != SIGNED_IN_USER;
    let owner = &mut body["owner"];
    owner["login"] = json!(app.owner);
    owner["type"] = json!(if organization { "Organization" } else { "User" });
    owner["html_url"] = json!(format!("{web_url}/{}", app.owner));
    Some(body)
}

/// GitHub's slug of an App's name: lower case, runs of anything but letters and digits as one `-`.
fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn random_hex(bytes: usize) -> String {
    let mut random = vec![0_u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .expect("the system's random generator");
    random.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// A small HTML page, as GitHub's web side answers.
fn page(status: u16, message: &str) -> Reply {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Reply {
        status,
        headers: vec![(
            "content-type".to_owned(),
            "text/html; charset=utf-8".to_owned(),
        )],
        body: format!("<!DOCTYPE html><title>GitHub</title><p>{escaped}</p>\n").into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_slugs() {
        assert_eq!(route("POST", "/settings/apps/new"), Some(Owner::User));
        assert_eq!(
            route("POST", "/organizations/acme/settings/apps/new"),
            Some(Owner::Organization("acme".to_owned()))
        );
        assert_eq!(route("GET", "/settings/apps/new"), None);
        assert_eq!(route("POST", "/organizations//settings/apps/new"), None);
        assert_eq!(slug("Booty for Acme!"), "booty-for-acme");
        assert_eq!(slug("  x__y "), "x-y");
    }

    #[test]
    fn the_schema_refuses_what_github_does_not_document() {
        let check = |manifest: Value| {
            let mut errors = Vec::new();
            schema::validate(&manifest_schema(), &manifest, "manifest", &mut errors);
            errors
        };
        assert!(
            check(json!({"url": "https://x", "default_permissions": {"issues": "write"}}))
                .is_empty()
        );
        let errors = check(json!({"name": "x"}));
        assert!(
            errors.iter().any(|e| e.contains("\"url\" is missing")),
            "{errors:?}"
        );
        let errors = check(json!({"url": "https://x", "webhook_url": "https://y"}));
        assert!(
            errors
                .iter()
                .any(|e| e.contains("\"webhook_url\" is not allowed")),
            "{errors:?}"
        );
        let errors = check(json!({"url": "https://x", "default_permissions": {"issues": "rw"}}));
        assert!(
            errors.iter().any(|e| e.contains("is not one of")),
            "{errors:?}"
        );
        let errors = check(json!({"url": "https://x", "hook_attributes": {"active": true}}));
        assert!(
            errors.iter().any(|e| e.contains("\"url\" is missing")),
            "{errors:?}"
        );
    }
}
