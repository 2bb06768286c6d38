//! Fuzz target `edge`: the whole webhook request path, through [`Edge::handle`] without a socket.
//!
//! Each input is a request ([`booty_fuzz::Request`]): method, target, headers and body. Inputs hyper could
//! not hand to a service (a method, URI or header that does not parse) are skipped. A few headers steer the
//! harness and are taken out before the edge sees the request:
//!
//! - `x-hub-signature-256: {signed}` is replaced by the body's real signature under the edge's secret, so
//!   mutated bodies still get past verification;
//! - `x-fuzz-chunk: N` streams the body in frames of N bytes without announcing its length (a chunked
//!   upload); without it the body is one frame of known length, as hyper reports a `Content-Length` body;
//! - `x-fuzz-reset` (with `x-fuzz-chunk`) ends the stream with an error after the last frame, as a client
//!   that disconnects;
//! - `x-fuzz-sink: duplicate | busy | unavailable | failed` is what the sink answers a trigger (default:
//!   `accepted`).
//!
//! The edge hands every verified delivery but `ping` to its sink, which decides what it is. The model
//! sink here routes as booty-service's does, with booty-event's `TriggerRule`: `ignored` with the rule's
//! reason, `400` for a payload the rule cannot decide on, and a trigger recorded and answered as told.
//!
//! The answer is checked against the HTTP contract of `design.md`, worked out here from booty-signature
//! and booty-event directly: routes and `405` with `Allow`, `413` over the body limit (before the signature
//! when the length is announced), `401`/`403` for missing, sha1-only or wrong signatures, `400` for a broken
//! stream or undecodable delivery, `415` for another content type, `pong`, `ignored` with booty-event's
//! reason, and for a trigger exactly one submission (the delivery, the trigger and the JSON payload) and
//! the status of the sink's answer, with `Retry-After` on `503`. Every answer is a JSON object (with an
//! `error` string from 400 on) carrying `x-request-id`: the delivery id when it is valid, a generated
//! `edge-` id otherwise.

#![no_main]

use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::task::{Context, Poll};

use booty_edge::{
    Edge, EdgeConfig, HEALTH_PATH, REQUEST_ID_HEADER, Sink, SinkAnswer, WEBHOOK_PATH, Webhook,
};
use booty_event::{
    DELIVERY_HEADER, Decision, Delivery, DeliveryId, IssueTrigger, Payload, PingEvent, TriggerRule,
};
use booty_fuzz::Request;
use booty_signature::{HEADER_NAME as SIGNATURE_HEADER, Verifier, sign};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Bytes, Frame};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const SECRET: &[u8] = b"It's a Secret to Everybody";
/// Small enough that mutated seeds cross it (the largest octokit example is 27 KB).
const MAX_BODY_BYTES: usize = 16 * 1024;
const SIGNED: &[u8] = b"{signed}";
const LEGACY_SIGNATURE_HEADER: &str = "x-hub-signature";

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime builds")
});

static CONFIG: LazyLock<EdgeConfig> = LazyLock::new(|| {
    let mut config = EdgeConfig::new(Verifier::new(SECRET).expect("the secret is not empty"));
    config.max_body_bytes = MAX_BODY_BYTES as u64;
    config
});

fuzz_target!(|data: &[u8]| {
    let Some(input) = Input::parse(data) else {
        return;
    };
    let sink = Arc::new(FuzzSink::new(input.sink));
    let edge = Edge::new(CONFIG.clone(), Arc::clone(&sink));
    let (response, body) = RUNTIME.block_on(async {
        let response = if let Some(chunk) = input.chunk {
            let body = Chunked {
                rest: Bytes::copy_from_slice(input.body),
                chunk,
                reset: input.reset,
            };
            edge.handle(input.request(body)).await
        } else {
            edge.handle(input.request(Full::new(Bytes::copy_from_slice(input.body))))
                .await
        };
        let (parts, body) = response.into_parts();
        let body = body
            .collect()
            .await
            .expect("a full body cannot fail")
            .to_bytes();
        (Response::from_parts(parts, ()), body)
    });
    let submitted = std::mem::take(&mut *sink.submitted.lock().expect("no panic while locked"));
    check(&input, &response, &body, &submitted);
});

/// What the sink answers a trigger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SinkMode {
    Accepted,
    Duplicate,
    Busy,
    Unavailable,
    Failed,
}

/// A request hyper could hand to the service, and the harness's knobs.
struct Input<'a> {
    method: Method,
    uri: Uri,
    /// The headers the edge sees, in input order.
    headers: Vec<(HeaderName, HeaderValue)>,
    body: &'a [u8],
    chunk: Option<usize>,
    reset: bool,
    sink: SinkMode,
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Option<Self> {
        let request = Request::parse(data);
        let body = request.message.body;
        let mut input = Self {
            method: Method::from_bytes(request.method).ok()?,
            uri: Uri::try_from(request.target).ok()?,
            headers: Vec::new(),
            body,
            chunk: None,
            reset: false,
            sink: SinkMode::Accepted,
        };
        for &(name, value) in request.message.headers() {
            let name = HeaderName::from_bytes(name).ok()?;
            match name.as_str() {
                "x-fuzz-chunk" => {
                    let size = std::str::from_utf8(value).ok()?.parse().ok()?;
                    input.chunk = Some(size).filter(|size| *size > 0);
                }
                "x-fuzz-reset" => input.reset = true,
                "x-fuzz-sink" => {
                    input.sink = match value {
                        b"duplicate" => SinkMode::Duplicate,
                        b"busy" => SinkMode::Busy,
                        b"unavailable" => SinkMode::Unavailable,
                        b"failed" => SinkMode::Failed,
                        _ => SinkMode::Accepted,
                    };
                }
                _ => {
                    let value = if name == SIGNATURE_HEADER && value == SIGNED {
                        HeaderValue::try_from(sign(SECRET, body)).expect("a signature is ASCII")
                    } else {
                        HeaderValue::from_bytes(value).ok()?
                    };
                    input.headers.push((name, value));
                }
            }
        }
        // Only a streamed body can break off.
        input.reset &= input.chunk.is_some();
        Some(input)
    }

    fn request<B>(&self, body: B) -> hyper::Request<B> {
        let mut request = hyper::Request::new(body);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        for (name, value) in &self.headers {
            request.headers_mut().append(name.clone(), value.clone());
        }
        request
    }

    /// The first value of `name` (lowercase), as `http::HeaderMap::get` gives it.
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key.as_str() == name)
            .map(|(_, value)| value.as_bytes())
    }
}

/// A body streamed in frames of `chunk` bytes with no announced length, optionally ending in an error.
struct Chunked {
    rest: Bytes,
    chunk: usize,
    reset: bool,
}

impl Body for Chunked {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.rest.is_empty() {
            let reset = std::mem::take(&mut self.reset);
            return Poll::Ready(reset.then_some(Err("connection reset by the fuzzer")));
        }
        let len = self.chunk.min(self.rest.len());
        let frame = self.rest.split_to(len);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }
}

/// A trigger the model sink took.
struct Submitted {
    delivery: Delivery,
    trigger: IssueTrigger,
    payload: Bytes,
}

/// Routes with the default trigger rule, records the triggers and answers them as told.
struct FuzzSink {
    mode: SinkMode,
    submitted: Mutex<Vec<Submitted>>,
}

impl FuzzSink {
    fn new(mode: SinkMode) -> Self {
        Self {
            mode,
            submitted: Mutex::new(Vec::new()),
        }
    }
}

/// The model sink keeps no jobs, so a cancellation finds none to stop.
const NOTHING_TO_CANCEL: &str = "no_job_to_cancel";

impl Sink for FuzzSink {
    async fn deliver(&self, webhook: Webhook) -> SinkAnswer {
        let trigger =
            match TriggerRule::default().decide(webhook.delivery.event(), &webhook.payload) {
                Ok(Decision::Trigger(trigger)) => *trigger,
                Ok(Decision::Cancel(_)) => {
                    return SinkAnswer::Ignored(NOTHING_TO_CANCEL.to_owned());
                }
                Ok(Decision::Ignored(reason)) => return SinkAnswer::Ignored(reason.to_string()),
                Err(err) => return SinkAnswer::BadRequest(err.to_string()),
            };
        let job_id = job_id(&webhook.delivery, &trigger);
        self.submitted
            .lock()
            .expect("no panic while locked")
            .push(Submitted {
                delivery: webhook.delivery,
                trigger,
                payload: webhook.payload,
            });
        match self.mode {
            SinkMode::Accepted => SinkAnswer::Accepted { job_id },
            SinkMode::Duplicate => SinkAnswer::Duplicate { job_id },
            SinkMode::Busy => SinkAnswer::Busy,
            SinkMode::Unavailable => SinkAnswer::Unavailable("the store is down".into()),
            SinkMode::Failed => SinkAnswer::Failed("the store refused the row".into()),
        }
    }
}

fn job_id(delivery: &Delivery, trigger: &IssueTrigger) -> String {
    format!("{}-{}", trigger.issue.number, delivery.id())
}

/// What the contract says the answer is.
#[derive(Debug)]
enum Expected {
    /// This status and exactly this JSON body.
    Json(StatusCode, Value),
    /// This status and `{"error": "..."}` with some message.
    Error(StatusCode),
    /// A trigger handed to the sink: the submission it must have received.
    Trigger {
        delivery: Delivery,
        trigger: Box<IssueTrigger>,
        payload: Vec<u8>,
    },
}

fn expected(input: &Input<'_>) -> Expected {
    let path = input.uri.path();
    if path == HEALTH_PATH {
        return if input.method == Method::GET {
            Expected::Json(StatusCode::OK, json!({"status": "ok"}))
        } else {
            Expected::Error(StatusCode::METHOD_NOT_ALLOWED)
        };
    }
    if path != WEBHOOK_PATH {
        return Expected::Error(StatusCode::NOT_FOUND);
    }
    if input.method != Method::POST {
        return Expected::Error(StatusCode::METHOD_NOT_ALLOWED);
    }
    let too_large = input.body.len() > MAX_BODY_BYTES;
    if too_large && input.chunk.is_none() {
        return Expected::Error(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let Some(signature) = input.header(SIGNATURE_HEADER) else {
        return Expected::Error(if input.header(LEGACY_SIGNATURE_HEADER).is_some() {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        });
    };
    if too_large {
        return Expected::Error(StatusCode::PAYLOAD_TOO_LARGE);
    }
    if input.reset {
        return Expected::Error(StatusCode::BAD_REQUEST);
    }
    if CONFIG.verifier.verify(Some(signature), input.body).is_err() {
        return Expected::Error(StatusCode::FORBIDDEN);
    }
    let Ok(delivery) = Delivery::from_headers(|name| input.header(name)) else {
        return Expected::Error(StatusCode::BAD_REQUEST);
    };
    let payload = match Payload::decode(input.header("content-type"), input.body) {
        Ok(payload) => payload,
        Err(error) if error.is_unsupported_media_type() => {
            return Expected::Error(StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        Err(_) => return Expected::Error(StatusCode::BAD_REQUEST),
    };
    if delivery.event() == PingEvent::NAME {
        return Expected::Json(StatusCode::OK, json!({"status": "pong"}));
    }
    match TriggerRule::default().decide(delivery.event(), payload.json()) {
        Ok(Decision::Trigger(trigger)) => Expected::Trigger {
            delivery,
            trigger,
            payload: payload.into_json(),
        },
        Ok(Decision::Cancel(_)) => Expected::Json(
            StatusCode::OK,
            json!({"status": "ignored", "reason": NOTHING_TO_CANCEL}),
        ),
        Ok(Decision::Ignored(reason)) => Expected::Json(
            StatusCode::OK,
            json!({"status": "ignored", "reason": reason.to_string()}),
        ),
        Err(_) => Expected::Error(StatusCode::BAD_REQUEST),
    }
}

fn check(input: &Input<'_>, response: &Response<()>, body: &[u8], submitted: &[Submitted]) {
    let headers = response.headers();
    assert_eq!(headers["content-type"], "application/json");
    let request_id = headers
        .get(REQUEST_ID_HEADER)
        .expect("every answer carries x-request-id");
    match input.header(DELIVERY_HEADER) {
        Some(id) if DeliveryId::from_bytes(id).is_ok() => assert_eq!(request_id.as_bytes(), id),
        _ => assert!(
            request_id.as_bytes().starts_with(b"edge-"),
            "generated request id {request_id:?}"
        ),
    }
    let json: Value = serde_json::from_slice(body).expect("every answer is JSON");
    assert!(json.is_object(), "answer {json}");

    let status = response.status();
    let expected = expected(input);
    if !matches!(expected, Expected::Trigger { .. }) {
        assert!(submitted.is_empty(), "the sink got a {status} request");
    }
    match expected {
        Expected::Json(code, value) => {
            assert_eq!(status, code, "answer {json}");
            assert_eq!(json, value);
        }
        Expected::Error(code) => {
            assert_eq!(status, code, "answer {json}");
            assert!(
                json["error"]
                    .as_str()
                    .is_some_and(|error| !error.is_empty()),
                "answer {json}"
            );
            if code == StatusCode::METHOD_NOT_ALLOWED {
                let allow = if input.uri.path() == HEALTH_PATH {
                    "GET"
                } else {
                    "POST"
                };
                assert_eq!(headers["allow"], allow);
            }
        }
        Expected::Trigger {
            delivery,
            trigger,
            payload,
        } => {
            let [submission] = submitted else {
                panic!("a trigger reached the sink {} times", submitted.len());
            };
            assert_eq!(submission.delivery, delivery);
            assert_eq!(submission.trigger, *trigger);
            assert!(
                submission.payload == payload,
                "the payload handed over differs"
            );
            let job_id = job_id(&delivery, &trigger);
            let (code, answer) = match input.sink {
                SinkMode::Accepted => (
                    StatusCode::ACCEPTED,
                    Some(json!({"status": "accepted", "job_id": job_id})),
                ),
                SinkMode::Duplicate => (
                    StatusCode::OK,
                    Some(json!({"status": "already_processed", "job_id": job_id})),
                ),
                SinkMode::Busy | SinkMode::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, None),
                SinkMode::Failed => (StatusCode::INTERNAL_SERVER_ERROR, None),
            };
            assert_eq!(status, code, "answer {json}");
            match answer {
                Some(answer) => assert_eq!(json, answer),
                None => assert!(json["error"].is_string(), "answer {json}"),
            }
            if status == StatusCode::SERVICE_UNAVAILABLE {
                assert_eq!(headers["retry-after"], "10");
            }
        }
    }
}
