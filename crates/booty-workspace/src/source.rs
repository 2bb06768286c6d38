//! The repository a workspace is cloned from: which URLs are accepted, how credentials are kept out of them,
//! and how a URL is shown in errors and logs.

use gix::url::Scheme;

use crate::config::Token;

/// The user name GitHub expects with an installation or personal access token in Basic authentication.
const TOKEN_USER: &str = "x-access-token";

/// A parsed repository location, stripped of any credentials it was given with.
#[derive(Clone)]
pub(crate) struct Source {
    /// What gix is handed: never carries a user or password, so nothing gix writes (`.git/config`, reflogs,
    /// `FETCH_HEAD`) or reports can contain one.
    url: gix::Url,
    /// The URL as shown in errors, logs and [`crate::Workspace::repository_url`].
    display: String,
    /// The `Authorization` header for HTTP(S) remotes, if there are credentials to send.
    authorization: Option<String>,
}

/// Why a repository URL was refused. The caller adds the redacted URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum UrlProblem {
    /// Neither a URL nor a path git understands.
    Unparsable,
    /// A scheme other than `http`, `https` or `file` (or a plain path).
    Scheme(String),
    /// Credentials (a configured token, or a password in the URL) for plain `http://` to a host that is not
    /// loopback, where anyone on the way could read them.
    InsecureCredentials {
        /// The host, as the URL names it.
        host: String,
    },
}

impl std::fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unparsable => f.write_str("not a URL or path git understands"),
            Self::Scheme(scheme) => write!(
                f,
                "scheme `{scheme}` is not supported (use https://, http://, file:// or a local path)"
            ),
            Self::InsecureCredentials { host } => write!(
                f,
                "refusing to send credentials over plain http:// to {host} (use https://, or a loopback host)"
            ),
        }
    }
}

impl Source {
    /// Parses `input`. Credentials in an HTTP(S) URL (`https://user:secret@host/...`) are taken out of the
    /// URL and sent as an `Authorization` header instead; without a password in the URL, `token` is sent.
    /// Credentials are only ever sent over `https://`, or over `http://` to a loopback host (127.0.0.0/8,
    /// `::1`, `localhost`): any other `http://` URL is refused if there are credentials to send.
    pub(crate) fn parse(input: &str, token: Option<&Token>) -> Result<Self, UrlProblem> {
        let mut url =
            gix::url::parse(gix::bstr::BStr::new(input)).map_err(|_| UrlProblem::Unparsable)?;
        let authorization = match url.scheme {
            Scheme::Http | Scheme::Https => {
                let user = url.user.take().filter(|user| !user.is_empty());
                let password = url.password.take();
                let secret = password.as_deref().or_else(|| token.map(Token::expose));
                if secret.is_some() && url.scheme == Scheme::Http && !is_loopback(url.host()) {
                    return Err(UrlProblem::InsecureCredentials {
                        host: url.host().unwrap_or_default().to_owned(),
                    });
                }
                secret.map(|secret| {
                    basic_authorization(user.as_deref().unwrap_or(TOKEN_USER), secret)
                })
            }
            Scheme::File => None,
            ref other => return Err(UrlProblem::Scheme(other.as_str().to_owned())),
        };
        let display = url.to_bstring().to_string();
        Ok(Self {
            url,
            display,
            authorization,
        })
    }

    pub(crate) fn url(&self) -> &gix::Url {
        &self.url
    }

    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    pub(crate) fn is_http(&self) -> bool {
        matches!(self.url.scheme, Scheme::Http | Scheme::Https)
    }

    /// The `Authorization: Basic ...` header line, for HTTP(S) sources with credentials.
    pub(crate) fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("url", &self.display)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Whether `host` (as a URL names it, IPv6 in brackets) is this machine: `localhost`, 127.0.0.0/8 or `::1`.
/// Names that merely resolve to loopback do not count: what they resolve to can change.
fn is_loopback(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return false;
    };
    let bare = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);
    bare.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn basic_authorization(user: &str, secret: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
    format!("Authorization: Basic {encoded}")
}

/// `url` with its credentials taken out, for showing it in a log line, an error or a `check` report.
///
/// - `scheme://user:password@host/...` loses its whole user-info part, user and password alike (a token is
///   often given as the user alone): `https://user:pw@host/x` becomes `https://host/x`.
/// - The scp-like form `user:password@host:path` loses its user-info if it has a password; `git@host:path`
///   is left alone, its user being an SSH login name, not a secret.
/// - Anything else (local paths, URLs without user-info) comes back unchanged, and so do the path, query
///   and fragment: a secret put there is not recognised.
///
/// The credentials are removed rather than replaced by a placeholder, so the result is the URL the clone
/// really uses: [`crate::Workspace::repository_url`], the crate's errors and its logs show it the same way.
/// The input need not be a valid URL.
///
/// ```
/// use booty_workspace::redact_url;
///
/// assert_eq!(redact_url("https://x-access-token:ghs_abc@github.com/o/r.git"), "https://github.com/o/r.git");
/// assert_eq!(redact_url("https://ghp_abc@github.com/o/r.git"), "https://github.com/o/r.git");
/// assert_eq!(redact_url("git@github.com:o/r.git"), "git@github.com:o/r.git");
/// assert_eq!(redact_url("/srv/git/r.git"), "/srv/git/r.git");
/// ```
pub fn redact_url(url: &str) -> String {
    let (authority_start, scp_like) = match url.find("://") {
        Some(scheme_end) => (scheme_end + 3, false),
        None => (0, true),
    };
    let rest = &url[authority_start..];
    let authority_end = authority_start + rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = url[authority_start..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user_info = &url[authority_start..authority_start + at];
    if scp_like && !user_info.contains(':') {
        return url.to_owned();
    }
    format!(
        "{}{}",
        &url[..authority_start],
        &url[authority_start + at + 1..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(header: &str) -> String {
        use base64::Engine as _;
        let encoded = header.strip_prefix("Authorization: Basic ").unwrap();
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn https_credentials_move_from_the_url_to_a_header() {
        let source = Source::parse("https://octo:s3cret@github.com/o/r.git", None).unwrap();
        assert_eq!(source.display(), "https://github.com/o/r.git");
        assert_eq!(source.url().to_bstring(), "https://github.com/o/r.git");
        assert_eq!(decode(source.authorization().unwrap()), "octo:s3cret");
        assert!(!format!("{source:?}").contains("s3cret"));
    }

    #[test]
    fn the_token_is_used_when_the_url_has_no_password() {
        let token = Token::new("ghs_abc");
        let plain = Source::parse("https://github.com/o/r.git", Some(&token)).unwrap();
        assert_eq!(
            decode(plain.authorization().unwrap()),
            "x-access-token:ghs_abc"
        );
        let named = Source::parse("http://bot@127.0.0.1:8/r.git", Some(&token)).unwrap();
        assert_eq!(decode(named.authorization().unwrap()), "bot:ghs_abc");
        assert_eq!(named.display(), "http://127.0.0.1:8/r.git");
        let with_password = Source::parse("https://u:p@h/r", Some(&token)).unwrap();
        assert_eq!(decode(with_password.authorization().unwrap()), "u:p");
        assert!(
            Source::parse("https://h/r", None)
                .unwrap()
                .authorization()
                .is_none()
        );
    }

    #[test]
    fn local_sources_never_carry_credentials() {
        let token = Token::new("ghs_abc");
        for input in [
            "file:///srv/git/r.git",
            "/srv/git/r.git",
            "./relative/r.git",
        ] {
            let source = Source::parse(input, Some(&token)).unwrap();
            assert!(!source.is_http(), "{input}");
            assert!(source.authorization().is_none(), "{input}");
        }
    }

    #[test]
    fn other_schemes_are_refused_by_name() {
        assert_eq!(
            Source::parse("ssh://git@github.com/o/r.git", None).unwrap_err(),
            UrlProblem::Scheme("ssh".into())
        );
        assert_eq!(
            Source::parse("git@github.com:o/r.git", None).unwrap_err(),
            UrlProblem::Scheme("ssh".into())
        );
        assert_eq!(
            Source::parse("git://github.com/o/r.git", None).unwrap_err(),
            UrlProblem::Scheme("git".into())
        );
        assert_eq!(Source::parse("", None).unwrap_err(), UrlProblem::Unparsable);
    }

    #[test]
    fn credentials_are_refused_over_plain_http_to_other_hosts() {
        let token = Token::new("ghs_plain_http");
        for (input, token) in [
            ("http://example.com/o/r.git", Some(&token)),
            ("http://bot@example.com/o/r.git", Some(&token)),
            ("http://u:url-pass@example.com:8080/o/r.git", None),
            ("http://10.0.0.1/o/r.git", Some(&token)),
            ("http://[::2]/o/r.git", Some(&token)),
            ("http://localhost.example.com/o/r.git", Some(&token)),
            ("http://128.0.0.1/o/r.git", Some(&token)),
        ] {
            let problem = Source::parse(input, token).unwrap_err();
            let text = problem.to_string();
            assert!(
                matches!(problem, UrlProblem::InsecureCredentials { .. }),
                "{input}: {problem:?}"
            );
            assert!(text.contains("http://"), "{text}");
            assert!(
                !text.contains("ghs_plain_http") && !text.contains("url-pass"),
                "{text}"
            );
        }
        assert_eq!(
            Source::parse("http://u:url-pass@example.com:8080/o/r.git", None)
                .unwrap_err()
                .to_string(),
            "refusing to send credentials over plain http:// to example.com (use https://, or a loopback host)"
        );
    }

    #[test]
    fn plain_http_without_credentials_or_to_loopback_is_allowed() {
        let token = Token::new("ghs_loopback");
        assert!(
            Source::parse("http://example.com/o/r.git", None)
                .unwrap()
                .authorization()
                .is_none()
        );
        assert!(
            Source::parse("http://bot@example.com/o/r.git", None)
                .unwrap()
                .authorization()
                .is_none()
        );
        for input in [
            "http://127.0.0.1:8/r.git",
            "http://127.8.9.10/r.git",
            "http://[::1]:8/r.git",
            "http://localhost:8/r.git",
            "http://LocalHost/r.git",
        ] {
            let source = Source::parse(input, Some(&token)).unwrap();
            assert_eq!(
                decode(source.authorization().unwrap()),
                "x-access-token:ghs_loopback",
                "{input}"
            );
        }
        let https = Source::parse("https://example.com/o/r.git", Some(&token)).unwrap();
        assert!(https.authorization().is_some());
    }

    #[test]
    fn redact_url_drops_user_info_only() {
        for (input, shown) in [
            ("https://u:p@h:1/x@y", "https://h:1/x@y"),
            ("https://user:pw@host/x", "https://host/x"),
            ("https://tok@h", "https://h"),
            ("http://a:b@c@d/e", "http://d/e"),
            ("file://u:p@/srv/r.git", "file:///srv/r.git"),
            ("u:p@host:o/r.git", "host:o/r.git"),
            ("u:p@ss@host:o/r.git", "host:o/r.git"),
            // Nothing to remove: returned as it is.
            ("https://h/p?q=a@b", "https://h/p?q=a@b"),
            ("https://h#frag@x", "https://h#frag@x"),
            ("git@github.com:o/r", "git@github.com:o/r"),
            ("/srv/git/a@b/r.git", "/srv/git/a@b/r.git"),
            ("./a:b@c/r.git", "./a:b@c/r.git"),
            ("not a url", "not a url"),
            ("", ""),
        ] {
            assert_eq!(redact_url(input), shown, "{input}");
        }
    }
}
