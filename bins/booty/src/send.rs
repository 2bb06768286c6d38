//! `booty send`: sign a payload file and deliver it like GitHub would.
//!
//! It sends GitHub's headers (`X-GitHub-Event`, a fresh `X-GitHub-Delivery` GUID, `X-GitHub-Hook-ID`, both
//! signatures, `User-Agent: GitHub-Hookshot/...`) over plain HTTP, prints the status and the body, and succeeds
//! only on a 2xx answer.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use ring::rand::{SecureRandom, SystemRandom};

use crate::cli::SendArgs;
use crate::config::Config;

/// How long `send` waits for an answer; GitHub itself gives up after 10 s.
const TIMEOUT: Duration = Duration::from_secs(30);

/// What `send` needs from the configuration when the command line does not give it.
pub(crate) struct Defaults<'a> {
    pub(crate) config: Option<&'a Config>,
}

/// The answer, for the caller to print.
pub(crate) struct Answer {
    pub(crate) delivery: String,
    pub(crate) status: hyper::StatusCode,
    pub(crate) body: String,
}

/// Delivers the payload and returns the server's answer.
pub(crate) async fn send(args: &SendArgs, defaults: Defaults<'_>) -> anyhow::Result<Answer> {
    let json = std::fs::read(&args.payload)
        .with_context(|| format!("cannot read payload {}", args.payload.display()))?;
    serde_json::from_slice::<serde::de::IgnoredAny>(&json)
        .with_context(|| format!("payload {} is not JSON", args.payload.display()))?;

    let secret = match (&args.secret, defaults.config) {
        (Some(secret), _) => secret.clone(),
        (None, Some(config)) => config.webhook_secret.expose().to_owned(),
        (None, None) => bail!("no secret: pass --secret or a configuration with `webhook_secret`"),
    };
    if secret.is_empty() {
        bail!("the secret is empty");
    }
    let url = match (&args.url, defaults.config) {
        (Some(url), _) => url.clone(),
        (None, Some(config)) => default_url(config),
        (None, None) => bail!("no URL: pass --url or a configuration with `listen`"),
    };
    if let Some(scheme) = url.split_once("://").map(|(scheme, _)| scheme)
        && !scheme.eq_ignore_ascii_case("http")
    {
        bail!(
            "cannot deliver to {url}: booty send speaks plain http:// only (send to booty's own \
             listener, not to the TLS proxy in front of it)"
        );
    }
    let delivery = match &args.delivery {
        Some(id) => id.clone(),
        None => fresh_guid()?,
    };

    let (content_type, body) = if args.form {
        (
            "application/x-www-form-urlencoded",
            form_encode(&json).into_bytes(),
        )
    } else {
        ("application/json", json)
    };
    let request = Request::builder()
        .method(Method::POST)
        .uri(&url)
        .header("content-type", content_type)
        .header(
            "user-agent",
            concat!("GitHub-Hookshot/booty-send-", env!("CARGO_PKG_VERSION")),
        )
        .header("x-github-event", &args.event)
        .header("x-github-delivery", &delivery)
        .header("x-github-hook-id", "1")
        .header("x-github-hook-installation-target-type", "repository")
        .header("x-github-hook-installation-target-id", "1")
        .header("x-hub-signature", sign_sha1(secret.as_bytes(), &body))
        .header(
            booty_signature::HEADER_NAME,
            booty_signature::sign(secret.as_bytes(), &body),
        )
        .body(Full::new(Bytes::from(body)))
        .with_context(|| format!("cannot build a request to {url:?}"))?;

    let (status, body) = exchange(request, &url, "deliver to").await?;
    Ok(Answer {
        delivery,
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// `http://<listen>/webhooks/github`, with an unspecified listen address (`0.0.0.0`) replaced by loopback.
fn default_url(config: &Config) -> String {
    let mut addr = config.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    format!("http://{addr}/webhooks/github")
}

/// A random version-4 GUID, the shape GitHub uses for delivery ids.
fn fresh_guid() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random number generator failed"))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex(&bytes);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// The legacy `X-Hub-Signature: sha1=...` GitHub still sends next to the SHA-256 one.
fn sign_sha1(secret: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let tag = ring::hmac::sign(&key, body);
    format!("sha1={}", hex(tag.as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        write!(out, "{byte:02x}").expect("writing to a String cannot fail");
    }
    out
}

/// `payload=<the JSON, form-urlencoded>`, as GitHub sends it for hooks set to
/// `application/x-www-form-urlencoded`.
fn form_encode(json: &[u8]) -> String {
    let mut out = String::with_capacity(8 + json.len() * 3 / 2);
    out.push_str("payload=");
    for &byte in json {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
                out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 0x0f)]));
            }
        }
    }
    out
}

/// Sends `request` to a running booty at `url` (plain HTTP/1) and reads the whole answer, within
/// [`TIMEOUT`]; `attempt` says what could not be done in the error when booty cannot be reached
/// (`cannot {attempt} {url}: is `booty serve` running there?`). Shared by `send` and `jobs`.
pub(crate) async fn exchange(
    request: Request<Full<Bytes>>,
    url: &str,
    attempt: &str,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .with_context(|| format!("no answer from {url} within {}s", TIMEOUT.as_secs()))?
        .with_context(|| format!("cannot {attempt} {url}: is `booty serve` running there?"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .with_context(|| format!("cannot read the answer from {url}"))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_have_the_v4_shape_and_differ() {
        let a = fresh_guid().unwrap();
        let b = fresh_guid().unwrap();
        assert_ne!(a, b);
        let groups: Vec<_> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
        assert_eq!(&a[14..15], "4");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn form_encoding_escapes_everything_but_unreserved() {
        assert_eq!(
            form_encode("{\"a\": \"b+c&d=é\"}".as_bytes()),
            "payload=%7B%22a%22%3A+%22b%2Bc%26d%3D%C3%A9%22%7D"
        );
    }

    #[test]
    fn sha1_signature_matches_a_known_value() {
        // HMAC-SHA1("key", "The quick brown fox jumps over the lazy dog"), RFC 2104 examples.
        assert_eq!(
            sign_sha1(b"key", b"The quick brown fox jumps over the lazy dog"),
            "sha1=de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9"
        );
    }
}
