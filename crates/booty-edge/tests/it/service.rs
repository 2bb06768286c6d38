//! The request path driven through `Edge::handle`, without a socket, and what it logs.

use std::io;
use std::sync::{Arc, Mutex};

use booty_edge::Edge;
use booty_signature::sign;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use tracing_subscriber::fmt::format::FmtSpan;

use crate::harness::{LABEL, SECRET, TestSink, config, labeled};

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn webhook(delivery: &str, body: &[u8], signature: &str) -> Request<Full<Bytes>> {
    Request::post("/webhooks/github")
        .header("x-github-event", "issues")
        .header("x-github-delivery", delivery)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(Full::new(Bytes::copy_from_slice(body)))
        .unwrap()
}

#[tokio::test]
async fn handle_answers_without_a_socket_and_logs_one_span_per_request_without_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sink = TestSink::accepting();
    let edge = Edge::new(config(), sink.clone());
    let body = labeled(88, LABEL);
    let good = sign(SECRET.as_bytes(), &body);
    let forged = sign(b"guessed secret", &body);

    let accepted = edge.handle(webhook("d-good", &body, &good)).await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    assert_eq!(accepted.headers()["x-request-id"], "d-good");
    let json = accepted.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(json, r#"{"status":"accepted","job_id":"88-d-good"}"#);

    let rejected = edge.handle(webhook("d-forged", &body, &forged)).await;
    assert_eq!(rejected.status(), StatusCode::FORBIDDEN);
    assert_eq!(sink.submissions().len(), 1);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log.lines().collect();
    let closed: Vec<&&str> = lines.iter().filter(|line| line.contains("close")).collect();
    assert_eq!(closed.len(), 2, "one span per request:\n{log}");
    for (line, delivery, status) in [(closed[0], "d-good", 202), (closed[1], "d-forged", 403)] {
        for field in [
            "method=POST".to_owned(),
            "path=\"/webhooks/github\"".to_owned(),
            format!("delivery_id=\"{delivery}\""),
            "event=\"issues\"".to_owned(),
            format!("status={status}"),
            "latency_ms=".to_owned(),
        ] {
            assert!(line.contains(&field), "{field} missing from {line}");
        }
    }
    assert!(
        lines.iter().any(|line| line.contains("webhook_received")),
        "{log}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line.contains("signature_rejected") && line.contains("reason=\"mismatch\"")),
        "{log}"
    );
    for secret in [SECRET, &good[7..], &forged[7..]] {
        assert!(!log.contains(secret), "the log leaks {secret:?}:\n{log}");
    }
}

#[tokio::test]
async fn handle_refuses_an_oversized_body_from_its_size_alone() {
    let mut config = config();
    config.max_body_bytes = 10;
    let edge = Edge::new(config, TestSink::accepting());
    let body = b"{\"action\":\"labeled\"}";
    let answer = edge
        .handle(webhook("d", body, &sign(SECRET.as_bytes(), body)))
        .await;
    assert_eq!(answer.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
