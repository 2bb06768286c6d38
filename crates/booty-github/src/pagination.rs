//! Pages of a list and the [`Cursor`] to the next one, read from GitHub's `Link` header (page numbers for
//! most lists, opaque cursors for webhook deliveries: either way the next page is the `rel="next"` URL).

use reqwest::Url;

/// One page of a list, and where the next one is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Page<T> {
    /// The items of this page, in GitHub's order.
    pub items: Vec<T>,
    /// The next page, if there is one: pass it to the same call to get it.
    pub next: Option<Cursor>,
}

/// Where the next page of a list is: the `rel="next"` link GitHub sent, always on the client's API URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor(pub(crate) Url);

impl Cursor {
    /// The URL of the next page.
    pub fn url(&self) -> &str {
        self.0.as_str()
    }
}

/// The `rel="next"` URL of a `Link` header: `<https://...>; rel="next", <https://...>; rel="last"`.
pub(crate) fn next_link(link: &str) -> Option<&str> {
    // `<` cannot appear unencoded in a URL or a parameter, so each link starts at one.
    link.split('<').skip(1).find_map(|entry| {
        let (url, params) = entry.split_once('>')?;
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        is_next.then_some(url.trim())
    })
}

/// Whether `url` is on the API at `base` (same scheme, host and port, under its path), so following it sends
/// credentials nowhere else.
pub(crate) fn on_api(url: &Url, base: &Url) -> bool {
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && url
            .path()
            .strip_prefix(base.path().trim_end_matches('/'))
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_link_is_found_wherever_it_is() {
        let github =
            r#"<https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_120>; rel="next""#;
        assert_eq!(
            next_link(github),
            Some("https://api.github.com/app/hook/deliveries?per_page=2&cursor=v1_120")
        );
        let pages = r#"<https://x/r?page=1>; rel="prev", <https://x/r?page=3>; rel="next", <https://x/r?page=9>; rel="last""#;
        assert_eq!(next_link(pages), Some("https://x/r?page=3"));
        assert_eq!(
            next_link(r#"<https://x/r?a=1,2>; title="x"; rel="last next""#),
            Some("https://x/r?a=1,2")
        );
        assert_eq!(next_link(r#"<https://x/r?page=1>; rel="prev""#), None);
        assert_eq!(next_link(""), None);
    }

    #[test]
    fn only_links_on_the_api_are_followed() {
        let base = Url::parse("https://ghe.example.com/api/v3").unwrap();
        let ok = |url: &str| on_api(&Url::parse(url).unwrap(), &base);
        assert!(ok(
            "https://ghe.example.com/api/v3/app/hook/deliveries?cursor=x"
        ));
        assert!(ok(
            "https://ghe.example.com:443/api/v3/repos/o/r/pulls?page=2"
        ));
        assert!(!ok("https://evil.example.com/api/v3/app/hook/deliveries"));
        assert!(!ok("http://ghe.example.com/api/v3/app/hook/deliveries"));
        assert!(!ok("https://ghe.example.com:8443/api/v3/x"));
        assert!(!ok("https://ghe.example.com/api/v30/x"));
        assert!(!ok("https://user:pw@ghe.example.com/api/v3/x"));
        let root = Url::parse("https://api.github.com").unwrap();
        assert!(on_api(
            &Url::parse("https://api.github.com/repos/o/r").unwrap(),
            &root
        ));
    }
}
