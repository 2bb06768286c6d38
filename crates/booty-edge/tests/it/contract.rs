//! Each row of design.md's HTTP contract table, over real HTTP.

use std::time::{Duration, Instant};

use booty_signature::sign;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};

use crate::harness::{
    FIXTURE, FIXTURE_LABEL, LABEL, Mode, PREVIOUS_SECRET, REPOSITORY, SECRET, TestServer, TestSink,
    client, config, delivery, labeled, send, webhook_post,
};

const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

#[tokio::test]
async fn a_trigger_is_accepted_with_its_job_id_and_reaches_the_sink_whole() {
    let (server, sink) = TestServer::accepting().await;
    let body = labeled(1347, LABEL);
    let answer = send(
        &client(),
        delivery(&server, "issues", DELIVERY, body.clone()),
    )
    .await;

    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    let job_id = format!("1347-{DELIVERY}");
    assert_eq!(
        answer.json,
        serde_json::json!({"status": "accepted", "job_id": job_id})
    );
    assert_eq!(answer.request_id(), DELIVERY);
    let submissions = sink.submissions();
    assert_eq!(submissions.len(), 1);
    assert_eq!(submissions[0].delivery.id().as_str(), DELIVERY);
    assert_eq!(submissions[0].delivery.event(), "issues");
    assert_eq!(submissions[0].trigger.issue.number, 1347);
    assert_eq!(submissions[0].trigger.label.name, LABEL);
    assert_eq!(submissions[0].trigger.repository.full_name, REPOSITORY);
    assert_eq!(submissions[0].payload, body);
}

#[tokio::test]
async fn the_same_delivery_again_is_already_processed() {
    let (server, sink) = TestServer::accepting().await;
    let client = client();
    let first = send(
        &client,
        delivery(&server, "issues", DELIVERY, labeled(7, LABEL)),
    )
    .await;
    let again = send(
        &client,
        delivery(&server, "issues", DELIVERY, labeled(7, LABEL)),
    )
    .await;
    assert_eq!(first.status, StatusCode::ACCEPTED);
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        again.json,
        serde_json::json!({"status": "already_processed", "job_id": format!("7-{DELIVERY}")})
    );
    assert_eq!(sink.submissions().len(), 2);
}

#[tokio::test]
async fn removing_the_trigger_label_is_answered_with_the_jobs_it_cancelled() {
    let (server, _sink) = TestServer::accepting().await;
    let client = client();
    let unlabeled = |issue: u64| {
        let mut event: serde_json::Value = serde_json::from_slice(&labeled(issue, LABEL)).unwrap();
        event["action"] = "unlabeled".into();
        serde_json::to_vec(&event).unwrap()
    };
    let nothing = send(&client, delivery(&server, "issues", "d-none", unlabeled(9))).await;
    assert_eq!(nothing.status, StatusCode::OK);
    assert_eq!(
        nothing.json,
        serde_json::json!({"status": "ignored", "reason": "no_job_to_cancel"})
    );
    let accepted = send(
        &client,
        delivery(&server, "issues", "d-job", labeled(9, LABEL)),
    )
    .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED);
    let cancelled = send(&client, delivery(&server, "issues", "d-stop", unlabeled(9))).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.json);
    assert_eq!(
        cancelled.json,
        serde_json::json!({"status": "cancelled", "job_ids": ["9-d-job"]})
    );
    assert_eq!(cancelled.request_id(), "d-stop");
}

#[tokio::test]
async fn other_events_actions_and_labels_are_ignored_with_a_reason() {
    let (server, sink) = TestServer::accepting().await;
    let client = client();
    // Another label removed: removing the trigger label cancels (see the test above).
    let mut unlabeled: serde_json::Value = serde_json::from_slice(&labeled(3, "bug")).unwrap();
    unlabeled["action"] = "unlabeled".into();
    let cases = [
        (
            "push",
            br#"{"ref":"refs/heads/main"}"#.to_vec(),
            "event `push` is not a trigger",
        ),
        (
            "issues",
            serde_json::to_vec(&unlabeled).unwrap(),
            "action `unlabeled` is not `labeled`",
        ),
        (
            "issues",
            labeled(3, "bug"),
            "label `bug` is not the trigger label `agent:builder`",
        ),
    ];
    for (index, (event, body, reason)) in cases.into_iter().enumerate() {
        let answer = send(
            &client,
            delivery(&server, event, &format!("d-{index}"), body),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{event}: {}", answer.json);
        assert_eq!(
            answer.json,
            serde_json::json!({"status": "ignored", "reason": reason})
        );
    }
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn ping_is_answered_pong() {
    let (server, sink) = TestServer::accepting().await;
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#.to_vec();
    let answer = send(&client(), delivery(&server, "ping", DELIVERY, body)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json, serde_json::json!({"status": "pong"}));
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn no_signature_is_401_and_a_bad_one_is_403() {
    let (server, sink) = TestServer::accepting().await;
    let client = client();
    let body = Bytes::from(labeled(1, LABEL));
    let unsigned = |signature: Option<(&str, String)>| {
        let mut request = webhook_post(&server)
            .header("x-github-event", "issues")
            .header("x-github-delivery", DELIVERY)
            .header("content-type", "application/json");
        if let Some((name, value)) = signature {
            request = request.header(name, value);
        }
        request.body(Full::new(body.clone())).unwrap()
    };

    let missing = send(&client, unsigned(None)).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.error(), "missing X-Hub-Signature-256 header");

    let wrong_secret = sign(b"not our secret", &body);
    let digits = &sign(SECRET.as_bytes(), &body)[7..];
    let rejected = [
        (
            ("x-hub-signature-256", wrong_secret),
            "signature does not match",
        ),
        (
            ("x-hub-signature-256", format!("sha256={}", &digits[..60])),
            "malformed digest",
        ),
        (
            ("x-hub-signature-256", format!("sha1={}", &digits[..40])),
            "not a sha256 signature",
        ),
        (
            ("x-hub-signature", format!("sha1={}", &digits[..40])),
            "X-Hub-Signature-256 is required",
        ),
    ];
    for (signature, message) in rejected {
        let answer = send(&client, unsigned(Some(signature.clone()))).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{signature:?}");
        assert!(
            answer.error().contains(message),
            "{signature:?}: {}",
            answer.json
        );
        assert!(
            !answer.error().contains(&signature.1[7..]),
            "echoes the signature"
        );
    }
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn a_real_payload_signed_with_a_previous_secret_is_accepted_during_a_rotation() {
    let rule = booty_event::TriggerRule::new(FIXTURE_LABEL).unwrap();
    let sink = TestSink::routing(rule, Mode::Accept);
    let server = TestServer::start(config(), sink.clone()).await;
    let body = Bytes::from_static(FIXTURE);
    let request = webhook_post(&server)
        .header("x-github-event", "issues")
        .header("x-github-delivery", DELIVERY)
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            sign(PREVIOUS_SECRET.as_bytes(), &body),
        )
        .body(Full::new(body.clone()))
        .unwrap();
    let answer = send(&client(), request).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    assert_eq!(answer.json["job_id"], format!("1-{DELIVERY}"));
    let submission = &sink.submissions()[0];
    assert_eq!(
        submission.payload, body,
        "the job gets the payload byte for byte"
    );
    assert_eq!(submission.trigger.repository.full_name, REPOSITORY);
    assert_eq!(
        submission.trigger.repository.clone_url,
        "https://github.com/Codertocat/Hello-World.git"
    );
    assert_eq!(
        submission.trigger.issue.title,
        "Spelling error in the README file"
    );
}

#[tokio::test]
async fn a_form_encoded_delivery_is_verified_on_the_form_and_hands_over_the_json() {
    let (server, sink) = TestServer::accepting().await;
    let json = labeled(31, LABEL);
    let form = format!("payload={}", percent_encode(&json));
    let request = webhook_post(&server)
        .header("x-github-event", "issues")
        .header("x-github-delivery", DELIVERY)
        .header("content-type", "application/x-www-form-urlencoded")
        // GitHub signs the form body as sent, not the JSON inside it.
        .header(
            "x-hub-signature-256",
            sign(SECRET.as_bytes(), form.as_bytes()),
        )
        .body(Full::new(Bytes::from(form)))
        .unwrap();
    let answer = send(&client(), request).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    assert_eq!(sink.submissions()[0].payload, json);
    assert_eq!(sink.submissions()[0].trigger.issue.number, 31);
}

/// `application/x-www-form-urlencoded` encoding of a value, as a browser or GitHub would send it.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn github_test_vector_verifies_then_is_400_because_it_is_not_json() {
    let mut config = config();
    config.verifier = booty_signature::Verifier::new("It's a Secret to Everybody").unwrap();
    let sink = TestSink::accepting();
    let server = TestServer::start(config, sink.clone()).await;
    let vector = |signature: &str| {
        webhook_post(&server)
            .header("x-github-event", "issues")
            .header("x-github-delivery", DELIVERY)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(Full::new(Bytes::from_static(b"Hello, World!")))
            .unwrap()
    };
    let client = client();
    let answer = send(
        &client,
        vector("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert!(
        answer
            .error()
            .starts_with("malformed `issues` payload: expected value at line 1 column 1"),
        "{}",
        answer.json
    );

    // The same body with one digit changed never gets as far as parsing.
    let answer = send(
        &client,
        vector("sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e18"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn verified_requests_without_delivery_headers_are_400_naming_the_header() {
    let (server, sink) = TestServer::accepting().await;
    let client = client();
    let body = Bytes::from(labeled(1, LABEL));
    for (missing, present) in [
        ("x-github-event", ("x-github-delivery", DELIVERY)),
        ("x-github-delivery", ("x-github-event", "issues")),
    ] {
        let request = webhook_post(&server)
            .header(present.0, present.1)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
            .body(Full::new(body.clone()))
            .unwrap();
        let answer = send(&client, request).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
        assert!(
            answer.error().to_ascii_lowercase().contains(missing),
            "{missing}: {}",
            answer.json
        );
    }
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn malformed_json_and_triggers_without_job_fields_are_400() {
    let (server, sink) = TestServer::accepting().await;
    let client = client();
    let truncated = labeled(5, LABEL)[..40].to_vec();
    let answer = send(&client, delivery(&server, "issues", "d-1", truncated)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.error().starts_with("malformed `issues` payload"),
        "{}",
        answer.json
    );

    let mut no_number: serde_json::Value = serde_json::from_slice(&labeled(5, LABEL)).unwrap();
    no_number["issue"].as_object_mut().unwrap().remove("number");
    let body = serde_json::to_vec(&no_number).unwrap();
    let answer = send(&client, delivery(&server, "issues", "d-2", body)).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.json);
    assert!(answer.error().contains("number"), "{}", answer.json);
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn other_content_types_are_415() {
    let (server, sink) = TestServer::accepting().await;
    let body = Bytes::from(labeled(1, LABEL));
    let request = webhook_post(&server)
        .header("x-github-event", "issues")
        .header("x-github-delivery", DELIVERY)
        .header("content-type", "text/plain")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
        .body(Full::new(body))
        .unwrap();
    let answer = send(&client(), request).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(answer.error().contains("text/plain"), "{}", answer.json);
    assert!(sink.submissions().is_empty());
}

#[tokio::test]
async fn wrong_methods_are_405_with_allow_and_unknown_paths_404() {
    let (server, _sink) = TestServer::accepting().await;
    let client = client();
    let request = |method: Method, path: &str| {
        Request::builder()
            .method(method)
            .uri(server.url(path))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let cases = [
        (
            Method::GET,
            "/webhooks/github",
            StatusCode::METHOD_NOT_ALLOWED,
            Some("POST"),
        ),
        (
            Method::PUT,
            "/webhooks/github",
            StatusCode::METHOD_NOT_ALLOWED,
            Some("POST"),
        ),
        (
            Method::POST,
            "/health",
            StatusCode::METHOD_NOT_ALLOWED,
            Some("GET"),
        ),
        (Method::GET, "/webhooks/gitlab", StatusCode::NOT_FOUND, None),
        (Method::POST, "/", StatusCode::NOT_FOUND, None),
    ];
    for (method, path, status, allow) in cases {
        let answer = send(&client, request(method.clone(), path)).await;
        assert_eq!(answer.status, status, "{method} {path}");
        assert_eq!(
            answer
                .headers
                .get("allow")
                .map(|allow| allow.to_str().unwrap()),
            allow,
            "{method} {path}"
        );
        assert!(!answer.error().is_empty());
    }
}

#[tokio::test]
async fn health_is_ok_with_a_generated_request_id() {
    let (server, _sink) = TestServer::accepting().await;
    let client = client();
    let health = || {
        Request::get(server.url("/health"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let first = send(&client, health()).await;
    let second = send(&client, health()).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json, serde_json::json!({"status": "ok"}));
    assert!(first.request_id().starts_with("edge-"), "{first:?}");
    assert_ne!(first.request_id(), second.request_id());
}

#[tokio::test]
async fn a_busy_or_unavailable_sink_is_503_with_retry_after_and_a_failing_one_500() {
    let cases = [
        (Mode::Busy, StatusCode::SERVICE_UNAVAILABLE, "full"),
        (
            Mode::Unavailable,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        (
            Mode::Fail,
            StatusCode::INTERNAL_SERVER_ERROR,
            "storing the job failed",
        ),
    ];
    for (mode, status, message) in cases {
        let sink = TestSink::new(mode);
        let server = TestServer::start(config(), sink.clone()).await;
        let answer = send(
            &client(),
            delivery(&server, "issues", DELIVERY, labeled(9, LABEL)),
        )
        .await;
        assert_eq!(answer.status, status, "{}", answer.json);
        assert!(answer.error().contains(message), "{}", answer.json);
        let retry_after = answer.headers.get("retry-after");
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(retry_after.unwrap(), "10");
        } else {
            assert!(retry_after.is_none());
        }
        // The sink's own error text ("disk full", the store's message) stays in the log.
        assert!(!answer.error().contains("disk full") && !answer.error().contains("refused"));
        assert_eq!(sink.submissions().len(), 1);
    }
}

#[tokio::test]
async fn a_sink_that_never_answers_is_503_with_retry_after_at_the_backstop() {
    let (_never_open, gate) = tokio::sync::watch::channel(false);
    let sink = TestSink::new(Mode::Gated(gate));
    let mut config = config();
    config.limits.request_timeout = Duration::from_millis(300);
    config.limits.sink_overrun_grace = Duration::from_millis(300);
    let server = TestServer::start(config, sink.clone()).await;
    let sent = Instant::now();
    let answer = send(
        &client(),
        delivery(&server, "issues", DELIVERY, labeled(9, LABEL)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    // Not at the deadline: the sink had until the backstop to give its answer.
    assert!(
        sent.elapsed() >= Duration::from_millis(600),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        answer.error(),
        "timed out waiting for the job store; retry later"
    );
    assert_eq!(answer.headers["retry-after"], "10");
    assert_eq!(sink.submissions().len(), 1);
}

#[tokio::test]
async fn a_sink_answering_after_the_request_deadline_is_believed() {
    // The sink stores the job a second after the deadline: its answer is the truth, so GitHub is told
    // `202`, not a `503` that would have it redeliver a delivery that is already stored.
    let sink = TestSink::new(Mode::Slow(Duration::from_millis(1300)));
    let mut config = config();
    config.limits.request_timeout = Duration::from_millis(300);
    let server = TestServer::start(config, sink.clone()).await;
    let answer = send(
        &client(),
        delivery(&server, "issues", DELIVERY, labeled(9, LABEL)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{}", answer.json);
    assert_eq!(answer.json["job_id"], format!("9-{DELIVERY}"));
    assert_eq!(sink.submissions().len(), 1);
}
