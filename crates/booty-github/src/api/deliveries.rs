//! Webhook deliveries, for recovering what booty missed: list them page by page (newest first), read one
//! with its payload, ask GitHub to deliver one again. The App's hook, a repository's or an organization's.

use std::time::SystemTime;

use reqwest::{Method, Url};
use serde::Deserialize;

use crate::api::{AppClient, OrganizationClient, RepositoryClient};
use crate::client::{Auth, Call, GitHub};
use crate::error::Error;
use crate::names::{DeliveryId, HookId};
use crate::pagination::{Cursor, Page};
use crate::time::{deserialize_rfc3339, deserialize_rfc3339_opt};

/// One delivery of a webhook, as the list shows it.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct HookDelivery {
    /// This attempt's id.
    pub id: DeliveryId,
    /// The event's id, shared by every hook's delivery of it and kept across redeliveries: the
    /// `X-GitHub-Delivery` header booty dedupes on.
    pub guid: String,
    /// When it was sent.
    #[serde(deserialize_with = "deserialize_rfc3339")]
    pub delivered_at: SystemTime,
    /// Whether it is a redelivery.
    pub redelivery: bool,
    /// How long the receiver took, in seconds.
    pub duration: f64,
    /// `OK` when the receiver answered 2xx in time; otherwise what went wrong.
    pub status: String,
    /// The receiver's status code (0 when it did not answer).
    pub status_code: u16,
    /// The event (`issues`, ...).
    pub event: String,
    /// The event's action (`labeled`, ...).
    pub action: Option<String>,
    /// The App installation it was for.
    pub installation_id: Option<u64>,
    /// The repository it was about.
    pub repository_id: Option<u64>,
    /// When GitHub throttled it, if it did.
    #[serde(default, deserialize_with = "deserialize_rfc3339_opt")]
    pub throttled_at: Option<SystemTime>,
}

impl HookDelivery {
    /// Whether the receiver took it (GitHub's `status` is `OK`).
    pub fn succeeded(&self) -> bool {
        self.status == "OK"
    }
}

/// One delivery with what was sent and answered.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct HookDeliveryDetail {
    /// What the list shows.
    #[serde(flatten)]
    pub delivery: HookDelivery,
    /// The URL it was sent to.
    pub url: Option<String>,
    /// The request GitHub sent.
    pub request: DeliveryRequest,
    /// What the receiver answered.
    pub response: DeliveryResponse,
}

/// The request of a delivery.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct DeliveryRequest {
    /// Its headers (`X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256`, ...).
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    /// The webhook payload.
    pub payload: Option<serde_json::Value>,
}

/// The receiver's answer to a delivery.
#[derive(Clone, Debug, Deserialize)]
#[non_exhaustive]
pub struct DeliveryResponse {
    /// Its headers.
    pub headers: Option<serde_json::Map<String, serde_json::Value>>,
    /// Its body.
    pub payload: Option<String>,
}

/// Which hook, and how its calls are authorized.
struct Hook<'a> {
    github: &'a GitHub,
    /// The path up to `deliveries`.
    path: Vec<&'a str>,
    auth: Auth,
}

impl Hook<'_> {
    fn url(&self, rest: &[&str]) -> Url {
        let mut segments = self.path.clone();
        segments.push("deliveries");
        segments.extend_from_slice(rest);
        self.github.endpoint(&segments)
    }

    async fn list(self, page: Option<&Cursor>) -> Result<Page<HookDelivery>, Error> {
        let url = if let Some(cursor) = page {
            cursor.0.clone()
        } else {
            let mut url = self.url(&[]);
            url.query_pairs_mut().append_pair("per_page", "100");
            url
        };
        let answer = self.github.send(&Call::get(url, self.auth)).await?;
        Ok(Page {
            items: answer.json()?,
            next: answer.next(self.github.base())?,
        })
    }

    async fn get(self, delivery: DeliveryId) -> Result<HookDeliveryDetail, Error> {
        let url = self.url(&[&delivery.to_string()]);
        self.github.send(&Call::get(url, self.auth)).await?.json()
    }

    /// Not retried after a 5xx or a broken connection: GitHub may already be delivering it again.
    async fn redeliver(self, delivery: DeliveryId) -> Result<(), Error> {
        let url = self.url(&[&delivery.to_string(), "attempts"]);
        let call = Call {
            method: Method::POST,
            url,
            body: None,
            idempotent: false,
            auth: self.auth,
            shown_as: None,
        };
        self.github.send(&call).await.map(drop)
    }
}

impl AppClient {
    fn hook(&self) -> Hook<'_> {
        Hook {
            github: &self.github,
            path: vec!["app", "hook"],
            auth: Auth::App,
        }
    }

    /// One page of the App webhook's deliveries, newest first, 100 a page: `None` for the first page, then
    /// [`Page::next`] (GitHub's cursor). GitHub keeps them for 3 days (7 on Enterprise Server 3.16+).
    ///
    /// # Errors
    /// Any [`Error`] of `GET /app/hook/deliveries`.
    pub async fn list_hook_deliveries(
        &self,
        page: Option<&Cursor>,
    ) -> Result<Page<HookDelivery>, Error> {
        self.hook().list(page).await
    }

    /// One delivery of the App's webhook, with its request and response.
    ///
    /// # Errors
    /// Any [`Error`] of `GET /app/hook/deliveries/{delivery}`.
    pub async fn hook_delivery(&self, delivery: DeliveryId) -> Result<HookDeliveryDetail, Error> {
        self.hook().get(delivery).await
    }

    /// Asks GitHub to deliver `delivery` again (same `guid`, a new id).
    ///
    /// # Errors
    /// Any [`Error`] of `POST /app/hook/deliveries/{delivery}/attempts`.
    pub async fn redeliver(&self, delivery: DeliveryId) -> Result<(), Error> {
        self.hook().redeliver(delivery).await
    }
}

impl RepositoryClient {
    async fn hook<'a>(&'a self, hook: &'a str) -> Result<Hook<'a>, Error> {
        Ok(Hook {
            github: &self.github,
            path: vec![
                "repos",
                self.repository.owner(),
                self.repository.name(),
                "hooks",
            ]
            .into_iter()
            .chain([hook])
            .collect(),
            auth: self.auth().await?,
        })
    }

    /// One page of the deliveries of this repository's webhook `hook`, as
    /// [`AppClient::list_hook_deliveries`]. An installation token needs `repository_hooks: read`
    /// ([`RepositoryClient::with_permissions`]).
    ///
    /// # Errors
    /// Any [`Error`] of `GET /repos/{owner}/{repo}/hooks/{hook}/deliveries`.
    pub async fn list_hook_deliveries(
        &self,
        hook: HookId,
        page: Option<&Cursor>,
    ) -> Result<Page<HookDelivery>, Error> {
        let hook = hook.to_string();
        self.hook(&hook).await?.list(page).await
    }

    /// One delivery of this repository's webhook `hook`.
    ///
    /// # Errors
    /// Any [`Error`] of `GET /repos/{owner}/{repo}/hooks/{hook}/deliveries/{delivery}`.
    pub async fn hook_delivery(
        &self,
        hook: HookId,
        delivery: DeliveryId,
    ) -> Result<HookDeliveryDetail, Error> {
        let hook = hook.to_string();
        self.hook(&hook).await?.get(delivery).await
    }

    /// Asks GitHub to deliver `delivery` of this repository's webhook `hook` again (`repository_hooks:
    /// write`).
    ///
    /// # Errors
    /// Any [`Error`] of `POST /repos/{owner}/{repo}/hooks/{hook}/deliveries/{delivery}/attempts`.
    pub async fn redeliver(&self, hook: HookId, delivery: DeliveryId) -> Result<(), Error> {
        let hook = hook.to_string();
        self.hook(&hook).await?.redeliver(delivery).await
    }
}

impl OrganizationClient {
    fn hook<'a>(&'a self, hook: &'a str) -> Result<Hook<'a>, Error> {
        let github = &self.github;
        let path = vec!["orgs", self.organization.as_str(), "hooks", hook];
        let auth = self.auth(&format!(
            "GET /orgs/{}/hooks/{hook}/deliveries",
            self.organization
        ))?;
        Ok(Hook { github, path, auth })
    }

    /// One page of the deliveries of this organization's webhook `hook`, as
    /// [`AppClient::list_hook_deliveries`].
    ///
    /// # Errors
    /// Any [`Error`] of `GET /orgs/{org}/hooks/{hook}/deliveries`.
    pub async fn list_hook_deliveries(
        &self,
        hook: HookId,
        page: Option<&Cursor>,
    ) -> Result<Page<HookDelivery>, Error> {
        let hook = hook.to_string();
        self.hook(&hook)?.list(page).await
    }

    /// One delivery of this organization's webhook `hook`.
    ///
    /// # Errors
    /// Any [`Error`] of `GET /orgs/{org}/hooks/{hook}/deliveries/{delivery}`.
    pub async fn hook_delivery(
        &self,
        hook: HookId,
        delivery: DeliveryId,
    ) -> Result<HookDeliveryDetail, Error> {
        let hook = hook.to_string();
        self.hook(&hook)?.get(delivery).await
    }

    /// Asks GitHub to deliver `delivery` of this organization's webhook `hook` again.
    ///
    /// # Errors
    /// Any [`Error`] of `POST /orgs/{org}/hooks/{hook}/deliveries/{delivery}/attempts`.
    pub async fn redeliver(&self, hook: HookId, delivery: DeliveryId) -> Result<(), Error> {
        let hook = hook.to_string();
        self.hook(&hook)?.redeliver(delivery).await
    }
}
