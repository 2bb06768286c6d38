//! The admin listener over a real queue: listing with filters, retry and cancel over the JSON API, the
//! admin token, and the refusal of cross-site requests.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use booty_edge::Limits;
use booty_queue::{
    CancellationToken, HandlerError, Job, MemoryStore, NewJob, Queue, QueueConfig, Submitted,
};
use booty_service::{Admin, AdminToken, QueueInspector};
use booty_testkit::http::{Answer, client, send};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const TOKEN: &str = "admin-t0ken";

/// What a test job does when it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Fail,
    /// Runs until cancelled.
    Block,
    Succeed,
}

struct Listener {
    base: String,
    queue: Queue<Behaviour>,
    client: Client<HttpConnector, Full<Bytes>>,
    _stop: oneshot::Sender<()>,
}

async fn start(token: Option<&str>) -> Listener {
    let handler = |job: Job<Behaviour>, cancel: CancellationToken| async move {
        match *job.payload {
            Behaviour::Fail => Err(HandlerError::permanent("exit status 1")),
            Behaviour::Block => {
                cancel.cancelled().await;
                Err(HandlerError::retryable("stopped"))
            }
            Behaviour::Succeed => Ok(()),
        }
    };
    let mut config = QueueConfig::default();
    config.workers = 2;
    // Renewals every 100 ms: a running job learns of its cancellation at once.
    config.lease = Duration::from_millis(300);
    let queue = Queue::start(MemoryStore::default(), handler, config)
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let admin = Admin::new(
        Arc::new(QueueInspector::new(queue.clone())),
        Limits::default(),
    );
    let admin = match token {
        Some(token) => admin.with_token(AdminToken::new(token).unwrap()),
        None => admin,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(admin.serve(listener, async {
        let _ = stopped.await;
    }));
    Listener {
        base,
        queue,
        client: client(),
        _stop: stop,
    }
}

impl Listener {
    async fn submit(
        &self,
        delivery: &str,
        repository: &str,
        issue: i64,
        behaviour: Behaviour,
    ) -> String {
        let id = format!("{issue}-{delivery}");
        let job = NewJob::new(id.as_str(), behaviour)
            .deduped_by(delivery)
            .in_lane(format!("{repository}#{issue}"))
            .of_kind("issue")
            .with_metadata("issue_number", issue)
            .with_metadata("repository", repository)
            .with_metadata("delivery_id", delivery);
        assert!(matches!(
            self.queue.submit(job).await.unwrap(),
            Submitted::Accepted(_)
        ));
        id
    }

    async fn request(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(&self.client, request.body(Full::new(Bytes::new())).unwrap()).await
    }

    async fn get(&self, path: &str) -> Answer {
        self.request(Method::GET, path, &[]).await
    }

    async fn post(&self, path: &str) -> Answer {
        self.request(Method::POST, path, &[]).await
    }

    /// Waits for job `id` to be in `state` (as `GET /jobs/{id}` shows it), and returns it.
    async fn wait_for(&self, id: &str, state: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let job = self.get(&format!("/jobs/{id}")).await.json;
            if job["state"] == state {
                return job;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "job {id} never became {state}: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn ids(answer: &Answer) -> Vec<&str> {
    answer.json["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["job_id"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_filtered_by_state_and_repository() {
    let admin = start(None).await;
    let failed = admin.submit("a", "octo/repo", 1, Behaviour::Fail).await;
    let other = admin.submit("d", "other/repo", 3, Behaviour::Succeed).await;
    admin.wait_for(&failed, "failed").await;
    let done = admin.wait_for(&other, "succeeded").await;
    assert_eq!(done["repository"], "other/repo");
    assert_eq!(done["issue_number"], 3);

    let by_repository = admin.get("/jobs?repository=other%2Frepo").await;
    assert_eq!(by_repository.status, StatusCode::OK);
    assert_eq!(ids(&by_repository), [other.as_str()]);
    assert_eq!(
        ids(&admin.get("/jobs?state=failed").await),
        [failed.as_str()]
    );
    assert_eq!(
        ids(&admin.get("/jobs?state=failed&repository=other/repo").await),
        Vec::<&str>::new()
    );
    assert_eq!(ids(&admin.get("/jobs?state=&repository=").await).len(), 2);
    let bad = admin.get("/jobs?state=done").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.error()
            .starts_with("state must be one of queued, running"),
        "{}",
        bad.error()
    );
    let bad = admin.get("/jobs?repository=octo").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.error(), "repository must be owner/name, not \"octo\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_is_retried_and_its_attempts_continue() {
    let admin = start(None).await;
    let failed = admin.submit("a", "octo/repo", 1, Behaviour::Fail).await;
    let done = admin.submit("d", "octo/repo", 2, Behaviour::Succeed).await;
    let first = admin.wait_for(&failed, "failed").await;
    assert_eq!(first["attempts"], 1);
    assert_eq!(first["error"], "exit status 1");
    admin.wait_for(&done, "succeeded").await;

    let retried = admin.post(&format!("/jobs/{failed}/retry")).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.json);
    assert_eq!(retried.json["job_id"], failed.as_str());
    assert!(
        ["queued", "running", "failed"].contains(&retried.json["state"].as_str().unwrap()),
        "{}",
        retried.json
    );
    assert_eq!(retried.json["finished_at"], serde_json::Value::Null);
    let again = admin.wait_for(&failed, "failed").await;
    assert_eq!(again["attempts"], 2, "attempts continue: {again}");
    // The retried job is listed first: it is the newest in line.
    assert_eq!(ids(&admin.get("/jobs").await)[0], failed.as_str());

    let refused = admin.post(&format!("/jobs/{done}/retry")).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(
        refused.error(),
        format!("job {done} is succeeded; only failed or cancelled jobs can be retried")
    );
    let unknown = admin.post("/jobs/9-nope/retry").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.error(), "no job with id 9-nope");
    let wrong_method = admin.get(&format!("/jobs/{failed}/retry")).await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers["allow"], "POST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_and_running_jobs_are_cancelled_and_cross_site_posts_are_refused() {
    let admin = start(None).await;
    let running = admin.submit("b", "octo/repo", 2, Behaviour::Block).await;
    admin.wait_for(&running, "running").await;
    // Behind the running job in its lane: it waits.
    let queued = admin.submit("c", "octo/repo", 2, Behaviour::Succeed).await;

    for headers in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "http://evil.example")][..],
        &[("origin", "null")][..],
    ] {
        let refused = admin
            .request(Method::POST, &format!("/jobs/{queued}/cancel"), headers)
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert!(
            refused.error().starts_with("cross-site request refused"),
            "{}",
            refused.error()
        );
    }
    assert_eq!(
        admin.get(&format!("/jobs/{queued}")).await.json["state"],
        "queued"
    );

    let same_origin = [
        ("sec-fetch-site", "same-origin"),
        ("origin", admin.base.as_str()),
    ];
    let cancelled = admin
        .request(
            Method::POST,
            &format!("/jobs/{queued}/cancel"),
            &same_origin,
        )
        .await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.json);
    assert_eq!(cancelled.json["state"], "cancelled");
    assert_eq!(cancelled.json["error"], "cancelled by an operator");
    let again = admin.post(&format!("/jobs/{queued}/cancel")).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        again.error(),
        format!(
            "job {queued} is already cancelled; only queued, retrying or running jobs can be cancelled"
        )
    );

    let stopping = admin.post(&format!("/jobs/{running}/cancel")).await;
    assert_eq!(stopping.status, StatusCode::OK);
    let stopped = admin.wait_for(&running, "cancelled").await;
    assert_eq!(stopped["error"], "cancelled by an operator");
    assert_eq!(
        admin.post("/jobs/9-nope/cancel").await.status,
        StatusCode::NOT_FOUND
    );

    // A cancelled job can be retried; it runs (and succeeds) now that its lane is free.
    let retried = admin.post(&format!("/jobs/{queued}/retry")).await;
    assert_eq!(retried.status, StatusCode::OK);
    let done = admin.wait_for(&queued, "succeeded").await;
    assert_eq!(done["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_token_nothing_is_read_or_changed_without_it() {
    let admin = start(Some(TOKEN)).await;
    let bearer = format!("Bearer {TOKEN}");
    let basic = format!("Basic {}", STANDARD.encode(format!("me:{TOKEN}")));
    let failed = admin.submit("a", "octo/repo", 1, Behaviour::Fail).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while admin.queue.get(&failed).await.unwrap().unwrap().state != booty_queue::JobState::Failed {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let wrong_bearer = format!("Bearer {TOKEN}x");
    let wrong_basic = format!("Basic {}", STANDARD.encode(format!("{TOKEN}:")));
    for authorization in [
        None,
        Some(wrong_bearer.as_str()),
        Some(wrong_basic.as_str()),
    ] {
        let headers: Vec<(&str, &str)> = authorization
            .map(|value| ("authorization", value))
            .into_iter()
            .collect();
        for (method, path) in [
            (Method::GET, "/jobs".to_owned()),
            (Method::GET, format!("/jobs/{failed}")),
            (Method::POST, format!("/jobs/{failed}/retry")),
            (Method::GET, "/metrics".to_owned()),
            (Method::GET, "/nowhere".to_owned()),
        ] {
            let answer = admin.request(method.clone(), &path, &headers).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} {authorization:?}"
            );
            assert_eq!(
                answer.headers["www-authenticate"],
                "Basic realm=\"booty admin\", charset=\"UTF-8\""
            );
            assert!(
                answer
                    .error()
                    .starts_with("this admin listener needs its token")
            );
            assert!(!answer.json.to_string().contains(TOKEN));
        }
    }
    // The refused retry left no trace.
    let job = admin.queue.get(&failed).await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.attempts),
        (booty_queue::JobState::Failed, 1)
    );

    let listed = admin
        .request(Method::GET, "/jobs", &[("authorization", bearer.as_str())])
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(ids(&listed), [failed.as_str()]);
    let shown = admin
        .request(
            Method::GET,
            &format!("/jobs/{failed}"),
            &[("authorization", basic.as_str())],
        )
        .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json["state"], "failed");
    let retried = admin
        .request(
            Method::POST,
            &format!("/jobs/{failed}/retry"),
            &[("authorization", bearer.as_str())],
        )
        .await;
    assert_eq!(retried.status, StatusCode::OK);
}
