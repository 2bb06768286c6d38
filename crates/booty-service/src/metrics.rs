//! booty's numbers for Prometheus: what the edge, the sink, the queue and the handler report, counted
//! with the Prometheus project's Rust client (`prometheus-client`), and served as text by `GET /metrics`
//! on the admin listener.
//!
//! The crates below only emit (booty-edge's [`EdgeObserver`], booty-queue's [`Observer`]); [`Metrics`]
//! is what listens, so an embedder gets the same numbers by handing a `Metrics` to those seams.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use booty_edge::{Answered, EdgeObserver, SinkAnswer};
use booty_github::{ApiCall, ApiObserver};
use booty_queue::{
    AttemptFinished, AttemptStarted, JobCounts, JobSnapshot, JobState, Observer, Outcome,
    RetryScheduled, StoreError,
};
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tracing::error;

use crate::process;

/// Bucket bounds of the request latency histogram, in seconds: a webhook is answered in milliseconds,
/// and GitHub gives up after 10 s.
const REQUEST_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Bucket bounds of the job phase histograms, in seconds: from a fast clone to an agent run of two
/// hours (job queues' default buckets stop at seconds, which says nothing about agent runs).
pub const PHASE_BUCKETS: [f64; 16] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 2700.0, 3600.0,
    7200.0,
];

/// Distinct `event` label values kept; events beyond are counted as `other`, so a client sending made-up
/// event names cannot grow the exposition without bound.
const MAX_EVENT_LABELS: usize = 64;

type Labels = Vec<(&'static str, String)>;

/// The labels of `booty_webhook_requests_total`, counted on every request: typed, so counting one
/// allocates nothing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    event: EventLabel,
    code: u16,
}

/// The labels of `booty_triggers_total`, counted on every verified delivery.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TriggerLabels {
    outcome: &'static str,
    reason: &'static str,
}

/// An `X-GitHub-Event` name as a label value, shared with the set of names seen (see
/// [`MAX_EVENT_LABELS`]) rather than copied per request.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct EventLabel(Arc<str>);

impl EncodeLabelValue for EventLabel {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> fmt::Result {
        fmt::Write::write_str(encoder, &self.0)
    }
}
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn phase_histogram() -> Histogram {
    Histogram::new(PHASE_BUCKETS)
}

/// booty's metrics: cheap to clone (every clone counts into the same numbers).
///
/// Hand it to the seams that report ([`EdgeConfig::observer`](booty_edge::EdgeConfig::observer),
/// [`Queue::start_with`](booty_queue::Queue::start_with)); [`Service::start`](crate::Service::start)
/// does, and its admin listener serves [`Metrics::render`] at `GET /metrics`. docs/operations.md lists
/// every metric.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    webhook_requests: Family<WebhookLabels, Counter>,
    webhook_duration: Histogram,
    triggers: Family<TriggerLabels, Counter>,
    jobs_finished: Family<Labels, Counter>,
    job_phase: HistogramFamily,
    job_retries: Counter,
    jobs_requeued: Counter,
    deliveries_recovered: Counter,
    store_errors: Family<Labels, Counter>,
    jobs: Family<Labels, Gauge>,
    github_requests: Family<Labels, Counter>,
    github_rate_limit: Gauge,
    log_lines_dropped: Counter,
    /// The event names with a label of their own, at most [`MAX_EVENT_LABELS`].
    events: Mutex<HashSet<Arc<str>>>,
    /// The label of a request without `X-GitHub-Event`, and of names past the limit.
    no_event: EventLabel,
    other_event: EventLabel,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric, at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let booty = registry.sub_registry_with_prefix("booty");
        let webhook_requests = counters(
            booty,
            "webhook_requests",
            "Webhook requests answered, by X-GitHub-Event (`other` past 64 names, empty without one) and \
             HTTP status code",
        );
        let webhook_duration = Histogram::new(REQUEST_BUCKETS);
        booty.register_with_unit(
            "webhook_request_duration",
            "Time from a webhook request's headers to its answer",
            Unit::Seconds,
            webhook_duration.clone(),
        );
        let triggers = counters(
            booty,
            "triggers",
            "Verified deliveries by what the sink made of them: outcome accepted, duplicate, busy, \
             ignored (with its reason), cancelled, bad_request, unavailable or failed",
        );
        let jobs_finished = counters(
            booty,
            "jobs_finished",
            "Jobs that reached a final state, by outcome (succeeded, failed, cancelled)",
        );
        let job_phase = HistogramFamily::new_with_constructor(phase_histogram as fn() -> Histogram);
        booty.register_with_unit(
            "job_phase_duration",
            "How long each phase of a job attempt took: queue_wait (accepted to started), clone, \
             command, publish, attempt (the whole attempt)",
            Unit::Seconds,
            job_phase.clone(),
        );
        let job_retries = counter(
            booty,
            "job_retries",
            "Attempts that failed with a retryable error and were scheduled to run again",
        );
        let jobs_requeued = counter(
            booty,
            "jobs_requeued",
            "Failed or cancelled jobs an operator ran again (POST /jobs/{id}/retry)",
        );
        let deliveries_recovered = counter(
            booty,
            "deliveries_recovered",
            "Webhook deliveries GitHub could not deliver that recovery read from the hook's log and \
             submitted (each also counted in booty_triggers_total)",
        );
        let store_errors = counters(
            booty,
            "store_errors",
            "Job store operations that failed, by operation",
        );
        let jobs = Family::<Labels, Gauge>::default();
        booty.register(
            "jobs",
            "Jobs the store holds, by state (read from the store at each scrape)",
            jobs.clone(),
        );
        let github_requests = counters(
            booty,
            "github_requests",
            "Answers from GitHub's REST API, by operation (a path template) and HTTP status code",
        );
        let github_rate_limit = Gauge::default();
        booty.register(
            "github_rate_limit_remaining",
            "X-RateLimit-Remaining of GitHub's latest answer that carried it",
            github_rate_limit.clone(),
        );
        let log_lines_dropped = counter(
            booty,
            "log_lines_dropped",
            "Log lines dropped because standard output was blocked and the log writer's queue was full \
             (each drop is also reported on a log_lines_dropped line)",
        );
        process::register(&mut registry);
        Self {
            inner: Arc::new(Inner {
                registry,
                webhook_requests,
                webhook_duration,
                triggers,
                jobs_finished,
                job_phase,
                job_retries,
                jobs_requeued,
                deliveries_recovered,
                store_errors,
                jobs,
                github_requests,
                github_rate_limit,
                log_lines_dropped,
                events: Mutex::new(HashSet::new()),
                no_event: EventLabel(Arc::from("")),
                other_event: EventLabel(Arc::from("other")),
            }),
        }
    }

    /// The exposition in Prometheus' text format (version 0.0.4, which every scraper reads and
    /// `promtool check metrics` checks), with `counts` as the queue depth and the process's own numbers
    /// read now.
    pub fn render(&self, counts: Option<&JobCounts>) -> String {
        let inner = &self.inner;
        if let Some(counts) = counts {
            for state in JobState::ALL {
                let count = i64::try_from(counts.of(state)).unwrap_or(i64::MAX);
                inner
                    .jobs
                    .get_or_create(&vec![("state", state.as_str().to_owned())])
                    .set(count);
            }
        }
        let mut text = String::new();
        if let Err(err) = encode_registry(&mut text, &inner.registry) {
            error!(error = %err, "metrics_unrenderable");
        }
        prometheus_text(&text)
    }

    /// Counts a sink's answer to a verified delivery (`booty_triggers_total`); `reason` is the short
    /// name of why an ignored one was ignored (one of a fixed few, never text from the payload), empty
    /// for the other answers.
    pub fn trigger(&self, answer: &SinkAnswer, reason: &'static str) {
        let outcome = match answer {
            SinkAnswer::Accepted { .. } => "accepted",
            SinkAnswer::Duplicate { .. } => "duplicate",
            SinkAnswer::Busy => "busy",
            SinkAnswer::Ignored(_) => "ignored",
            SinkAnswer::Cancelled { .. } => "cancelled",
            SinkAnswer::BadRequest(_) => "bad_request",
            SinkAnswer::Unavailable(_) => "unavailable",
            _ => "failed",
        };
        self.inner
            .triggers
            .get_or_create(&TriggerLabels { outcome, reason })
            .inc();
    }

    /// Records how long a phase of an attempt (`clone`, `command`, `publish`) took.
    pub fn phase(&self, phase: &'static str, took: Duration) {
        self.inner
            .job_phase
            .get_or_create(&vec![("phase", phase.to_owned())])
            .observe(took.as_secs_f64());
    }

    /// Counts log lines the process's log writer dropped (`booty_log_lines_dropped_total`): the logging
    /// belongs to whoever installs the subscriber (the binary), which reports its drops here.
    pub fn log_lines_dropped(&self, lines: u64) {
        self.inner.log_lines_dropped.inc_by(lines);
    }

    /// Counts a missed delivery recovery submitted (`booty_deliveries_recovered_total`).
    pub(crate) fn delivery_recovered(&self) {
        self.inner.deliveries_recovered.inc();
    }

    /// The `event` label for `event`: itself while fewer than [`MAX_EVENT_LABELS`] are known, else
    /// `other`.
    fn event_label(&self, event: Option<&str>) -> EventLabel {
        let Some(event) = event else {
            return self.inner.no_event.clone();
        };
        let mut known = self
            .inner
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(name) = known.get(event) {
            return EventLabel(Arc::clone(name));
        }
        if known.len() < MAX_EVENT_LABELS {
            let name: Arc<str> = Arc::from(event);
            known.insert(Arc::clone(&name));
            EventLabel(name)
        } else {
            self.inner.other_event.clone()
        }
    }
}

/// A family of labelled counters registered in `registry` as `name` (`_total` is added) with `help`.
fn counters<S>(registry: &mut Registry, name: &str, help: &str) -> Family<S, Counter>
where
    S: EncodeLabelSet + Clone + fmt::Debug + std::hash::Hash + Eq + Send + Sync + 'static,
{
    let family = Family::<S, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

/// A counter registered in `registry` as `name` (`_total` is added) with `help`.
fn counter(registry: &mut Registry, name: &str, help: &str) -> Counter {
    let counter = Counter::default();
    registry.register(name, help, counter.clone());
    counter
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl EdgeObserver for Metrics {
    fn answered(&self, answered: &Answered<'_>) {
        let event = self.event_label(answered.event);
        self.inner
            .webhook_requests
            .get_or_create(&WebhookLabels {
                event,
                code: answered.status.as_u16(),
            })
            .inc();
        self.inner
            .webhook_duration
            .observe(answered.latency.as_secs_f64());
    }
}

impl ApiObserver for Metrics {
    fn answered(&self, call: &ApiCall<'_>) {
        self.inner
            .github_requests
            .get_or_create(&vec![
                ("operation", call.operation.to_owned()),
                ("code", call.status.to_string()),
            ])
            .inc();
        if let Some(remaining) = call.rate_limit_remaining {
            self.inner
                .github_rate_limit
                .set(i64::try_from(remaining).unwrap_or(i64::MAX));
        }
    }
}

impl Observer for Metrics {
    fn started(&self, attempt: &AttemptStarted<'_>) {
        self.phase("queue_wait", attempt.waited);
    }

    fn finished(&self, attempt: &AttemptFinished<'_>) {
        self.phase("attempt", attempt.ran);
        let outcome = match attempt.outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed { .. } => "failed",
            Outcome::Cancelled { .. } => "cancelled",
            // Retried or released: not finished.
            _ => return,
        };
        self.inner
            .jobs_finished
            .get_or_create(&vec![("outcome", outcome.to_owned())])
            .inc();
    }

    fn retry_scheduled(&self, _retry: &RetryScheduled<'_>) {
        self.inner.job_retries.inc();
    }

    fn requeued(&self, _job: &JobSnapshot) {
        self.inner.jobs_requeued.inc();
    }

    fn store_failed(&self, operation: &'static str, _error: &StoreError) {
        self.inner
            .store_errors
            .get_or_create(&vec![("operation", operation.to_owned())])
            .inc();
    }
}

/// `openmetrics` (what prometheus-client writes) as Prometheus' text format: the same samples, but a
/// counter family is named as its samples are (`x_total`, where `OpenMetrics` names it `x`), and the
/// `# UNIT` and `# EOF` lines, which that format does not have, are left out.
fn prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut text = String::with_capacity(openmetrics.len() + 8 * counters.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let described = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|prefix| Some((prefix, line.strip_prefix(prefix)?)));
        match described {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                text.push_str(prefix);
                text.push_str(name);
                if counters.contains(name) {
                    text.push_str("_total");
                }
                text.push(' ');
                text.push_str(tail);
            }
            None => text.push_str(line),
        }
        text.push('\n');
    }
    text
}

/// What `GET /metrics` serves: booty's [`Metrics`] with the queue depth read from `counts` at each scrape.
pub(crate) struct Exporter<F> {
    pub(crate) metrics: Metrics,
    pub(crate) counts: F,
}

impl<F, Fut> crate::admin::MetricsSource for Exporter<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<JobCounts>> + Send + 'static,
{
    fn render(&self) -> Pin<Box<dyn Future<Output = String> + Send + '_>> {
        let counts = (self.counts)();
        Box::pin(async move {
            let counts = counts.await;
            self.metrics.render(counts.as_ref())
        })
    }
}

#[cfg(test)]
mod tests {
    use hyper::StatusCode;

    use super::*;

    #[test]
    fn every_metric_has_help_and_counts_what_it_is_told() {
        let metrics = Metrics::new();
        EdgeObserver::answered(
            &metrics,
            &answered(Some("issues"), StatusCode::ACCEPTED, 0.002),
        );
        EdgeObserver::answered(&metrics, &answered(None, StatusCode::UNAUTHORIZED, 0.0001));
        metrics.trigger(
            &SinkAnswer::Ignored("label `bug` is not the trigger label `agent:builder`".to_owned()),
            "label_not_trigger",
        );
        metrics.phase("clone", Duration::from_secs(3));
        let mut call = ApiCall::new("POST /app/installations/{id}/access_tokens", 201);
        call.rate_limit_remaining = Some(4999);
        ApiObserver::answered(&metrics, &call);
        metrics.phase("command", Duration::from_mins(90));
        metrics.delivery_recovered();
        metrics.log_lines_dropped(3);
        metrics.log_lines_dropped(4);
        let text = metrics.render(Some(&JobCounts::default()));
        for line in [
            "booty_webhook_requests_total{event=\"issues\",code=\"202\"} 1",
            "booty_webhook_requests_total{event=\"\",code=\"401\"} 1",
            "booty_webhook_request_duration_seconds_count 2",
            "booty_triggers_total{outcome=\"ignored\",reason=\"label_not_trigger\"} 1",
            "booty_job_phase_duration_seconds_bucket{le=\"7200.0\",phase=\"command\"} 1",
            "booty_job_phase_duration_seconds_bucket{le=\"3600.0\",phase=\"command\"} 0",
            "booty_jobs{state=\"queued\"} 0",
            "booty_github_requests_total{operation=\"POST /app/installations/{id}/access_tokens\",code=\"201\"} 1",
            "booty_github_rate_limit_remaining 4999",
            "booty_deliveries_recovered_total 1",
            "booty_log_lines_dropped_total 7",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        for family in text
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE "))
            .map(|rest| rest.split(' ').next().unwrap())
        {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "{family} has no HELP"
            );
        }
        assert!(text.contains("# TYPE booty_triggers_total counter\n"));
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    }

    #[test]
    fn made_up_event_names_stop_making_labels() {
        let metrics = Metrics::new();
        for n in 0..100 {
            let event = format!("e{n}");
            EdgeObserver::answered(
                &metrics,
                &answered(Some(&event), StatusCode::FORBIDDEN, 0.0),
            );
        }
        let text = metrics.render(None);
        assert!(text.contains("booty_webhook_requests_total{event=\"other\",code=\"403\"} 36"));
        assert_eq!(text.matches("booty_webhook_requests_total{").count(), 65);
    }

    fn answered(event: Option<&str>, status: StatusCode, seconds: f64) -> Answered<'_> {
        let mut answered = Answered::new(status, Duration::from_secs_f64(seconds));
        answered.event = event;
        answered
    }
}
