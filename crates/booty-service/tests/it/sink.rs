//! `QueueSink` on a real queue: it routes each verified delivery with its trigger rule, answers what is
//! not a trigger itself, and stores one job per trigger.

use std::time::Duration;

use booty_edge::{Sink, SinkAnswer, Webhook};
use booty_event::{Delivery, TriggerRule};
use booty_queue::{CancellationToken, HandlerError, Job, MemoryStore, Queue, QueueConfig};
use booty_service::{QueueSink, Submission};
use hyper::body::Bytes;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// GitHub's `issues`/`labeled` example (label `bug`, issue 1, `Codertocat/Hello-World`).
const FIXTURE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../booty-event/tests/fixtures/issues.labeled.json"
));

/// What the test's jobs carry: the parts of the submission the payload is made from.
#[derive(Debug, Clone, PartialEq)]
struct Made {
    event: String,
    issue: u64,
    repository: String,
    payload: Bytes,
}

fn webhook(event: &str, delivery: &str, payload: &'static [u8]) -> Webhook {
    let headers = [("x-github-event", event), ("x-github-delivery", delivery)];
    let delivery = Delivery::from_headers(|name| {
        headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_bytes())
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(8);
    Webhook::new(delivery, Bytes::from_static(payload), deadline)
}

/// A sink over a memory queue whose handler reports each job's payload.
async fn sink() -> (QueueSink<Made>, Queue<Made>, mpsc::UnboundedReceiver<Made>) {
    let (ran, runs) = mpsc::unbounded_channel();
    let handler = move |job: Job<Made>, _cancel: CancellationToken| {
        let ran = ran.clone();
        async move {
            ran.send(job.payload.as_ref().clone()).unwrap();
            Ok::<(), HandlerError>(())
        }
    };
    let queue = Queue::start(MemoryStore::default(), handler, QueueConfig::default())
        .await
        .unwrap();
    let rule = TriggerRule::new("bug").unwrap();
    let sink = QueueSink::new(queue.clone(), rule, |submission: &Submission| {
        Ok::<_, std::convert::Infallible>(Made {
            event: submission.delivery.event().to_owned(),
            issue: submission.trigger.issue.number,
            repository: submission.trigger.repository.full_name.clone(),
            payload: submission.payload.clone(),
        })
    });
    (sink, queue, runs)
}

#[tokio::test]
async fn a_trigger_is_stored_once_with_the_payload_made_from_it() {
    let (sink, queue, mut runs) = sink().await;
    let answer = sink.deliver(webhook("issues", "d-1", FIXTURE)).await;
    assert!(
        matches!(&answer, SinkAnswer::Accepted { job_id } if job_id == "1-d-1"),
        "{answer:?}"
    );
    let again = sink.deliver(webhook("issues", "d-1", FIXTURE)).await;
    assert!(
        matches!(&again, SinkAnswer::Duplicate { job_id } if job_id == "1-d-1"),
        "{again:?}"
    );
    let made = tokio::time::timeout(Duration::from_secs(10), runs.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        made,
        Made {
            event: "issues".to_owned(),
            issue: 1,
            repository: "Codertocat/Hello-World".to_owned(),
            payload: Bytes::from_static(FIXTURE),
        }
    );
    assert_eq!(queue.list(10).await.unwrap().len(), 1);
    queue.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn what_is_not_a_trigger_is_answered_by_the_sink_and_stores_nothing() {
    let (sink, queue, _runs) = sink().await;
    let ignored = sink
        .deliver(webhook("push", "d-2", b"{\"ref\":\"main\"}"))
        .await;
    assert!(
        matches!(&ignored, SinkAnswer::Ignored(reason) if reason == "event `push` is not a trigger"),
        "{ignored:?}"
    );
    // The real trigger payload, under a rule for another label; `make` must not even be asked.
    let strict = QueueSink::new(queue.clone(), TriggerRule::default(), |_: &Submission| {
        Err::<Made, _>("not called for a non-trigger")
    });
    let label = strict.deliver(webhook("issues", "d-4", FIXTURE)).await;
    assert!(
        matches!(&label, SinkAnswer::Ignored(reason)
            if reason == "label `bug` is not the trigger label `agent:builder`"),
        "{label:?}"
    );
    for (event, body, message) in [
        (
            "issues",
            &b"Hello, World!"[..],
            "malformed `issues` payload: expected value at line 1 column 1",
        ),
        ("push", b"{\"ref\":", "malformed `push` payload"),
    ] {
        let answer = sink.deliver(webhook(event, "d-5", body)).await;
        assert!(
            matches!(&answer, SinkAnswer::BadRequest(error) if error.starts_with(message)),
            "{event}: {answer:?}"
        );
    }
    assert!(queue.list(10).await.unwrap().is_empty());
    queue.shutdown(Duration::from_secs(5)).await;
}
