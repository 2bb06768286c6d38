//! Talking to a listener over loopback the way the tests of booty's listeners do: hyper's own client for
//! well-behaved requests, raw sockets for misbehaving ones, and an [`Answer`] that checks what every
//! answer of booty's listeners must be (JSON, with an `x-request-id`).

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{HeaderMap, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// hyper-util's pooled client, with full bodies.
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// hyper-util's pooled HTTP/1.1 client.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// hyper-util's client speaking HTTP/2 over cleartext with prior knowledge.
pub fn h2c_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A decoded answer. Every answer of booty's listeners must be JSON with an `x-request-id`;
/// [`Answer::from_response`] checks both.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: StatusCode,
    /// Every header.
    pub headers: HeaderMap,
    /// The body, parsed.
    pub json: serde_json::Value,
}

impl Answer {
    /// Reads the whole response.
    ///
    /// # Panics
    /// When the answer is not `application/json`, has no `x-request-id`, or its body is not JSON.
    pub async fn from_response(response: Response<Incoming>) -> Self {
        let (parts, body) = response.into_parts();
        let bytes = body
            .collect()
            .await
            .expect("the answer's body arrives whole")
            .to_bytes();
        assert_eq!(
            parts.headers["content-type"], "application/json",
            "{parts:?}"
        );
        assert!(
            parts.headers.contains_key("x-request-id"),
            "no x-request-id: {parts:?}"
        );
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("answer is not JSON ({err}): {bytes:?}"));
        Self {
            status: parts.status,
            headers: parts.headers,
            json,
        }
    }

    /// The `x-request-id` header.
    ///
    /// # Panics
    /// When it is not visible ASCII.
    pub fn request_id(&self) -> &str {
        self.headers["x-request-id"]
            .to_str()
            .expect("x-request-id is visible ASCII")
    }

    /// The `error` message of a 4xx or 5xx answer.
    ///
    /// # Panics
    /// When the body has no `error` string.
    pub fn error(&self) -> &str {
        self.json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {}", self.json))
    }
}

/// Sends `request` with `client` and decodes the answer.
///
/// # Panics
/// When the request fails or the answer is not what [`Answer::from_response`] accepts.
pub async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Answer {
    let response = client
        .request(request)
        .await
        .expect("the request is answered");
    Answer::from_response(response).await
}

/// Writes `bytes` on a fresh connection, then reads until the server closes it.
///
/// # Panics
/// When the connection cannot be made or written to.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("the listener accepts");
    stream
        .write_all(bytes)
        .await
        .expect("the request can be written");
    read_until_closed(&mut stream).await
}

/// Everything the server sends until it closes the connection (a reset counts as closed), as lossy UTF-8.
pub async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(read) => received.extend_from_slice(&buf[..read]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}
