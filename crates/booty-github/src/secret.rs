//! Secrets that print nothing: a [`Token`] (a personal access token or an installation token) and the
//! App's [`Jwt`].

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::time::Rfc3339;

/// A GitHub token: a personal access token, or an installation token with its expiry.
///
/// The secret is only reachable through [`Token::expose`]; `Debug` shows `Token(<redacted>)` (and the expiry,
/// which is not secret) and there is no `Display`. Nothing is assumed about a token's length or prefix
/// (GitHub is rolling out a new, longer installation-token format). Cloning is cheap.
///
/// ```
/// let token = booty_github::Token::new("ghp_example");
/// assert_eq!(token.expose(), "ghp_example");
/// assert!(!format!("{token:?}").contains("ghp_example"));
/// ```
#[derive(Clone)]
pub struct Token {
    secret: Arc<str>,
    expires_at: Option<SystemTime>,
}

impl Token {
    /// A token that does not expire as far as booty knows (a personal access token).
    pub fn new(secret: impl Into<String>) -> Self {
        Self {
            secret: Arc::from(secret.into()),
            expires_at: None,
        }
    }

    /// An installation token that GitHub says expires at `expires_at`.
    pub(crate) fn expiring(secret: String, expires_at: SystemTime) -> Self {
        Self {
            secret: Arc::from(secret),
            expires_at: Some(expires_at),
        }
    }

    /// The secret, to put in an `Authorization` header or hand to git (as the password of user
    /// `x-access-token`). Keep it out of logs, errors, URLs and files.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// When GitHub stops accepting it (GitHub's `expires_at`), for an installation token.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.expires_at
    }

    /// Whether two tokens are the same secret (the same mint), without comparing secrets byte by byte.
    pub(crate) fn same(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.secret, &other.secret)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expires_at {
            Some(at) => write!(f, "Token(<redacted>, expires {})", Rfc3339(at)),
            None => f.write_str("Token(<redacted>)"),
        }
    }
}

/// The App's JSON Web Token (RS256), what GitHub takes as `Authorization: Bearer` on the App's own
/// endpoints. `Debug` prints `Jwt(<redacted>)`; [`Jwt::expose`] gives the compact form.
#[derive(Clone)]
pub struct Jwt(String);

impl Jwt {
    pub(crate) fn new(compact: String) -> Self {
        Self(compact)
    }

    /// The compact form, `header.claims.signature`.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Jwt(<redacted>)")
    }
}

/// Secret text GitHub handed out that is not a token: an App's private key, its webhook secret, its OAuth
/// client secret. `Debug` prints `Secret(<redacted>)`, there is no `Display`; [`Secret::expose`] gives it
/// to whoever must store it.
#[derive(Clone, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// The text, to write where it belongs (a file only its owner reads). Keep it out of logs and errors.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}
