//! Which hosts a listener answers to, so a page on another site cannot read it through DNS rebinding
//! (booty-service's admin listener checks every request with [`AllowedHosts`]).
//!
//! A browser that loads `http://evil.example:9090/` and then sees `evil.example` resolve to `127.0.0.1`
//! sends its requests to the admin listener with `Host: evil.example:9090`: same origin for the browser, so
//! the page could read `/jobs`. Refusing every host but the listener's own address (and the names an
//! operator allowed) closes that door: an attacker can rebind a name, not an address literal.

use std::net::{IpAddr, SocketAddr};

use hyper::header::{HOST, HeaderValue};
use hyper::{Request, StatusCode};
use tracing::warn;

use crate::reply::Reply;

/// The port a `Host` without one means (the admin listener speaks plain HTTP).
const DEFAULT_PORT: u16 = 80;
/// How much of a refused host is shown back and logged.
const SHOWN_MAX_CHARS: usize = 255;

/// A name given to [`AllowedHosts::allow`] that is not a host.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// Not a host name, an IPv4 address or a bracketed IPv6 address, each with an optional port.
    #[error(
        "allowed host {host:?} is not a host name, IPv4 address or [IPv6] address with an optional :port"
    )]
    Invalid {
        /// The name as given.
        host: String,
    },
}

/// Checks a name as [`AllowedHosts::allow`] would take it, so a configuration can be checked before
/// anything listens.
///
/// # Errors
/// [`HostError::Invalid`] when `host` is not a host name, IPv4 address or bracketed IPv6 address with an
/// optional port.
pub fn check_allowed_host(host: &str) -> Result<(), HostError> {
    AllowedHosts::default().allow(host)
}

/// The hosts a listener answers to: its own address, and names allowed by configuration.
///
/// [`AllowedHosts::check`] passes a request only when every host it names (`Host` headers, the HTTP/2
/// `:authority` or an absolute URI's) is one of them, and otherwise gives the `421 Misdirected Request`
/// to answer, naming the refused host. That keeps a page on another site from reading the listener
/// through DNS rebinding: its browser sends the attacker's name, never the listener's address. The
/// default answers no host at all.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    listening_on: Vec<SocketAddr>,
    names: Vec<Authority>,
}

impl AllowedHosts {
    /// Requests naming `addr` are answered; for a loopback address also `localhost` and any loopback
    /// address on its port, for an unspecified one (`0.0.0.0`, `[::]`) any address literal and
    /// `localhost` on its port.
    pub fn listen_on(&mut self, addr: SocketAddr) {
        self.listening_on.push(addr);
    }

    /// Requests naming `host` are answered too: `name` (any port) or `name:port`, compared without case;
    /// IP addresses (`10.0.0.5:9090`, `[fd00::5]`) work too.
    ///
    /// # Errors
    /// [`HostError::Invalid`] when `host` is not a host name, IPv4 address or bracketed IPv6 address with
    /// an optional port.
    pub fn allow(&mut self, host: &str) -> Result<(), HostError> {
        let authority = Authority::parse(host).ok_or_else(|| HostError::Invalid {
            host: host.to_owned(),
        })?;
        self.names.push(authority);
        Ok(())
    }

    /// `Ok` when every host the request names (its `Host` headers and, for HTTP/2 or an absolute URI, its
    /// authority) is allowed and it names at least one; otherwise the `421` to answer (logged
    /// `admin_host_refused`).
    ///
    /// # Errors
    /// The `421 Misdirected Request` reply, naming the refused host (cut to 255 characters) or saying that
    /// the request names none.
    pub fn check<B>(&self, request: &Request<B>) -> Result<(), Reply> {
        let from_uri = request
            .uri()
            .authority()
            .map(|authority| authority.as_str().as_bytes());
        let from_headers = request
            .headers()
            .get_all(HOST)
            .iter()
            .map(HeaderValue::as_bytes);
        let mut named = false;
        for host in from_uri.into_iter().chain(from_headers) {
            named = true;
            if !self.allows(host) {
                let shown = shown(host);
                warn!(host = ?shown, "admin_host_refused");
                let message = format!(
                    "this listener does not answer to host {shown}; use its address or an allowed host"
                );
                return Err(Reply::error(StatusCode::MISDIRECTED_REQUEST, &message));
            }
        }
        if named {
            return Ok(());
        }
        warn!(host = "", "admin_host_refused");
        Err(Reply::error(
            StatusCode::MISDIRECTED_REQUEST,
            "the request names no host (no Host header or authority); this listener answers only to \
             its address or an allowed host",
        ))
    }

    fn allows(&self, host: &[u8]) -> bool {
        let Some(asked) = std::str::from_utf8(host).ok().and_then(Authority::parse) else {
            return false;
        };
        let port = asked.port.unwrap_or(DEFAULT_PORT);
        let by_address = self.listening_on.iter().any(|addr| {
            addr.port() == port
                && match asked.ip() {
                    Some(ip) => {
                        ip == addr.ip()
                            || (ip.is_loopback() && addr.ip().is_loopback())
                            || addr.ip().is_unspecified()
                    }
                    None => {
                        asked.host == "localhost"
                            && (addr.ip().is_loopback() || addr.ip().is_unspecified())
                    }
                }
        });
        by_address
            || self.names.iter().any(|name| {
                name.port.is_none_or(|allowed| allowed == port)
                    && match (name.ip(), asked.ip()) {
                        (Some(allowed), Some(ip)) => allowed == ip,
                        _ => name.host == asked.host,
                    }
            })
    }
}

/// A `host[:port]` as a `Host` header (or an allowed host) gives it: the host lowercased, without an
/// IPv6 address's brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

impl Authority {
    /// `None` for anything but a host name (letters, digits, `-`, `.`, `_`), an IPv4 address or a
    /// bracketed IPv6 address, with an optional `:port`. `localhost:` (an empty port) means no port.
    fn parse(text: &str) -> Option<Self> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (inside, after) = rest.split_once(']')?;
            inside.parse::<std::net::Ipv6Addr>().ok()?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (inside, port)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        let is_name = |host: &str| {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_'))
        };
        if !text.starts_with('[') && !is_name(host) {
            return None;
        }
        let port = match port {
            None | Some("") => None,
            Some(port) if port.bytes().all(|byte| byte.is_ascii_digit()) => {
                Some(port.parse().ok()?)
            }
            Some(_) => return None,
        };
        Some(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

/// A host as sent, for the answer and the log: lossy UTF-8, cut to [`SHOWN_MAX_CHARS`] characters.
fn shown(host: &[u8]) -> String {
    let text = String::from_utf8_lossy(host);
    match text.char_indices().nth(SHOWN_MAX_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listening_on(addr: &str) -> AllowedHosts {
        let mut hosts = AllowedHosts::default();
        hosts.listen_on(addr.parse().unwrap());
        hosts
    }

    fn allows(hosts: &AllowedHosts, host: &str) -> bool {
        hosts.allows(host.as_bytes())
    }

    #[test]
    fn a_loopback_listener_answers_its_address_localhost_and_loopback_on_its_port() {
        let hosts = listening_on("127.0.0.1:9090");
        for host in [
            "127.0.0.1:9090",
            "localhost:9090",
            "LOCALHOST:9090",
            "[::1]:9090",
            "127.0.0.2:9090",
        ] {
            assert!(allows(&hosts, host), "{host}");
        }
        for host in [
            "127.0.0.1",
            "127.0.0.1:9091",
            "evil.example:9090",
            "localhost.evil.example:9090",
            "10.0.0.1:9090",
            "127.0.0.1:9090:9090",
            "user@127.0.0.1:9090",
            "[::1:9090",
            "",
        ] {
            assert!(!allows(&hosts, host), "{host}");
        }
        let v6 = listening_on("[::1]:9090");
        assert!(allows(&v6, "[::1]:9090") && allows(&v6, "localhost:9090"));
    }

    #[test]
    fn port_80_may_be_left_out() {
        let hosts = listening_on("127.0.0.1:80");
        assert!(allows(&hosts, "127.0.0.1") && allows(&hosts, "localhost:"));
    }

    #[test]
    fn an_unspecified_listener_answers_any_address_but_no_other_name() {
        let hosts = listening_on("0.0.0.0:9090");
        for host in ["10.1.2.3:9090", "[fd00::1]:9090", "localhost:9090"] {
            assert!(allows(&hosts, host), "{host}");
        }
        assert!(!allows(&hosts, "booty.internal:9090"));
        assert!(!allows(&hosts, "10.1.2.3:9091"));
        let specific = listening_on("10.1.2.3:9090");
        assert!(allows(&specific, "10.1.2.3:9090"));
        assert!(!allows(&specific, "10.1.2.4:9090") && !allows(&specific, "localhost:9090"));
    }

    #[test]
    fn allowed_names_match_without_case_and_with_any_port_unless_one_is_given() {
        let mut hosts = AllowedHosts::default();
        hosts.allow("Booty.Internal").unwrap();
        hosts.allow("jobs.example:8443").unwrap();
        hosts.allow("[fd00::2]").unwrap();
        for host in [
            "booty.internal",
            "BOOTY.internal:1234",
            "jobs.example:8443",
            "[fd00:0::2]:1",
        ] {
            assert!(allows(&hosts, host), "{host}");
        }
        for host in [
            "jobs.example",
            "jobs.example:443",
            "internal",
            "booty.internal.evil",
        ] {
            assert!(!allows(&hosts, host), "{host}");
        }
    }

    #[test]
    fn an_allowed_host_that_is_not_a_host_is_refused_by_name() {
        let mut hosts = AllowedHosts::default();
        for bad in [
            "",
            "bad host",
            "a:b",
            "[::1",
            "[nope]",
            "host:99999",
            "a/b",
            "x@y",
        ] {
            let err = hosts.allow(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "allowed host {bad:?} is not a host name, IPv4 address or [IPv6] address with an \
                     optional :port"
                )
            );
        }
    }

    #[test]
    fn a_long_host_is_cut_when_shown() {
        let long = "a".repeat(1000);
        assert_eq!(shown(long.as_bytes()).len(), SHOWN_MAX_CHARS + 3);
        assert_eq!(shown(b"evil.example"), "evil.example");
    }
}
