//! The request path driven through `Edge::handle`, without a socket, and what it logs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use booty_edge::{Edge, Sink, SinkAnswer, Webhook};
use booty_signature::sign;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, StatusCode};
use tokio::sync::watch;

use crate::harness::{LABEL, Mode, SECRET, TestSink, capture_logs, config, labeled, line_with};

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
async fn handle_answers_without_a_socket_and_logs_one_line_per_delivery_without_secrets() {
    let (captured, _guard) = capture_logs();

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

    // At `info`, one line per delivery, written when its answer is known; the steps are `debug`.
    let log = captured.text();
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "one line per delivery:\n{log}");
    let cases = [
        (
            lines[0],
            "d-good",
            "status=202",
            "outcome=\"accepted\"",
            "job_id=\"88-d-good\"",
        ),
        (
            lines[1],
            "d-forged",
            "status=403",
            "outcome=\"refused\"",
            "reason=\"signature_mismatch\"",
        ),
    ];
    for (line, delivery, status, outcome, detail) in cases {
        let delivery_id = format!("delivery_id=\"{delivery}\"");
        let fields = [
            " INFO ",
            "webhook_answered",
            &delivery_id,
            "event=\"issues\"",
            status,
            outcome,
            detail,
            "latency_ms=",
        ];
        for field in fields {
            assert!(line.contains(field), "{field} missing from {line}");
        }
    }
    for step in [
        "webhook_received",
        "signature_rejected",
        "trigger_accepted",
        "request_answered",
    ] {
        assert!(!log.contains(step), "{step} is a debug step:\n{log}");
    }
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

#[tokio::test]
async fn a_5xx_from_the_sink_logs_its_error_with_every_cause() {
    let (captured, _guard) = capture_logs();
    let body = labeled(5, LABEL);
    let signature = sign(SECRET.as_bytes(), &body);
    for (mode, status) in [
        (Mode::UnavailableWithCause, StatusCode::SERVICE_UNAVAILABLE),
        (Mode::FailWithCause, StatusCode::INTERNAL_SERVER_ERROR),
    ] {
        let edge = Edge::new(config(), TestSink::new(mode));
        let answer = edge.handle(webhook("d-chain", &body, &signature)).await;
        assert_eq!(answer.status(), status);
        let json = answer.into_body().collect().await.unwrap().to_bytes();
        assert!(
            !String::from_utf8_lossy(&json).contains("database"),
            "the cause is for the log, not the client: {json:?}"
        );
    }
    let log = captured.text();
    for outcome in ["outcome=\"unavailable\"", "outcome=\"failed\""] {
        let line = line_with(&log, outcome);
        assert!(
            line.contains(" ERROR ") && line.contains("webhook_answered"),
            "{line}"
        );
        assert!(
            line.contains("inserting the job failed: database is locked: the disk is on fire"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn the_sink_gets_the_request_deadline() {
    let sink = TestSink::accepting();
    let edge = Edge::new(config(), sink.clone());
    let body = labeled(6, LABEL);
    let before = tokio::time::Instant::now();
    let answer = edge
        .handle(webhook(
            "d-deadline",
            &body,
            &sign(SECRET.as_bytes(), &body),
        ))
        .await;
    let after = tokio::time::Instant::now();
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let request_timeout = config().limits.request_timeout;
    let deadline = sink.submissions()[0].deadline;
    assert!(
        deadline >= before + request_timeout && deadline <= after + request_timeout,
        "{deadline:?} is not {request_timeout:?} after the request ({before:?} to {after:?})"
    );
}

#[tokio::test]
async fn a_late_sink_is_logged_and_one_past_the_backstop_is_an_error() {
    let (captured, _guard) = capture_logs();
    let body = labeled(7, LABEL);
    let signature = sign(SECRET.as_bytes(), &body);
    let mut config = config();
    config.limits.request_timeout = Duration::from_millis(100);
    config.limits.sink_overrun_grace = Duration::from_millis(400);

    let late = Edge::new(
        config.clone(),
        TestSink::new(Mode::Slow(Duration::from_millis(200))),
    );
    let answer = late.handle(webhook("d-late", &body, &signature)).await;
    assert_eq!(answer.status(), StatusCode::ACCEPTED);
    let log = captured.text();
    let line = line_with(&log, "webhook_answered");
    assert!(
        line.contains(" WARN ") && line.contains("late_ms=") && line.contains("status=202"),
        "{line}"
    );
    assert!(!log.contains("unknown"), "{log}");

    let (_never_open, gate) = watch::channel(false);
    let silent = Edge::new(config, TestSink::new(Mode::Gated(gate)));
    let answer = silent.handle(webhook("d-silent", &body, &signature)).await;
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.headers()["retry-after"], "10");
    let log = captured.text();
    let line = line_with(&log, "outcome=\"unknown\"");
    assert!(
        line.contains(" ERROR ") && line.contains("status=503"),
        "{line}"
    );
    assert!(line.contains("delivery_id=\"d-silent\""), "{line}");
}

/// Records every delivery it is handed and answers each with what its body says, without parsing
/// anything: `ignore REASON` and `refuse MESSAGE` become those answers, anything else is accepted.
#[derive(Default)]
struct Verbatim(Mutex<Vec<Webhook>>);

impl Sink for Verbatim {
    async fn deliver(&self, webhook: Webhook) -> SinkAnswer {
        let body = String::from_utf8_lossy(&webhook.payload).into_owned();
        self.0.lock().unwrap().push(webhook);
        if let Some(reason) = body.strip_prefix("ignore ") {
            SinkAnswer::Ignored(reason.to_owned())
        } else if let Some(message) = body.strip_prefix("refuse ") {
            SinkAnswer::BadRequest(message.to_owned())
        } else {
            SinkAnswer::Accepted {
                job_id: "job-1".to_owned(),
            }
        }
    }
}

#[tokio::test]
async fn the_sink_gets_every_verified_delivery_but_ping_unparsed_and_its_answer_is_passed_on() {
    let (captured, _guard) = capture_logs();
    let sink = Arc::new(Verbatim::default());
    let edge = Edge::new(config(), Arc::clone(&sink));
    let signed = |event: &str, delivery: &str, body: &str, content_type: &str| {
        Request::post("/webhooks/github")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("content-type", content_type)
            .header(
                "x-hub-signature-256",
                sign(SECRET.as_bytes(), body.as_bytes()),
            )
            .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
            .unwrap()
    };
    let json = "application/json";
    let cases = [
        // Not JSON at all: the edge hands it over as it is; parsing is the sink's.
        (
            signed("issues", "d-1", "not json", json),
            202,
            r#"{"status":"accepted","job_id":"job-1"}"#,
        ),
        (
            signed("push", "d-2", "ignore event `push` is not a trigger", json),
            200,
            r#"{"status":"ignored","reason":"event `push` is not a trigger"}"#,
        ),
        (
            signed("issues", "d-3", "refuse malformed `issues` payload", json),
            400,
            r#"{"error":"malformed `issues` payload"}"#,
        ),
        // A form body's field, percent-decoded.
        (
            signed(
                "issues",
                "d-4",
                "payload=%7B%22a%22%3A+1%7D",
                "application/x-www-form-urlencoded",
            ),
            202,
            r#"{"status":"accepted","job_id":"job-1"}"#,
        ),
        (
            signed("ping", "d-5", "ignore no", json),
            200,
            r#"{"status":"pong"}"#,
        ),
    ];
    for (request, status, body) in cases {
        let answer = edge.handle(request).await;
        assert_eq!(answer.status(), status, "{body}");
        let json = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(json, body);
    }
    let delivered = sink.0.lock().unwrap();
    let seen: Vec<_> = delivered
        .iter()
        .map(|webhook| (webhook.delivery.id().as_str(), &webhook.payload[..]))
        .collect();
    assert_eq!(
        seen,
        [
            ("d-1", &b"not json"[..]),
            ("d-2", b"ignore event `push` is not a trigger"),
            ("d-3", b"refuse malformed `issues` payload"),
            ("d-4", br#"{"a": 1}"#),
        ],
        "every delivery but the ping, each once, its JSON unparsed"
    );
    let log = captured.text();
    assert!(
        line_with(&log, "outcome=\"ignored\"").contains("reason=\"event `push` is not a trigger\""),
        "{log}"
    );
    let refused = line_with(&log, "outcome=\"refused\"");
    assert!(
        refused.contains("status=400")
            && refused.contains("reason=\"bad_payload\"")
            && refused.contains("error=\"malformed `issues` payload\""),
        "{refused}"
    );
    assert!(
        line_with(&log, "outcome=\"pong\"").contains("status=200"),
        "{log}"
    );
    assert_eq!(log.lines().count(), 5, "one line per delivery:\n{log}");
}
