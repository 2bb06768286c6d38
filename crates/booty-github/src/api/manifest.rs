//! The last step of GitHub's App manifest flow: a one-time code exchanged for the App GitHub made.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Deserialize;

use crate::api::issues::Account;
use crate::client::{Auth, Call, GitHub};
use crate::error::Error;
use crate::secret::Secret;

/// A GitHub App made from a manifest, as `POST /app-manifests/{code}/conversions` hands it out: its ids,
/// and its secrets (the only time GitHub shows the private key).
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct ManifestApp {
    /// The numeric app id.
    pub id: u64,
    /// The slug, the App's name in URLs (`https://github.com/apps/{slug}`; its bot is `{slug}[bot]`).
    pub slug: String,
    /// The client id (`Iv23li...`), what GitHub recommends as the JWT's `iss`.
    pub client_id: String,
    /// The App's name.
    pub name: String,
    /// The App's public page (`https://github.com/apps/{slug}`); installing is `{html_url}/installations/new`.
    pub html_url: String,
    /// The account that owns the App (a user or an organization).
    pub owner: Option<Account>,
    /// The permissions it was made with (`issues` → `write`, ...).
    #[serde(default)]
    pub permissions: BTreeMap<String, String>,
    /// The events it subscribes to.
    #[serde(default)]
    pub events: Vec<String>,
    /// The private key, PEM (PKCS#1), as GitHub hands it out.
    pub pem: Secret,
    /// The webhook's secret GitHub generated (none when the manifest had no webhook).
    pub webhook_secret: Option<Secret>,
    /// The OAuth client secret.
    pub client_secret: Secret,
}

/// How the call is named in errors and log lines: its path holds the code, which is a credential until
/// it is used.
const CONVERSION: &str = "POST /app-manifests/{code}/conversions";

impl GitHub {
    /// Exchanges the `code` GitHub's redirect carried at the end of the App manifest flow for the App it
    /// made (`POST /app-manifests/{code}/conversions`). It needs no credentials (the code is one) and sends
    /// none, whatever the client holds; it is not retried after a 5xx or a broken connection, since a code
    /// works once. Errors name the call without the code.
    ///
    /// # Errors
    /// [`crate::ErrorKind::NotFound`] when GitHub does not know the code: it expired (an hour after GitHub
    /// issued it) or was used already; any other [`Error`] of the call.
    pub async fn create_app_from_manifest(&self, code: &str) -> Result<ManifestApp, Error> {
        let url = self.endpoint(&["app-manifests", code, "conversions"]);
        let call = Call {
            method: Method::POST,
            url,
            body: None,
            idempotent: false,
            auth: Auth::Anonymous,
            shown_as: Some(CONVERSION),
        };
        self.send(&call).await?.secret_json()
    }
}
