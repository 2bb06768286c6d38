//! The admin listener's routes over an inspector of the test's own.

use std::sync::{Arc, Mutex};

use booty_edge::Limits;
use booty_service::{Action, Admin, JobFilter, JobInspector};
use booty_testkit::StoreError;
use booty_testkit::http::{Answer, client, raw_exchange, send};
use booty_testkit::logs::{capture_logs, line_with};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

/// A job as an inspector might show it: the admin listener serialises whatever view it is given.
#[derive(Debug, Clone, serde::Serialize)]
struct View {
    job_id: String,
    state: &'static str,
    attempts: u32,
    issue_number: u64,
    repository: &'static str,
    delivery_id: String,
    created_at: &'static str,
    started_at: Option<&'static str>,
    finished_at: Option<&'static str>,
    error: Option<&'static str>,
}

/// Jobs kept newest first, or an error for every read.
struct Jobs {
    newest_first: Vec<View>,
    broken: bool,
    limits_asked: Mutex<Vec<usize>>,
}

/// Why a broken [`Jobs`] cannot be read, with the cause a real store would give.
#[derive(Debug, thiserror::Error)]
#[error("listing jobs failed")]
struct Unreadable(#[source] StoreError);

impl JobInspector for Jobs {
    type View = View;
    type Error = Unreadable;

    async fn recent(&self, filter: &JobFilter) -> Result<Vec<View>, Unreadable> {
        self.limits_asked.lock().unwrap().push(filter.limit);
        if self.broken {
            return Err(Unreadable(StoreError::chain()));
        }
        Ok(self
            .newest_first
            .iter()
            .take(filter.limit)
            .cloned()
            .collect())
    }

    async fn job(&self, job_id: &str) -> Result<Option<View>, Unreadable> {
        if self.broken {
            return Err(Unreadable(StoreError::chain()));
        }
        Ok(self
            .newest_first
            .iter()
            .find(|job| job.job_id == job_id)
            .cloned())
    }

    /// Not asked of this inspector: the queue's own is tested in `jobs.rs`.
    async fn retry(&self, _job_id: &str) -> Result<Action<View>, Unreadable> {
        Ok(Action::NotFound)
    }

    async fn cancel(&self, _job_id: &str) -> Result<Action<View>, Unreadable> {
        Ok(Action::NotFound)
    }
}

fn job(issue: u64, delivery: &str, finished: bool) -> View {
    View {
        job_id: format!("{issue}-{delivery}"),
        state: if finished { "failed" } else { "queued" },
        attempts: u32::from(finished) * 3,
        issue_number: issue,
        repository: "octo-org/octo-repo",
        delivery_id: delivery.to_owned(),
        created_at: "2023-11-14T22:13:22.000Z",
        started_at: finished.then_some("2023-11-14T22:13:23.500Z"),
        finished_at: finished.then_some("2023-11-14T22:14:22.000Z"),
        error: finished.then_some("clone timed out"),
    }
}

async fn start(jobs: Jobs) -> (String, Arc<Jobs>, oneshot::Sender<()>) {
    let jobs = Arc::new(jobs);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(booty_service::serve_admin(
        listener,
        Arc::clone(&jobs),
        Limits::default(),
        async {
            let _ = stopped.await;
        },
    ));
    (base, jobs, stop)
}

fn get(url: String) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::new(Bytes::new())).unwrap()
}

#[tokio::test]
async fn jobs_are_listed_newest_first_with_the_limit_passed_on() {
    let (base, inspector, _stop) = start(Jobs {
        newest_first: vec![job(3, "c", false), job(2, "b", true), job(1, "a", true)],
        broken: false,
        limits_asked: Mutex::default(),
    })
    .await;
    let client = client();

    let all = send(&client, get(format!("{base}/jobs"))).await;
    assert_eq!(all.status, StatusCode::OK);
    let ids: Vec<_> = all.json["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["3-c", "2-b", "1-a"]);

    let two = send(&client, get(format!("{base}/jobs?limit=2"))).await;
    assert_eq!(two.json["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(*inspector.limits_asked.lock().unwrap(), [50, 2]);

    for bad in ["limit=0", "limit=100000", "limit=x", "page=2"] {
        let answer = send(&client, get(format!("{base}/jobs?{bad}"))).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(!answer.error().is_empty());
    }
}

#[tokio::test]
async fn one_job_is_shown_with_every_admin_field_and_an_unknown_one_is_404() {
    let (base, _inspector, _stop) = start(Jobs {
        newest_first: vec![job(2, "b", true), job(1, "a", false)],
        broken: false,
        limits_asked: Mutex::default(),
    })
    .await;
    let client = client();
    let answer = send(&client, get(format!("{base}/jobs/2-b"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.json,
        serde_json::json!({
            "job_id": "2-b",
            "state": "failed",
            "attempts": 3,
            "issue_number": 2,
            "repository": "octo-org/octo-repo",
            "delivery_id": "b",
            "created_at": "2023-11-14T22:13:22.000Z",
            "started_at": "2023-11-14T22:13:23.500Z",
            "finished_at": "2023-11-14T22:14:22.000Z",
            "error": "clone timed out",
        })
    );
    let queued = send(&client, get(format!("{base}/jobs/1-a"))).await;
    assert_eq!(queued.json["started_at"], serde_json::Value::Null);
    assert_eq!(queued.json["error"], serde_json::Value::Null);

    let unknown = send(&client, get(format!("{base}/jobs/9-z"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error(), "no job with id 9-z");
}

#[tokio::test]
async fn admin_routes_refuse_other_methods_and_paths_and_hide_store_errors() {
    let (base, _inspector, _stop) = start(Jobs {
        newest_first: Vec::new(),
        broken: true,
        limits_asked: Mutex::default(),
    })
    .await;
    let client = client();
    for path in ["/jobs", "/jobs/1-a"] {
        let request = Request::builder()
            .method(Method::DELETE)
            .uri(format!("{base}{path}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let answer = send(&client, request).await;
        assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(answer.headers["allow"], "GET");
    }
    for path in ["/jobs/", "/jobs/1/2", "/webhooks/github"] {
        let answer = send(&client, get(format!("{base}{path}"))).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
    }
    let broken: Answer = send(&client, get(format!("{base}/jobs"))).await;
    assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(broken.error(), "reading jobs failed");
}

#[tokio::test]
async fn a_store_error_is_logged_with_every_cause() {
    let (captured, _guard) = capture_logs();
    let admin = Admin::new(
        Arc::new(Jobs {
            newest_first: Vec::new(),
            broken: true,
            limits_asked: Mutex::default(),
        }),
        Limits::default(),
    )
    .listening_on("127.0.0.1:9090".parse().unwrap());
    let request = Request::get("/jobs")
        .header("host", "127.0.0.1:9090")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let answer = admin.handle(request).await;
    assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let log = captured.text();
    let line = line_with(&log, "jobs_unreadable");
    assert!(line.contains(" ERROR "), "{line}");
    assert!(
        line.contains(
            "listing jobs failed: inserting the job failed: database is locked: the disk is on fire"
        ),
        "{line}"
    );
}

/// Never answers, as a store that hangs.
struct Stuck;

impl JobInspector for Stuck {
    type View = View;
    type Error = Unreadable;

    async fn recent(&self, _filter: &JobFilter) -> Result<Vec<View>, Unreadable> {
        std::future::pending().await
    }

    async fn job(&self, _job_id: &str) -> Result<Option<View>, Unreadable> {
        std::future::pending().await
    }

    async fn retry(&self, _job_id: &str) -> Result<Action<View>, Unreadable> {
        std::future::pending().await
    }

    async fn cancel(&self, _job_id: &str) -> Result<Action<View>, Unreadable> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_store_that_does_not_answer_is_503_at_the_request_timeout_and_logged() {
    let (captured, _guard) = capture_logs();
    let mut limits = Limits::default();
    limits.request_timeout = std::time::Duration::from_millis(200);
    let admin = Admin::new(Arc::new(Stuck), limits).listening_on("127.0.0.1:9090".parse().unwrap());
    for path in ["/jobs", "/jobs/1-a"] {
        let request = Request::get(path)
            .header("host", "127.0.0.1:9090")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let answer = admin.handle(request).await;
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        let body = http_body_util::BodyExt::collect(answer.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body, r#"{"error":"reading jobs timed out"}"#);
    }
    let log = captured.text();
    let line = line_with(&log, "jobs_unreadable");
    assert!(
        line.contains(" ERROR ") && line.contains("no answer within 0.2 s"),
        "{line}"
    );
}

/// A raw HTTP/1.1 `GET path` naming `host` (no `Host` header at all when `None`), on its own connection.
async fn get_as(base: &str, path: &str, host: Option<&str>) -> String {
    let addr = base.strip_prefix("http://").unwrap();
    let host = host
        .map(|host| format!("host: {host}\r\n"))
        .unwrap_or_default();
    let version = if host.is_empty() { "1.0" } else { "1.1" };
    let request = format!("GET {path} HTTP/{version}\r\n{host}connection: close\r\n\r\n");
    raw_exchange(addr.parse().unwrap(), request.as_bytes()).await
}

fn empty_jobs() -> Jobs {
    Jobs {
        newest_first: vec![job(1, "a", false)],
        broken: false,
        limits_asked: Mutex::default(),
    }
}

#[tokio::test]
async fn a_request_for_another_host_is_421_naming_it_and_reads_nothing() {
    // A DNS rebinding page: the browser thinks it talks to evil.example, which now resolves to us.
    let (base, inspector, _stop) = start(empty_jobs()).await;
    let port = base.rsplit(':').next().unwrap();
    for host in [
        "evil.example".to_owned(),
        format!("evil.example:{port}"),
        format!("127.0.0.1.evil.example:{port}"),
        format!("127.0.0.1:{}", port.parse::<u16>().unwrap() + 1),
    ] {
        let answer = get_as(&base, "/jobs", Some(&host)).await;
        assert!(
            answer.starts_with("HTTP/1.1 421 Misdirected Request\r\n"),
            "{host}: {answer}"
        );
        let body: serde_json::Value =
            serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains(&host), "{host}: {error}");
    }
    // HTTP/1.0 allows a request without Host; this listener does not.
    let answer = get_as(&base, "/jobs", None).await;
    assert!(
        answer.starts_with("HTTP/1.0 421 Misdirected Request\r\n"),
        "{answer}"
    );
    assert!(answer.contains("the request names no host"), "{answer}");
    assert!(inspector.limits_asked.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_listener_address_and_loopback_names_are_answered() {
    let (base, inspector, _stop) = start(empty_jobs()).await;
    let port = base.rsplit(':').next().unwrap();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("LocalHost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let answer = get_as(&base, "/jobs", Some(&host)).await;
        assert!(
            answer.starts_with("HTTP/1.1 200 OK\r\n"),
            "{host}: {answer}"
        );
    }
    assert_eq!(inspector.limits_asked.lock().unwrap().len(), 4);
}

#[tokio::test]
async fn an_h2_authority_for_another_host_is_421() {
    let (base, _inspector, _stop) = start(empty_jobs()).await;
    let addr = base.strip_prefix("http://").unwrap();
    let port = base.rsplit(':').next().unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    for (authority, status) in [
        (
            format!("evil.example:{port}"),
            StatusCode::MISDIRECTED_REQUEST,
        ),
        (format!("localhost:{port}"), StatusCode::OK),
    ] {
        // hyper sends the URI's authority as `:authority`, and no Host header.
        let request = get(format!("http://{authority}/jobs"));
        let answer = Answer::from_response(sender.send_request(request).await.unwrap()).await;
        assert_eq!(answer.status, status, "{authority}: {}", answer.json);
    }
}

#[tokio::test]
async fn configured_names_are_answered_too() {
    let jobs = Arc::new(empty_jobs());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let port = base.rsplit(':').next().unwrap().to_owned();
    let admin = Admin::new(Arc::clone(&jobs), Limits::default())
        .allow_hosts(["booty.internal", "jobs.example:8443"])
        .unwrap();
    let (_stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(admin.serve(listener, async {
        let _ = stopped.await;
    }));
    for (host, allowed) in [
        ("booty.internal".to_owned(), true),
        (format!("Booty.Internal:{port}"), true),
        ("jobs.example:8443".to_owned(), true),
        ("jobs.example".to_owned(), false),
        (format!("127.0.0.1:{port}"), true),
        ("evil.example".to_owned(), false),
    ] {
        let answer = get_as(&base, "/jobs", Some(&host)).await;
        let status = if allowed {
            "200 OK"
        } else {
            "421 Misdirected Request"
        };
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}\r\n")),
            "{host}: {answer}"
        );
    }
    assert!(
        Admin::new(jobs, Limits::default())
            .allow_hosts(["bad host"])
            .is_err()
    );
}
