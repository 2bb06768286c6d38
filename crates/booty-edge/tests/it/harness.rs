//! A server on `127.0.0.1:0`, a sink that records what it gets, signed deliveries and a JSON-reading client.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use booty_edge::{EdgeConfig, ServeError, Sink, SinkAnswer, Submission};
use booty_signature::{Verifier, sign};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::format::FmtSpan;

pub(crate) const SECRET: &str = "the current webhook secret";
pub(crate) const PREVIOUS_SECRET: &str = "the secret before the rotation";
pub(crate) const LABEL: &str = "agent:builder";
pub(crate) const REPOSITORY: &str = "Codertocat/Hello-World";

/// GitHub's `issues`/`labeled` example as GitHub sends it (12 KB, label `bug`), shared with booty-event.
pub(crate) const FIXTURE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../booty-event/tests/fixtures/issues.labeled.json"
));
/// The label in [`FIXTURE`].
pub(crate) const FIXTURE_LABEL: &str = "bug";

/// The default configuration with the test secrets (current and previous).
pub(crate) fn config() -> EdgeConfig {
    EdgeConfig::new(Verifier::with_previous(SECRET, [PREVIOUS_SECRET]).unwrap())
}

/// How [`TestSink`] answers.
#[derive(Debug, Default)]
pub(crate) enum Mode {
    /// Accepts new delivery ids and answers duplicates for ids seen before, like the queue.
    #[default]
    Accept,
    Busy,
    Unavailable,
    Fail,
    /// `Unavailable` with an error that has a cause, as a store error wrapping the database's.
    UnavailableWithCause,
    /// `Failed` with an error that has a cause.
    FailWithCause,
    /// Holds every submission until the gate opens, then accepts it.
    Gated(watch::Receiver<bool>),
    /// Takes this long, then accepts.
    Slow(Duration),
}

/// A store's error with the error that caused it, for tests of what the logs say about a `5xx`.
#[derive(Debug, thiserror::Error)]
#[error("inserting the job failed")]
pub(crate) struct StoreError {
    #[source]
    source: DatabaseError,
}

/// What [`StoreError`] wraps: itself caused by an I/O error, so the chain has three links.
#[derive(Debug, thiserror::Error)]
#[error("database is locked")]
pub(crate) struct DatabaseError {
    #[source]
    source: std::io::Error,
}

impl StoreError {
    /// The chain `inserting the job failed: database is locked: the disk is on fire`.
    pub(crate) fn chain() -> Self {
        Self {
            source: DatabaseError {
                source: std::io::Error::other("the disk is on fire"),
            },
        }
    }
}

/// A sink that records every submission and answers as its [`Mode`] says.
#[derive(Debug)]
pub(crate) struct TestSink {
    mode: Mode,
    submissions: Mutex<Vec<Submission>>,
    arrived: watch::Sender<usize>,
}

impl TestSink {
    pub(crate) fn new(mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            mode,
            submissions: Mutex::new(Vec::new()),
            arrived: watch::Sender::new(0),
        })
    }

    pub(crate) fn accepting() -> Arc<Self> {
        Self::new(Mode::Accept)
    }

    pub(crate) fn submissions(&self) -> Vec<Submission> {
        self.submissions.lock().unwrap().clone()
    }

    /// Waits until `count` submissions have reached the sink.
    pub(crate) async fn wait_for_arrivals(&self, count: usize) {
        let mut arrived = self.arrived.subscribe();
        arrived.wait_for(|arrived| *arrived >= count).await.unwrap();
    }
}

impl Sink for TestSink {
    async fn submit(&self, submission: Submission) -> SinkAnswer {
        let job_id = format!(
            "{}-{}",
            submission.trigger.issue.number,
            submission.delivery.id()
        );
        let duplicate = {
            let mut submissions = self.submissions.lock().unwrap();
            let duplicate = submissions
                .iter()
                .any(|seen| seen.delivery.id() == submission.delivery.id());
            submissions.push(submission);
            duplicate
        };
        self.arrived.send_modify(|arrived| *arrived += 1);
        match &self.mode {
            Mode::Accept if duplicate => SinkAnswer::Duplicate { job_id },
            Mode::Accept => SinkAnswer::Accepted { job_id },
            Mode::Busy => SinkAnswer::Busy,
            Mode::Unavailable => SinkAnswer::Unavailable("connection refused by the store".into()),
            Mode::Fail => SinkAnswer::Failed("disk full".into()),
            Mode::UnavailableWithCause => SinkAnswer::Unavailable(Box::new(StoreError::chain())),
            Mode::FailWithCause => SinkAnswer::Failed(Box::new(StoreError::chain())),
            Mode::Gated(gate) => {
                let mut gate = gate.clone();
                gate.wait_for(|open| *open).await.unwrap();
                SinkAnswer::Accepted { job_id }
            }
            Mode::Slow(delay) => {
                tokio::time::sleep(*delay).await;
                SinkAnswer::Accepted { job_id }
            }
        }
    }
}

/// A log sink the test can read back.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// Captures what this thread logs (the tests run on a current-thread runtime) until the guard drops.
pub(crate) fn capture_logs() -> (Captured, DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// The first logged line holding `message`.
pub(crate) fn line_with<'log>(log: &'log str, message: &str) -> &'log str {
    log.lines()
        .find(|line| line.contains(message))
        .unwrap_or_else(|| panic!("no {message} line in:\n{log}"))
}

/// `booty_edge::serve` on a loopback port, in a task.
pub(crate) struct TestServer {
    pub(crate) addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl TestServer {
    pub(crate) async fn start<S: Sink>(config: EdgeConfig, sink: Arc<S>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(booty_edge::serve(listener, config, sink, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    pub(crate) async fn accepting() -> (Self, Arc<TestSink>) {
        let sink = TestSink::accepting();
        (Self::start(config(), Arc::clone(&sink)).await, sink)
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends the shutdown signal without waiting for the server to finish.
    pub(crate) fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
    }

    /// Waits for `serve` to return (after [`Self::begin_shutdown`], or sends the signal itself).
    pub(crate) async fn stop(mut self) -> Result<(), ServeError> {
        self.begin_shutdown();
        self.task.await.unwrap()
    }
}

/// [`FIXTURE`] with its issue number and added label changed, to make distinct triggers (or non-triggers).
pub(crate) fn labeled(issue: u64, label: &str) -> Vec<u8> {
    let mut event: serde_json::Value = serde_json::from_slice(FIXTURE).unwrap();
    event["issue"]["number"] = issue.into();
    event["label"]["name"] = label.into();
    serde_json::to_vec(&event).unwrap()
}

/// A webhook POST as GitHub sends it: JSON, signed with [`SECRET`], with event and delivery headers.
pub(crate) fn delivery(
    server: &TestServer,
    event: &str,
    delivery_id: &str,
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let body = body.into();
    webhook_post(server)
        .header("x-github-event", event)
        .header("x-github-delivery", delivery_id)
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), &body))
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap()
}

/// A POST to the webhook path with GitHub's user agent and nothing else.
pub(crate) fn webhook_post(server: &TestServer) -> hyper::http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri(server.url("/webhooks/github"))
        .header("user-agent", "GitHub-Hookshot/044aadd")
}

pub(crate) type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// hyper-util's pooled HTTP/1.1 client.
pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// hyper-util's client speaking HTTP/2 over cleartext with prior knowledge.
pub(crate) fn h2c_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A decoded answer. Every answer of the edge must be JSON with an `x-request-id`; this checks both.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) json: serde_json::Value,
}

impl Answer {
    pub(crate) async fn from_response(response: hyper::Response<hyper::body::Incoming>) -> Self {
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(
            parts.headers["content-type"], "application/json",
            "{parts:?}"
        );
        assert!(
            parts.headers.contains_key("x-request-id"),
            "no x-request-id: {parts:?}"
        );
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("answer is not JSON ({err}): {bytes:?}"));
        Self {
            status: parts.status,
            headers: parts.headers,
            json,
        }
    }

    pub(crate) fn request_id(&self) -> &str {
        self.headers["x-request-id"].to_str().unwrap()
    }

    pub(crate) fn error(&self) -> &str {
        self.json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {}", self.json))
    }
}

/// Sends `request` with `client` and decodes the answer.
pub(crate) async fn send(client: &HttpClient, request: Request<Full<Bytes>>) -> Answer {
    Answer::from_response(client.request(request).await.unwrap()).await
}

/// Writes `bytes` on a fresh connection, then reads until the server closes it.
pub(crate) async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_until_closed(&mut stream).await
}

/// Everything the server sends until it closes the connection (a reset counts as closed).
pub(crate) async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(read) => received.extend_from_slice(&buf[..read]),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}
