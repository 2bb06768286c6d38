//! What `app create` writes, decided before the flow starts: the App's private key and secrets (mode 0600,
//! never over an existing file without `--force`) and a configuration naming them through the `*_file`
//! keys (`booty.toml`, or a fragment beside an existing one).

use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use booty_github::ManifestApp;

use super::{AppError, DOTCOM, Hosts};
use crate::config::DEFAULT_FILE;

/// The private key's file.
pub(crate) const KEY_FILE: &str = "github-app.private-key.pem";
/// The webhook secret's file.
pub(crate) const WEBHOOK_SECRET_FILE: &str = "github-app.webhook-secret";
/// The OAuth client secret's file (booty does not use it; GitHub shows it once).
pub(crate) const CLIENT_SECRET_FILE: &str = "github-app.client-secret";
/// The configuration written beside an existing `booty.toml`.
pub(crate) const FRAGMENT_FILE: &str = "booty.github-app.toml";

/// The files' paths, absolute, decided up front.
#[derive(Debug)]
pub(crate) struct Plan {
    key: PathBuf,
    webhook_secret: PathBuf,
    client_secret: PathBuf,
    config: PathBuf,
    /// The `booty.toml` left alone, when the configuration goes to the fragment.
    kept: Option<PathBuf>,
    force: bool,
}

/// What was written.
#[derive(Debug)]
pub(crate) struct Written {
    /// Each file and what it holds.
    pub(crate) files: Vec<(PathBuf, &'static str)>,
    /// The configuration (`booty.toml` or the fragment).
    pub(crate) config: PathBuf,
    /// The existing `booty.toml` left as it was.
    pub(crate) kept: Option<PathBuf>,
}

impl Plan {
    /// The paths under `dir` (created if missing). Without `force`, an existing key or secret file stops
    /// the command here, before GitHub is asked for anything; an existing `booty.toml` sends the
    /// configuration to [`FRAGMENT_FILE`], which must not exist either.
    pub(crate) fn new(dir: &Path, force: bool) -> Result<Self, AppError> {
        let output = |source| AppError::Output {
            path: dir.to_owned(),
            source,
        };
        fs::create_dir_all(dir).map_err(output)?;
        let dir = fs::canonicalize(dir).map_err(output)?;
        // Written now, so a read-only directory is found before the App exists rather than after.
        let probe = dir.join(format!(".booty-app-create-{}", std::process::id()));
        fs::write(&probe, b"").map_err(output)?;
        fs::remove_file(&probe).map_err(output)?;

        let booty_toml = dir.join(DEFAULT_FILE);
        let (config, kept) = if booty_toml.exists() && !force {
            (dir.join(FRAGMENT_FILE), Some(booty_toml))
        } else {
            (booty_toml, None)
        };
        let plan = Self {
            key: dir.join(KEY_FILE),
            webhook_secret: dir.join(WEBHOOK_SECRET_FILE),
            client_secret: dir.join(CLIENT_SECRET_FILE),
            config,
            kept,
            force,
        };
        if !force {
            for path in [
                &plan.key,
                &plan.webhook_secret,
                &plan.client_secret,
                &plan.config,
            ] {
                if path.exists() {
                    return Err(AppError::Exists { path: path.clone() });
                }
            }
        }
        Ok(plan)
    }

    /// Writes the App's key and secrets, then the configuration; the path that failed otherwise.
    pub(crate) fn write(
        &self,
        app: &ManifestApp,
        hosts: &Hosts,
    ) -> Result<Written, (PathBuf, io::Error)> {
        let mut files = Vec::new();
        self.secret_file(&self.key, app.pem.expose())?;
        files.push((self.key.clone(), "the App's private key"));
        if let Some(secret) = &app.webhook_secret {
            self.secret_file(&self.webhook_secret, secret.expose())?;
            files.push((self.webhook_secret.clone(), "the webhook secret"));
        }
        self.secret_file(&self.client_secret, app.client_secret.expose())?;
        files.push((
            self.client_secret.clone(),
            "the OAuth client secret, which booty does not use",
        ));
        let text = self.configuration(app, hosts);
        self.open(&self.config, 0o644)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .map_err(|err| (self.config.clone(), err))?;
        files.push((self.config.clone(), "the configuration"));
        Ok(Written {
            files,
            config: self.config.clone(),
            kept: self.kept.clone(),
        })
    }

    /// `text` and a newline into `path`, readable and writable by the owner only.
    fn secret_file(&self, path: &Path, text: &str) -> Result<(), (PathBuf, io::Error)> {
        let mut contents = text.to_owned();
        if !contents.ends_with('\n') {
            contents.push('\n');
        }
        self.open(path, 0o600)
            .and_then(|mut file| {
                // An existing file (`--force`) keeps its mode when opened: set it.
                file.set_permissions(fs::Permissions::from_mode(0o600))?;
                file.write_all(contents.as_bytes())?;
                file.sync_all()
            })
            .map_err(|err| (path.to_owned(), err))
    }

    /// Opens `path` for writing: a new file (mode `mode`), or, with `--force`, an existing one emptied.
    fn open(&self, path: &Path, mode: u32) -> io::Result<fs::File> {
        let mut options = OpenOptions::new();
        options.write(true).mode(mode);
        if self.force {
            options.create(true).truncate(true);
        } else {
            options.create_new(true);
        }
        options.open(path)
    }

    /// The configuration: the App's settings through the `*_file` keys, and the account's repositories.
    fn configuration(&self, app: &ManifestApp, hosts: &Hosts) -> String {
        let quoted = |text: &str| serde_json::to_string(text).expect("a string serializes");
        let path = |path: &Path| quoted(&path.display().to_string());
        let owner = app.owner.as_ref().map(|owner| owner.login.as_str());
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Written by `booty app create` for the GitHub App {} ({}), app id {}.",
            quoted(&app.name),
            app.html_url,
            app.id
        );
        let _ = writeln!(
            out,
            "# Install it on the repositories booty should serve: {}/installations/new",
            app.html_url
        );
        let _ = writeln!(out, "# Every key is described in docs/configuration.md.\n");
        let _ = writeln!(
            out,
            "# The App's client id (its numeric app id is {}).",
            app.id
        );
        let _ = writeln!(out, "github_app_id = {}", quoted(&app.client_id));
        let _ = writeln!(out, "github_app_private_key_file = {}", path(&self.key));
        if app.webhook_secret.is_some() {
            let _ = writeln!(out, "webhook_secret_file = {}", path(&self.webhook_secret));
        }
        if hosts.web != DOTCOM {
            let _ = writeln!(out, "github_url = {}", quoted(&hosts.web));
        }
        if hosts.api != booty_github::DEFAULT_API_URL {
            let _ = writeln!(out, "github_api_url = {}", quoted(&hosts.api));
        }
        if let Some(owner) = owner {
            let _ = writeln!(
                out,
                "# The repositories served: the App's account's, until you list those you install it on."
            );
            let _ = writeln!(out, "repositories = [{}]", quoted(&format!("{owner}/*")));
        }
        out
    }
}
