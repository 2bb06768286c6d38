//! A server on `127.0.0.1:0`, a sink that routes like booty-service's and records the triggers it gets,
//! and signed deliveries; the JSON-reading client and the log capture are booty-testkit's, shared with
//! booty-service's listener tests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use booty_edge::{EdgeConfig, ServeError, Sink, SinkAnswer, Webhook};
use booty_event::{Decision, Delivery, IssueTrigger, TriggerRule};
use booty_signature::{Verifier, sign};
pub(crate) use booty_testkit::StoreError;
pub(crate) use booty_testkit::http::{
    Answer, client, h2c_client, raw_exchange, read_until_closed, send,
};
pub(crate) use booty_testkit::logs::{capture_logs, line_with};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

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

/// A trigger the [`TestSink`] took: what booty-service's sink would make a job from.
#[derive(Debug, Clone)]
pub(crate) struct Submission {
    pub(crate) delivery: Delivery,
    pub(crate) trigger: IssueTrigger,
    pub(crate) payload: Bytes,
    pub(crate) deadline: Instant,
}

/// A sink that routes every delivery with a trigger rule, as booty-service's does (ignored events and
/// undecidable payloads are answered so), records every trigger and answers it as its [`Mode`] says.
#[derive(Debug)]
pub(crate) struct TestSink {
    rule: TriggerRule,
    mode: Mode,
    submissions: Mutex<Vec<Submission>>,
    arrived: watch::Sender<usize>,
}

impl TestSink {
    /// Routing with the rule for [`LABEL`].
    pub(crate) fn new(mode: Mode) -> Arc<Self> {
        Self::routing(TriggerRule::default(), mode)
    }

    pub(crate) fn routing(rule: TriggerRule, mode: Mode) -> Arc<Self> {
        Arc::new(Self {
            rule,
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

    /// Waits until `count` triggers have reached the sink.
    pub(crate) async fn wait_for_arrivals(&self, count: usize) {
        let mut arrived = self.arrived.subscribe();
        arrived.wait_for(|arrived| *arrived >= count).await.unwrap();
    }
}

impl TestSink {
    /// The jobs a cancellation stops: the ones submitted for its issue.
    fn cancel(&self, cancel: &booty_event::Cancellation) -> SinkAnswer {
        let job_ids: Vec<String> = self
            .submissions
            .lock()
            .unwrap()
            .iter()
            .filter(|seen| {
                seen.trigger.repository.full_name == cancel.repository.full_name
                    && seen.trigger.issue.number == cancel.issue_number
            })
            .map(|seen| format!("{}-{}", seen.trigger.issue.number, seen.delivery.id()))
            .collect();
        if job_ids.is_empty() {
            SinkAnswer::Ignored("no_job_to_cancel".to_owned())
        } else {
            SinkAnswer::Cancelled { job_ids }
        }
    }
}

impl Sink for TestSink {
    async fn deliver(&self, webhook: Webhook) -> SinkAnswer {
        let trigger = match self.rule.decide(webhook.delivery.event(), &webhook.payload) {
            Ok(Decision::Trigger(trigger)) => *trigger,
            Ok(Decision::Cancel(cancel)) => return self.cancel(&cancel),
            Ok(Decision::Ignored(reason)) => return SinkAnswer::Ignored(reason.to_string()),
            Err(err) => return SinkAnswer::BadRequest(err.to_string()),
        };
        let submission = Submission {
            delivery: webhook.delivery,
            trigger,
            payload: webhook.payload,
            deadline: webhook.deadline,
        };
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
