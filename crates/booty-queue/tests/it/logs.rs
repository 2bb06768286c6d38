//! The tracing events people grep for: their messages and the fields every line about a job carries.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use booty_queue::{
    Backoff, CancelTarget, CancellationToken, HandlerError, Job, MemoryStore, NewJob, Queue,
    Submitted,
};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

use crate::support::{ForIssue, Observed, config, id, next_recorded, within};

/// One captured event: its message, its own fields, and the fields of the spans it happened in.
#[derive(Debug, Clone)]
struct Line {
    message: String,
    fields: BTreeMap<String, String>,
    spans: Vec<(String, BTreeMap<String, String>)>,
}

impl Line {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Keeps every event, as a JSON subscriber would see it.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Line>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        ctx.span(id).unwrap().extensions_mut().insert(fields);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let message = fields.0.remove("message").unwrap_or_default();
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| {
                        let fields = span.extensions().get::<Fields>().map(|f| f.0.clone());
                        (span.name().to_owned(), fields.unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.0.lock().unwrap().push(Line {
            message,
            fields: fields.0,
            spans,
        });
    }
}

impl Capture {
    fn lines(&self, message: &str) -> Vec<Line> {
        let lines = self.0.lock().unwrap();
        lines
            .iter()
            .filter(|line| line.message == message)
            .cloned()
            .collect()
    }

    fn one(&self, message: &str) -> Line {
        let lines = self.lines(message);
        assert_eq!(lines.len(), 1, "{message}: {lines:?}");
        lines.into_iter().next().unwrap()
    }
}

/// Captures this thread's events until the guards are dropped.
fn capture() -> (
    Capture,
    (tracing::Dispatch, tracing::subscriber::DefaultGuard),
) {
    let capture = Capture::default();
    // With exactly one scoped dispatcher, tracing-core computes a callsite's interest from the default
    // dispatcher of whichever thread hits it first; another test's thread (no subscriber) would cache
    // "never" for our callsites. A second registered dispatcher makes it ask every registered one.
    let second = tracing::Dispatch::new(tracing_subscriber::registry());
    let subscriber =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(capture.clone()));
    tracing::callsite::rebuild_interest_cache();
    (capture, (second, subscriber))
}

/// `job_id`, `issue_number` and `delivery_id` are on every line about a job.
fn assert_job_fields(line: &Line, job_id: &str, issue: &str, delivery: &str) {
    assert_eq!(line.field("job_id"), Some(job_id), "{line:?}");
    assert_eq!(line.field("issue_number"), Some(issue), "{line:?}");
    assert_eq!(line.field("delivery_id"), Some(delivery), "{line:?}");
}

/// Issue 12 of one repository, one worker: `flaky` fails once then succeeds, a duplicate of it is refused,
/// `broken` fails for good, `slow` runs into shutdown and `never` waits behind it and is lost.
async fn run_a_flaky_a_broken_a_slow_and_a_lost_job() {
    let (store, mut recorded) = Observed::new(Arc::new(MemoryStore::default()));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let handler = move |job: Job<&'static str>, cancel: CancellationToken| {
        started_tx.send(job.id.clone()).unwrap();
        async move {
            tracing::info!("handler_says_hello");
            match (*job.payload, job.attempt) {
                ("flaky", 1) => Err(HandlerError::retryable("timeout")),
                ("broken", _) => Err(HandlerError::permanent("bad token")),
                ("slow", _) => {
                    cancel.cancelled().await;
                    Ok(())
                }
                _ => Ok(()),
            }
        }
    };
    let mut config = config(1);
    config.backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(1),
    };
    let queue = Queue::start(store, handler, config).await.unwrap();
    let job = |delivery: &'static str, payload: &'static str| {
        NewJob::new(delivery, payload).for_issue("octo/repo", 12)
    };

    assert!(matches!(
        queue.submit(job("d-flaky", "flaky")).await.unwrap(),
        Submitted::Accepted(_)
    ));
    assert!(matches!(
        queue.submit(job("d-flaky", "flaky")).await.unwrap(),
        Submitted::Duplicate(_)
    ));
    let _ = queue.submit(job("d-broken", "broken")).await.unwrap();
    for _ in 0..3 {
        next_recorded(&mut recorded).await;
    }
    let _ = queue.submit(job("d-slow", "slow")).await.unwrap();
    let _ = queue.submit(job("d-never", "never")).await.unwrap();
    // Earlier starts are still in the channel: skip to `slow`'s.
    let slow = Some(id(12, "d-slow"));
    while within("the slow job's start", started.recv()).await != slow {}
    let _ = queue.shutdown(Duration::from_secs(1)).await;
}

// One thread, so the thread-local subscriber sees the workers' events too.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn every_state_change_is_an_event_with_the_job_fields() {
    let (capture, _guards) = capture();
    run_a_flaky_a_broken_a_slow_and_a_lost_job().await;

    let accepted = capture.lines("job_accepted");
    assert_eq!(accepted.len(), 4);
    assert_job_fields(&accepted[0], "12-d-flaky", "12", "d-flaky");
    assert_job_fields(
        &capture.one("duplicate_delivery"),
        "12-d-flaky",
        "12",
        "d-flaky",
    );

    let started_lines = capture.lines("job_started");
    let flaky_starts: Vec<_> = started_lines
        .iter()
        .filter(|line| line.field("job_id") == Some("12-d-flaky"))
        .collect();
    assert_eq!(flaky_starts.len(), 2);
    for (attempt, line) in ["1", "2"].into_iter().zip(&flaky_starts) {
        assert_job_fields(line, "12-d-flaky", "12", "d-flaky");
        assert_eq!(line.field("attempt"), Some(attempt));
        assert_eq!(line.field("worker_id"), Some("0"));
    }

    let retrying = capture.one("job_retrying");
    assert_job_fields(&retrying, "12-d-flaky", "12", "d-flaky");
    assert_eq!(retrying.field("attempt"), Some("1"));
    assert_eq!(retrying.field("error"), Some("timeout"));
    assert!(
        retrying
            .field("retry_at")
            .is_some_and(|at| at.ends_with('Z')),
        "{retrying:?}"
    );

    let succeeded = capture.lines("job_succeeded");
    assert_job_fields(&succeeded[0], "12-d-flaky", "12", "d-flaky");
    assert_eq!(succeeded[0].field("attempt"), Some("2"));

    let failed = capture.one("job_failed");
    assert_job_fields(&failed, "12-d-broken", "12", "d-broken");
    assert_eq!(failed.field("error"), Some("bad token"));

    // `slow` succeeded after its token fired; `never` waited behind it and was lost.
    let abandoned = capture.one("job_abandoned");
    assert_job_fields(&abandoned, "12-d-never", "12", "d-never");

    // The handler's own events carry the job span and its fields.
    let hello = capture.lines("handler_says_hello");
    assert_eq!(hello.len(), 4);
    let (name, fields) = hello[0].spans.last().unwrap();
    assert_eq!(name, "job");
    assert_eq!(fields.get("job_id").map(String::as_str), Some("12-d-flaky"));
    assert_eq!(fields.get("issue_number").map(String::as_str), Some("12"));
    assert_eq!(
        fields.get("delivery_id").map(String::as_str),
        Some("d-flaky")
    );
    assert_eq!(fields.get("worker_id").map(String::as_str), Some("0"));
    assert_eq!(fields.get("attempt").map(String::as_str), Some("1"));
}

// One thread, so the thread-local subscriber sees the workers' events too.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn cancellations_are_logged_with_their_reason_and_the_job_fields() {
    let (capture, _guards) = capture();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let handler = move |job: Job<()>, cancel: CancellationToken| {
        started_tx.send(job.id.clone()).unwrap();
        async move {
            cancel.cancelled().await;
            Ok(())
        }
    };
    let mut config = config(1);
    config.lease = Duration::from_secs(3);
    let queue = Queue::start(MemoryStore::default(), handler, config)
        .await
        .unwrap();
    for delivery in ["d-run", "d-wait"] {
        let job = NewJob::new(delivery, ()).for_issue("octo/repo", 12);
        let _ = queue.submit(job).await.unwrap();
    }
    assert_eq!(
        within("the first job", started.recv()).await,
        Some(id(12, "d-run"))
    );
    let lane = CancelTarget::Lane("octo/repo#12".to_owned());
    let changed = queue.cancel(&lane, "issue closed").await.unwrap();
    assert_eq!(changed.len(), 2);

    let requested = capture.one("job_cancel_requested");
    assert_job_fields(&requested, "12-d-run", "12", "d-run");
    assert_eq!(requested.field("reason"), Some("issue closed"));
    // The waiting job is cancelled at once, the running one once its worker hears of it.
    let mut cancelled = capture.lines("job_cancelled");
    while cancelled.len() < 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        cancelled = capture.lines("job_cancelled");
    }
    assert_job_fields(&cancelled[0], "12-d-wait", "12", "d-wait");
    assert_job_fields(&cancelled[1], "12-d-run", "12", "d-run");
    for line in &cancelled {
        assert_eq!(line.field("reason"), Some("issue closed"), "{line:?}");
    }
    assert_eq!(cancelled[1].field("attempt"), Some("1"));
    assert_eq!(cancelled[1].field("worker_id"), Some("0"));
    let cancelling = capture.one("job_cancelling");
    assert_job_fields(&cancelling, "12-d-run", "12", "d-run");
    queue.shutdown(Duration::from_secs(1)).await;
}
