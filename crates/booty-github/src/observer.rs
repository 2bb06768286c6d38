//! What the client tells an embedder about each answer GitHub gave, for metrics, without knowing a
//! metrics crate.

use std::fmt;

/// Told about every answer GitHub gives (each try of a call, retries included): register one in
/// [`Config::observer`](crate::Config::observer). Every method does nothing by default; keep it cheap.
pub trait ApiObserver: fmt::Debug + Send + Sync + 'static {
    /// GitHub answered a request.
    fn answered(&self, _call: &ApiCall<'_>) {}
}

/// What [`ApiObserver::answered`] is told.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct ApiCall<'a> {
    /// The operation as a template, so it can be a metric label: `GET /repos/{owner}/{repo}/installation`,
    /// `POST /app/installations/{id}/access_tokens` (names and numbers taken out of the path).
    pub operation: &'a str,
    /// The HTTP status GitHub answered.
    pub status: u16,
    /// `X-RateLimit-Remaining`, when the answer carried it.
    pub rate_limit_remaining: Option<u64>,
}

impl<'a> ApiCall<'a> {
    /// An answer `status` to `operation` (a template), without a rate limit reading.
    pub fn new(operation: &'a str, status: u16) -> Self {
        Self {
            operation,
            status,
            rate_limit_remaining: None,
        }
    }
}

/// `METHOD /path` with the account, repository and organization names, numbers, and anything after a
/// `refs`, `contents` or `branches` segment replaced by placeholders.
pub(crate) fn template(method: &str, path: &str) -> String {
    let mut out = format!("{method} ");
    let mut segments = path.split('/').filter(|segment| !segment.is_empty());
    while let Some(segment) = segments.next() {
        out.push('/');
        out.push_str(segment);
        match segment {
            "repos" => {
                for name in ["{owner}", "{repo}"] {
                    if segments.next().is_some() {
                        out.push('/');
                        out.push_str(name);
                    }
                }
            }
            "orgs" | "users" if segments.next().is_some() => out.push_str("/{name}"),
            "refs" | "contents" | "branches" => {
                if segments.next().is_some() {
                    out.push_str("/{path}");
                }
                break;
            }
            _ => {}
        }
        if segment.bytes().all(|byte| byte.is_ascii_digit()) {
            out.truncate(out.len() - segment.len());
            out.push_str("{id}");
        } else if !segment
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte == b'_' || byte == b'-')
        {
            out.truncate(out.len() - segment.len());
            out.push_str("{param}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_are_templates_without_names_or_numbers() {
        assert_eq!(
            template("GET", "/repos/Octo-Org/hello.world/installation"),
            "GET /repos/{owner}/{repo}/installation"
        );
        assert_eq!(
            template("POST", "/app/installations/4242/access_tokens"),
            "POST /app/installations/{id}/access_tokens"
        );
        assert_eq!(
            template("POST", "/repos/o/r/hooks/1/deliveries/99/attempts"),
            "POST /repos/{owner}/{repo}/hooks/{id}/deliveries/{id}/attempts"
        );
        assert_eq!(
            template("GET", "/orgs/acme/hooks/7/deliveries"),
            "GET /orgs/{name}/hooks/{id}/deliveries"
        );
        assert_eq!(
            template("GET", "/repos/o/r/git/refs/heads/agent/issue-5"),
            "GET /repos/{owner}/{repo}/git/refs/{path}"
        );
        assert_eq!(
            template("GET", "/app/hook/deliveries"),
            "GET /app/hook/deliveries"
        );
        assert_eq!(template("GET", "/weird/Name.x"), "GET /weird/{param}");
    }
}
