//! A process that dies loses its jobs to the others once their leases expire, and a process learns about
//! work another one made runnable through `LISTEN/NOTIFY`, even after its listening connection was cut.

use std::sync::Arc;
use std::time::Duration;

use booty_queue::{
    CancellationToken, Claim, HandlerError, Job, JobState, Lease, NewJob, Outcome, Queue,
    QueueConfig, Store, StoreError, Submitted, Timestamp,
};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};

use crate::contract::Payload;
use crate::postgres::{TestSchema, job};
use crate::support::{ForIssue, within};

const T0: u64 = 1_700_000_000_000;

fn at(seconds: u64) -> Timestamp {
    Timestamp::from_unix_millis(T0 + seconds * 1_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn an_expired_lease_is_taken_over_by_another_process_exactly_once() {
    let schema = TestSchema::new();
    let dead = schema.connect(schema.options()).await;
    let (first, second) = (
        Arc::new(schema.connect(schema.options()).await),
        Arc::new(schema.connect(schema.options()).await),
    );
    let mut sent = job("a", Some(1), 1);
    sent.created_at = at(0);
    let id = sent.id.clone();
    assert_eq!(
        dead.insert(sent, 10).await.unwrap(),
        Submitted::Accepted(id.clone())
    );
    let Claim::Job(claimed) = Store::<Payload>::claim(&dead, "dead-0", at(0), at(30))
        .await
        .unwrap()
    else {
        panic!("the job is runnable");
    };
    let stale = Lease {
        job_id: id.clone(),
        owner: "dead-0".to_owned(),
        attempt: claimed.attempt,
    };

    // Two live processes reap at once: one of them takes the job back, once.
    let (a, b) = tokio::join!(
        Store::<Payload>::reclaim_expired(&*first, at(31), 3),
        Store::<Payload>::reclaim_expired(&*second, at(31), 3),
    );
    let mut taken = a.unwrap();
    taken.extend(b.unwrap());
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(
        (&taken[0].job_id, taken[0].state, taken[0].attempts),
        (&id, JobState::Queued, 1)
    );

    let Claim::Job(again) = Store::<Payload>::claim(&*second, "live-0", at(32), at(62))
        .await
        .unwrap()
    else {
        panic!("the reclaimed job is runnable");
    };
    assert_eq!((&again.id, again.attempt), (&id, 2));
    assert_eq!(*again.payload, *claimed.payload);
    // The dead process's lease fences it off, in every process.
    for result in [
        Store::<Payload>::renew(&dead, &stale, at(90))
            .await
            .map(drop),
        Store::<Payload>::finish(&dead, &stale, Outcome::Succeeded, None, at(33)).await,
    ] {
        assert!(
            matches!(result, Err(StoreError::LeaseLost { attempt: 1, .. })),
            "{result:?}"
        );
    }
    let live = Lease {
        job_id: id.clone(),
        owner: "live-0".to_owned(),
        attempt: 2,
    };
    Store::<Payload>::finish(&*first, &live, Outcome::Succeeded, None, at(34))
        .await
        .unwrap();
    let done = Store::<Payload>::get(&*first, id.as_str())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 2));
}

/// A handler that reports each attempt it runs and succeeds.
fn reporting(
    started: mpsc::UnboundedSender<(String, u32)>,
) -> impl Fn(Job<Payload>, CancellationToken) -> std::future::Ready<Result<(), HandlerError>>
+ Send
+ Sync
+ 'static {
    move |job: Job<Payload>, _cancel| {
        started.send((job.id.to_string(), job.attempt)).unwrap();
        std::future::ready(Ok(()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn the_engine_of_a_live_process_finishes_a_job_whose_process_died() {
    let schema = TestSchema::new();
    let mut config = QueueConfig::default();
    config.workers = 1;
    config.lease = Duration::from_millis(600);

    // The first process claims the job and hangs in its handler; then it is killed (its queue dropped
    // without shutdown: workers, lease renewals and reaper stop at once).
    let (started, mut dying) = mpsc::unbounded_channel();
    let hang = move |job: Job<Payload>, _cancel: CancellationToken| {
        started.send((job.id.to_string(), job.attempt)).unwrap();
        std::future::pending::<Result<(), HandlerError>>()
    };
    let doomed = Queue::start(schema.connect(schema.options()).await, hang, config.clone())
        .await
        .unwrap();
    let answer = doomed
        .submit(NewJob::new("d-1", payload(1)).for_issue("octo/repo", 7))
        .await
        .unwrap();
    assert!(matches!(answer, Submitted::Accepted(_)));
    assert_eq!(
        within("the first attempt", dying.recv()).await,
        Some(("7-d-1".to_owned(), 1))
    );
    drop(doomed);

    // The second process was idle all along; the job comes to it through its reaper, as attempt 2.
    let (started, mut survivor) = mpsc::unbounded_channel();
    let live = Queue::start(
        schema.connect(schema.options()).await,
        reporting(started),
        config,
    )
    .await
    .unwrap();
    assert_eq!(
        within("the taken-over attempt", survivor.recv()).await,
        Some(("7-d-1".to_owned(), 2))
    );
    let report = live.shutdown(Duration::from_secs(5)).await;
    assert!(report.abandoned.is_empty());
    let checker = schema.connect(schema.options()).await;
    let done = Store::<Payload>::get(&checker, "7-d-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((done.state, done.attempts), (JobState::Succeeded, 2));
}

fn payload(n: u64) -> Payload {
    Payload {
        n,
        text: format!("payload {n}"),
    }
}

/// Sends the message of every event to a channel.
struct Messages(mpsc::UnboundedSender<String>);

impl<S: Subscriber> Layer<S> for Messages {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        struct Message(Option<String>);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = Some(format!("{value:?}"));
                }
            }
        }
        let mut message = Message(None);
        event.record(&mut message);
        if let Some(message) = message.0 {
            let _ = self.0.send(message);
        }
    }
}

async fn wait_for(messages: &mut mpsc::UnboundedReceiver<String>, wanted: &str) {
    within(wanted, async {
        while let Some(message) = messages.recv().await {
            if message == wanted {
                return;
            }
        }
        panic!("the log ended before {wanted}");
    })
    .await;
}

/// Current-thread runtime: the log subscriber below is the thread's default, and every task of the
/// test (the store's listener included) runs on this thread.
#[tokio::test(flavor = "current_thread")]
#[cfg_attr(
    not(booty_postgres_tests),
    ignore = "BOOTY_TEST_POSTGRES_URL is not set"
)]
async fn another_process_wakes_idle_workers_through_notify_even_after_the_listener_was_cut() {
    let (sender, mut messages) = mpsc::unbounded_channel();
    let _log =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(Messages(sender)));
    let schema = TestSchema::new();
    // An hour between polls: only a notification can wake this process's workers in time.
    let mut options = schema.options();
    options.poll_interval = Duration::from_hours(1);
    let waiting = schema.connect(options).await;
    let other = schema.connect(schema.options()).await;
    let (started, mut ran) = mpsc::unbounded_channel();
    let mut config = QueueConfig::default();
    config.workers = 2;
    let queue = Queue::start(waiting, reporting(started), config)
        .await
        .unwrap();

    let first = job("from-elsewhere-1", Some(1), 1);
    assert!(matches!(
        other.insert(first, 10).await.unwrap(),
        Submitted::Accepted(_)
    ));
    assert_eq!(
        within("the notified job", ran.recv()).await,
        Some(("1-from-elsewhere-1".to_owned(), 1))
    );

    // Cut every connection of this schema (the listener's among them) and wait until it listens again.
    assert!(schema.terminate_connections().await > 0);
    wait_for(&mut messages, "store_listener_reconnected").await;
    let second = job("from-elsewhere-2", Some(2), 2);
    assert!(matches!(
        other.insert(second, 10).await.unwrap(),
        Submitted::Accepted(_)
    ));
    assert_eq!(
        within("the job notified after reconnecting", ran.recv()).await,
        Some(("2-from-elsewhere-2".to_owned(), 1))
    );
    queue.shutdown(Duration::from_secs(5)).await;
}
