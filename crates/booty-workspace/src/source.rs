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
}

impl std::fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unparsable => f.write_str("not a URL or path git understands"),
            Self::Scheme(scheme) => write!(
                f,
                "scheme `{scheme}` is not supported (use https://, http://, file:// or a local path)"
            ),
        }
    }
}

impl Source {
    /// Parses `input`. Credentials in an HTTP(S) URL (`https://user:secret@host/...`) are taken out of the
    /// URL and sent as an `Authorization` header instead; without a password in the URL, `token` is sent.
    pub(crate) fn parse(input: &str, token: Option<&Token>) -> Result<Self, UrlProblem> {
        let mut url =
            gix::url::parse(gix::bstr::BStr::new(input)).map_err(|_| UrlProblem::Unparsable)?;
        let authorization = match url.scheme {
            Scheme::Http | Scheme::Https => {
                let user = url.user.take().filter(|user| !user.is_empty());
                let password = url.password.take();
                let secret = password.as_deref().or_else(|| token.map(Token::expose));
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

fn basic_authorization(user: &str, secret: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
    format!("Authorization: Basic {encoded}")
}

/// `input` with the user-info part of a `scheme://user:password@host/...` URL removed, for showing a URL that
/// could not be parsed (gix's own parse errors repeat the input in full).
pub(crate) fn redact(input: &str) -> String {
    let Some(scheme_end) = input.find("://") else {
        return input.to_owned();
    };
    let authority_start = scheme_end + 3;
    let authority_end = input[authority_start..]
        .find(['/', '?', '#'])
        .map_or(input.len(), |end| authority_start + end);
    match input[authority_start..authority_end].rfind('@') {
        Some(at) => format!(
            "{}{}",
            &input[..authority_start],
            &input[authority_start + at + 1..]
        ),
        None => input.to_owned(),
    }
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
    fn redact_drops_user_info_only() {
        assert_eq!(redact("https://u:p@h:1/x@y"), "https://h:1/x@y");
        assert_eq!(redact("https://tok@h"), "https://h");
        assert_eq!(redact("https://h/p?q=a@b"), "https://h/p?q=a@b");
        assert_eq!(redact("git@github.com:o/r"), "git@github.com:o/r");
        assert_eq!(redact("http://a:b@c@d/e"), "http://d/e");
    }
}
