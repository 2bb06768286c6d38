//! `booty check`: validate the configuration and print the effective values, secrets redacted.

use std::fmt::Write as _;

use booty_service::{CloneFrom, PublishMode};

use crate::config::{Config, KEYS, Loaded, Secret, StoreSpec};

/// Renders every key as `key = value  # source`, in a TOML a reader can paste back (secrets aside).
pub(crate) fn render(loaded: &Loaded) -> String {
    let mut out = String::from("# effective configuration (secrets redacted)\n");
    for key in KEYS {
        let Some(value) = value_of(&loaded.config, key.name) else {
            continue;
        };
        let value = if key.secret { redacted(&value) } else { value };
        let source = loaded.source_of(key.name);
        writeln!(out, "{} = {value}  # {source}", key.name)
            .expect("writing to a String cannot fail");
    }
    out
}

/// A secret key's value with every string in it replaced: the shape (one secret, a list of two) shows,
/// nothing of the secrets does.
fn redacted(value: &str) -> String {
    fn hide(value: serde_json::Value) -> serde_json::Value {
        match value {
            serde_json::Value::Array(items) => items.into_iter().map(hide).collect(),
            _ => serde_json::Value::from("<redacted>"),
        }
    }
    serde_json::from_str(value)
        .map_or_else(|_| REDACTED.to_owned(), |value| hide(value).to_string())
}

const REDACTED: &str = "\"<redacted>\"";

fn quoted(text: impl AsRef<str>) -> String {
    serde_json::to_string(text.as_ref()).expect("a string serialises")
}

/// The effective value of `key`, or `None` for unset optional keys and for the `*_file` keys (their secret is
/// shown under its own key, with the file named as its source).
fn value_of(config: &Config, key: &str) -> Option<String> {
    Some(match key {
        "webhook_secret" => quoted(config.webhook_secret.expose()),
        "previous_webhook_secrets" => {
            let secrets: Vec<&str> = config
                .previous_webhook_secrets
                .iter()
                .map(Secret::expose)
                .collect();
            serde_json::to_string(&secrets).expect("strings serialise")
        }
        "github_token" => quoted(config.github_token.as_ref()?.expose()),
        // Credentials in the URL are a secret like any other.
        "github_app_id" => quoted(config.github_app.as_ref()?.id().to_string()),
        "github_app_private_key_file" => {
            let key_bits = config.github_app.as_ref()?.key_bits();
            let path = config.github_app_private_key_file.as_ref()?;
            format!(
                "{}  # a {key_bits}-bit RSA key; a JWT signed with it",
                quoted(path.display().to_string())
            )
        }
        "github_api_url" => quoted(&config.github_api_url),
        "recovery" => config.recovery.hook.is_some().to_string(),
        "recovery_hook" => quoted(config.recovery.hook.as_ref()?.to_string()),
        "recovery_interval_secs" => config.recovery.interval.as_secs().to_string(),
        "recovery_max_age_secs" => config.recovery.max_age.as_secs().to_string(),
        "repositories" => {
            serde_json::to_string(&config.repository_patterns).expect("strings serialise")
        }
        "github_url" => match &config.clone_from {
            CloneFrom::GitHub { url } => quoted(url),
            _ => return None,
        },
        "repo_url" => match &config.clone_from {
            CloneFrom::Single { url, .. } => quoted(booty_workspace::redact_url(url)),
            _ => return None,
        },
        "accept_bots" => config.accept_bots.to_string(),
        "base_branch" => quoted(&config.base_branch),
        "trigger_label" => quoted(&config.trigger_label),
        "listen" => quoted(config.listen.to_string()),
        "admin_listen" => quoted(config.admin_listen.to_string()),
        "admin_allowed_hosts" => {
            serde_json::to_string(&config.admin_allowed_hosts).expect("strings serialise")
        }
        "admin_token" => quoted(config.admin_token.as_ref()?.expose()),
        "admin_metrics_public" => config.admin_metrics_public.to_string(),
        "workers" => config.workers.to_string(),
        "queue_capacity" => config.queue_capacity.to_string(),
        "dedupe_capacity" => config.dedupe_capacity.to_string(),
        "dedupe_retention_secs" => config.dedupe_retention.as_secs().to_string(),
        "max_attempts" => config.max_attempts.to_string(),
        "retry_base_secs" => config.retry_backoff.base.as_secs().to_string(),
        "retry_max_secs" => config.retry_backoff.cap.as_secs().to_string(),
        "lease_secs" => config.lease.as_secs().to_string(),
        "store" => match &config.store {
            StoreSpec::Memory => quoted("memory"),
            StoreSpec::Sqlite(path) => quoted(format!("sqlite:{}", path.display())),
            StoreSpec::Postgres(_) => quoted("postgres://<redacted>"),
        },
        "sqlite_synchronous" => quoted(config.sqlite_synchronous.as_str()),
        "workspace_root" => quoted(config.workspace_root.display().to_string()),
        "clone_depth" => config.clone_depth.to_string(),
        "clone_timeout_secs" => config.clone_timeout.as_secs().to_string(),
        "job_command" => match &config.job_command {
            Some(argv) => serde_json::to_string(argv).expect("strings serialise"),
            None => return None,
        },
        "job_env_passthrough" => {
            serde_json::to_string(&config.job_env_passthrough).expect("strings serialise")
        }
        "job_timeout_secs" => config.job_timeout.as_secs().to_string(),
        "job_output_bytes" => config.job_output_bytes.to_string(),
        "publish" => quoted(match config.publish.mode {
            PublishMode::PullRequest => "pull_request",
            PublishMode::Branch => "branch",
            _ => "none",
        }),
        "comment_on_issue" => config.publish.comment_on_issue.to_string(),
        "commit_uncommitted" => config.publish.commit_uncommitted.to_string(),
        "max_body_bytes" => config.max_body_bytes.to_string(),
        "shutdown_grace_secs" => config.shutdown_grace.as_secs().to_string(),
        "log_format" => quoted(match config.log_format {
            crate::config::LogFormat::Json => "json",
            crate::config::LogFormat::Pretty => "pretty",
        }),
        "log_level" => quoted(&config.log_level),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key is shown, but the `*_file` keys (their secret is shown under its own key) and optional
    /// keys left unset: a key added to `KEYS` and forgotten here would silently vanish from `check`.
    #[test]
    fn every_key_has_a_value_to_show() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::config::test_config(dir.path());
        for key in KEYS.iter().map(|key| key.name) {
            let optional = key.ends_with("_file")
                || [
                    "github_token",
                    "github_app_id",
                    "job_command",
                    "github_url",
                    "recovery_hook",
                    "admin_token",
                ]
                .contains(&key);
            assert_eq!(value_of(&config, key).is_some(), !optional, "{key}");
        }
    }
}
