//! Recovering the deliveries GitHub could not deliver: GitHub does not retry a webhook that failed (booty
//! was down, restarting, unreachable or slower than GitHub's 10 seconds), so booty reads the hook's
//! delivery log and submits what it missed through the same sink as a webhook.
//!
//! A pass pages back through the hook's deliveries (newest first, 100 a page, GitHub's cursor) to the
//! point the last pass reached (the store's bookmark for the hook) and never further than `max_age`
//! (GitHub keeps 3 days, 7 on Enterprise Server). From the list alone it keeps what can start a job
//! (`issues`/`labeled`) and groups the attempts by `guid` (the `X-GitHub-Delivery` booty dedupes on). A
//! guid is left alone when one of its attempts was answered `OK` (booty answered it, whatever it answered)
//! or the store knows it (booty accepted it, even if GitHub counted the answer late); each other guid is
//! fetched and handed to the [`QueueSink`] as the webhook it was, oldest first, so its dedupe key,
//! trigger, repository and bot rules and job are a webhook's. A full or stopping queue, or a store or
//! GitHub failure, ends the pass; the bookmark only moves past what was stored or judged.
//!
//! Cancellations (`unlabeled`, `closed`) are not replayed: nothing records that one was handled, so a late
//! replay could cancel a job started after it.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use booty_edge::{Sink, SinkAnswer, Webhook};
use booty_event::{Decision, Delivery, TriggerRule};
use booty_github::{
    Cursor, GitHub, HookDelivery, HookDeliveryDetail, HookId, Page, Permissions, Repository,
};
use booty_queue::{Queue, Timestamp};
use hyper::body::Bytes;
use tokio::time::Instant;
use tracing::{info, warn};

use crate::chain::error_chain;
use crate::metrics::Metrics;
use crate::payload::JobPayload;
use crate::sink::QueueSink;

/// How often the service recovers unless configured otherwise.
pub const DEFAULT_RECOVERY_INTERVAL: Duration = Duration::from_mins(5);
/// How far back a pass looks at most unless configured otherwise: what github.com keeps (Enterprise
/// Server 3.16+ keeps 7 days).
pub const DEFAULT_RECOVERY_MAX_AGE: Duration = Duration::from_hours(72);
/// A delivery shows in the list only once it is over (GitHub waits up to 10 s, 30 s on Enterprise
/// Server), dated when it was sent: the bookmark stays this far behind the pass, so one sent just before
/// a pass and listed just after is seen by the next.
const SETTLE: Duration = Duration::from_mins(1);
/// How long the sink may take over one recovered delivery (a webhook gets GitHub's 10 s).
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The only deliveries a pass fetches: what can start a job.
const EVENT: &str = "issues";
const ACTION: &str = "labeled";

/// Whose deliveries are recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecoveryHook {
    /// The GitHub App's webhook (`GET /app/hook/deliveries`, with the App's JWT).
    App,
    /// A repository's webhook (`GET /repos/{owner}/{repo}/hooks/{hook}/deliveries`): with App
    /// credentials, a token with `repository_hooks: read`.
    Repository {
        /// The repository.
        repository: Repository,
        /// Its webhook's id.
        hook: HookId,
    },
    /// An organization's webhook (`GET /orgs/{org}/hooks/{hook}/deliveries`).
    Organization {
        /// The organization's login.
        organization: String,
        /// Its webhook's id.
        hook: HookId,
    },
}

impl RecoveryHook {
    /// The bookmark the store keeps this hook's point under: `recovery:app`,
    /// `recovery:repos/{owner}/{name}/hooks/{id}` or `recovery:orgs/{org}/hooks/{id}`.
    pub fn bookmark(&self) -> String {
        format!("recovery:{self}")
    }
}

impl fmt::Display for RecoveryHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::App => f.write_str("app"),
            Self::Repository { repository, hook } => write!(f, "repos/{repository}/hooks/{hook}"),
            Self::Organization { organization, hook } => {
                write!(f, "orgs/{organization}/hooks/{hook}")
            }
        }
    }
}

/// How the service recovers missed deliveries ([`ServiceConfig::recovery`](crate::ServiceConfig)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RecoveryConfig {
    /// Whose deliveries.
    pub hook: RecoveryHook,
    /// Time between passes (default [`DEFAULT_RECOVERY_INTERVAL`]); the first runs at start-up.
    pub interval: Duration,
    /// How far back a pass looks at most (default [`DEFAULT_RECOVERY_MAX_AGE`]).
    pub max_age: Duration,
}

impl RecoveryConfig {
    /// Recovering `hook`'s deliveries with the defaults.
    pub fn new(hook: RecoveryHook) -> Self {
        Self {
            hook,
            interval: DEFAULT_RECOVERY_INTERVAL,
            max_age: DEFAULT_RECOVERY_MAX_AGE,
        }
    }
}

/// How far back one pass looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Since {
    /// From the hook's bookmark (or `max_age` ago, whichever is later); the pass moves the bookmark.
    Bookmark,
    /// From this long ago (at most `max_age`), whatever the bookmark says; the bookmark is left alone.
    Ago(Duration),
}

/// A delivery a pass found missed: no attempt of it was answered `OK`, the store does not know it, and
/// its event and action can start a job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Missed {
    /// The event's `X-GitHub-Delivery` (GitHub's `guid`).
    pub delivery_id: String,
    /// The attempt fetched (GitHub's delivery id).
    pub attempt: u64,
    /// The event.
    pub event: String,
    /// Its action.
    pub action: Option<String>,
    /// When GitHub first sent it.
    pub delivered_at: SystemTime,
    /// What became of it.
    pub outcome: MissedOutcome,
}

/// What became of a missed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissedOutcome {
    /// Its job is stored.
    Submitted {
        /// The job.
        job_id: String,
    },
    /// A dry run: the sink would submit it.
    WouldSubmit,
    /// The sink's rule ignores it (another label, a repository or sender it does not serve), with why.
    Ignored(String),
    /// Accepted meanwhile (a redelivery, another process).
    Duplicate {
        /// The job.
        job_id: String,
    },
    /// Its payload cannot start a job, with why: nothing later will change that.
    Refused(String),
    /// The pass stopped here (full queue, shutdown, a failure); the next pass tries it again.
    NotSubmitted(String),
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PassReport {
    /// Whether the pass ran: `false` when another process held the hook's recovery (PostgreSQL).
    pub ran: bool,
    /// Pages of the delivery list read.
    pub pages: usize,
    /// Deliveries (attempts) listed within the window.
    pub seen: usize,
    /// Guids left alone: irrelevant events, answered `OK`, or known to the store.
    pub skipped: usize,
    /// The missed deliveries, oldest first, and what became of each.
    pub missed: Vec<Missed>,
    /// Why the pass ended early, if it did.
    pub stopped: Option<String>,
}

impl PassReport {
    /// How many jobs the pass stored.
    pub fn submitted(&self) -> usize {
        self.missed
            .iter()
            .filter(|missed| matches!(missed.outcome, MissedOutcome::Submitted { .. }))
            .count()
    }
}

/// What a pass does with a missed delivery.
#[derive(Clone, Copy)]
pub(crate) enum Target<'a> {
    /// Submits it through the sink.
    Submit(&'a QueueSink<JobPayload>),
    /// Asks the rule what the sink would do, and submits nothing.
    DryRun(&'a TriggerRule),
}

/// Recovers one hook's missed deliveries into one queue.
pub(crate) struct Recovery {
    pub(crate) github: GitHub,
    pub(crate) hook: RecoveryHook,
    pub(crate) max_age: Duration,
    /// Where the deliveries it submits are counted, if anywhere.
    pub(crate) metrics: Option<Metrics>,
}

/// One guid's attempts, as the list shows them.
struct Attempts {
    first_sent: SystemTime,
    /// The newest attempt (the list is newest first).
    newest: HookDelivery,
    answered: bool,
}

impl Recovery {
    /// One pass; never fails: what went wrong is in the report's `stopped`, and logged.
    pub(crate) async fn pass(
        &self,
        queue: &Queue<JobPayload>,
        target: Target<'_>,
        since: Since,
    ) -> PassReport {
        let name = self.hook.bookmark();
        let exclusive = match queue.try_exclusive(&name).await {
            Ok(Some(exclusive)) => exclusive,
            Ok(None) => {
                info!(hook = %self.hook, "recovery_skipped");
                return PassReport::default();
            }
            Err(err) => {
                let report = PassReport {
                    ran: true,
                    stopped: Some(error_chain(&err)),
                    ..PassReport::default()
                };
                self.completed(&report);
                return report;
            }
        };
        let mut report = PassReport {
            ran: true,
            ..PassReport::default()
        };
        if let Err(stop) = self.run(queue, target, since, &name, &mut report).await {
            report.stopped = Some(stop);
        }
        exclusive.release().await;
        self.completed(&report);
        report
    }

    fn completed(&self, report: &PassReport) {
        let submitted = report.submitted();
        if let Some(stopped) = &report.stopped {
            warn!(
                hook = %self.hook,
                pages = report.pages,
                seen = report.seen,
                submitted,
                skipped = report.skipped,
                error = %stopped,
                "recovery_stopped"
            );
        } else {
            info!(
                hook = %self.hook,
                pages = report.pages,
                seen = report.seen,
                submitted,
                skipped = report.skipped,
                "recovery_completed"
            );
        }
    }

    async fn run(
        &self,
        queue: &Queue<JobPayload>,
        target: Target<'_>,
        since: Since,
        name: &str,
        report: &mut PassReport,
    ) -> Result<(), String> {
        let started = SystemTime::now();
        let oldest = started
            .checked_sub(self.max_age)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let floor = match since {
            Since::Bookmark => queue
                .bookmark(name)
                .await
                .map_err(|err| error_chain(&err))?
                .map_or(oldest, |at| at.to_system_time().max(oldest)),
            Since::Ago(ago) => started
                .checked_sub(ago)
                .unwrap_or(SystemTime::UNIX_EPOCH)
                .max(oldest),
        };
        let moves_bookmark = since == Since::Bookmark && matches!(target, Target::Submit(_));

        let listed = self.list_back_to(floor, report).await;
        let (guids, newest_seen) = group(listed.deliveries);
        // Where the bookmark may go: past everything handled, never past a delivery still unlisted.
        let settled = started.checked_sub(SETTLE).unwrap_or(floor);
        let mut reached = match (&listed.failed, newest_seen) {
            (None, Some(newest)) => newest.min(settled).max(floor),
            _ => floor,
        };
        let mut candidates = Vec::new();
        for attempts in guids {
            let relevant =
                attempts.newest.event == EVENT && attempts.newest.action.as_deref() == Some(ACTION);
            if !relevant || attempts.answered {
                report.skipped += 1;
                continue;
            }
            match queue.dedupe_key_job(&attempts.newest.guid).await {
                Ok(Some(_)) => report.skipped += 1,
                Ok(None) => candidates.push(attempts),
                Err(err) => {
                    // Nothing is decided after this delivery: the bookmark stays before it.
                    reached = reached.min(attempts.first_sent);
                    self.save(queue, name, reached, moves_bookmark).await;
                    return Err(error_chain(&err));
                }
            }
        }
        candidates.sort_by_key(|attempts| attempts.first_sent);

        for attempts in candidates {
            let detail = match self.fetch(&attempts.newest).await {
                Ok(detail) => detail,
                Err(err) => {
                    reached = reached.min(attempts.first_sent);
                    self.save(queue, name, reached, moves_bookmark).await;
                    return Err(err);
                }
            };
            let outcome = handle(target, &attempts.newest, detail).await;
            let stop = match &outcome {
                MissedOutcome::NotSubmitted(why) => Some(why.clone()),
                _ => None,
            };
            self.log(&attempts, &outcome);
            if let (MissedOutcome::Submitted { .. }, Some(metrics)) = (&outcome, &self.metrics) {
                metrics.delivery_recovered();
            }
            report.missed.push(Missed {
                delivery_id: attempts.newest.guid.clone(),
                attempt: attempts.newest.id.0,
                event: attempts.newest.event.clone(),
                action: attempts.newest.action.clone(),
                delivered_at: attempts.first_sent,
                outcome,
            });
            if let Some(why) = stop {
                reached = reached.min(attempts.first_sent);
                self.save(queue, name, reached, moves_bookmark).await;
                return Err(why);
            }
        }
        self.save(queue, name, reached, moves_bookmark).await;
        match listed.failed {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// Moves the bookmark to `reached` (a failure to is logged: the next pass looks again from the old one).
    async fn save(&self, queue: &Queue<JobPayload>, name: &str, reached: SystemTime, moves: bool) {
        if !moves {
            return;
        }
        if let Err(err) = queue
            .set_bookmark(name, Timestamp::from_system_time(reached))
            .await
        {
            warn!(hook = %self.hook, error = %error_chain(&err), "recovery_bookmark_failed");
        }
    }

    fn log(&self, attempts: &Attempts, outcome: &MissedOutcome) {
        let delivery = &attempts.newest;
        let action = delivery.action.as_deref().unwrap_or_default();
        match outcome {
            MissedOutcome::Submitted { job_id } => info!(
                hook = %self.hook,
                delivery_id = %delivery.guid,
                attempt = delivery.id.0,
                job_id = %job_id,
                event = %delivery.event,
                action,
                "delivery_recovered"
            ),
            MissedOutcome::WouldSubmit => info!(
                hook = %self.hook,
                delivery_id = %delivery.guid,
                attempt = delivery.id.0,
                event = %delivery.event,
                action,
                "delivery_missed"
            ),
            MissedOutcome::Ignored(reason) | MissedOutcome::Refused(reason) => info!(
                hook = %self.hook,
                delivery_id = %delivery.guid,
                attempt = delivery.id.0,
                event = %delivery.event,
                action,
                reason = %reason,
                "delivery_not_recovered"
            ),
            MissedOutcome::Duplicate { .. } | MissedOutcome::NotSubmitted(_) => {}
        }
    }

    /// The hook's deliveries sent at or after `floor`, newest first, page by page until one reaches past
    /// it. A failure ends the listing; what was listed before it stands.
    async fn list_back_to(&self, floor: SystemTime, report: &mut PassReport) -> Listed {
        let mut listed = Listed::default();
        let mut cursor: Option<Cursor> = None;
        loop {
            let page = match self.page(cursor.as_ref()).await {
                Ok(page) => page,
                Err(err) => {
                    listed.failed = Some(err);
                    return listed;
                }
            };
            report.pages += 1;
            let before = listed.deliveries.len();
            let mut past_floor = false;
            for delivery in page.items {
                if delivery.delivered_at < floor {
                    past_floor = true;
                } else {
                    listed.deliveries.push(delivery);
                }
            }
            report.seen += listed.deliveries.len() - before;
            match page.next {
                Some(next) if !past_floor => cursor = Some(next),
                _ => return listed,
            }
        }
    }

    async fn page(&self, cursor: Option<&Cursor>) -> Result<Page<HookDelivery>, String> {
        let github = &self.github;
        let page = match &self.hook {
            RecoveryHook::App => github.app().list_hook_deliveries(cursor).await,
            RecoveryHook::Repository { repository, hook } => {
                repository_client(github, repository)
                    .list_hook_deliveries(*hook, cursor)
                    .await
            }
            RecoveryHook::Organization { organization, hook } => {
                match github.organization(organization, None) {
                    Ok(client) => client.list_hook_deliveries(*hook, cursor).await,
                    Err(err) => return Err(error_chain(&err)),
                }
            }
        };
        page.map_err(|err| error_chain(&err))
    }

    async fn fetch(&self, delivery: &HookDelivery) -> Result<HookDeliveryDetail, String> {
        let github = &self.github;
        let detail = match &self.hook {
            RecoveryHook::App => github.app().hook_delivery(delivery.id).await,
            RecoveryHook::Repository { repository, hook } => {
                repository_client(github, repository)
                    .hook_delivery(*hook, delivery.id)
                    .await
            }
            RecoveryHook::Organization { organization, hook } => {
                match github.organization(organization, None) {
                    Ok(client) => client.hook_delivery(*hook, delivery.id).await,
                    Err(err) => return Err(error_chain(&err)),
                }
            }
        };
        detail.map_err(|err| error_chain(&err))
    }
}

fn repository_client(github: &GitHub, repository: &Repository) -> booty_github::RepositoryClient {
    github
        .repository(repository.clone(), None)
        .with_permissions(Permissions::none().with("repository_hooks", booty_github::Access::Read))
}

#[derive(Default)]
struct Listed {
    deliveries: Vec<HookDelivery>,
    failed: Option<String>,
}

/// The attempts grouped by guid, and the newest `delivered_at` listed.
fn group(deliveries: Vec<HookDelivery>) -> (Vec<Attempts>, Option<SystemTime>) {
    let newest_seen = deliveries
        .iter()
        .map(|delivery| delivery.delivered_at)
        .max();
    let mut order = Vec::new();
    let mut by_guid: HashMap<String, Attempts> = HashMap::new();
    for delivery in deliveries {
        if let Some(attempts) = by_guid.get_mut(&delivery.guid) {
            attempts.first_sent = attempts.first_sent.min(delivery.delivered_at);
            attempts.answered |= delivery.succeeded();
        } else {
            order.push(delivery.guid.clone());
            by_guid.insert(
                delivery.guid.clone(),
                Attempts {
                    first_sent: delivery.delivered_at,
                    answered: delivery.succeeded(),
                    newest: delivery,
                },
            );
        }
    }
    let grouped = order
        .into_iter()
        .filter_map(|guid| by_guid.remove(&guid))
        .collect();
    (grouped, newest_seen)
}

/// Hands a missed delivery to the sink as the webhook it was (or asks the rule, in a dry run).
async fn handle(
    target: Target<'_>,
    delivery: &HookDelivery,
    detail: HookDeliveryDetail,
) -> MissedOutcome {
    let Some(payload) = detail.request.payload else {
        return MissedOutcome::Refused("GitHub kept no payload for it".to_owned());
    };
    let payload = match serde_json::to_vec(&payload) {
        Ok(bytes) => Bytes::from(bytes),
        Err(err) => return MissedOutcome::Refused(err.to_string()),
    };
    let headers = [
        ("x-github-event", delivery.event.as_bytes()),
        ("x-github-delivery", delivery.guid.as_bytes()),
    ];
    let parsed = Delivery::from_headers(|name| {
        headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    });
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(err) => return MissedOutcome::Refused(err.to_string()),
    };
    match target {
        Target::DryRun(rule) => match rule.decide(parsed.event(), &payload) {
            Ok(Decision::Trigger(_)) => MissedOutcome::WouldSubmit,
            Ok(Decision::Ignored(reason)) => MissedOutcome::Ignored(reason.to_string()),
            Ok(Decision::Cancel(_)) => MissedOutcome::Ignored("a cancellation".to_owned()),
            Err(err) => MissedOutcome::Refused(err.to_string()),
        },
        Target::Submit(sink) => {
            let webhook = Webhook::new(parsed, payload, Instant::now() + SUBMIT_TIMEOUT);
            match sink.deliver(webhook).await {
                SinkAnswer::Accepted { job_id } => MissedOutcome::Submitted { job_id },
                SinkAnswer::Duplicate { job_id } => MissedOutcome::Duplicate { job_id },
                SinkAnswer::Ignored(reason) => MissedOutcome::Ignored(reason),
                SinkAnswer::Cancelled { .. } => MissedOutcome::Ignored("a cancellation".to_owned()),
                SinkAnswer::BadRequest(why) => MissedOutcome::Refused(why),
                SinkAnswer::Busy => {
                    MissedOutcome::NotSubmitted("the queue is full or shutting down".to_owned())
                }
                SinkAnswer::Unavailable(err) | SinkAnswer::Failed(err) => {
                    MissedOutcome::NotSubmitted(error_chain(err.as_ref()))
                }
                _ => MissedOutcome::NotSubmitted("the sink answered something new".to_owned()),
            }
        }
    }
}

/// The service's periodic recovery: a pass at start-up, then one every `interval`, until `stop`.
pub(crate) async fn run_periodically(
    recovery: Recovery,
    queue: Queue<JobPayload>,
    sink: Arc<QueueSink<JobPayload>>,
    interval: Duration,
    stop: booty_queue::CancellationToken,
) {
    loop {
        tokio::select! {
            _ = recovery.pass(&queue, Target::Submit(&sink), Since::Bookmark) => {}
            () = stop.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// A one-shot pass ([`recover_once`](crate::recover_once)) that could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoveryError {
    /// The configuration names no hook to recover from.
    #[error("recovery is not configured (no hook to read deliveries from)")]
    NotConfigured,
    /// Submitting to a memory store from a one-shot process would lose the jobs at its exit.
    #[error(
        "recovering into the memory store would lose the jobs when this process exits; use --dry-run"
    )]
    MemoryStore,
    /// The store or the GitHub client could not be had.
    #[error(transparent)]
    Start(crate::StartError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(id: u64, guid: &str, at: &str, status: &str) -> HookDelivery {
        serde_json::from_value(serde_json::json!({
            "id": id, "guid": guid, "delivered_at": at, "redelivery": false, "duration": 0.5,
            "status": status, "status_code": if status == "OK" { 200 } else { 502 },
            "event": "issues", "action": "labeled", "installation_id": null, "repository_id": 1,
        }))
        .unwrap()
    }

    #[test]
    fn attempts_are_grouped_by_guid_with_their_first_sending_and_any_ok_answer() {
        // Newest first, as GitHub lists them.
        let listed = vec![
            delivery(5, "b", "2026-01-01T10:05:00Z", "OK"),
            delivery(4, "a", "2026-01-01T10:04:00Z", "Invalid HTTP Response: 502"),
            delivery(3, "b", "2026-01-01T10:03:00Z", "Invalid HTTP Response: 502"),
            delivery(2, "a", "2026-01-01T10:02:00Z", "timed out"),
        ];
        let newest = listed[0].delivered_at;
        let (grouped, newest_seen) = group(listed);
        assert_eq!(newest_seen, Some(newest));
        let summary: Vec<(&str, u64, bool)> = grouped
            .iter()
            .map(|attempts| {
                (
                    attempts.newest.guid.as_str(),
                    attempts.newest.id.0,
                    attempts.answered,
                )
            })
            .collect();
        assert_eq!(summary, [("b", 5, true), ("a", 4, false)]);
        let a = &grouped[1];
        assert_eq!(
            a.first_sent,
            delivery(0, "a", "2026-01-01T10:02:00Z", "x").delivered_at
        );
        assert_eq!(group(Vec::new()).1, None);
    }

    #[test]
    fn each_hook_has_a_bookmark_of_its_own() {
        let repository: Repository = "octo/hello".parse().unwrap();
        let names = [
            RecoveryHook::App.bookmark(),
            RecoveryHook::Repository {
                repository,
                hook: HookId(9),
            }
            .bookmark(),
            RecoveryHook::Organization {
                organization: "octo".to_owned(),
                hook: HookId(9),
            }
            .bookmark(),
        ];
        assert_eq!(
            names,
            [
                "recovery:app",
                "recovery:repos/octo/hello/hooks/9",
                "recovery:orgs/octo/hooks/9"
            ]
        );
    }
}
