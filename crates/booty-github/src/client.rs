//! The [`GitHub`] client: one reqwest client, the credentials, the token cache, and the request loop every
//! call goes through (authorization, rate limits, retries, the JWT's clock and new tokens' replication).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

use crate::config::{API_VERSION, Config, Permissions, TOKEN_REFRESH_MARGIN};
use crate::credentials::{AppCredentials, Credentials};
use crate::error::{BuildError, Error, ErrorKind, FieldError, RateLimit};
use crate::names::{InstallationId, Repository};
use crate::observer::{self, ApiCall};
use crate::pagination::{Cursor, next_link, on_api};
use crate::retry::{self, Limited, MAX_RATE_LIMIT_WAITS};
use crate::secret::Token;
use crate::time::{Rfc3339, deserialize_rfc3339, from_unix_seconds, parse_http_date, unix_seconds};
use crate::tokens::{Minted, TokenCache, TokenKey};

/// A 401 this soon after its token was minted is GitHub's replication delay (octokit/auth-app.js waits out
/// the same window): the call is retried after 1 s, 2 s, ... while the token is younger than this.
pub const REPLICATION_WINDOW: Duration = Duration::from_secs(5);

/// A GitHub REST client for one set of [`Credentials`].
///
/// Cheap to clone (an `Arc`): share one per process. With App credentials it signs the App's JWTs, and
/// mints installation tokens narrowed to one repository and to [`Config::permissions`], cached per
/// (installation, repository, permissions) until [`crate::TOKEN_REFRESH_MARGIN`] before they expire, with
/// one mint in flight per key. Every call has a time limit, waits out rate limits up to
/// [`Config::max_rate_limit_wait`], and is retried after a 5xx or a transport failure when it is idempotent.
///
/// The calls themselves are on handles: [`GitHub::repository`] (comments, reactions, pull requests, a
/// repository hook's deliveries), [`GitHub::app`] (the App's hook deliveries) and [`GitHub::organization`].
#[derive(Clone)]
pub struct GitHub {
    shared: Arc<Shared>,
    max_wait: Duration,
}

struct Shared {
    http: reqwest::Client,
    base: Url,
    config: Config,
    credentials: Credentials,
    tokens: TokenCache,
    /// Seconds GitHub's clock is ahead of ours, learnt from a JWT it refused for its times.
    skew: AtomicI64,
    /// Primary limits known to be spent: no request with these credentials until then.
    exhausted: Mutex<HashMap<LimitKey, SystemTime>>,
}

/// Whose rate limit a request counts against.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum LimitKey {
    Anonymous,
    App,
    Token,
    Installation(InstallationId),
}

/// How a request is authorized.
#[derive(Clone, Debug)]
pub(crate) enum Auth {
    /// No `Authorization` header at all.
    Anonymous,
    /// The App's JWT.
    App,
    /// The configured token.
    Token,
    /// An installation token for this key.
    Installation(TokenKey),
}

impl Auth {
    fn limit_key(&self) -> LimitKey {
        match self {
            Self::Anonymous => LimitKey::Anonymous,
            Self::App => LimitKey::App,
            Self::Token => LimitKey::Token,
            Self::Installation(key) => LimitKey::Installation(key.installation),
        }
    }
}

/// One request as the loop sends it, as often as it takes.
pub(crate) struct Call {
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) body: Option<Vec<u8>>,
    /// Whether sending it twice does no harm, so a 5xx or a broken connection is retried.
    pub(crate) idempotent: bool,
    pub(crate) auth: Auth,
    /// How errors and log lines name the call when its path holds a secret (`POST
    /// /app-manifests/{code}/conversions`); otherwise the method and the path.
    pub(crate) shown_as: Option<&'static str>,
}

impl Call {
    pub(crate) fn get(url: Url, auth: Auth) -> Self {
        Self {
            method: Method::GET,
            url,
            body: None,
            idempotent: true,
            auth,
            shown_as: None,
        }
    }

    /// A call with a JSON body. A body that cannot be serialized is an error of the caller's types, which
    /// booty's own cannot produce.
    pub(crate) fn with_json(
        method: Method,
        url: Url,
        body: &impl serde::Serialize,
        idempotent: bool,
        auth: Auth,
    ) -> Result<Self, Error> {
        let body = serde_json::to_vec(body).map_err(|err| {
            Error::new(
                operation(&method, &url),
                ErrorKind::InvalidAnswer {
                    reason: format!("the request body does not serialize: {err}"),
                },
            )
        })?;
        Ok(Self {
            method,
            url,
            body: Some(body),
            idempotent,
            auth,
            shown_as: None,
        })
    }
}

fn operation(method: &Method, url: &Url) -> String {
    format!("{method} {}", url.path())
}

/// A successful answer.
pub(crate) struct Answer {
    operation: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// The body as `T`.
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|err| {
            self.error(ErrorKind::InvalidAnswer {
                reason: format!("the body does not decode: {err}"),
            })
        })
    }

    /// The body as `T`, for an answer that carries a secret: a failure names where, never what.
    pub(crate) fn secret_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|err| {
            self.error(ErrorKind::InvalidAnswer {
                reason: format!(
                    "the body does not decode ({:?} error at line {} column {})",
                    err.classify(),
                    err.line(),
                    err.column()
                ),
            })
        })
    }

    /// The server's time (`Date`).
    fn date(&self) -> Option<SystemTime> {
        date(&self.headers)
    }

    /// The next page's cursor, from `Link`.
    pub(crate) fn next(&self, base: &Url) -> Result<Option<Cursor>, Error> {
        let Some(link) = self
            .headers
            .get(header::LINK)
            .and_then(|link| link.to_str().ok())
            .and_then(next_link)
        else {
            return Ok(None);
        };
        match Url::parse(link) {
            Ok(url) if on_api(&url, base) => Ok(Some(Cursor(url))),
            _ => Err(self.error(ErrorKind::InvalidAnswer {
                reason: format!("the next page's link {link:?} is not on the api at {base}"),
            })),
        }
    }

    pub(crate) fn error(&self, kind: ErrorKind) -> Error {
        Error::new(self.operation.clone(), kind)
    }
}

fn date(headers: &HeaderMap) -> Option<SystemTime> {
    parse_http_date(headers.get(header::DATE)?.to_str().ok()?)
}

/// What one call has tried so far.
#[derive(Default)]
struct Tries {
    /// Retries after a 5xx or a transport failure.
    retries: u32,
    /// Retries after a 401 on a new installation token.
    replication_retries: u32,
    /// Whether the JWT's clock was corrected once already.
    clock_corrected: bool,
    waited: Waited,
}

/// An answer that is not a success.
struct Refusal {
    status: u16,
    message: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// How much rate-limit waiting one call has done.
#[derive(Default)]
struct Waited {
    total: Duration,
    waits: u32,
    secondary: u32,
}

impl GitHub {
    /// A client for `credentials`.
    ///
    /// # Errors
    /// [`BuildError`] for an API URL that is not `https://` (or `http://` to a loopback host), a user agent
    /// that is not a header value, or a TLS set-up that fails.
    pub fn new(credentials: Credentials, config: Config) -> Result<Self, BuildError> {
        let base = api_url(&config.api_url)?;
        let user_agent = HeaderValue::from_str(&config.user_agent)
            .map_err(|_| BuildError::UserAgent(config.user_agent.clone()))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static(API_VERSION),
        );
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls_config().map_err(BuildError::Tls)?)
            .user_agent(user_agent)
            .default_headers(headers)
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            // A redirect would carry the credentials somewhere the caller did not name.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(BuildError::Http)?;
        let max_wait = config.max_rate_limit_wait;
        Ok(Self {
            shared: Arc::new(Shared {
                http,
                base,
                config,
                credentials,
                tokens: TokenCache::default(),
                skew: AtomicI64::new(0),
                exhausted: Mutex::new(HashMap::new()),
            }),
            max_wait,
        })
    }

    /// The credentials the client acts with.
    pub fn credentials(&self) -> &Credentials {
        &self.shared.credentials
    }

    /// The REST API's base URL.
    pub fn api_url(&self) -> &str {
        self.shared.base.as_str()
    }

    /// The same client (sharing its connections and tokens) with another limit on rate-limit waits, for a
    /// caller that can afford more or less than [`Config::max_rate_limit_wait`].
    #[must_use]
    pub fn with_max_rate_limit_wait(&self, max_wait: Duration) -> Self {
        Self {
            shared: self.shared.clone(),
            max_wait,
        }
    }

    /// The installation of the App on `repository` (`GET /repos/{owner}/{repo}/installation`), for a
    /// payload that names none (a repository webhook's).
    ///
    /// # Errors
    /// [`ErrorKind::NotFound`] when the App is not installed there; [`ErrorKind::Credentials`] with a token
    /// client; any [`Error`] of the call.
    pub async fn installation_for_repository(
        &self,
        repository: &Repository,
    ) -> Result<InstallationId, Error> {
        #[derive(serde::Deserialize)]
        struct Installation {
            id: InstallationId,
        }
        let url = self.endpoint(&[
            "repos",
            repository.owner(),
            repository.name(),
            "installation",
        ]);
        let answer = self.send(&Call::get(url, Auth::App)).await?;
        Ok(answer.json::<Installation>()?.id)
    }

    /// An installation token for `repository` alone, with [`Config::permissions`]: the one in the cache
    /// while it has more than [`crate::TOKEN_REFRESH_MARGIN`] left, else a new one (concurrent callers share
    /// one mint). With token credentials, the configured token.
    ///
    /// For git over HTTPS, send it as the password of user `x-access-token`.
    ///
    /// # Errors
    /// Any [`Error`] of minting (`POST /app/installations/{id}/access_tokens`): an installation that does not
    /// exist ([`ErrorKind::NotFound`]), a repository or a permission it was not granted
    /// ([`ErrorKind::ValidationFailed`]), ...
    pub async fn token_for(
        &self,
        installation: InstallationId,
        repository: &Repository,
    ) -> Result<Token, Error> {
        self.installation_token(
            installation,
            Some(repository),
            &self.shared.config.permissions,
        )
        .await
    }

    /// An installation token narrowed to `repository` (or over the whole installation with `None`) and to
    /// `permissions`, cached like [`GitHub::token_for`]'s. With token credentials, the configured token.
    ///
    /// # Errors
    /// As [`GitHub::token_for`].
    pub async fn installation_token(
        &self,
        installation: InstallationId,
        repository: Option<&Repository>,
        permissions: &Permissions,
    ) -> Result<Token, Error> {
        if let Credentials::Token(token) = &self.shared.credentials {
            return Ok(token.clone());
        }
        let key = TokenKey {
            installation,
            repository: repository.cloned(),
            permissions: permissions.clone(),
        };
        Ok(self.minted(&key).await?.token)
    }

    /// The URL of an endpoint: the API URL's path, then each segment, percent-encoded.
    pub(crate) fn endpoint(&self, segments: &[&str]) -> Url {
        let mut url = self.shared.base.clone();
        url.path_segments_mut()
            .expect("the API URL was checked to be a base URL")
            .pop_if_empty()
            .extend(segments);
        url
    }

    /// The API URL, for checking links.
    pub(crate) fn base(&self) -> &Url {
        &self.shared.base
    }

    /// The permissions installation tokens ask for by default ([`Config::permissions`](crate::Config)).
    pub fn permissions(&self) -> &Permissions {
        &self.shared.config.permissions
    }

    /// The cached token for `key`, or a new one.
    async fn minted(&self, key: &TokenKey) -> Result<Minted, Error> {
        let clock = &self.shared.config.clock;
        self.shared
            .tokens
            .get(key, || clock.now(), || Box::pin(self.mint(key)))
            .await
    }

    /// `POST /app/installations/{id}/access_tokens`, narrowed to the key's repository and permissions.
    async fn mint(&self, key: &TokenKey) -> Result<Minted, Error> {
        #[derive(serde::Serialize)]
        struct Narrowing<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            repositories: Option<[&'a str; 1]>,
            permissions: &'a Permissions,
        }
        /// No `Debug`: it holds the token.
        #[derive(serde::Deserialize)]
        struct AccessToken {
            token: String,
            #[serde(deserialize_with = "deserialize_rfc3339")]
            expires_at: SystemTime,
        }
        let installation = key.installation.to_string();
        let url = self.endpoint(&["app", "installations", &installation, "access_tokens"]);
        let narrowing = Narrowing {
            repositories: key.repository.as_ref().map(|repo| [repo.name()]),
            permissions: &key.permissions,
        };
        // Minting twice does no harm (the first token just goes unused), so it is retried like a GET.
        let call = Call::with_json(Method::POST, url, &narrowing, true, Auth::App)?;
        let answer = self.send(&call).await?;
        let minted: AccessToken = answer.secret_json()?;
        let now = self.shared.config.clock.now();
        // How long GitHub gives the token, by GitHub's clock, counted from now by ours.
        let lifetime = minted
            .expires_at
            .duration_since(answer.date().unwrap_or(now))
            .unwrap_or_default();
        let refresh_at = (now + lifetime)
            .checked_sub(TOKEN_REFRESH_MARGIN)
            .unwrap_or(now);
        info!(
            installation = %key.installation,
            repository = %key.repository.as_ref().map_or_else(|| "*".to_owned(), ToString::to_string),
            expires_at = %Rfc3339(minted.expires_at),
            "installation_token_minted"
        );
        Ok(Minted {
            token: Token::expiring(minted.token, minted.expires_at),
            issued_at: now,
            refresh_at,
        })
    }

    /// The App's credentials, or the error for a call that needs them.
    fn app_credentials(&self, operation: &str) -> Result<&AppCredentials, Error> {
        let has = match &self.shared.credentials {
            Credentials::App(app) => return Ok(app),
            Credentials::Token(_) => "a token",
            Credentials::Anonymous => "no credentials",
        };
        Err(Error::new(
            operation,
            ErrorKind::Credentials {
                reason: format!("this call needs github app credentials, and the client has {has}"),
                source: None,
            },
        ))
    }

    /// The `Authorization` header for `auth`, and when its installation token was minted.
    async fn authorization(
        &self,
        auth: &Auth,
        operation: &str,
    ) -> Result<(Option<HeaderValue>, Option<Minted>), Error> {
        let (secret, minted) = match auth {
            Auth::Anonymous => return Ok((None, None)),
            Auth::App => {
                let now = self.shared.config.clock.now();
                let skew = self.shared.skew.load(Ordering::Relaxed);
                let github_now = from_unix_seconds(unix_seconds(now).saturating_add(skew));
                let jwt = self
                    .app_credentials(operation)?
                    .jwt(github_now)
                    .map_err(|err| {
                        Error::new(
                            operation,
                            ErrorKind::Credentials {
                                reason: "signing the app's jwt failed".to_owned(),
                                source: Some(Arc::new(err)),
                            },
                        )
                    })?;
                (jwt.expose().to_owned(), None)
            }
            Auth::Token => match &self.shared.credentials {
                Credentials::Token(token) => (token.expose().to_owned(), None),
                Credentials::App(_) | Credentials::Anonymous => {
                    let has = if matches!(self.shared.credentials, Credentials::App(_)) {
                        "github app credentials"
                    } else {
                        "no credentials"
                    };
                    return Err(Error::new(
                        operation,
                        ErrorKind::Credentials {
                            reason: format!("this call needs a token, and the client has {has}"),
                            source: None,
                        },
                    ));
                }
            },
            Auth::Installation(key) => {
                let minted = self.minted(key).await?;
                (minted.token.expose().to_owned(), Some(minted))
            }
        };
        let mut value = HeaderValue::from_str(&format!("Bearer {secret}")).map_err(|_| {
            Error::new(
                operation,
                ErrorKind::Credentials {
                    reason: "the token is not a valid http header value".to_owned(),
                    source: None,
                },
            )
        })?;
        value.set_sensitive(true);
        Ok((Some(value), minted))
    }

    /// Sends `call` until it succeeds or fails for good: see the type's documentation for the rules.
    pub(crate) async fn send(&self, call: &Call) -> Result<Answer, Error> {
        let operation = call
            .shown_as
            .map_or_else(|| operation(&call.method, &call.url), str::to_owned);
        let mut tries = Tries::default();
        loop {
            let now = self.shared.config.clock.now();
            if let Some(until) = self.shared.exhausted_until(call.auth.limit_key(), now) {
                let limited = Limited {
                    limit: RateLimit::Primary,
                    until,
                };
                self.wait_out(limited, &mut tries.waited, &operation)
                    .await?;
            }
            let (authorization, minted) = self.authorization(&call.auth, &operation).await?;
            let (status, headers, body) = match self.exchange(call, authorization).await {
                Ok(answer) => answer,
                Err(err) => {
                    self.after_transport_failure(call, &operation, err, &mut tries)
                        .await?;
                    continue;
                }
            };
            debug!(%operation, status, "github_answered");
            if let Some(observer) = &self.shared.config.observer {
                let template = observer::template(call.method.as_str(), call.url.path());
                let mut answered = ApiCall::new(&template, status);
                answered.rate_limit_remaining = headers
                    .get("x-ratelimit-remaining")
                    .and_then(|value| value.to_str().ok()?.parse().ok());
                observer.answered(&answered);
            }
            let now = self.shared.config.clock.now();
            self.shared
                .note_exhausted(call.auth.limit_key(), &headers, now);
            if (200..300).contains(&status) {
                return Ok(Answer {
                    operation,
                    headers,
                    body,
                });
            }
            let refusal = Refusal {
                status,
                message: message(&body),
                headers,
                body,
            };
            self.after_refusal(call, &operation, refusal, minted, &mut tries)
                .await?;
        }
    }

    /// One request and its whole answer.
    async fn exchange(
        &self,
        call: &Call,
        authorization: Option<HeaderValue>,
    ) -> Result<(u16, HeaderMap, Vec<u8>), reqwest::Error> {
        let mut request = self
            .shared
            .http
            .request(call.method.clone(), call.url.clone());
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        if let Some(body) = &call.body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await?.to_vec();
        Ok((status, headers, body))
    }

    /// After a transport failure: `Ok` to try again (after a backoff), or the error.
    async fn after_transport_failure(
        &self,
        call: &Call,
        operation: &str,
        err: reqwest::Error,
        tries: &mut Tries,
    ) -> Result<(), Error> {
        let config = &self.shared.config;
        // A connection that was never made carried nothing, so any call may go again.
        let never_sent = err.is_connect();
        let kind = transport(err, config.timeout);
        if (never_sent || call.idempotent) && tries.retries < config.max_retries {
            tries.retries += 1;
            let delay = retry::backoff(tries.retries);
            debug!(%operation, retry = tries.retries, delay_ms = delay.as_millis(), error = %kind, "github_retrying");
            config.clock.sleep(delay).await;
            return Ok(());
        }
        Err(Error::new(operation, kind))
    }

    /// After an answer that is not a success: `Ok` to try again (after what it takes), or the error.
    async fn after_refusal(
        &self,
        call: &Call,
        operation: &str,
        refusal: Refusal,
        minted: Option<Minted>,
        tries: &mut Tries,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        let clock = &shared.config.clock;
        let Refusal {
            status,
            message,
            headers,
            body,
        } = refusal;
        let kind = match status {
            401 => {
                if matches!(call.auth, Auth::App)
                    && !tries.clock_corrected
                    && (message.contains("('exp')") || message.contains("('iat')"))
                    && let Some(github_now) = date(&headers)
                {
                    // octokit/auth-app.js: take GitHub's time from its answer and try once more.
                    tries.clock_corrected = true;
                    let skew = unix_seconds(github_now) - unix_seconds(clock.now());
                    shared.skew.store(skew, Ordering::Relaxed);
                    warn!(%operation, skew_secs = skew, "github_clock_skew");
                    return Ok(());
                }
                if let (Auth::Installation(key), Some(minted)) = (&call.auth, minted) {
                    let age = clock
                        .now()
                        .duration_since(minted.issued_at)
                        .unwrap_or_default();
                    if age < REPLICATION_WINDOW {
                        tries.replication_retries += 1;
                        let delay = Duration::from_secs(tries.replication_retries.into());
                        debug!(%operation, retry = tries.replication_retries, delay_ms = delay.as_millis(), "installation_token_not_replicated");
                        clock.sleep(delay).await;
                        return Ok(());
                    }
                    shared.tokens.forget(key, &minted.token);
                }
                ErrorKind::Unauthorized { message }
            }
            403 | 429 => {
                let now = clock.now();
                if let Some(limited) =
                    retry::classify(status, &headers, &message, now, tries.waited.secondary)
                {
                    return self.wait_out(limited, &mut tries.waited, operation).await;
                }
                let permission = headers
                    .get("x-accepted-github-permissions")
                    .and_then(|value| value.to_str().ok())
                    .filter(|value| !value.is_empty())
                    .map(str::to_owned);
                ErrorKind::Forbidden {
                    message,
                    permission,
                }
            }
            500..=599 => {
                if call.idempotent && tries.retries < shared.config.max_retries {
                    tries.retries += 1;
                    let now = clock.now();
                    let delay = retry::retry_after(&headers, now)
                        .and_then(|at| at.duration_since(now).ok())
                        .filter(|delay| *delay <= self.max_wait)
                        .unwrap_or_else(|| retry::backoff(tries.retries));
                    debug!(%operation, status, retry = tries.retries, delay_ms = delay.as_millis(), "github_retrying");
                    clock.sleep(delay).await;
                    return Ok(());
                }
                ErrorKind::Server { status, message }
            }
            404 => ErrorKind::NotFound { message },
            422 => ErrorKind::ValidationFailed {
                message,
                errors: field_errors(&body),
            },
            _ => ErrorKind::Status { status, message },
        };
        Err(Error::new(operation, kind))
    }

    /// Waits until `limited` lifts, or fails if that is beyond what the call may wait.
    async fn wait_out(
        &self,
        limited: Limited,
        waited: &mut Waited,
        operation: &str,
    ) -> Result<(), Error> {
        let clock = &self.shared.config.clock;
        let remaining = limited
            .until
            .duration_since(clock.now())
            .unwrap_or_default();
        // A primary reset is a whole second: wait into the next one.
        let wait = match limited.limit {
            RateLimit::Primary => remaining + Duration::from_secs(1),
            _ => remaining,
        };
        if waited.total + wait > self.max_wait || waited.waits >= MAX_RATE_LIMIT_WAITS {
            return Err(Error::new(
                operation,
                ErrorKind::RateLimited {
                    limit: limited.limit,
                    until: limited.until,
                    max_wait: self.max_wait,
                },
            ));
        }
        warn!(
            %operation,
            limit = %limited.limit,
            until = %Rfc3339(limited.until),
            wait_secs = wait.as_secs(),
            "github_rate_limited"
        );
        waited.total += wait;
        waited.waits += 1;
        if limited.limit == RateLimit::Secondary {
            waited.secondary += 1;
        }
        clock.sleep(wait).await;
        Ok(())
    }
}

impl Shared {
    fn exhausted_until(&self, key: LimitKey, now: SystemTime) -> Option<SystemTime> {
        let mut exhausted = self
            .exhausted
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match exhausted.get(&key) {
            Some(until) if *until > now => Some(*until),
            Some(_) => {
                exhausted.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Notes a spent primary limit (`x-ratelimit-remaining: 0`) from any answer.
    fn note_exhausted(&self, key: LimitKey, headers: &HeaderMap, now: SystemTime) {
        if let Some(until) = retry::exhausted(headers).filter(|until| *until > now) {
            self.exhausted
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, until);
        }
    }
}

impl fmt::Debug for GitHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHub")
            .field("api_url", &self.shared.base.as_str())
            .field("credentials", &self.shared.credentials)
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

/// The kind of a transport failure.
fn transport(err: reqwest::Error, timeout: Duration) -> ErrorKind {
    if err.is_timeout() {
        ErrorKind::Timeout { timeout }
    } else {
        ErrorKind::Connection {
            source: Arc::new(err.without_url()),
        }
    }
}

/// GitHub's `message`, or the start of a body that is not GitHub's JSON (a proxy's error page).
fn message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Message {
        message: String,
    }
    if let Ok(Message { message }) = serde_json::from_slice(body) {
        return message;
    }
    let text = String::from_utf8_lossy(body);
    let mut shown: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > 200 {
        shown.push('…');
    }
    shown.trim().to_owned()
}

/// A 422's `errors[]`: objects, or plain strings on some endpoints.
fn field_errors(body: &[u8]) -> Vec<FieldError> {
    #[derive(serde::Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<serde_json::Value>,
    }
    let Ok(Errors { errors }) = serde_json::from_slice(body) else {
        return Vec::new();
    };
    errors
        .into_iter()
        .map(|error| match error {
            serde_json::Value::String(message) => FieldError {
                message: Some(message),
                ..FieldError::default()
            },
            other => serde_json::from_value(other).unwrap_or_default(),
        })
        .collect()
}

/// Checks the API URL: absolute, `https://` (or `http://` to loopback), nothing but a path.
fn api_url(text: &str) -> Result<Url, BuildError> {
    let invalid = |reason| BuildError::ApiUrl {
        url: text.to_owned(),
        reason,
    };
    let url = Url::parse(text.trim_end_matches('/')).map_err(|_| invalid("not an absolute url"))?;
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err(invalid("not an absolute url"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials do not belong in the url"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query or fragment does not belong in the url"));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(invalid(
            "plain http is only for a loopback host: credentials would travel in clear",
        )),
        _ => Err(invalid("the scheme must be https")),
    }
}

fn is_loopback(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// rustls with the process-default crypto provider (*ring*, the only one booty enables, unless the
/// application installed another) and the platform's certificate verifier, as booty-workspace's clones use.
fn tls_config() -> Result<rustls::ClientConfig, rustls::Error> {
    let builder = rustls::ClientConfig::builder();
    let verifier = rustls_platform_verifier::Verifier::new(builder.crypto_provider().clone())?;
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_urls_are_https_or_loopback_http() {
        assert_eq!(
            api_url("https://api.github.com/").unwrap().as_str(),
            "https://api.github.com/"
        );
        assert_eq!(
            api_url("https://ghe.example.com/api/v3/").unwrap().path(),
            "/api/v3"
        );
        assert!(api_url("http://127.0.0.1:8080/api/v3").is_ok());
        assert!(api_url("http://[::1]:8080").is_ok());
        assert!(api_url("http://localhost:1").is_ok());
        for (bad, reason) in [
            ("http://api.github.com", "plain http"),
            ("ftp://api.github.com", "scheme"),
            ("https://user:pw@api.github.com", "credentials"),
            ("https://api.github.com/?x=1", "query"),
            ("api.github.com", "absolute"),
        ] {
            let err = api_url(bad).unwrap_err().to_string();
            assert!(err.contains(reason), "{bad}: {err}");
        }
    }

    #[test]
    fn endpoints_keep_the_base_path_and_encode_segments() {
        let config = Config {
            api_url: "https://ghe.example.com/api/v3".to_owned(),
            ..Config::default()
        };
        let github = GitHub::new(Credentials::Token(Token::new("t")), config).unwrap();
        assert_eq!(
            github.endpoint(&["repos", "o", "r", "pulls"]).as_str(),
            "https://ghe.example.com/api/v3/repos/o/r/pulls"
        );
        assert_eq!(
            github.endpoint(&["a b", "c/d"]).path(),
            "/api/v3/a%20b/c%2Fd"
        );
        let dotcom = GitHub::new(Credentials::Token(Token::new("t")), Config::default()).unwrap();
        assert_eq!(
            dotcom.endpoint(&["app", "hook", "deliveries"]).as_str(),
            "https://api.github.com/app/hook/deliveries"
        );
    }

    #[test]
    fn messages_are_githubs_or_a_clean_excerpt() {
        assert_eq!(
            message(br#"{"message":"Not Found","status":"404"}"#),
            "Not Found"
        );
        assert_eq!(
            message(b"<html>\n<b>502</b>\n</html>"),
            "<html> <b>502</b> </html>"
        );
        assert_eq!(message(&[b'x'; 300]).chars().count(), 201);
        let errors = field_errors(
            br#"{"message":"Validation Failed","errors":[{"resource":"PullRequest","field":"head","code":"invalid"},"plain"]}"#,
        );
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field.as_deref(), Some("head"));
        assert_eq!(errors[1].message.as_deref(), Some("plain"));
    }
}
