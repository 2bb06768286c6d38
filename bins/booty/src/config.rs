//! Configuration: defaults < `booty.toml` (or `--config FILE`) < `BOOTY_*` environment, validated before
//! anything listens.
//!
//! [`RawConfig`] is what figment extracts (every key of design.md, unknown keys rejected); [`Config`] is the
//! validated result the rest of the binary uses, with secrets read from their files and wrapped in
//! [`Secret`] so they never reach a log line or `Debug` output.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use booty_queue::Synchronous;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider};
use serde::{Deserialize, Serialize};

/// Where the configuration file is looked for when `--config` is not given.
pub(crate) const DEFAULT_FILE: &str = "booty.toml";

/// The prefix of environment variables that override the file.
const ENV_PREFIX: &str = "BOOTY_";

/// Every key, in the order `booty check` prints them. Only these are read from `BOOTY_*` variables:
/// the job command's own `BOOTY_JOB_ID` and friends, and `BOOTY_TEST_POSTGRES_URL`, share the prefix.
pub(crate) const KEYS: &[&str] = &[
    "webhook_secret",
    "webhook_secret_file",
    "previous_webhook_secrets",
    "repo_url",
    "base_branch",
    "trigger_label",
    "github_token",
    "github_token_file",
    "listen",
    "admin_listen",
    "workers",
    "queue_capacity",
    "dedupe_capacity",
    "dedupe_retention_secs",
    "max_attempts",
    "lease_secs",
    "store",
    "sqlite_synchronous",
    "workspace_root",
    "clone_depth",
    "clone_timeout_secs",
    "job_command",
    "job_timeout_secs",
    "max_body_bytes",
    "shutdown_grace_secs",
    "log_format",
    "log_level",
];

/// Keys whose values are strings: read from `BOOTY_*` verbatim, so `BOOTY_WEBHOOK_SECRET=12345` is the
/// string `12345` and not a number. The other keys go through figment's value parser (numbers, lists).
const STRING_KEYS: &[&str] = &[
    "webhook_secret",
    "webhook_secret_file",
    "repo_url",
    "base_branch",
    "trigger_label",
    "github_token",
    "github_token_file",
    "listen",
    "admin_listen",
    "store",
    "sqlite_synchronous",
    "workspace_root",
    "log_format",
    "log_level",
];

/// The configuration as written, before validation. Field names are the configuration keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawConfig {
    webhook_secret: Option<String>,
    webhook_secret_file: Option<PathBuf>,
    previous_webhook_secrets: Vec<String>,
    repo_url: Option<String>,
    base_branch: String,
    trigger_label: String,
    github_token: Option<String>,
    github_token_file: Option<PathBuf>,
    listen: SocketAddr,
    admin_listen: SocketAddr,
    workers: usize,
    queue_capacity: usize,
    dedupe_capacity: usize,
    dedupe_retention_secs: u64,
    max_attempts: u32,
    lease_secs: u64,
    store: String,
    sqlite_synchronous: String,
    workspace_root: Option<PathBuf>,
    clone_depth: u32,
    clone_timeout_secs: u64,
    job_command: Option<Vec<String>>,
    job_timeout_secs: u64,
    max_body_bytes: u64,
    shutdown_grace_secs: u64,
    log_format: LogFormat,
    log_level: String,
}

impl Default for RawConfig {
    fn default() -> Self {
        Self {
            webhook_secret: None,
            webhook_secret_file: None,
            previous_webhook_secrets: Vec::new(),
            repo_url: None,
            base_branch: "main".to_owned(),
            trigger_label: "agent:builder".to_owned(),
            github_token: None,
            github_token_file: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            workers: 3,
            queue_capacity: 100,
            dedupe_capacity: 10_000,
            dedupe_retention_secs: 7 * 24 * 60 * 60,
            max_attempts: 3,
            lease_secs: 30,
            store: "sqlite:booty.db".to_owned(),
            sqlite_synchronous: "normal".to_owned(),
            workspace_root: None,
            clone_depth: 1,
            clone_timeout_secs: 300,
            job_command: None,
            job_timeout_secs: 1800,
            max_body_bytes: 26_214_400,
            shutdown_grace_secs: 30,
            log_format: LogFormat::Json,
            log_level: "info".to_owned(),
        }
    }
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
#[allow(
    dead_code,
    reason = "the fields are consumed as serve is composed; issue 7"
)]
pub(crate) struct Config {
    pub(crate) webhook_secret: Secret,
    pub(crate) previous_webhook_secrets: Vec<Secret>,
    pub(crate) repo_url: String,
    pub(crate) base_branch: String,
    pub(crate) trigger_label: String,
    pub(crate) github_token: Option<Secret>,
    pub(crate) listen: SocketAddr,
    pub(crate) admin_listen: SocketAddr,
    pub(crate) workers: NonZeroUsize,
    pub(crate) queue_capacity: usize,
    pub(crate) dedupe_capacity: usize,
    pub(crate) dedupe_retention: Duration,
    pub(crate) max_attempts: u32,
    pub(crate) lease: Duration,
    pub(crate) store: StoreSpec,
    pub(crate) sqlite_synchronous: Synchronous,
    pub(crate) workspace_root: PathBuf,
    pub(crate) clone_depth: u32,
    pub(crate) clone_timeout: Duration,
    pub(crate) job_command: Option<Vec<String>>,
    pub(crate) job_timeout: Duration,
    pub(crate) max_body_bytes: u64,
    pub(crate) shutdown_grace: Duration,
    pub(crate) log_format: LogFormat,
    pub(crate) log_level: String,
}

/// A configuration that cannot be used. The binary exits with code 2 on it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// `--config` names a file that does not exist.
    #[error("configuration file {} does not exist", .0.display())]
    MissingFile(PathBuf),
    /// A key the configuration does not have (a typo, or a key from another version).
    #[error("unknown key `{key}` in {source_name}; docs/configuration.md lists the keys")]
    UnknownKey {
        /// The key as written.
        key: String,
        /// Where it was written (the file or the environment).
        source_name: String,
    },
    /// A value of the wrong type or shape, as figment reports it.
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
    #[error("invalid `{key}`: {message}")]
    Invalid {
        /// The configuration key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A required key is missing.
    #[error("missing `{key}`: {hint}")]
    Missing {
        /// The configuration key.
        key: &'static str,
        /// How to give it.
        hint: &'static str,
    },
    /// A secret file could not be read.
    #[error("cannot read `{key}` {}", .path.display())]
    SecretFile {
        /// The `*_file` key.
        key: &'static str,
        /// The file named by it.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
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
        let metadata = self.figment.find_metadata(key);
        metadata.map_or_else(|| "unset".to_owned(), |metadata| describe(metadata, key))
    }
}

/// Loads and validates the configuration from `file` (or `booty.toml` in the working directory when it
/// exists) and the `BOOTY_*` environment.
pub(crate) fn load(file: Option<&Path>) -> Result<Loaded, ConfigError> {
    let file = match file {
        Some(path) if !path.is_file() => return Err(ConfigError::MissingFile(path.to_owned())),
        Some(path) => path,
        None => Path::new(DEFAULT_FILE),
    };
    let numeric_keys: Vec<&str> = KEYS
        .iter()
        .copied()
        .filter(|key| !STRING_KEYS.contains(key))
        .collect();
    let figment = Figment::from(Serialized::defaults(RawConfig::default()))
        .merge(Toml::file_exact(file))
        .merge(Env::prefixed(ENV_PREFIX).only(&numeric_keys))
        .merge(StringEnv);
    let raw: RawConfig = figment.extract().map_err(from_figment)?;
    let config = raw.validate()?;
    Ok(Loaded { config, figment })
}

/// `BOOTY_<KEY>` for the [`STRING_KEYS`], taken verbatim.
struct StringEnv;

impl Provider for StringEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_, keys| format!("{ENV_PREFIX}{}", keys.join("_").to_uppercase()))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for key in STRING_KEYS {
            let name = format!("{ENV_PREFIX}{}", key.to_uppercase());
            match std::env::var(&name) {
                Ok(value) => {
                    dict.insert((*key).to_owned(), value.into());
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

/// Turns figment's error into one that names the key and where it was written.
fn from_figment(err: figment::Error) -> ConfigError {
    let key = err.path.last().cloned().unwrap_or_default();
    let source_name = err.metadata.as_ref().map_or_else(
        || "the configuration".to_owned(),
        |metadata| describe(metadata, &key),
    );
    match err.kind {
        figment::error::Kind::UnknownField(key, _) => ConfigError::UnknownKey { key, source_name },
        kind if !key.is_empty() => ConfigError::Value {
            key,
            source_name,
            message: kind.to_string(),
        },
        _ => ConfigError::Read(err.to_string()),
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        let webhook_secret = secret(
            ("webhook_secret", self.webhook_secret),
            ("webhook_secret_file", self.webhook_secret_file),
        )?
        .ok_or(ConfigError::Missing {
            key: "webhook_secret",
            hint: "set `webhook_secret`, `webhook_secret_file` or BOOTY_WEBHOOK_SECRET",
        })?;
        let mut previous_webhook_secrets = Vec::with_capacity(self.previous_webhook_secrets.len());
        for (index, value) in self.previous_webhook_secrets.into_iter().enumerate() {
            if value.is_empty() {
                return Err(invalid(
                    "previous_webhook_secrets",
                    format!("entry #{index} is empty"),
                ));
            }
            previous_webhook_secrets.push(Secret(value));
        }
        let github_token = secret(
            ("github_token", self.github_token),
            ("github_token_file", self.github_token_file),
        )?;
        let repo_url =
            self.repo_url
                .filter(|url| !url.trim().is_empty())
                .ok_or(ConfigError::Missing {
                    key: "repo_url",
                    hint: "the repository to clone: https://..., file://... or a local path",
                })?;
        if self.base_branch.is_empty() || self.base_branch.contains(char::is_whitespace) {
            return Err(invalid(
                "base_branch",
                "must be a branch name without spaces",
            ));
        }
        if self.trigger_label.is_empty() {
            return Err(invalid("trigger_label", "must not be empty"));
        }
        let workers = NonZeroUsize::new(self.workers)
            .ok_or_else(|| invalid("workers", "must be at least 1"))?;
        for (key, value) in [
            ("queue_capacity", self.queue_capacity),
            ("dedupe_capacity", self.dedupe_capacity),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if self.max_attempts == 0 {
            return Err(invalid("max_attempts", "must be at least 1"));
        }
        for (key, value) in [
            ("lease_secs", self.lease_secs),
            ("clone_timeout_secs", self.clone_timeout_secs),
            ("job_timeout_secs", self.job_timeout_secs),
            ("max_body_bytes", self.max_body_bytes),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        if let Some(command) = &self.job_command
            && command.first().is_none_or(String::is_empty)
        {
            return Err(invalid(
                "job_command",
                "must be a non-empty list whose first entry is the program",
            ));
        }
        if let Err(err) = tracing_subscriber::EnvFilter::try_new(&self.log_level) {
            return Err(invalid("log_level", err.to_string()));
        }
        Ok(Config {
            webhook_secret,
            previous_webhook_secrets,
            repo_url,
            base_branch: self.base_branch,
            trigger_label: self.trigger_label,
            github_token,
            listen: self.listen,
            admin_listen: self.admin_listen,
            workers,
            queue_capacity: self.queue_capacity,
            dedupe_capacity: self.dedupe_capacity,
            dedupe_retention: Duration::from_secs(self.dedupe_retention_secs),
            max_attempts: self.max_attempts,
            lease: Duration::from_secs(self.lease_secs),
            store: parse_store(&self.store)?,
            sqlite_synchronous: parse_synchronous(&self.sqlite_synchronous)?,
            workspace_root: self.workspace_root.unwrap_or_else(std::env::temp_dir),
            clone_depth: self.clone_depth,
            clone_timeout: Duration::from_secs(self.clone_timeout_secs),
            job_command: self.job_command,
            job_timeout: Duration::from_secs(self.job_timeout_secs),
            max_body_bytes: self.max_body_bytes,
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            log_format: self.log_format,
            log_level: self.log_level,
        })
    }
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// A secret given inline or in a file (one trailing newline trimmed), never both.
fn secret(
    (key, inline): (&'static str, Option<String>),
    (file_key, file): (&'static str, Option<PathBuf>),
) -> Result<Option<Secret>, ConfigError> {
    let value = match (inline, file) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                key,
                format!("given both as `{key}` and as `{file_key}`; keep one"),
            ));
        }
        (Some(value), None) => value,
        (None, Some(path)) => {
            let mut value =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::SecretFile {
                    key: file_key,
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
                return Err(invalid(file_key, format!("{} is empty", path.display())));
            }
            value
        }
        (None, None) => return Ok(None),
    };
    if value.is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    Ok(Some(Secret(value)))
}

fn parse_synchronous(value: &str) -> Result<Synchronous, ConfigError> {
    value
        .parse()
        .map_err(|err: booty_queue::UnknownSynchronous| {
            invalid("sqlite_synchronous", err.to_string())
        })
}

fn parse_store(value: &str) -> Result<StoreSpec, ConfigError> {
    if value == "memory" {
        return Ok(StoreSpec::Memory);
    }
    if let Some(path) = value.strip_prefix("sqlite:") {
        let path = path.strip_prefix("//").unwrap_or(path);
        if path.is_empty() {
            return Err(invalid(
                "store",
                "`sqlite:` needs a file path, e.g. `sqlite:booty.db`",
            ));
        }
        return Ok(StoreSpec::Sqlite(PathBuf::from(path)));
    }
    if value.starts_with("postgres://") || value.starts_with("postgresql://") {
        return Ok(StoreSpec::Postgres(Secret(value.to_owned())));
    }
    Err(invalid(
        "store",
        "expected `memory`, `sqlite:PATH` or `postgres://...`",
    ))
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
        assert_eq!(parse_store("memory").unwrap(), StoreSpec::Memory);
        assert_eq!(
            parse_store("sqlite:booty.db").unwrap(),
            StoreSpec::Sqlite(PathBuf::from("booty.db"))
        );
        assert_eq!(
            parse_store("sqlite:///var/lib/booty.db").unwrap(),
            StoreSpec::Sqlite(PathBuf::from("/var/lib/booty.db"))
        );
        assert!(matches!(
            parse_store("postgres://h/db").unwrap(),
            StoreSpec::Postgres(_)
        ));
        for bad in ["", "sqlite:", "mysql://h/db", "Memory"] {
            let err = parse_store(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid `store`"), "{bad:?}: {err}");
        }
    }
}
