//! The listener machinery on a router of one's own: `serve_routes`, `answer` and `AllowedHosts`, as
//! booty-service's admin listener uses them.

use std::sync::Arc;

use booty_edge::{AllowedHosts, Limits, Reply, ResponseBody, Routes, answer, serve_routes};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::harness::{capture_logs, line_with, raw_exchange};

/// Answers `GET /hello` on the hosts it was told about.
struct Hello {
    hosts: AllowedHosts,
}

impl Routes for Hello {
    async fn call(&self, request: Request<Incoming>) -> Response<ResponseBody> {
        answer(request, |request| async move {
            if let Err(refused) = self.hosts.check(&request) {
                return refused;
            }
            match request.uri().path() {
                "/hello" => Reply::json(StatusCode::OK, &serde_json::json!({"hello": "world"}))
                    .unwrap_or_else(|err| {
                        Reply::error(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())
                    }),
                path => Reply::not_found(path),
            }
        })
        .await
    }
}

/// A raw HTTP/1.1 `GET path` naming `host`, its answer's head and body.
async fn get(addr: std::net::SocketAddr, path: &str, host: &str) -> (String, serde_json::Value) {
    let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    let answer = raw_exchange(addr, request.as_bytes()).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap(),
    )
}

#[tokio::test]
async fn a_router_of_ones_own_gets_the_listeners_answers_hosts_and_shutdown() {
    let (captured, _guard) = capture_logs();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut hosts = AllowedHosts::default();
    hosts.listen_on(addr);
    hosts.allow("hello.internal").unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(serve_routes(
        listener,
        Limits::default(),
        Arc::new(Hello { hosts }),
        async {
            let _ = stopped.await;
        },
    ));

    let (head, json) = get(addr, "/hello", &addr.to_string()).await;
    assert!(head.starts_with("http/1.1 200 ok\r\n"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert!(head.contains("x-request-id: edge-"), "{head}");
    assert_eq!(json, serde_json::json!({"hello": "world"}));

    let (head, json) = get(addr, "/elsewhere", "hello.internal").await;
    assert!(head.starts_with("http/1.1 404 not found\r\n"), "{head}");
    assert_eq!(json["error"], "no route for /elsewhere");

    let (head, json) = get(addr, "/hello", "evil.example").await;
    assert!(
        head.starts_with("http/1.1 421 misdirected request\r\n"),
        "{head}"
    );
    assert!(head.contains("x-request-id: edge-"), "{head}");
    assert!(
        json["error"].as_str().unwrap().contains("evil.example"),
        "{json}"
    );

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    let log = captured.text();
    let line = line_with(&log, "request_answered");
    assert!(
        line.contains("path=\"/hello\"") && line.contains("status=200"),
        "{line}"
    );
    line_with(&log, "admin_host_refused");
    line_with(&log, "listener_closed");
}
