//! The admin listener: job inspection over a read-only trait.

use std::sync::{Arc, Mutex};

use booty_edge::{Admin, JobInspector, Limits};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::harness::{Answer, StoreError, capture_logs, client, line_with, send};

/// A job as an inspector might show it: the edge serialises whatever view it is given.
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

    async fn recent(&self, limit: usize) -> Result<Vec<View>, Unreadable> {
        self.limits_asked.lock().unwrap().push(limit);
        if self.broken {
            return Err(Unreadable(StoreError::chain()));
        }
        Ok(self.newest_first.iter().take(limit).cloned().collect())
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
    tokio::spawn(booty_edge::serve_admin(
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
    for path in ["/", "/jobs/", "/jobs/1/2", "/webhooks/github"] {
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
    );
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
