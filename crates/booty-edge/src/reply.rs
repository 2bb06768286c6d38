//! Answers: JSON unless a router says otherwise ([`Reply::body`]), every one carries `x-request-id`, and
//! some add `Retry-After`, `Allow` or headers of the router's own.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// The body type of every answer the edge gives.
pub type ResponseBody = Full<Bytes>;

const JSON: &str = "application/json";

/// The header that carries the correlation id on every answer.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// An answer before it gets its correlation id: a status, a JSON body, and the headers some statuses
/// need (`Retry-After`, `Allow`).
///
/// A router hands it to [`answer`](crate::answer), which adds `content-type: application/json` and
/// `x-request-id`. Errors are `{"error": "..."}` ([`Reply::error`] and the constructors built on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    content_type: &'static str,
    retry_after: Option<Duration>,
    allow: Option<&'static str>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Serialize)]
struct Status<'a> {
    status: &'a str,
}

#[derive(Serialize)]
struct Job<'a> {
    status: &'a str,
    job_id: &'a str,
}

#[derive(Serialize)]
struct Ignored<'a> {
    status: &'static str,
    reason: &'a str,
}

#[derive(Serialize)]
struct Cancelled<'a> {
    status: &'static str,
    job_ids: &'a [String],
}

#[derive(Serialize)]
struct Error<'a> {
    error: &'a str,
}

impl Reply {
    /// `status` with `value` serialised as its body.
    ///
    /// # Errors
    /// When `value` cannot be serialised as JSON (its `Serialize` fails, or a map has keys that are not
    /// strings).
    pub fn json(status: StatusCode, value: &impl Serialize) -> Result<Self, serde_json::Error> {
        Ok(Self {
            status,
            body: serde_json::to_vec(value)?,
            content_type: JSON,
            retry_after: None,
            allow: None,
            headers: Vec::new(),
        })
    }

    /// `status` with `body` as it is, of `content_type` (`text/html; charset=utf-8`, the Prometheus text
    /// format, ...): for a router that serves more than JSON.
    pub fn body(status: StatusCode, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            body: body.into(),
            content_type,
            retry_after: None,
            allow: None,
            headers: Vec::new(),
        }
    }

    /// Adds a header to the answer (`WWW-Authenticate`, `Cache-Control`, `Location`, ...); headers the
    /// edge sets itself (`content-type`, `x-request-id`, `Retry-After`, `Allow`) win over these.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// One of the edge's own bodies: plain structs of strings, which always serialise.
    fn plain(status: StatusCode, value: &impl Serialize) -> Self {
        Self::json(status, value)
            .expect("the edge's reply bodies are plain structs of strings, which always serialise")
    }

    /// `{"status": word}`, for `ok` and `pong`.
    pub(crate) fn status(status: StatusCode, word: &str) -> Self {
        Self::plain(status, &Status { status: word })
    }

    /// `{"status": word, "job_id": job_id}`, for `accepted` and `already_processed`.
    pub(crate) fn job(status: StatusCode, word: &str, job_id: &str) -> Self {
        Self::plain(
            status,
            &Job {
                status: word,
                job_id,
            },
        )
    }

    /// `200 {"status":"ignored","reason": reason}`.
    pub(crate) fn ignored(reason: &str) -> Self {
        Self::plain(
            StatusCode::OK,
            &Ignored {
                status: "ignored",
                reason,
            },
        )
    }

    /// `200 {"status":"cancelled","job_ids": [...]}`.
    pub(crate) fn cancelled(job_ids: &[String]) -> Self {
        Self::plain(
            StatusCode::OK,
            &Cancelled {
                status: "cancelled",
                job_ids,
            },
        )
    }

    /// `{"error": message}`, for a 4xx or 5xx.
    pub fn error(status: StatusCode, message: &str) -> Self {
        Self::plain(status, &Error { error: message })
    }

    /// `503` with `Retry-After`, for a sink that cannot take the job now.
    pub(crate) fn unavailable(message: &str, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::error(StatusCode::SERVICE_UNAVAILABLE, message)
        }
    }

    /// `405` naming the methods the path accepts, in the body and in `Allow`.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        let message = format!("method not allowed; this path accepts {allow}");
        Self {
            allow: Some(allow),
            ..Self::error(StatusCode::METHOD_NOT_ALLOWED, &message)
        }
    }

    /// `404` for a path the listener does not serve.
    pub fn not_found(path: &str) -> Self {
        Self::error(StatusCode::NOT_FOUND, &format!("no route for {path}"))
    }

    /// The status it will be answered with.
    pub fn status_code(&self) -> StatusCode {
        self.status
    }

    /// The body it will be answered with.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The HTTP response, with its content type (`application/json` unless made by [`Reply::body`]) and
    /// `x-request-id: request_id`.
    pub(crate) fn into_response(self, request_id: HeaderValue) -> Response<ResponseBody> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        headers.insert(REQUEST_ID_HEADER, request_id);
        if let Some(retry_after) = self.retry_after {
            // Whole seconds, rounded up so "0.5 s" does not become "now".
            let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    async fn parts(reply: Reply) -> (Response<()>, String) {
        let response = reply.into_response(HeaderValue::from_static("id-1"));
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        (
            Response::from_parts(parts, ()),
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn every_reply_is_json_with_the_request_id() {
        let (response, body) = parts(Reply::job(StatusCode::ACCEPTED, "accepted", "7-a\"b")).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "id-1");
        assert_eq!(body, r#"{"status":"accepted","job_id":"7-a\"b"}"#);
    }

    #[tokio::test]
    async fn a_router_may_answer_other_content_and_add_headers() {
        let reply = Reply::body(
            StatusCode::UNAUTHORIZED,
            "text/html; charset=utf-8",
            "<p>no</p>",
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"booty\""),
        )
        .with_header(header::CONTENT_TYPE, HeaderValue::from_static("text/evil"));
        let (response, body) = parts(reply).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8",
            "the edge's content type wins"
        );
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Basic realm=\"booty\""
        );
        assert_eq!(response.headers()[REQUEST_ID_HEADER], "id-1");
        assert_eq!(body, "<p>no</p>");
    }

    #[tokio::test]
    async fn retry_after_rounds_up_to_whole_seconds() {
        let (response, body) = parts(Reply::unavailable(
            "queue full",
            Duration::from_millis(1500),
        ))
        .await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        assert_eq!(body, r#"{"error":"queue full"}"#);
    }

    #[tokio::test]
    async fn method_not_allowed_names_the_allowed_methods() {
        let (response, body) = parts(Reply::method_not_allowed("POST")).await;
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[header::ALLOW], "POST");
        assert_eq!(
            body,
            r#"{"error":"method not allowed; this path accepts POST"}"#
        );
    }
}
