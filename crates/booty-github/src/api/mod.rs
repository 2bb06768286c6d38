//! The handles calls are made on, and the types of what they send and get: [`RepositoryClient`] (one
//! repository, with a token narrowed to it), [`AppClient`] (the App itself, with its JWT) and
//! [`OrganizationClient`].

pub(crate) mod deliveries;
pub(crate) mod git;
pub(crate) mod issues;
pub(crate) mod manifest;
pub(crate) mod pulls;

use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::client::{Auth, GitHub};
use crate::config::Permissions;
use crate::credentials::Credentials;
use crate::error::{Error, ErrorKind};
use crate::names::{self, InstallationId, NameError, Repository};
use crate::secret::Token;
use crate::tokens::TokenKey;

/// Calls on one repository: issue comments and reactions, pull requests, the repository's webhook
/// deliveries. Made by [`GitHub::repository`]; cheap to clone.
///
/// With App credentials every call carries an installation token narrowed to this repository and to the
/// handle's permissions ([`crate::Config::permissions`] unless [`RepositoryClient::with_permissions`] says
/// otherwise). Without an installation id, the first call that needs one looks it up once
/// ([`GitHub::installation_for_repository`]). With a token, every call carries the token.
#[derive(Clone, Debug)]
pub struct RepositoryClient {
    pub(crate) github: GitHub,
    pub(crate) repository: Repository,
    installation: Arc<OnceCell<InstallationId>>,
    permissions: Permissions,
}

/// The App's own calls, authorized with its JWT: its webhook's deliveries. Made by [`GitHub::app`].
#[derive(Clone, Debug)]
pub struct AppClient {
    pub(crate) github: GitHub,
}

/// Calls on an organization: its webhooks' deliveries. Made by [`GitHub::organization`]; with App
/// credentials they carry a token over the whole installation with the handle's permissions (GitHub's
/// `organization_hooks`, which [`crate::Permissions::booty`] does not include).
#[derive(Clone, Debug)]
pub struct OrganizationClient {
    pub(crate) github: GitHub,
    pub(crate) organization: String,
    installation: Option<InstallationId>,
    permissions: Permissions,
}

impl GitHub {
    /// Calls on `repository`, as `installation` when the client is an App (looked up on first use when
    /// `None`).
    pub fn repository(
        &self,
        repository: Repository,
        installation: Option<InstallationId>,
    ) -> RepositoryClient {
        RepositoryClient {
            github: self.clone(),
            repository,
            installation: Arc::new(OnceCell::new_with(installation)),
            permissions: self.permissions().clone(),
        }
    }

    /// The App's own calls (JWT).
    pub fn app(&self) -> AppClient {
        AppClient {
            github: self.clone(),
        }
    }

    /// Calls on `organization`, as `installation` when the client is an App.
    ///
    /// # Errors
    /// When `organization` is not a valid login.
    pub fn organization(
        &self,
        organization: &str,
        installation: Option<InstallationId>,
    ) -> Result<OrganizationClient, NameError> {
        Ok(OrganizationClient {
            github: self.clone(),
            organization: names::organization(organization)?,
            installation,
            permissions: Permissions::none().with("organization_hooks", crate::Access::Write),
        })
    }
}

impl RepositoryClient {
    /// The same handle with tokens narrowed to `permissions` instead (say, with `repository_hooks` for the
    /// repository's webhook deliveries).
    #[must_use]
    pub fn with_permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    /// The repository.
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The token this handle's calls carry: an installation token for this repository, or the client's
    /// token. For git over HTTPS (user `x-access-token`).
    ///
    /// # Errors
    /// As [`GitHub::token_for`], and the installation lookup when it was not given.
    pub async fn token(&self) -> Result<Token, Error> {
        match self.github.credentials() {
            Credentials::Token(token) => Ok(token.clone()),
            Credentials::Anonymous => Err(Error::new(
                format!("a token for {}", self.repository),
                ErrorKind::Credentials {
                    reason: "the client has no credentials".to_owned(),
                    source: None,
                },
            )),
            Credentials::App(_) => {
                let installation = self.installation().await?;
                self.github
                    .installation_token(installation, Some(&self.repository), &self.permissions)
                    .await
            }
        }
    }

    /// The installation, given or looked up once.
    async fn installation(&self) -> Result<InstallationId, Error> {
        self.installation
            .get_or_try_init(|| self.github.installation_for_repository(&self.repository))
            .await
            .copied()
    }

    pub(crate) async fn auth(&self) -> Result<Auth, Error> {
        Ok(match self.github.credentials() {
            // Without credentials, sending fails and says so.
            Credentials::Token(_) | Credentials::Anonymous => Auth::Token,
            Credentials::App(_) => Auth::Installation(TokenKey {
                installation: self.installation().await?,
                repository: Some(self.repository.clone()),
                permissions: self.permissions.clone(),
            }),
        })
    }

    /// `repos/{owner}/{repo}/...`.
    pub(crate) fn endpoint(&self, rest: &[&str]) -> reqwest::Url {
        let mut segments = vec!["repos", self.repository.owner(), self.repository.name()];
        segments.extend_from_slice(rest);
        self.github.endpoint(&segments)
    }
}

impl OrganizationClient {
    /// The same handle with tokens narrowed to `permissions` instead.
    #[must_use]
    pub fn with_permissions(mut self, permissions: Permissions) -> Self {
        self.permissions = permissions;
        self
    }

    pub(crate) fn auth(&self, operation: &str) -> Result<Auth, Error> {
        match (self.github.credentials(), self.installation) {
            (Credentials::Token(_) | Credentials::Anonymous, _) => Ok(Auth::Token),
            (Credentials::App(_), Some(installation)) => Ok(Auth::Installation(TokenKey {
                installation,
                repository: None,
                permissions: self.permissions.clone(),
            })),
            (Credentials::App(_), None) => Err(Error::new(
                operation,
                ErrorKind::Credentials {
                    reason: format!(
                        "calls on organization {} with github app credentials need its installation id",
                        self.organization
                    ),
                    source: None,
                },
            )),
        }
    }
}
