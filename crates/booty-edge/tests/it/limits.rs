//! Limits: body size, bodies that lie about their length, and clients too slow to be served.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use booty_signature::sign;
use http_body_util::Full;
use hyper::StatusCode;
use hyper::body::{Body, Bytes, Frame};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{
    Answer, LABEL, Mode, SECRET, TestServer, TestSink, client, config, h2c_client, labeled,
    raw_exchange, read_until_closed, send, webhook_post,
};

/// Request headers for a signed `issues` delivery of `content_length` bytes, without the body.
fn head(content_length: usize, signature: &str, extra: &str) -> String {
    format!(
        "POST /webhooks/github HTTP/1.1\r\nhost: booty\r\nx-github-event: issues\r\n\
         x-github-delivery: d-raw\r\ncontent-type: application/json\r\n\
         x-hub-signature-256: {signature}\r\ncontent-length: {content_length}\r\n{extra}\r\n"
    )
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or_default()
}

#[tokio::test]
async fn a_30_mb_content_length_is_413_before_the_body_is_sent() {
    let (server, sink) = TestServer::accepting().await;
    let signature = sign(SECRET.as_bytes(), b"whatever");
    // Only the headers are sent, and the client asks before sending (Expect: 100-continue). The server
    // answers and closes the connection without ever waiting for the 30 MB.
    for extra in ["", "expect: 100-continue\r\n"] {
        let request = head(30 * 1024 * 1024, &signature, extra);
        let exchange = raw_exchange(server.addr, request.as_bytes());
        // Bounded only so a regression fails instead of hanging: a server waiting for the body never
        // closes this connection.
        let answer = tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .expect("the server kept the connection open, waiting for the 30 MB");
        assert_eq!(
            status_line(&answer),
            "HTTP/1.1 413 Payload Too Large",
            "{answer}"
        );
        assert!(!answer.contains("100 Continue"), "{answer}");
        assert!(
            answer.ends_with(r#"{"error":"request body is larger than 26214400 bytes"}"#),
            "{answer}"
        );
    }
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn a_chunked_body_is_cut_off_at_the_limit_while_streaming() {
    let mut config = config();
    config.max_body_bytes = 64 * 1024;
    let sink = TestSink::accepting();
    let server = TestServer::start(config, sink.clone()).await;
    // No Content-Length: hyper's client sends a body of unknown length chunked.
    let body = Chunks {
        chunk: Bytes::from(vec![b' '; 16 * 1024]),
        left: 5,
    };
    let request = webhook_post(&server)
        .header("x-github-event", "issues")
        .header("x-github-delivery", "d-chunked")
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), b""))
        .body(body)
        .unwrap();
    let chunked_client = Client::builder(TokioExecutor::new()).build_http();
    let answer = Answer::from_response(chunked_client.request(request).await.unwrap()).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.error(), "request body is larger than 65536 bytes");

    // Exactly at the limit is fine (and then fails the signature, which is checked next).
    let body = Bytes::from(vec![b' '; 64 * 1024]);
    let request = webhook_post(&server)
        .header("x-github-event", "issues")
        .header("x-github-delivery", "d-exact")
        .header("content-type", "application/json")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), b"other"))
        .body(Full::new(body))
        .unwrap();
    assert_eq!(send(&client(), request).await.status, StatusCode::FORBIDDEN);
    assert!(sink.submissions().is_empty());
}

/// A body of `left` copies of `chunk`, with no length announced.
struct Chunks {
    chunk: Bytes,
    left: usize,
}

impl Body for Chunks {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.clone()))))
    }
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_400_saying_how_much_arrived() {
    let (server, sink) = TestServer::accepting().await;
    let body = labeled(4, LABEL);
    let signature = sign(SECRET.as_bytes(), &body);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(head(body.len() + 100, &signature, "").as_bytes())
        .await
        .unwrap();
    stream.write_all(&body).await.unwrap();
    // The client stops sending but still listens for the answer.
    stream.shutdown().await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(status_line(&answer), "HTTP/1.1 400 Bad Request", "{answer}");
    assert!(
        answer.contains(&format!("request body ended after {} bytes", body.len())),
        "{answer}"
    );
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408_at_the_request_deadline() {
    let mut config = config();
    config.limits.request_timeout = Duration::from_millis(300);
    let sink = TestSink::accepting();
    let server = TestServer::start(config, sink.clone()).await;
    let body = labeled(4, LABEL);
    let signature = sign(SECRET.as_bytes(), &body);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(head(body.len(), &signature, "").as_bytes())
        .await
        .unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    // Nothing more is sent, and the connection stays open: only the deadline can end this request.
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 408 Request Timeout",
        "{answer}"
    );
    assert!(
        answer.contains("request body not received within 0.3 s"),
        "{answer}"
    );
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn a_body_longer_than_its_content_length_is_cut_at_the_length() {
    let (server, sink) = TestServer::accepting().await;
    let body = labeled(4, LABEL);
    let signature = sign(SECRET.as_bytes(), &body);
    let mut bytes = head(body.len() - 10, &signature, "").into_bytes();
    bytes.extend_from_slice(&body);
    let answer = raw_exchange(server.addr, &bytes).await;
    // The server read Content-Length bytes, so the signature (over the whole body) does not match them;
    // the ten extra bytes are then garbage where the next request should start.
    assert_eq!(status_line(&answer), "HTTP/1.1 403 Forbidden", "{answer}");
    assert!(answer.contains("signature does not match"), "{answer}");
    assert!(sink.submissions().is_empty());
}

/// Sends `bytes` one per `interval` while waiting for the server to close the connection; returns how
/// many bytes went out before it did. Panics if every byte was sent and the server still waits.
async fn trickle(server: &TestServer, bytes: &[u8], interval: Duration) -> usize {
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let closed = tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        let mut received = Vec::new();
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return received,
                Ok(read) => received.extend_from_slice(&buf[..read]),
            }
        }
    });
    let mut sent = 0;
    let mut ticks = tokio::time::interval(interval);
    tokio::pin!(closed);
    loop {
        tokio::select! {
            received = &mut closed => {
                let received = received.unwrap();
                // hyper says nothing to a client that timed out on its headers; it just hangs up.
                assert!(received.is_empty() || received.starts_with(b"HTTP/1.1 408"), "{received:?}");
                return sent;
            }
            _ = ticks.tick() => {
                assert!(sent < bytes.len(), "all {sent} bytes sent and the connection is still open");
                if writer.write_all(&bytes[sent..=sent]).await.is_err() {
                    continue; // The server is gone; the reader will see it.
                }
                sent += 1;
            }
        }
    }
}

#[tokio::test]
async fn clients_sending_headers_one_byte_per_second_are_cut_off() {
    let mut config = config();
    config.limits.header_read_timeout = Duration::from_secs(2);
    let server = TestServer::start(config, TestSink::accepting()).await;
    let http1 = head(0, "sha256=00", "");
    let h2 = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let (http1_sent, h2_sent) = tokio::join!(
        trickle(&server, http1.as_bytes(), Duration::from_secs(1)),
        trickle(&server, h2, Duration::from_secs(1)),
    );
    assert!(http1_sent < http1.len());
    assert!(h2_sent < h2.len());
}

#[tokio::test]
async fn a_client_that_connects_and_says_nothing_is_disconnected() {
    let mut config = config();
    config.limits.header_read_timeout = Duration::from_millis(200);
    let server = TestServer::start(config, TestSink::accepting()).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    assert_eq!(read_until_closed(&mut stream).await, "");
    // The server is still serving others.
    let health = hyper::Request::get(server.url("/health"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(send(&client(), health).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    // The sink takes a moment, so the server sees the end of the client's stream while the request is
    // still being handled: a client done sending is not a client gone.
    let sink = TestSink::new(Mode::Slow(Duration::from_millis(200)));
    let server = TestServer::start(config(), sink.clone()).await;
    let body = labeled(4, LABEL);
    let mut bytes = head(body.len(), &sign(SECRET.as_bytes(), &body), "").into_bytes();
    bytes.extend_from_slice(&body);
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(&bytes).await.unwrap();
    stream.shutdown().await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert_eq!(status_line(&answer), "HTTP/1.1 202 Accepted", "{answer:?}");
    assert!(
        answer.ends_with(r#"{"status":"accepted","job_id":"4-d-raw"}"#),
        "{answer}"
    );
    assert_eq!(sink.submissions().len(), 1);
}

/// `GET /health` with one `x-filler` header that makes the request head `size` bytes long.
fn health_with_head_of(size: usize) -> Vec<u8> {
    let start = "GET /health HTTP/1.1\r\nhost: booty\r\nx-filler: ";
    let end = "\r\n\r\n";
    let mut head = start.as_bytes().to_vec();
    head.resize(size - end.len(), b'a');
    head.extend_from_slice(end.as_bytes());
    head
}

#[tokio::test]
async fn a_request_head_over_the_header_bound_is_431_and_one_under_it_is_served() {
    let (server, _sink) = TestServer::accepting().await;
    let max = booty_edge::Limits::default().max_header_bytes;
    assert_eq!(max, 64 * 1024);

    let answer = raw_exchange(server.addr, &health_with_head_of(max - 1024)).await;
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer:.200}");

    // hyper answers before the head is complete and closes the connection; what it read is all it keeps.
    let answer = raw_exchange(server.addr, &health_with_head_of(max + 8 * 1024)).await;
    assert!(
        answer.is_empty() || status_line(&answer) == "HTTP/1.1 431 Request Header Fields Too Large",
        "{answer:.200}"
    );
    // Not merely closed for some other reason: the server still serves the next client.
    let answer = raw_exchange(
        server.addr,
        b"GET /health HTTP/1.1\r\nhost: booty\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK", "{answer}");
}

#[tokio::test]
async fn an_h2_header_list_over_the_bound_is_431_and_one_under_it_is_served() {
    let (server, _sink) = TestServer::accepting().await;
    let client = h2c_client();
    let max = booty_edge::Limits::default().max_header_bytes;
    let health = |filler: usize| {
        hyper::Request::get(server.url("/health"))
            .header("x-filler", "a".repeat(filler))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    // Over hyper's own HTTP/2 default of 16 KiB, under the edge's 64 KiB.
    let response = client.request(health(20 * 1024)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client.request(health(max + 1024)).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
    );
}
