//! `booty app create`: booty's GitHub App in one command, through GitHub's App manifest flow.
//!
//! 1. Before anything else, [`files::Plan`] decides where the key, the secrets and the configuration go, and
//!    refuses to start when a key or secret file is already there (without `--force`); an existing
//!    `booty.toml` is left alone and a fragment is written beside it instead.
//! 2. [`server`] serves a page on loopback ([`page`]) whose form posts the App's manifest (booty's
//!    permissions, the `issues` event, the webhook URL, a `redirect_url` back to the page) to
//!    `{github_url}/settings/apps/new?state=...` (or an organization's), and prints its address; a browser is
//!    opened where one can be (best effort).
//! 3. GitHub makes the App once the person confirms, and redirects to `/callback?code=...&state=...`. The
//!    `state` must be the page's; the `code` is exchanged (`POST /app-manifests/{code}/conversions`, no
//!    credentials) for the App's ids and secrets, which are written (mode 0600) with a configuration that
//!    names them through the `*_file` keys. The wait has a time limit (`--timeout-secs`).
//!
//! The code, the key and the secrets never reach the terminal, an error message or argv.

mod files;
mod page;
mod server;

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use booty_github::{Credentials, ErrorKind, GitHub, ManifestApp};
use clap::Args;

use crate::config::GitHubHosts;
use ring::rand::SecureRandom as _;

pub(crate) use files::Written;

/// github.com's web address, the default `--github-url`.
const DOTCOM: &str = "https://github.com";

/// `booty app create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Where GitHub sends the App's webhooks: booty's public `https://HOST/webhooks/github`.
    #[arg(long, value_name = "URL")]
    pub(crate) webhook_url: String,

    /// Make the App in this organization instead of your own account.
    #[arg(long, value_name = "ORG")]
    pub(crate) org: Option<String>,

    /// The App's name (GitHub's names are unique; you can change it on GitHub's page). Default:
    /// `booty-` and six random hex digits.
    #[arg(long)]
    pub(crate) name: Option<String>,

    /// GitHub's web address: a GitHub Enterprise Server's `https://HOST`. Default: the configuration's
    /// `github_url` (`--config`, `booty.toml`, `BOOTY_GITHUB_URL`) when it has one, else
    /// `https://github.com`.
    #[arg(long, value_name = "URL")]
    pub(crate) github_url: Option<String>,

    /// GitHub's REST API. Default: the configuration's `github_api_url` when it has one, else
    /// `https://api.github.com` for github.com and `{github-url}/api/v3` for another host.
    #[arg(long, value_name = "URL")]
    pub(crate) github_api_url: Option<String>,

    /// The directory the key, the secrets and `booty.toml` are written to.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) output: PathBuf,

    /// Overwrite `booty.toml` and the key and secret files when they exist.
    #[arg(long)]
    pub(crate) force: bool,

    /// How long to wait for GitHub's redirect back, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    pub(crate) timeout_secs: u64,

    /// The page's loopback address (`127.0.0.1:0`: a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub(crate) listen: SocketAddr,

    /// Only print the page's address; do not try to open a browser.
    #[arg(long)]
    pub(crate) no_browser: bool,
}

/// Why `app create` stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    /// A command-line value is wrong.
    #[error("invalid `{flag}`: {reason}")]
    Argument {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A file the command would write is already there.
    #[error(
        "{} exists; `booty app create` does not overwrite a key or a secret (it may be another App's): move it away, choose another `--output`, or pass `--force`",
        path.display()
    )]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The output directory cannot be written to.
    #[error("cannot write to the output directory {}: {source}", path.display())]
    Output {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The page's listener cannot be bound.
    #[error("cannot listen on {addr} for the page: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The redirect's `state` is not the page's.
    #[error(
        "the redirect back from GitHub carried a `state` that is not the one this run's page sent (an old tab, or a page elsewhere): the code was not exchanged and nothing was written; run `booty app create` again"
    )]
    StateMismatch,
    /// The redirect carried no code, or not one GitHub makes.
    #[error(
        "the redirect back from GitHub carried {0}: nothing was written; run `booty app create` again"
    )]
    BadCode(&'static str),
    /// GitHub does not know the code.
    #[error(
        "GitHub does not know the manifest code: it expired (a code lasts an hour) or was used already; nothing was written. The App may exist on GitHub anyway: delete it or keep it ({settings}), and run `booty app create` again"
    )]
    CodeRejected {
        /// Where the account's Apps are listed.
        settings: String,
    },
    /// The exchange failed otherwise.
    #[error("exchanging the manifest code with GitHub failed; nothing was written")]
    Conversion(#[source] booty_github::Error),
    /// Nothing came back in time.
    #[error(
        "no redirect back from GitHub within {0} s (`--timeout-secs`): nothing was written; run `booty app create` again"
    )]
    TimedOut(u64),
    /// Interrupted.
    #[error("interrupted before GitHub redirected back: nothing was written")]
    Interrupted,
    /// Writing a file failed after GitHub made the App.
    #[error(
        "GitHub made the App {slug} (app id {id}), but writing {} failed: {source}. GitHub shows a private key only once: generate a new one on the App's settings page ({settings}) and put it there",
        path.display()
    )]
    Write {
        /// The App's slug.
        slug: String,
        /// Its id.
        id: u64,
        /// Where its settings are.
        settings: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Where GitHub is, as the command was told.
#[derive(Clone, Debug)]
pub(crate) struct Hosts {
    /// The web address, without a trailing slash.
    pub(crate) web: String,
    /// The REST API.
    pub(crate) api: String,
}

impl Hosts {
    /// The command line's hosts, else the configuration's, else github.com's.
    fn from_args(args: &CreateArgs, configured: &GitHubHosts) -> Result<Self, AppError> {
        let (web, flag) = match (&args.github_url, &configured.github_url) {
            (Some(url), _) => (url.as_str(), "--github-url"),
            (None, Some(url)) => (url.as_str(), "github_url"),
            (None, None) => (DOTCOM, "--github-url"),
        };
        let web = http_url(flag, web)?;
        let api = match (&args.github_api_url, &configured.github_api_url) {
            (Some(api), _) => http_url("--github-api-url", api)?,
            (None, Some(api)) => http_url("github_api_url", api)?,
            (None, None) if web == DOTCOM => booty_github::DEFAULT_API_URL.to_owned(),
            (None, None) => format!("{web}/api/v3"),
        };
        Ok(Self { web, api })
    }

    /// Where the account's Apps are listed on GitHub.
    fn settings(&self, org: Option<&str>) -> String {
        match org {
            Some(org) => format!("{}/organizations/{org}/settings/apps", self.web),
            None => format!("{}/settings/apps", self.web),
        }
    }
}

/// `url` if it is an absolute `http(s)` URL without credentials, a query or a fragment, without its
/// trailing slash.
fn http_url(flag: &'static str, url: &str) -> Result<String, AppError> {
    let parsed = url::Url::parse(url).map_err(|err| AppError::Argument {
        flag,
        reason: format!("{url:?} is not a URL: {err}"),
    })?;
    let problem = if !matches!(parsed.scheme(), "https" | "http") {
        Some("it is not http:// or https://")
    } else if !parsed.username().is_empty() || parsed.password().is_some() {
        Some("credentials do not belong in it")
    } else if parsed.query().is_some() || parsed.fragment().is_some() {
        Some("it has a query or a fragment")
    } else if parsed.host_str().is_none_or(str::is_empty) {
        Some("it has no host")
    } else {
        None
    };
    if let Some(problem) = problem {
        return Err(AppError::Argument {
            flag,
            reason: format!("{url:?}: {problem}"),
        });
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// Whether `org` can be a GitHub login (letters, digits and single inner `-`, at most 39).
fn check_org(org: &str) -> Result<(), AppError> {
    let valid = !org.is_empty()
        && org.len() <= 39
        && org.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !org.starts_with('-')
        && !org.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(AppError::Argument {
            flag: "--org",
            reason: format!("{org:?} is not a GitHub organization's login"),
        })
    }
}

/// `bytes` random bytes as hex.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut random = vec![0_u8; bytes];
    ring::rand::SystemRandom::new()
        .fill(&mut random)
        .expect("the system's random generator");
    random.iter().fold(String::new(), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

/// Runs the whole flow; what it wrote, for the terminal.
pub(crate) async fn create(args: &CreateArgs, configured: &GitHubHosts) -> anyhow::Result<Created> {
    let hosts = Hosts::from_args(args, configured)?;
    http_url("--webhook-url", &args.webhook_url)?;
    let webhook_url = args.webhook_url.clone();
    if let Some(org) = &args.org {
        check_org(org)?;
    }
    if !args.listen.ip().is_loopback() {
        return Err(AppError::Argument {
            flag: "--listen",
            reason: format!(
                "{} is not a loopback address: the page hands out the App's code",
                args.listen
            ),
        }
        .into());
    }
    let plan = files::Plan::new(&args.output, args.force)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("booty-{}", random_hex(3)));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| AppError::Listen {
            addr: args.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| AppError::Listen {
        addr: args.listen,
        source,
    })?;
    let state = random_hex(32);
    let manifest = page::manifest(&name, &webhook_url, &format!("http://{addr}/callback"));
    let action = page::form_action(&hosts.web, args.org.as_deref(), &state);
    let exchange = Exchange {
        github: anonymous_client(&hosts.api)?,
        plan,
        hosts: hosts.clone(),
        org: args.org.clone(),
    };
    let page_html = page::render(&action, &manifest);
    let running = server::start(listener, addr, page_html, state, exchange);

    let page_url = format!("http://{addr}/");
    println!("booty app create: open {page_url} in a browser signed in to GitHub");
    println!(
        "  it sends GitHub the App's manifest; confirm on GitHub's page, and GitHub sends you back here"
    );
    if !args.no_browser {
        open_browser(&page_url);
    }
    let timeout = Duration::from_secs(args.timeout_secs);
    let outcome = running.outcome(timeout, args.timeout_secs).await;
    Ok(outcome?)
}

/// What the callback does with a code.
pub(crate) struct Exchange {
    github: GitHub,
    plan: files::Plan,
    hosts: Hosts,
    org: Option<String>,
}

impl Exchange {
    /// Exchanges `code` and writes the files.
    pub(crate) async fn run(&self, code: &str) -> Result<Created, AppError> {
        let app = self
            .github
            .create_app_from_manifest(code)
            .await
            .map_err(|err| match err.kind() {
                ErrorKind::NotFound { .. } => AppError::CodeRejected {
                    settings: self.hosts.settings(self.org.as_deref()),
                },
                _ => AppError::Conversion(err),
            })?;
        let written = self
            .plan
            .write(&app, &self.hosts)
            .map_err(|(path, source)| AppError::Write {
                slug: app.slug.clone(),
                id: app.id,
                settings: format!("{}/settings/apps/{}", self.hosts.web, app.slug),
                path,
                source,
            })?;
        Ok(Created { app, written })
    }
}

fn anonymous_client(api: &str) -> Result<GitHub, AppError> {
    let mut config = booty_github::Config::default();
    api.clone_into(&mut config.api_url);
    concat!("booty/", env!("CARGO_PKG_VERSION")).clone_into(&mut config.user_agent);
    GitHub::new(Credentials::Anonymous, config).map_err(|err| AppError::Argument {
        flag: "--github-api-url",
        reason: err.to_string(),
    })
}

/// Besides [`booty_service::BASE_ENV`], what `xdg-open` needs to find the desktop session and its browser.
const DESKTOP_ENV: &[&str] = &[
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XDG_RUNTIME_DIR",
    "XDG_CURRENT_DESKTOP",
    "XDG_DATA_DIRS",
    "XDG_CONFIG_DIRS",
    "DBUS_SESSION_BUS_ADDRESS",
    "BROWSER",
];

/// Opens `url` in the desktop's browser when `xdg-open` (or macOS's `open`) is there; says so otherwise.
fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    // Only what a desktop opener needs to reach the session's browser: booty's own environment may hold
    // secrets (`BOOTY_*`), and the opener starts whatever the desktop names.
    let desktop: Vec<String> = DESKTOP_ENV.iter().map(|&name| name.to_owned()).collect();
    let spawned = std::process::Command::new(opener)
        .env_clear()
        .envs(booty_service::inherited_env(&desktop, |name| {
            std::env::var_os(name)
        }))
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if spawned.is_err() {
        println!("  (no `{opener}` here to open a browser: open the address yourself)");
    }
}

/// The App and the files written for it.
pub(crate) struct Created {
    app: ManifestApp,
    written: Written,
}

impl fmt::Display for Created {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let app = &self.app;
        let owner = app
            .owner
            .as_ref()
            .map_or("your account", |owner| owner.login.as_str());
        writeln!(
            f,
            "Created the GitHub App {:?} ({}), app id {}, client id {}, owned by {owner}.",
            app.name, app.html_url, app.id, app.client_id
        )?;
        writeln!(f, "Wrote (key and secrets readable by you only):")?;
        for (path, what) in &self.written.files {
            writeln!(f, "  {}  ({what})", path.display())?;
        }
        if let Some(existing) = &self.written.kept {
            writeln!(
                f,
                "{} exists and was left as it is (`--force` overwrites it): the App's settings are in {}; copy them into it.",
                existing.display(),
                self.written.config.display()
            )?;
        }
        writeln!(f, "Next:")?;
        writeln!(
            f,
            "  1. Install the App on the repositories booty should serve: {}/installations/new",
            app.html_url
        )?;
        writeln!(
            f,
            "  2. List them as `repositories` in {} (it serves {owner}/* until you do), and set `job_command`.",
            self.written.config.display()
        )?;
        writeln!(
            f,
            "  3. Start booty where GitHub reaches the webhook URL: booty serve --config {}",
            self.written.config.display()
        )?;
        writeln!(
            f,
            "  4. Label an issue `agent:builder` in one of those repositories."
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_logins_are_checked_before_anything_starts() {
        assert_eq!(
            http_url("--github-url", "https://ghe.example.com/").unwrap(),
            "https://ghe.example.com"
        );
        for bad in [
            "ftp://github.com",
            "https://user:pw@github.com",
            "https://github.com/?x=1",
            "github.com",
        ] {
            let err = http_url("--github-url", bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid `--github-url`"), "{bad}: {err}");
        }
        assert!(check_org("acme-labs").is_ok());
        for bad in ["", "-acme", "acme/x", "a b"] {
            assert!(check_org(bad).is_err(), "{bad:?}");
        }
    }
}
