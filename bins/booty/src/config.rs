//! Configuration: defaults < `booty.toml` (or `--config FILE`) < `BOOTY_*` environment, validated before
//! anything listens.
//!
//! [`RawConfig`] is what figment extracts (every key of design.md, unknown keys rejected); [`Config`] is the
//! validated result the rest of the binary uses, with secrets read from their files and wrapped in
//! [`Secret`] so they never reach a log line or `Debug` output.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use booty_edge::{EdgeConfig, Limits};
use booty_event::{Repositories, TriggerRule};
use booty_github::{AppCredentials, AppId, Credentials, GitHub, HookId};
use booty_queue::{Backoff, PostgresOptions, QueueConfig, Retention, SqliteOptions, Synchronous};
use booty_service::{
    AdminToken, CloneFrom, JobCommand, Metrics, PublishConfig, PublishMode, RecoveryConfig,
    RecoveryHook, ServiceConfig, StoreConfig,
};
use booty_signature::Verifier;
use booty_workspace::{Token, WorkspaceConfig, WorkspaceManager};
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

/// Where the configuration file is looked for when `--config` is not given.
pub(crate) const DEFAULT_FILE: &str = "booty.toml";

/// The prefix of environment variables that override the file.
const ENV_PREFIX: &str = "BOOTY_";

/// What a key holds: how its `BOOTY_*` variable is read, and what a wrong value is told it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text, taken verbatim from the environment (`BOOTY_WEBHOOK_SECRET=12345` is the text `12345`).
    Text,
    /// A whole number of at least this.
    Number(u64),
    /// A list of strings.
    List,
    /// One of these words.
    Word(&'static [&'static str]),
    /// `true` or `false`.
    Bool,
}

impl Kind {
    /// What a value of this kind looks like, as an error message says it.
    fn expected(self) -> String {
        match self {
            Self::Text => "text (in quotes in TOML)".to_owned(),
            Self::Number(min) => format!("a whole number of at least {min}"),
            Self::List => "a list of strings, such as [\"a\", \"b\"]".to_owned(),
            Self::Bool => "`true` or `false`".to_owned(),
            Self::Word(words) => {
                let words: Vec<String> = words.iter().map(|word| format!("`{word}`")).collect();
                format!("one of {}", words.join(", "))
            }
        }
    }
}

/// A configuration key: its name, what it holds, and whether it is a secret (its meaning is the doc comment
/// of its [`RawConfig`] field; docs/configuration.md says it at length, and a test keeps the two in step).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Key {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Shown as `<redacted>` by `booty check`, never logged.
    pub(crate) secret: bool,
}

/// Declares every key once: its field in [`RawConfig`] (with serde's name, so the key is the field), its
/// default, what it holds, whether it is a secret, and its meaning; [`RawConfig`], its `Default` and
/// [`KEYS`] all follow from the one list.
macro_rules! keys {
    ($(
        #[doc = $doc:literal]
        $name:ident: $ty:ty = $default:expr, $kind:expr $(, $secret:ident)?;
    )*) => {
        /// The configuration as written, before validation. Field names are the configuration keys.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub(crate) struct RawConfig {
            $(#[doc = $doc] $name: $ty,)*
        }

        impl Default for RawConfig {
            fn default() -> Self {
                Self { $($name: $default,)* }
            }
        }

        /// Every key, in the order `booty check` prints them. Only these are read from `BOOTY_*`
        /// variables: the job command's own `BOOTY_JOB_ID` and friends, and `BOOTY_TEST_POSTGRES_URL`,
        /// share the prefix.
        pub(crate) const KEYS: &[Key] = &[$(Key {
            name: stringify!($name),
            kind: $kind,
            secret: keys!(@secret $($secret)?),
        },)*];
    };
    (@secret secret) => { true };
    (@secret) => { false };
}

keys! {
    /// The webhook's secret (HMAC-SHA256 key).
    webhook_secret: Option<String> = None, Kind::Text, secret;
    /// Read the webhook secret from this file instead.
    webhook_secret_file: Option<PathBuf> = None, Kind::Text;
    /// Secrets still accepted during a rotation.
    previous_webhook_secrets: Vec<String> = Vec::new(), Kind::List, secret;
    /// The repositories served, `owner/name` or `owner/*`.
    repositories: Option<Vec<String>> = None, Kind::List;
    /// The GitHub host each repository is cloned from.
    github_url: String = booty_service::DEFAULT_GITHUB_URL.to_owned(), Kind::Text;
    /// One repository at a URL of its own (a local path) instead.
    repo_url: Option<String> = None, Kind::Text;
    /// The branch cloned and branched from.
    base_branch: String = booty_service::DEFAULT_BASE_BRANCH.to_owned(), Kind::Text;
    /// The label that starts a job.
    trigger_label: String = booty_event::DEFAULT_TRIGGER_LABEL.to_owned(), Kind::Text;
    /// Whether events a bot sent start and cancel jobs.
    accept_bots: bool = false, Kind::Bool;
    /// Credentials for private repositories.
    github_token: Option<String> = None, Kind::Text, secret;
    /// Read the token from this file instead.
    github_token_file: Option<PathBuf> = None, Kind::Text;
    /// A GitHub App's client id (or numeric app id): clones use installation tokens.
    github_app_id: Option<String> = None, Kind::Text;
    /// The GitHub App's private key (PEM, as GitHub hands it out).
    github_app_private_key_file: Option<PathBuf> = None, Kind::Text;
    /// GitHub's REST API: `api.github.com`, or `https://HOST/api/v3` for Enterprise Server.
    github_api_url: String = booty_github::DEFAULT_API_URL.to_owned(), Kind::Text;
    /// Recover webhook deliveries GitHub could not deliver (with a GitHub App's credentials).
    recovery: bool = true, Kind::Bool;
    /// The webhook recovered: the App's, `repos/OWNER/NAME/hooks/ID` or `orgs/ORG/hooks/ID`.
    recovery_hook: Option<String> = None, Kind::Text;
    /// Time between recovery passes (the first runs at start-up).
    recovery_interval_secs: u64 = booty_service::DEFAULT_RECOVERY_INTERVAL.as_secs(), Kind::Number(1);
    /// How far back recovery looks at most (GitHub keeps 3 days; Enterprise Server 7).
    recovery_max_age_secs: u64 = booty_service::DEFAULT_RECOVERY_MAX_AGE.as_secs(), Kind::Number(1);
    /// The webhook listener.
    listen: String = booty_service::DEFAULT_LISTEN.to_string(), Kind::Text;
    /// The job inspection listener.
    admin_listen: String = booty_service::DEFAULT_ADMIN_LISTEN.to_string(), Kind::Text;
    /// Names the admin listener answers to besides its own address.
    admin_allowed_hosts: Vec<String> = Vec::new(), Kind::List;
    /// The token every admin request must carry.
    admin_token: Option<String> = None, Kind::Text, secret;
    /// Read the admin token from this file instead.
    admin_token_file: Option<PathBuf> = None, Kind::Text;
    /// Whether `GET /metrics` is open without the admin token.
    admin_metrics_public: bool = false, Kind::Bool;
    /// Jobs run at the same time.
    workers: usize = QueueConfig::default().workers, Kind::Number(1);
    /// Jobs waiting before webhooks are answered 503.
    queue_capacity: usize = QueueConfig::default().capacity, Kind::Number(1);
    /// Delivery ids remembered to drop duplicates.
    dedupe_capacity: usize = booty_queue::DEFAULT_DEDUPE_CAPACITY, Kind::Number(1);
    /// SQLite store: delivery ids younger than this are remembered too.
    dedupe_retention_secs: u64 = SqliteOptions::default().dedupe_retention.as_secs(), Kind::Number(0);
    /// Attempts per job, retries included.
    max_attempts: u32 = QueueConfig::default().max_attempts, Kind::Number(1);
    /// The first wait between attempts, doubling.
    retry_base_secs: u64 = booty_queue::DEFAULT_RETRY_BASE.as_secs(), Kind::Number(1);
    /// The longest wait between attempts.
    retry_max_secs: u64 = booty_queue::DEFAULT_RETRY_CAP.as_secs(), Kind::Number(1);
    /// How long a running job stays claimed without renewal.
    lease_secs: u64 = QueueConfig::default().lease.as_secs(), Kind::Number(1);
    /// Where jobs are kept.
    store: String = DEFAULT_STORE.to_owned(), Kind::Text;
    /// SQLite store: how hard a commit insists on the disk.
    sqlite_synchronous: String = Synchronous::default().as_str().to_owned(),
        Kind::Word(&["normal", "full"]);
    /// Where job workspaces are created.
    workspace_root: Option<PathBuf> = None, Kind::Text;
    /// Commits of history to fetch; 0 means all.
    clone_depth: u32 = booty_workspace::DEFAULT_CLONE_DEPTH, Kind::Number(0);
    /// Time limit of one clone.
    clone_timeout_secs: u64 = booty_workspace::DEFAULT_CLONE_TIMEOUT.as_secs(), Kind::Number(1);
    /// The argv run in the workspace.
    job_command: Option<Vec<String>> = None, Kind::List;
    /// Variables of booty's environment the command gets too.
    job_env_passthrough: Vec<String> = Vec::new(), Kind::List;
    /// Time limit of one run of the command.
    job_timeout_secs: u64 = booty_service::DEFAULT_JOB_TIMEOUT.as_secs(), Kind::Number(1);
    /// How much of what each attempt printed is kept with the job.
    job_output_bytes: usize = booty_queue::MAX_OUTPUT_BYTES, Kind::Number(0);
    /// What is done with the work once the command exits 0 (default: a pull request with credentials).
    publish: Option<String> = None, Kind::Word(PUBLISH_WORDS);
    /// Whether each job keeps one comment on its issue up to date.
    comment_on_issue: bool = true, Kind::Bool;
    /// Whether changes the command left uncommitted are committed by booty.
    commit_uncommitted: bool = true, Kind::Bool;
    /// Largest webhook body accepted.
    max_body_bytes: u64 = booty_edge::DEFAULT_MAX_BODY_BYTES, Kind::Number(1);
    /// How long running jobs may finish at shutdown.
    shutdown_grace_secs: u64 = Limits::default().shutdown_grace.as_secs(), Kind::Number(0);
    /// How log lines are written.
    log_format: LogFormat = LogFormat::Json, Kind::Word(&["json", "pretty"]);
    /// A tracing filter.
    log_level: String = "info".to_owned(), Kind::Text;
}

/// The values `publish` takes.
const PUBLISH_WORDS: &[&str] = &["pull_request", "branch", "none"];

/// The store unless configured otherwise: a SQLite file in the working directory.
const DEFAULT_STORE: &str = "sqlite:booty.db";

/// The key named `name`.
fn kind_of(name: &str) -> Option<Kind> {
    KEYS.iter().find(|key| key.name == name).map(|key| key.kind)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// One JSON object per line, span fields flattened in (the default, for log collectors).
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

/// A secret value: compared and used, never printed.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it (an HMAC key, a gix header).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where jobs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// In this process only; queued jobs are lost on exit.
    Memory,
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A PostgreSQL database shared by several processes; the URL may hold a password.
    Postgres(Secret),
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) webhook_secret: Secret,
    pub(crate) previous_webhook_secrets: Vec<Secret>,
    /// Where each job's clone comes from (`repositories` and `github_url`, or `repo_url`).
    pub(crate) clone_from: CloneFrom,
    /// The repositories served, as the trigger rule takes them.
    pub(crate) repositories: Repositories,
    /// `repositories` as written (or derived from `repo_url`), for `booty check`.
    pub(crate) repository_patterns: Vec<String>,
    pub(crate) base_branch: String,
    pub(crate) trigger_label: String,
    pub(crate) accept_bots: bool,
    pub(crate) github_token: Option<Secret>,
    /// A GitHub App's credentials, its key parsed and a JWT signed with it at start-up.
    pub(crate) github_app: Option<AppCredentials>,
    pub(crate) github_app_private_key_file: Option<PathBuf>,
    pub(crate) github_api_url: String,
    /// Recovering missed deliveries.
    pub(crate) recovery: Recovery,
    pub(crate) listen: SocketAddr,
    pub(crate) admin_listen: SocketAddr,
    pub(crate) admin_allowed_hosts: Vec<String>,
    /// Checked to be usable as a token (visible ASCII).
    pub(crate) admin_token: Option<Secret>,
    pub(crate) admin_metrics_public: bool,
    pub(crate) workers: NonZeroUsize,
    pub(crate) queue_capacity: usize,
    pub(crate) dedupe_capacity: usize,
    pub(crate) dedupe_retention: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) retry_backoff: Backoff,
    pub(crate) lease: Duration,
    pub(crate) store: StoreSpec,
    pub(crate) sqlite_synchronous: Synchronous,
    pub(crate) workspace_root: PathBuf,
    pub(crate) clone_depth: u32,
    pub(crate) clone_timeout: Duration,
    pub(crate) job_command: Option<Vec<String>>,
    pub(crate) job_env_passthrough: Vec<String>,
    pub(crate) job_timeout: Duration,
    pub(crate) job_output_bytes: usize,
    /// `publish` (its default made explicit), `comment_on_issue` and `commit_uncommitted`.
    pub(crate) publish: PublishConfig,
    pub(crate) max_body_bytes: u64,
    pub(crate) shutdown_grace: Duration,
    pub(crate) log_format: LogFormat,
    pub(crate) log_level: String,
}

impl Config {
    /// What the service runs with: the library's types, built from the validated keys.
    ///
    /// # Errors
    /// If the webhook secrets or the trigger label cannot be used (validation has ruled both out).
    pub(crate) fn service(&self) -> anyhow::Result<ServiceConfig> {
        let verifier = Verifier::with_previous(
            self.webhook_secret.expose(),
            self.previous_webhook_secrets.iter().map(Secret::expose),
        )?;
        let mut edge = EdgeConfig::new(verifier);
        edge.max_body_bytes = self.max_body_bytes;
        let mut config = ServiceConfig::new(edge, self.clone_from.clone(), &self.workspace_root);
        config.trigger = TriggerRule::new(self.trigger_label.clone())?
            .only_repositories(self.repositories.clone())
            .accept_bots(self.accept_bots);
        config.listen = self.listen;
        config.admin_listen = self.admin_listen;
        config
            .admin_allowed_hosts
            .clone_from(&self.admin_allowed_hosts);
        config.admin_token = self
            .admin_token
            .as_ref()
            .map(|token| AdminToken::new(token.expose()))
            .transpose()?;
        config.admin_metrics_public = self.admin_metrics_public;
        config.base_branch.clone_from(&self.base_branch);
        config.workspace.depth = self.clone_depth;
        config.workspace.clone_timeout = self.clone_timeout;
        config.workspace.token = self
            .github_token
            .as_ref()
            .map(|token| Token::new(token.expose()));
        let credentials = match (&self.github_app, &self.github_token) {
            (Some(app), _) => Some(Credentials::App(app.clone())),
            // A token talks to GitHub's API only to publish and report, or to read the hook recovery
            // names; clones use it either way (as `workspace.token`; the handler mints installation tokens
            // only for an App).
            (None, Some(token))
                if self.publish.mode != PublishMode::Off || self.recovery.hook.is_some() =>
            {
                Some(Credentials::Token(booty_github::Token::new(token.expose())))
            }
            (None, _) => None,
        };
        if let Some(credentials) = credentials {
            let mut github = booty_github::Config::default();
            github.api_url.clone_from(&self.github_api_url);
            concat!("booty/", env!("CARGO_PKG_VERSION")).clone_into(&mut github.user_agent);
            // The service's metrics count GitHub's answers too.
            let metrics = Metrics::new();
            github.observer = Some(Arc::new(metrics.clone()));
            config.metrics = Some(metrics);
            config.github = Some(GitHub::new(credentials, github)?);
        }
        config.recovery = self.recovery.hook.clone().map(|hook| {
            let mut recovery = RecoveryConfig::new(hook);
            recovery.interval = self.recovery.interval;
            recovery.max_age = self.recovery.max_age;
            recovery
        });
        config.publish.clone_from(&self.publish);
        config.queue.workers = self.workers.get();
        config.queue.capacity = self.queue_capacity;
        config.queue.max_attempts = self.max_attempts;
        config.queue.lease = self.lease;
        config.queue.output_bytes = self.job_output_bytes;
        config.queue.backoff = self.retry_backoff;
        let mut retention = Retention::default();
        retention.dedupe_capacity = self.dedupe_capacity;
        config.store = match &self.store {
            StoreSpec::Memory => StoreConfig::Memory(retention),
            StoreSpec::Sqlite(path) => {
                let mut options = SqliteOptions::default();
                options.synchronous = self.sqlite_synchronous;
                options.retention = retention;
                options.dedupe_retention = self.dedupe_retention;
                StoreConfig::Sqlite {
                    path: path.clone(),
                    options,
                }
            }
            StoreSpec::Postgres(url) => {
                let mut options = PostgresOptions::default();
                options.retention = retention;
                StoreConfig::Postgres {
                    url: url.expose().to_owned(),
                    options,
                }
            }
        };
        config.command = self.job_command.as_ref().map(|argv| {
            let mut command = JobCommand::new(argv.clone());
            command.timeout = self.job_timeout;
            // booty's own environment is read here, the one place that touches it.
            command.env = booty_service::inherited_env(&self.job_env_passthrough, |name| {
                std::env::var_os(name)
            });
            // This executable supervises each command (`booty supervise`), so commands die with booty;
            // Linux's name for it stays valid even when an upgrade replaced the file.
            command.supervisor = Some(PathBuf::from("/proc/self/exe"));
            command
        });
        Ok(config)
    }
}

/// A configuration that cannot be used. The binary exits with code 2 on it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// `--config` names a file that does not exist.
    #[error(
        "configuration file {} does not exist: pass --config with a file that exists, or leave it out to \
         read {DEFAULT_FILE} when there is one and BOOTY_* environment variables",
        .0.display()
    )]
    MissingFile(PathBuf),
    /// A key the configuration does not have (a typo, or a key from another version).
    #[error("unknown key `{key}` in {source_name}; docs/configuration.md lists the keys")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// Where it was written (the file or the environment).
        source_name: String,
    },
    /// A value of the wrong type or shape.
    #[error("invalid `{key}` in {source_name}: {message}")]
    Value {
        /// The configuration key.
        key: String,
        /// Where the value came from.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
    /// The file could not be read or parsed at all.
    #[error("cannot read the configuration: {0}")]
    Read(String),
    /// A key holds a value booty cannot use.
    #[error("invalid `{key}` in {source_name}: {message}")]
    Invalid {
        /// The configuration key.
        key: &'static str,
        /// Where the value came from.
        source_name: String,
        /// What is wrong with it.
        message: String,
    },
    /// A required key is missing.
    #[error("missing `{key}`: {hint}{}", no_file_hint(*.file_read))]
    Missing {
        /// The configuration key.
        key: &'static str,
        /// How to give it.
        hint: &'static str,
        /// Whether a configuration file was read at all.
        file_read: bool,
    },
    /// A secret file could not be read.
    #[error("cannot read `{key}` {} (named in {source_name})", .path.display())]
    SecretFile {
        /// The `*_file` key.
        key: &'static str,
        /// Where the key was set.
        source_name: String,
        /// The file named by it.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// An environment variable booty reads besides its keys (`RUST_LOG`) holds a value it cannot use.
    #[error("invalid environment variable {variable}: {message}")]
    Environment {
        /// The variable.
        variable: &'static str,
        /// What is wrong with it.
        message: String,
    },
}

fn no_file_hint(file_read: bool) -> &'static str {
    if file_read {
        ""
    } else {
        " (no configuration file was read: pass --config FILE or create booty.toml)"
    }
}

/// The figment the configuration is read from, kept so `booty check` can say where each value came from.
pub(crate) struct Loaded {
    pub(crate) config: Config,
    figment: Figment,
}

impl Loaded {
    /// Where `key` got its value: a file, the environment, or the default. A secret read from a file
    /// reports the `*_file` key's source.
    pub(crate) fn source_of(&self, key: &str) -> String {
        let file_key = format!("{key}_file");
        if let Some(metadata) = self.figment.find_metadata(&file_key)
            && !is_default(metadata)
        {
            let source = describe(metadata, &file_key);
            return format!("read from the file named by `{file_key}` in {source}");
        }
        source_in(&self.figment, key)
    }
}

/// Where `key` got its value in `figment`, as messages say it.
fn source_in(figment: &Figment, key: &str) -> String {
    figment
        .find_metadata(key)
        .map_or_else(|| "unset".to_owned(), |metadata| describe(metadata, key))
}

/// Loads and validates the configuration from `file` (or `booty.toml` in the working directory when it
/// exists; without either, from the environment alone) and the `BOOTY_*` environment.
pub(crate) fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
    let file = match file {
        Some(path) if !path.is_file() => return Err(ConfigError::MissingFile(path.to_owned())),
        Some(path) => Some(path),
        None => Some(Path::new(DEFAULT_FILE)).filter(|default| default.is_file()),
    };
    let parsed_keys: Vec<&str> = KEYS
        .iter()
        .filter(|key| matches!(key.kind, Kind::Number(_) | Kind::List | Kind::Bool))
        .map(|key| key.name)
        .collect();
    let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    let figment = figment
        .merge(Env::prefixed(ENV_PREFIX).only(&parsed_keys))
        .merge(VerbatimEnv);
    let raw: RawConfig = figment.extract().map_err(|err| from_figment(&err))?;
    let config = raw.validate(&Sources {
        figment: &figment,
        file_read: file.is_some(),
    })?;
    Ok(Loaded { config, figment })
}

/// The GitHub host as configured (`github_url`, `github_api_url`), from `file` (or `booty.toml` in the working
/// directory when it exists) and the `BOOTY_*` environment, without validating anything else: what `booty
/// app create` talks to when not told, on a machine whose configuration may not be complete yet.
pub(crate) fn github_hosts(file: Option<&Path>) -> Result<GitHubHosts, ConfigError> {
    let file = match file {
        Some(path) if !path.is_file() => return Err(ConfigError::MissingFile(path.to_owned())),
        Some(path) => Some(path),
        None => Some(Path::new(DEFAULT_FILE)).filter(|default| default.is_file()),
    };
    let mut figment = Figment::new();
    if let Some(file) = file {
        figment = figment.merge(Toml::file_exact(file));
    }
    figment
        .merge(VerbatimEnv)
        .extract()
        .map_err(|err| from_figment(&err))
}

/// The two keys [`github_hosts`] reads; every other key is left for `load` to judge.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GitHubHosts {
    /// `github_url`, when configured.
    pub(crate) github_url: Option<String>,
    /// `github_api_url`, when configured.
    pub(crate) github_api_url: Option<String>,
}

/// `BOOTY_<KEY>` for keys holding text or a word, taken verbatim.
struct VerbatimEnv;

impl Provider for VerbatimEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_, keys| format!("{ENV_PREFIX}{}", keys.join("_").to_uppercase()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for key in KEYS
            .iter()
            .filter(|key| matches!(key.kind, Kind::Text | Kind::Word(_)))
        {
            let name = format!("{ENV_PREFIX}{}", key.name.to_uppercase());
            match std::env::var(&name) {
                Ok(value) => {
                    dict.insert(key.name.to_owned(), value.into());
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(figment::Error::from(format!("{name} is not valid UTF-8")));
                }
                Err(std::env::VarError::NotPresent) => {}
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// `TOML file booty.toml`, `environment variable BOOTY_WORKERS`, or `default`.
fn describe(metadata: &Metadata, key: &str) -> String {
    if is_default(metadata) {
        return "default".to_owned();
    }
    if metadata.name.contains("environment") {
        return format!("environment variable {ENV_PREFIX}{}", key.to_uppercase());
    }
    match &metadata.source {
        Some(source) => format!("{} {source}", metadata.name),
        None => metadata.name.to_string(),
    }
}

/// Values from [`RawConfig::default`] carry the code location of `Serialized::defaults`.
fn is_default(metadata: &Metadata) -> bool {
    matches!(metadata.source, Some(figment::Source::Code(_)))
}

/// Turns figment's error into one that names the key, where it was written, and what it should hold in
/// words (not Rust's type names).
fn from_figment(err: &figment::Error) -> ConfigError {
    use figment::error::{Actual, Kind as Problem};
    let key = err.path.last().cloned().unwrap_or_default();
    let source_name = err.metadata.as_ref().map_or_else(
        || "the configuration".to_owned(),
        |metadata| describe(metadata, &key),
    );
    let found = |actual: &Actual| match actual {
        Actual::Str(text) if matches!(kind_of(&key), Some(Kind::Number(_))) => {
            format!("the text {text:?} (write a number without quotes)")
        }
        Actual::Str(text) => format!("the text {text:?}"),
        Actual::Signed(number) => number.to_string(),
        Actual::Unsigned(number) => number.to_string(),
        Actual::Float(number) => number.to_string(),
        Actual::Bool(value) => value.to_string(),
        Actual::Seq => "a list".to_owned(),
        Actual::Map => "a table".to_owned(),
        other => other.to_string(),
    };
    let expected =
        |fallback: &str| kind_of(&key).map_or_else(|| fallback.to_owned(), Kind::expected);
    let message = match &err.kind {
        Problem::UnknownField(key, _) => {
            return ConfigError::UnknownKey {
                key: key.clone(),
                source_name,
            };
        }
        _ if key.is_empty() => return ConfigError::Read(err.to_string()),
        Problem::InvalidType(actual, wanted) | Problem::InvalidValue(actual, wanted) => {
            format!("expected {}, found {}", expected(wanted), found(actual))
        }
        Problem::UnknownVariant(word, _) => {
            format!("expected {}, found {word:?}", expected("another word"))
        }
        other => other.to_string(),
    };
    ConfigError::Value {
        key,
        source_name,
        message,
    }
}

/// Where each key got its value, for validation errors.
struct Sources<'a> {
    figment: &'a Figment,
    file_read: bool,
}

impl Sources<'_> {
    fn invalid(&self, key: &'static str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key,
            source_name: source_in(self.figment, key),
            message: message.into(),
        }
    }

    fn missing(&self, key: &'static str, hint: &'static str) -> ConfigError {
        ConfigError::Missing {
            key,
            hint,
            file_read: self.file_read,
        }
    }
}

impl RawConfig {
    fn validate(self, sources: &Sources<'_>) -> Result<Config, ConfigError> {
        self.check_numbers(sources)?;
        self.check_job_command(sources)?;
        self.check_text(sources)?;
        let recovery = self.recovery(sources)?;
        let webhook_secret = secret(
            sources,
            ("webhook_secret", self.webhook_secret),
            ("webhook_secret_file", self.webhook_secret_file),
        )?
        .ok_or_else(|| {
            sources.missing(
                "webhook_secret",
                "set `webhook_secret`, `webhook_secret_file` or BOOTY_WEBHOOK_SECRET",
            )
        })?;
        let previous_webhook_secrets: Vec<Secret> = self
            .previous_webhook_secrets
            .into_iter()
            .map(Secret)
            .collect();
        let github_token = secret(
            sources,
            ("github_token", self.github_token),
            ("github_token_file", self.github_token_file),
        )?;
        let (clone_from, repositories) = clone_from(
            sources,
            self.repositories.as_deref(),
            self.repo_url.filter(|url| !url.trim().is_empty()),
            &self.github_url,
        )?;
        match &clone_from {
            CloneFrom::Single { url, .. } => check_repo_url(sources, url, github_token.as_ref())?,
            _ => check_github_url(sources, &self.github_url, github_token.as_ref())?,
        }
        let github_app = github_app(
            sources,
            self.github_app_id.as_deref(),
            self.github_app_private_key_file.as_deref(),
            github_token.is_some(),
        )?;
        let store = parse_store(sources, &self.store)?;
        let publish = publishing(
            sources,
            self.publish.as_deref(),
            (self.comment_on_issue, self.commit_uncommitted),
            (github_app.is_some(), github_token.is_some()),
            &clone_from,
        )?;
        let (listen, admin_listen, admin_token) = listeners(
            sources,
            (&self.listen, &self.admin_listen, &self.admin_allowed_hosts),
            (self.admin_token, self.admin_token_file),
        )?;
        Ok(Config {
            webhook_secret,
            previous_webhook_secrets,
            clone_from,
            repositories: repositories.0,
            repository_patterns: repositories.1,
            base_branch: self.base_branch,
            trigger_label: self.trigger_label,
            accept_bots: self.accept_bots,
            github_token,
            github_app,
            github_app_private_key_file: self.github_app_private_key_file,
            github_api_url: self.github_api_url,
            recovery,
            listen,
            admin_listen,
            admin_allowed_hosts: self.admin_allowed_hosts,
            admin_token,
            admin_metrics_public: self.admin_metrics_public,
            workers: NonZeroUsize::new(self.workers)
                .expect("`workers` was checked to be at least 1"),
            queue_capacity: self.queue_capacity,
            dedupe_capacity: self.dedupe_capacity,
            dedupe_retention: Duration::from_secs(self.dedupe_retention_secs),
            max_attempts: self.max_attempts,
            retry_backoff: Backoff {
                base: Duration::from_secs(self.retry_base_secs),
                cap: Duration::from_secs(self.retry_max_secs),
            },
            lease: Duration::from_secs(self.lease_secs),
            store,
            sqlite_synchronous: parse_synchronous(sources, &self.sqlite_synchronous)?,
            workspace_root: self.workspace_root.unwrap_or_else(std::env::temp_dir),
            clone_depth: self.clone_depth,
            clone_timeout: Duration::from_secs(self.clone_timeout_secs),
            job_command: self.job_command,
            job_env_passthrough: self.job_env_passthrough,
            job_timeout: Duration::from_secs(self.job_timeout_secs),
            job_output_bytes: self.job_output_bytes,
            publish,
            max_body_bytes: self.max_body_bytes,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            log_format: self.log_format,
            log_level: self.log_level,
        })
    }
}

impl RawConfig {
    /// Every number at least its key's minimum, and the retry waits in order.
    fn check_numbers(&self, sources: &Sources<'_>) -> Result<(), ConfigError> {
        for (key, value) in [
            ("workers", self.workers as u64),
            ("queue_capacity", self.queue_capacity as u64),
            ("dedupe_capacity", self.dedupe_capacity as u64),
            ("max_attempts", u64::from(self.max_attempts)),
            ("retry_base_secs", self.retry_base_secs),
            ("retry_max_secs", self.retry_max_secs),
            ("lease_secs", self.lease_secs),
            ("clone_timeout_secs", self.clone_timeout_secs),
            ("job_timeout_secs", self.job_timeout_secs),
            ("max_body_bytes", self.max_body_bytes),
            ("recovery_interval_secs", self.recovery_interval_secs),
            ("recovery_max_age_secs", self.recovery_max_age_secs),
        ] {
            if let Some(Kind::Number(min)) = kind_of(key)
                && value < min
            {
                return Err(sources.invalid(key, format!("must be at least {min}, not {value}")));
            }
        }
        if self.retry_max_secs < self.retry_base_secs {
            return Err(sources.invalid(
                "retry_max_secs",
                format!(
                    "must be at least `retry_base_secs` ({}), not {}",
                    self.retry_base_secs, self.retry_max_secs
                ),
            ));
        }
        Ok(())
    }

    /// Secrets, names, filters and the API URL that can be used as written.
    fn check_text(&self, sources: &Sources<'_>) -> Result<(), ConfigError> {
        if let Some(index) = self
            .previous_webhook_secrets
            .iter()
            .position(String::is_empty)
        {
            return Err(sources.invalid(
                "previous_webhook_secrets",
                format!("entry #{index} is empty"),
            ));
        }
        if self.base_branch.is_empty() || self.base_branch.contains(char::is_whitespace) {
            return Err(sources.invalid("base_branch", "must be a branch name without spaces"));
        }
        if self.trigger_label.is_empty() {
            return Err(sources.invalid("trigger_label", "must not be empty"));
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(sources.invalid("log_level", err.to_string()));
        }
        check_api_url(sources, &self.github_api_url)
    }

    /// A command that can be started, and variable names that can be passed on.
    fn check_job_command(&self, sources: &Sources<'_>) -> Result<(), ConfigError> {
        if let Some(command) = &self.job_command {
            if command.first().is_none_or(String::is_empty) {
                return Err(sources.invalid(
                    "job_command",
                    "must be a non-empty list whose first entry is the program",
                ));
            }
            if let Some(index) = command.iter().position(|arg| arg.contains('\0')) {
                return Err(sources.invalid(
                    "job_command",
                    format!("entry #{index} holds a NUL byte, which no command line can hold"),
                ));
            }
        }
        for name in &self.job_env_passthrough {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(sources.invalid(
                    "job_env_passthrough",
                    format!("{name:?} is not an environment variable name"),
                ));
            }
        }
        Ok(())
    }
}

/// GitHub's API over `https://`, or plain `http://` to loopback only (tests): tokens travel on it.
fn check_api_url(sources: &Sources<'_>, url: &str) -> Result<(), ConfigError> {
    let loopback = [
        "http://127.0.0.1:",
        "http://127.0.0.1/",
        "http://localhost:",
        "http://[::1]:",
    ];
    if url.starts_with("https://") || loopback.iter().any(|prefix| url.starts_with(prefix)) {
        return Ok(());
    }
    Err(sources.invalid(
        "github_api_url",
        format!("{url:?} is not an https:// URL (plain http:// only to loopback, for tests)"),
    ))
}

/// A GitHub App's credentials from its id and key file, both or neither, and not beside a token: the key is
/// parsed and a JWT signed with it now, so a bad key stops booty at start-up, named and never shown.
fn github_app(
    sources: &Sources<'_>,
    id: Option<&str>,
    key_file: Option<&Path>,
    has_token: bool,
) -> Result<Option<AppCredentials>, ConfigError> {
    let (id, key_file) = match (id, key_file) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(sources.invalid(
                "github_app_id",
                "needs `github_app_private_key_file` too: the App's private key, as GitHub hands it out",
            ));
        }
        (None, Some(_)) => {
            return Err(sources.invalid(
                "github_app_private_key_file",
                "needs `github_app_id` too: the App's client id (or its numeric app id)",
            ));
        }
        (Some(id), Some(key_file)) => (id, key_file),
    };
    if has_token {
        return Err(sources.invalid(
            "github_app_id",
            "given beside `github_token`: give either a token or a GitHub App's credentials",
        ));
    }
    let id: AppId = id.parse().map_err(|err: booty_github::AppIdError| {
        sources.invalid("github_app_id", err.to_string())
    })?;
    AppCredentials::from_pem_file(id, key_file)
        .map(Some)
        .map_err(|err| {
            sources.invalid(
                "github_app_private_key_file",
                booty_service::error_chain(&err),
            )
        })
}

/// How missed deliveries are recovered.
#[derive(Debug, Clone)]
pub(crate) struct Recovery {
    /// The hook recovered, when recovery is on and there are App credentials to read it with.
    pub(crate) hook: Option<RecoveryHook>,
    pub(crate) interval: Duration,
    pub(crate) max_age: Duration,
}

/// What GitHub's delivery log would be read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// A GitHub App's credentials: its JWT for its own hook, installation tokens for a repository's.
    App,
    /// `github_token`: a repository's or an organization's hook.
    Token,
}

impl RawConfig {
    fn recovery(&self, sources: &Sources<'_>) -> Result<Recovery, ConfigError> {
        // `github_app` checks the App's id comes with its key, and not beside a token.
        let reader = if self.github_app_id.is_some() {
            Some(Reader::App)
        } else if self.github_token.is_some() || self.github_token_file.is_some() {
            Some(Reader::Token)
        } else {
            None
        };
        Ok(Recovery {
            hook: recovery_hook(
                sources,
                self.recovery,
                self.recovery_hook.as_deref(),
                reader,
            )?,
            interval: Duration::from_secs(self.recovery_interval_secs),
            max_age: Duration::from_secs(self.recovery_max_age_secs),
        })
    }
}

/// The hook recovery reads, if it runs: on unless `recovery = false`. With a GitHub App's credentials, the
/// App's webhook unless `recovery_hook` names a repository's (read with an installation token allowed
/// `repository_hooks: read`); with `github_token`, only the repository's or organization's webhook
/// `recovery_hook` names; without credentials, off. A `recovery_hook` is `repos/OWNER/NAME/hooks/ID` or
/// `orgs/ORG/hooks/ID`.
fn recovery_hook(
    sources: &Sources<'_>,
    on: bool,
    hook: Option<&str>,
    reader: Option<Reader>,
) -> Result<Option<RecoveryHook>, ConfigError> {
    let hook = hook.map(str::trim).filter(|hook| !hook.is_empty());
    if !on {
        return Ok(None);
    }
    let Some(hook) = hook else {
        // The App's own webhook needs the App's JWT; a token alone names no hook.
        return Ok((reader == Some(Reader::App)).then_some(RecoveryHook::App));
    };
    let invalid = |why: String| sources.invalid("recovery_hook", why);
    if reader.is_none() {
        return Err(invalid(
            "needs credentials to read the hook's deliveries with: a GitHub App's (`github_app_id` \
             and `github_app_private_key_file`) or `github_token`"
                .to_owned(),
        ));
    }
    let parts: Vec<&str> = hook.split('/').collect();
    let id = |text: &str| {
        text.parse::<u64>().map(HookId).map_err(|_| {
            invalid(format!(
                "{hook:?}: the hook id {text:?} is not a number (see the hook's settings page URL)"
            ))
        })
    };
    match parts.as_slice() {
        ["repos", owner, name, "hooks", hook_id] => Ok(Some(RecoveryHook::Repository {
            repository: format!("{owner}/{name}")
                .parse()
                .map_err(|err: booty_github::NameError| invalid(format!("{hook:?}: {err}")))?,
            hook: id(hook_id)?,
        })),
        ["orgs", _, "hooks", _] if reader == Some(Reader::App) => Err(invalid(format!(
            "{hook:?}: an organization's webhook is read with `github_token`; a GitHub App's events \
             come through its own webhook (leave `recovery_hook` out)"
        ))),
        ["orgs", organization, "hooks", hook_id] => {
            let hook_id = id(hook_id)?;
            Ok(Some(RecoveryHook::Organization {
                organization: (*organization).to_owned(),
                hook: hook_id,
            }))
        }
        _ => Err(invalid(format!(
            "{hook:?} is not a webhook: write `repos/OWNER/NAME/hooks/ID` or `orgs/ORG/hooks/ID`, or \
             leave it out for the App's webhook"
        ))),
    }
}

/// `IP:PORT`, or `HOST:PORT` with a host name that resolves (`localhost:8080`).
fn socket_address(
    sources: &Sources<'_>,
    key: &'static str,
    value: &str,
) -> Result<SocketAddr, ConfigError> {
    let refused = || {
        sources.invalid(
            key,
            format!(
                "{value:?} is not an address to listen on: write IP:PORT or HOST:PORT, such as \
                 127.0.0.1:8080 (0.0.0.0:8080 for every interface)"
            ),
        )
    };
    if let Ok(address) = value.parse() {
        return Ok(address);
    }
    match value.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
        _ => return Err(refused()),
    }
    let mut addresses = value.to_socket_addrs().map_err(|err| {
        sources.invalid(key, format!("cannot resolve the host of {value:?}: {err}"))
    })?;
    addresses.next().ok_or_else(refused)
}

/// Where clones come from, and the repositories served:
///
/// - `repositories` alone: each trigger's own repository on `github_url`;
/// - `repo_url`: that one repository, which `repositories` names (one `owner/name`), or which the URL
///   names (`https://HOST/owner/name.git`). A local path with no `repositories` is ambiguous: booty could
///   not tell which repository's issues it stands for, and refuses rather than clone it for any.
fn clone_from(
    sources: &Sources<'_>,
    patterns: Option<&[String]>,
    repo_url: Option<String>,
    github_url: &str,
) -> Result<(CloneFrom, (Repositories, Vec<String>)), ConfigError> {
    let parse = |patterns: &[String]| {
        Repositories::new(patterns).map_err(|err| sources.invalid("repositories", err.to_string()))
    };
    let Some(url) = repo_url else {
        let patterns = patterns.ok_or_else(|| {
            sources.missing(
                "repositories",
                "the repositories booty serves, e.g. [\"acme/widgets\", \"acme-labs/*\"] (or `repo_url` \
                 for one repository at a URL of its own, such as a local path)",
            )
        })?;
        let repositories = parse(patterns)?;
        let clone_from = CloneFrom::GitHub {
            url: github_url.trim_end_matches('/').to_owned(),
        };
        return Ok((clone_from, (repositories, patterns.to_vec())));
    };
    let full_name = match patterns {
        Some(patterns) => parse(patterns)?.single().ok_or_else(|| {
            sources.invalid(
                "repositories",
                "with `repo_url`, name the one repository it stands for (`owner/name`, no `*`): booty \
                 never clones one repository for another repository's issue",
            )
        })?,
        None => named_by_url(&url).ok_or_else(|| {
            sources.invalid(
                "repo_url",
                format!(
                    "{} does not say which GitHub repository it stands for: add `repositories = \
                     [\"owner/name\"]` naming it, or leave `repo_url` out and list the repositories \
                     to serve (docs/configuration.md, \"Moving to repositories\")",
                    booty_workspace::redact_url(&url)
                ),
            )
        })?,
    };
    let repositories = parse(std::slice::from_ref(&full_name))?;
    Ok((
        CloneFrom::Single {
            full_name: full_name.clone(),
            url,
        },
        (repositories, vec![full_name]),
    ))
}

/// The `owner/name` an `https://HOST/owner/name(.git)` URL names.
fn named_by_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (_host, path) = rest.split_once('/')?;
    let path = path.trim_end_matches('/').trim_end_matches(".git");
    let (owner, name) = path.split_once('/')?;
    (!owner.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| format!("{owner}/{name}"))
}

/// The GitHub host clones come from: a URL a token may be sent to.
fn check_github_url(
    sources: &Sources<'_>,
    url: &str,
    token: Option<&Secret>,
) -> Result<(), ConfigError> {
    let mut workspace = WorkspaceConfig::new(std::env::temp_dir());
    workspace.token = token.map(|token| Token::new(token.expose()));
    let probe = format!("{}/owner/name.git", url.trim_end_matches('/'));
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(sources.invalid("github_url", format!("{url:?} is not an http(s) URL")));
    }
    WorkspaceManager::new(workspace)
        .check_url(&probe)
        .map_err(|err| sources.invalid("github_url", booty_service::error_chain(&err)))
}

/// The repository URL as the clone will see it: credentials only where they are safe to send, and a
/// local path (or `file://`) that exists.
fn check_repo_url(
    sources: &Sources<'_>,
    repo_url: &str,
    token: Option<&Secret>,
) -> Result<(), ConfigError> {
    let mut workspace = WorkspaceConfig::new(std::env::temp_dir());
    workspace.token = token.map(|token| Token::new(token.expose()));
    if let Err(err) = WorkspaceManager::new(workspace).check_url(repo_url) {
        return Err(sources.invalid("repo_url", booty_service::error_chain(&err)));
    }
    let local = match repo_url.strip_prefix("file://") {
        Some(path) => Some(path),
        None if !repo_url.contains("://") && !repo_url.contains('@') => Some(repo_url),
        None => None,
    };
    if let Some(path) = local
        && !Path::new(path).exists()
    {
        return Err(sources.invalid(
            "repo_url",
            format!("{path} does not exist (a local repository must be there when booty starts)"),
        ));
    }
    Ok(())
}

/// `listen`, and the admin listener's address (not `listen`'s), the names it answers to, and its token
/// (inline or in a file), checked to be usable as one; without a token, `admin_listen` must be a loopback
/// address, since nobody would be asked who they are.
fn listeners(
    sources: &Sources<'_>,
    (listen, admin_listen, allowed_hosts): (&str, &str, &[String]),
    (inline, file): (Option<String>, Option<PathBuf>),
) -> Result<(SocketAddr, SocketAddr, Option<Secret>), ConfigError> {
    let listen = socket_address(sources, "listen", listen)?;
    for host in allowed_hosts {
        booty_edge::check_allowed_host(host)
            .map_err(|err| sources.invalid("admin_allowed_hosts", err.to_string()))?;
    }
    let admin_listen = socket_address(sources, "admin_listen", admin_listen)?;
    if listen == admin_listen && listen.port() != 0 {
        return Err(sources.invalid(
            "admin_listen",
            format!(
                "{admin_listen} is also `listen`: booty cannot listen twice on one address; give the \
                 admin listener a port of its own"
            ),
        ));
    }
    let admin_token = secret(sources, ("admin_token", inline), ("admin_token_file", file))?;
    if let Some(token) = &admin_token {
        AdminToken::new(token.expose())
            .map_err(|err| sources.invalid("admin_token", err.to_string()))?;
    }
    if admin_token.is_none() && !admin_listen.ip().is_loopback() {
        return Err(sources.invalid(
            "admin_listen",
            format!(
                "{admin_listen} is not a loopback address, and no `admin_token` is set: anyone who can \
                 reach it could retry and cancel jobs; set `admin_token` (or `admin_token_file`), or \
                 listen on 127.0.0.1"
            ),
        ));
    }
    Ok((listen, admin_listen, admin_token))
}

/// A secret given inline or in a file (one trailing newline trimmed), never both.
fn secret(
    sources: &Sources<'_>,
    (key, inline): (&'static str, Option<String>),
    (file_key, file): (&'static str, Option<PathBuf>),
) -> Result<Option<Secret>, ConfigError> {
    let value = match (inline, file) {
        (Some(_), Some(_)) => {
            let (inline_source, file_source) = (
                source_in(sources.figment, key),
                source_in(sources.figment, file_key),
            );
            return Err(sources.invalid(
                key,
                format!(
                    "given both as `{key}` ({inline_source}) and as `{file_key}` ({file_source}); keep one"
                ),
            ));
        }
        (Some(value), None) => value,
        (None, Some(path)) => {
            let mut value =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                    key: file_key,
                    source_name: source_in(sources.figment, file_key),
                    path: path.clone(),
                    source,
                })?;
            if value.ends_with('\n') {
                value.pop();
                if value.ends_with('\r') {
                    value.pop();
                }
            }
            if value.is_empty() {
                return Err(sources.invalid(file_key, format!("{} is empty", path.display())));
            }
            value
        }
        (None, None) => return Ok(None),
    };
    if value.is_empty() {
        return Err(sources.invalid(key, "must not be empty"));
    }
    Ok(Some(Secret(value)))
}

fn parse_synchronous(sources: &Sources<'_>, value: &str) -> Result<Synchronous, ConfigError> {
    value.parse().map_err(|_: booty_queue::UnknownSynchronous| {
        let expected = kind_of("sqlite_synchronous").map_or_else(String::new, Kind::expected);
        sources.invalid(
            "sqlite_synchronous",
            format!("expected {expected}, found {value:?}"),
        )
    })
}

/// `publish`: by default a pull request with an App's credentials, or with a token when repositories come
/// from a GitHub host (a `repo_url` is often a local mirror: it publishes only when asked), nothing
/// otherwise; a pull request or a branch without credentials is an error. With `comment_on_issue` and
/// `commit_uncommitted`.
fn publishing(
    sources: &Sources<'_>,
    value: Option<&str>,
    (comment_on_issue, commit_uncommitted): (bool, bool),
    (app, token): (bool, bool),
    clone_from: &CloneFrom,
) -> Result<PublishConfig, ConfigError> {
    let from_github = matches!(clone_from, CloneFrom::GitHub { .. });
    let mode = match value {
        None if app || (token && from_github) => PublishMode::PullRequest,
        None | Some("none") => PublishMode::Off,
        Some("pull_request") => PublishMode::PullRequest,
        Some("branch") => PublishMode::Branch,
        Some(other) => {
            let expected = kind_of("publish").map_or_else(String::new, Kind::expected);
            return Err(sources.invalid("publish", format!("expected {expected}, found {other:?}")));
        }
    };
    if mode != PublishMode::Off && !(app || token) {
        return Err(sources.invalid(
            "publish",
            "pushing and opening pull requests need credentials: set `github_app_id` and \
             `github_app_private_key_file`, or `github_token`; or set `publish = \"none\"`",
        ));
    }
    let mut publish = PublishConfig::default();
    publish.mode = mode;
    publish.comment_on_issue = comment_on_issue;
    publish.commit_uncommitted = commit_uncommitted;
    Ok(publish)
}

fn parse_store(sources: &Sources<'_>, value: &str) -> Result<StoreSpec, ConfigError> {
    if value == "memory" {
        return Ok(StoreSpec::Memory);
    }
    if let Some(path) = value.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(sources.invalid(
                "store",
                "`sqlite:` needs a file path, e.g. `sqlite:booty.db`",
            ));
        }
        let path = PathBuf::from(path);
        let directory = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !directory.is_dir() {
            return Err(sources.invalid(
                "store",
                format!(
                    "the directory {} of the SQLite file does not exist (booty creates the file, not \
                     its directory)",
                    directory.display()
                ),
            ));
        }
        return Ok(StoreSpec::Sqlite(path));
    }
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        return Ok(StoreSpec::Postgres(Secret(value.to_owned())));
    }
    Err(sources.invalid(
        "store",
        "expected `memory`, `sqlite:PATH` or `postgres://...`",
    ))
}

/// A valid configuration for unit tests: defaults, a secret, `dir` as the repository.
#[cfg(test)]
pub(crate) fn test_config(dir: &Path) -> Config {
    let raw = RawConfig {
        webhook_secret: Some("secret".to_owned()),
        repo_url: Some(dir.display().to_string()),
        repositories: Some(vec!["octo/repo".to_owned()]),
        ..RawConfig::default()
    };
    let figment = Figment::from(Serialized::defaults(RawConfig::default()));
    raw.validate(&Sources {
        figment: &figment,
        file_read: false,
    })
    .expect("the test configuration is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_is_redacted() {
        assert_eq!(format!("{:?}", Secret("hunter2".into())), "<redacted>");
        let spec = StoreSpec::Postgres(Secret("postgres://u:pw@h/db".into()));
        assert!(!format!("{spec:?}").contains("pw"));
    }

    #[test]
    fn store_specs_parse() {
        let figment = Figment::from(Serialized::defaults(RawConfig::default()));
        let sources = Sources {
            figment: &figment,
            file_read: false,
        };
        let parse = |value| parse_store(&sources, value);
        assert_eq!(parse("memory").unwrap(), StoreSpec::Memory);
        assert_eq!(
            parse("sqlite:booty.db").unwrap(),
            StoreSpec::Sqlite(PathBuf::from("booty.db"))
        );
        assert_eq!(
            parse("sqlite:///tmp/booty.db").unwrap(),
            StoreSpec::Sqlite(PathBuf::from("/tmp/booty.db"))
        );
        assert!(matches!(
            parse("postgres://h/db").unwrap(),
            StoreSpec::Postgres(_)
        ));
        for bad in [
            "",
            "sqlite:",
            "mysql://h/db",
            "Memory",
            "sqlite:/nonexistent/dir/booty.db",
        ] {
            let err = parse(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("invalid `store` in default"),
                "{bad:?}: {err}"
            );
        }
    }

    /// docs/configuration.md's table is the reference: one row per key, with its variable, and no row for
    /// a key that does not exist.
    #[test]
    fn the_documentation_has_a_row_for_every_key_and_no_other() {
        let docs = include_str!("../../../docs/configuration.md");
        let rows: Vec<(&str, &str)> = docs
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let key = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let variable = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                variable.starts_with(ENV_PREFIX).then_some((key, variable))
            })
            .collect();
        let documented: Vec<&str> = rows.iter().map(|(key, _)| *key).collect();
        let keys: Vec<&str> = KEYS.iter().map(|key| key.name).collect();
        assert_eq!(
            documented, keys,
            "docs/configuration.md's keys, in check's order"
        );
        for (key, variable) in rows {
            assert_eq!(variable, format!("{ENV_PREFIX}{}", key.to_uppercase()));
        }
    }

    #[test]
    fn every_key_is_a_field_of_the_raw_configuration_and_back() {
        let raw = serde_json::to_value(RawConfig::default()).unwrap();
        let fields: Vec<&str> = raw
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut keys: Vec<&str> = KEYS.iter().map(|key| key.name).collect();
        let mut sorted = fields.clone();
        sorted.sort_unstable();
        keys.sort_unstable();
        assert_eq!(keys, sorted, "KEYS and RawConfig disagree");
    }
}
