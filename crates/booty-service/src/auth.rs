//! Who may use the admin listener: the admin token, compared in constant time, and the check that keeps
//! other sites from changing anything.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode};
use ring::hmac;
use ring::rand::SystemRandom;

use booty_edge::Reply;

/// What `WWW-Authenticate` asks a browser for: HTTP Basic, any user name, the token as the password.
const CHALLENGE: &str = "Basic realm=\"booty admin\", charset=\"UTF-8\"";

/// The token every admin request must carry when one is configured: `Authorization: Bearer TOKEN` (the
/// API, `booty jobs`) or HTTP Basic with the token as the password (a browser).
///
/// It is kept only as an HMAC tag under a key made at start-up, and a presented token is checked with
/// [`ring::hmac::verify`], which compares in constant time; neither `Debug` nor any error shows it.
#[derive(Clone)]
pub struct AdminToken {
    key: hmac::Key,
    tag: hmac::Tag,
}

impl AdminToken {
    /// The token `token`.
    ///
    /// # Errors
    /// [`TokenError`] if it is empty, or holds anything but visible ASCII (it travels in a header).
    pub fn new(token: &str) -> Result<Self, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        if !token.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(TokenError::NotVisibleAscii);
        }
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_unspecified| TokenError::NoRandomness)?;
        let tag = hmac::sign(&key, token.as_bytes());
        Ok(Self { key, tag })
    }

    /// Whether `presented` is the token, compared in constant time.
    fn matches(&self, presented: &[u8]) -> bool {
        hmac::verify(&self.key, presented, self.tag.as_ref()).is_ok()
    }

    /// Whether `headers` carry the token: `Authorization: Bearer TOKEN`, or `Basic` with it as the
    /// password (the user name is not looked at).
    pub(crate) fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
        else {
            return false;
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return self.matches(credentials.as_bytes());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = STANDARD.decode(credentials) else {
                return false;
            };
            let password = decoded
                .iter()
                .position(|&byte| byte == b':')
                .map_or(&[][..], |colon| &decoded[colon + 1..]);
            return self.matches(password);
        }
        false
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Why a string cannot be the admin token. The messages never show the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The token is empty.
    #[error("the admin token is empty")]
    Empty,
    /// The token holds a space, a control character or a non-ASCII character.
    #[error("the admin token must be visible ASCII characters only (no spaces or line breaks)")]
    NotVisibleAscii,
    /// The system's random number generator failed.
    #[error("no randomness to key the admin token's comparison")]
    NoRandomness,
}

/// The `401` for a request without the token: JSON saying how to send it, and a Basic challenge so a
/// browser asks for it.
pub(crate) fn unauthorized() -> Reply {
    Reply::error(
        StatusCode::UNAUTHORIZED,
        "this admin listener needs its token: send `Authorization: Bearer <admin_token>`, or HTTP Basic \
         with the token as the password",
    )
    .with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    )
}

/// Why a state-changing request is refused as cross-site, or `None` if it may go on.
///
/// `Sec-Fetch-Site` (sent by every current browser) must be `same-origin` or `none` (typed by the user);
/// an `Origin` must name the host the request was sent to. A request with neither (curl, `booty jobs`)
/// is not from a browser page, and passes.
pub(crate) fn cross_site<B>(request: &Request<B>) -> Option<String> {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("");
        if !matches!(site, "same-origin" | "none") {
            return Some(format!(
                "cross-site request refused: Sec-Fetch-Site is {site:?}; change jobs from the admin \
                 page itself or from a client that is not a browser"
            ));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let host = request
            .uri()
            .authority()
            .map(|authority| authority.as_str().to_owned())
            .or_else(|| {
                headers
                    .get(header::HOST)
                    .and_then(|host| host.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let origin_host = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        if !origin_host.is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(&host)) {
            return Some(format!(
                "cross-site request refused: Origin {origin:?} is not this listener ({host})"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    #[test]
    fn bearer_and_basic_carry_the_token_and_nothing_else_does() {
        let token = AdminToken::new("s3cret-token").unwrap();
        assert!(token.admits(&headers("Bearer s3cret-token")));
        assert!(token.admits(&headers("bearer  s3cret-token ")));
        let basic = STANDARD.encode("anyone:s3cret-token");
        assert!(token.admits(&headers(&format!("Basic {basic}"))));
        let basic_no_user = STANDARD.encode(":s3cret-token");
        assert!(token.admits(&headers(&format!("Basic {basic_no_user}"))));

        assert!(!token.admits(&HeaderMap::new()));
        assert!(!token.admits(&headers("Bearer s3cret-toke")));
        assert!(!token.admits(&headers("Bearer s3cret-token2")));
        assert!(!token.admits(&headers("Bearer")));
        assert!(!token.admits(&headers("Token s3cret-token")));
        let as_user = STANDARD.encode("s3cret-token:");
        assert!(!token.admits(&headers(&format!("Basic {as_user}"))));
        assert!(!token.admits(&headers("Basic not-base64!")));
    }

    #[test]
    fn a_token_must_be_header_safe_and_is_never_shown() {
        assert_eq!(AdminToken::new("").unwrap_err(), TokenError::Empty);
        assert_eq!(
            AdminToken::new("two words").unwrap_err(),
            TokenError::NotVisibleAscii
        );
        assert_eq!(
            AdminToken::new("line\nbreak").unwrap_err(),
            TokenError::NotVisibleAscii
        );
        let token = AdminToken::new("s3cret-token").unwrap();
        assert_eq!(format!("{token:?}"), "AdminToken(<redacted>)");
    }

    fn post(headers: &[(&str, &str)]) -> Request<()> {
        let mut request = Request::post("/jobs/1-a/retry")
            .header(header::HOST, "127.0.0.1:9090")
            .body(())
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        request
    }

    #[test]
    fn only_same_origin_browsers_and_non_browsers_may_change_jobs() {
        assert_eq!(cross_site(&post(&[])), None);
        assert_eq!(
            cross_site(&post(&[
                ("sec-fetch-site", "same-origin"),
                ("origin", "http://127.0.0.1:9090")
            ])),
            None
        );
        assert_eq!(cross_site(&post(&[("sec-fetch-site", "none")])), None);
        let refused = cross_site(&post(&[("sec-fetch-site", "cross-site")])).unwrap();
        assert!(
            refused.contains("Sec-Fetch-Site is \"cross-site\""),
            "{refused}"
        );
        assert!(cross_site(&post(&[("sec-fetch-site", "same-site")])).is_some());
        let refused = cross_site(&post(&[("origin", "http://evil.example")])).unwrap();
        assert!(
            refused.contains("Origin \"http://evil.example\""),
            "{refused}"
        );
        assert!(cross_site(&post(&[("origin", "null")])).is_some());
        assert!(cross_site(&post(&[("origin", "http://127.0.0.1:9091")])).is_some());
    }
}
