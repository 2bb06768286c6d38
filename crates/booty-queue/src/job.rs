//! Jobs: what is submitted, what a handler gets, and what the admin view shows.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::log::{MAX_METADATA_ENTRIES, RESERVED_FIELDS};
use crate::time::Timestamp;

/// A job's id, chosen by whoever submits it and unique in its store: `Submitted::Duplicate` answers a
/// second job with an id already stored. An opaque string to the queue (booty-service makes
/// `{issue_number}-{delivery_id}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct JobId(String);

impl JobId {
    /// The id `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for JobId {
    fn from(id: &str) -> Self {
        Self(id.to_owned())
    }
}

impl From<String> for JobId {
    fn from(id: String) -> Self {
        Self(id)
    }
}

impl AsRef<str> for JobId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Lets maps keyed by `JobId` be searched with the `&str` an HTTP route hands over.
impl Borrow<str> for JobId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where a job is in its life: `queued → running → succeeded | failed`, `retrying` between attempts,
/// `cancelled` when someone asked it to stop, and `abandoned` for work a store could not keep when the
/// queue shut down (only the memory store loses any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Waiting for a worker (or for the job before it on the same issue).
    Queued,
    /// A worker holds its lease and runs the handler.
    Running,
    /// An attempt failed with a retryable error; the next one starts at `retry_at`.
    Retrying,
    /// The handler returned ok. Final.
    Succeeded,
    /// A permanent error, or a retryable one on the last attempt. Final.
    Failed,
    /// Cancelled ([`Queue::cancel`](crate::Queue::cancel)): at once if it was waiting, at the end of its
    /// attempt if it was running. Final.
    Cancelled,
    /// Lost at shutdown by a store that does not persist jobs. Final.
    Abandoned,
}

impl JobState {
    /// Every state, in the order of a job's life.
    pub const ALL: [Self; 7] = [
        Self::Queued,
        Self::Running,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Abandoned,
    ];

    /// The lowercase name used in JSON, logs and SQL columns: `queued`, `running`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Abandoned => "abandoned",
        }
    }

    /// Whether the job is done for good (`succeeded`, `failed`, `cancelled` or `abandoned`).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Cancelled | Self::Abandoned
        )
    }

    /// Whether the job waits to be claimed (`queued` or `retrying`): what a queue's capacity counts.
    pub fn is_waiting(self) -> bool {
        matches!(self, Self::Queued | Self::Retrying)
    }

    /// Whether an operator may run the job again ([`Queue::retry`](crate::Queue::retry)): `failed` or
    /// `cancelled`. Stores keep the payload of jobs in these states (and drop it once a job succeeds or
    /// is abandoned).
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reads the names [`JobState::as_str`] writes, for stores that keep the state as text.
impl FromStr for JobState {
    type Err = UnknownState;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
            .ok_or_else(|| UnknownState(name.to_owned()))
    }
}

/// A stored state name that is not one of [`JobState`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state `{0}`")]
pub struct UnknownState(String);

/// The kind a [`NewJob`] has unless given another.
pub const DEFAULT_KIND: &str = "job";

/// A job to submit: its identity (id, dedupe key, lane, kind), what it is about (metadata), and the
/// embedder's payload. The queue gives none of these a meaning of its own beyond the rules below; the
/// submitter decides what they mean (booty-service: the issue and the delivery).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob<P> {
    /// The job's id: unique in the store, shown in every line about the job. Must not be empty.
    pub id: JobId,
    /// A job whose dedupe key is already known (a stored job's, or one the store still remembers) is a
    /// duplicate and is not stored. Must not be empty; [`NewJob::new`] makes it the id.
    pub dedupe_key: String,
    /// Jobs with the same lane run one at a time, in arrival order; `None` (the default) has no ordering
    /// constraint. Stored as given.
    pub lane: Option<String>,
    /// What sort of job this is ([`DEFAULT_KIND`] unless set); listings filter by it.
    pub kind: String,
    /// What the job is about, as named values: logged as fields of every line about the job, shown in
    /// snapshots, and a listing filter.
    pub metadata: JobMetadata,
    /// Whatever the handler needs; the queue never looks inside.
    pub payload: P,
}

impl<P> NewJob<P> {
    /// A job with id `id`, deduplicated by its id, of kind [`DEFAULT_KIND`], in no lane, without
    /// metadata.
    pub fn new(id: impl Into<JobId>, payload: P) -> Self {
        let id = id.into();
        Self {
            dedupe_key: id.as_str().to_owned(),
            id,
            lane: None,
            kind: DEFAULT_KIND.to_owned(),
            metadata: JobMetadata::new(),
            payload,
        }
    }

    /// The job is a duplicate of any job with the same `dedupe_key`.
    #[must_use]
    pub fn deduped_by(mut self, dedupe_key: impl Into<String>) -> Self {
        self.dedupe_key = dedupe_key.into();
        self
    }

    /// Puts the job in `lane`: it runs after every earlier job of the lane has finished.
    #[must_use]
    pub fn in_lane(mut self, lane: impl Into<String>) -> Self {
        self.lane = Some(lane.into());
        self
    }

    /// Makes the job of kind `kind`.
    #[must_use]
    pub fn of_kind(mut self, kind: impl Into<String>) -> Self {
        self.kind = kind.into();
        self
    }

    /// Adds (or replaces) the metadata entry `key`.
    #[must_use]
    pub fn with_metadata(
        mut self,
        key: impl Into<String>,
        value: impl Into<MetadataValue>,
    ) -> Self {
        self.metadata.insert(key, value);
        self
    }

    /// What is wrong with the job, if anything: an empty id, dedupe key, kind or lane, or metadata that
    /// [`JobMetadata::check`] refuses.
    pub(crate) fn problem(&self) -> Option<String> {
        if self.id.as_str().is_empty() {
            Some("its id is empty".to_owned())
        } else if self.dedupe_key.is_empty() {
            Some("its dedupe key is empty".to_owned())
        } else if self.kind.is_empty() {
            Some("its kind is empty".to_owned())
        } else if self.lane.as_deref() == Some("") {
            Some("its lane is empty (a job without a lane has `None`)".to_owned())
        } else {
            self.metadata.check().err()
        }
    }

    /// The job as stores receive it: accepted at `created_at`, no attempt yet.
    pub(crate) fn into_job(self, created_at: Timestamp) -> Job<P> {
        Job {
            id: self.id,
            dedupe_key: self.dedupe_key,
            lane: self.lane,
            kind: self.kind,
            metadata: self.metadata,
            created_at,
            attempt: 0,
            payload: Arc::new(self.payload),
            output: JobOutput::default(),
        }
    }
}

/// A stored job as a worker sees it: its identity, what it is about, which attempt this is, and the
/// payload. Stores build one on insert (attempt 0) and on every claim.
#[derive(Debug)]
pub struct Job<P> {
    /// The job's id.
    pub id: JobId,
    /// What duplicates are recognised by.
    pub dedupe_key: String,
    /// The lane the job waits in, if any.
    pub lane: Option<String>,
    /// What sort of job it is.
    pub kind: String,
    /// What the job is about.
    pub metadata: JobMetadata,
    /// When the queue accepted it.
    pub created_at: Timestamp,
    /// Which attempt this is, from 1; 0 before the first claim.
    pub attempt: u32,
    /// The embedder's payload, shared rather than copied: the memory store keeps the same `Arc`.
    pub payload: Arc<P>,
    /// Where the handler puts what the attempt printed: recorded with the attempt's outcome and shown
    /// in the job's snapshot. Stores hand out an empty one with every claimed job.
    pub output: JobOutput,
}

/// Written by hand so that a `Job<P>` clones without `P: Clone`: the payload is an `Arc`.
impl<P> Clone for Job<P> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            dedupe_key: self.dedupe_key.clone(),
            lane: self.lane.clone(),
            kind: self.kind.clone(),
            metadata: self.metadata.clone(),
            created_at: self.created_at,
            attempt: self.attempt,
            payload: Arc::clone(&self.payload),
            output: self.output.clone(),
        }
    }
}

/// What can be shown of a job, without its payload: what `Queue::get` and `Queue::list` return.
/// Serializes with these field names (timestamps as RFC 3339, absent values as `null`, the metadata as
/// an object); an admin view picks what it shows from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobSnapshot {
    /// The job's arrival number in its store: a later job has a larger one. A listing's next page is
    /// the jobs before the last one's ([`JobQuery::before`](crate::JobQuery::before)).
    pub seq: u64,
    /// The job's id.
    pub job_id: JobId,
    /// Where the job is in its life.
    pub state: JobState,
    /// Attempts started so far (an attempt cut off by a crash or shutdown counts).
    pub attempts: u32,
    /// What duplicates are recognised by.
    pub dedupe_key: String,
    /// The lane the job waits in, if any.
    pub lane: Option<String>,
    /// What sort of job it is.
    pub kind: String,
    /// What the job is about.
    pub metadata: JobMetadata,
    /// When the queue accepted the job.
    pub created_at: Timestamp,
    /// When the latest attempt started.
    pub started_at: Option<Timestamp>,
    /// When the job reached a final state.
    pub finished_at: Option<Timestamp>,
    /// When the next attempt may start, while `retrying`.
    pub retry_at: Option<Timestamp>,
    /// The last attempt's error while `retrying` and once `failed` or `abandoned`; the reason once
    /// `cancelled`.
    pub error: Option<String>,
    /// What the last attempt that ended printed into [`Job::output`], at most [`MAX_OUTPUT_BYTES`].
    pub output: Option<String>,
}

impl JobSnapshot {
    /// The snapshot of `job` just accepted as job number `seq`: queued, no attempt yet.
    pub fn queued<P>(seq: u64, job: &Job<P>) -> Self {
        Self {
            seq,
            job_id: job.id.clone(),
            state: JobState::Queued,
            attempts: 0,
            dedupe_key: job.dedupe_key.clone(),
            lane: job.lane.clone(),
            kind: job.kind.clone(),
            metadata: job.metadata.clone(),
            created_at: job.created_at,
            started_at: None,
            finished_at: None,
            retry_at: None,
            error: None,
            output: None,
        }
    }
}

/// What a job's output keeps unless configured otherwise ([`QueueConfig::output_bytes`](crate::QueueConfig)):
/// the last 64 KiB.
pub const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// What an attempt printed, as the handler hands it over: the last bytes of it, up to its limit
/// ([`MAX_OUTPUT_BYTES`] by default; the queue gives each attempt one with its configured
/// `output_bytes`), are recorded with the attempt's outcome and shown in the job's snapshot (`output`).
/// A fresh one comes with every attempt. Cheap to clone; clones share the text.
#[derive(Clone)]
pub struct JobOutput {
    kept: Arc<Mutex<String>>,
    limit: usize,
}

impl Default for JobOutput {
    fn default() -> Self {
        Self::with_limit(MAX_OUTPUT_BYTES)
    }
}

impl JobOutput {
    /// An empty output keeping at most the last `limit` bytes (`0`: keeps nothing).
    pub fn with_limit(limit: usize) -> Self {
        Self {
            kept: Arc::default(),
            limit,
        }
    }

    /// Adds `text` at the end, dropping the oldest text beyond the limit (whole characters).
    pub fn append(&self, text: &str) {
        let limit = self.limit;
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if text.len() >= limit {
            kept.clear();
            kept.push_str(tail(text, limit));
            return;
        }
        kept.push_str(text);
        if kept.len() > limit {
            let cut = kept.len() - tail(&kept, limit).len();
            kept.drain(..cut);
        }
    }

    /// The text kept so far.
    pub fn text(&self) -> String {
        self.kept
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The text to record: `None` if nothing was printed.
    pub(crate) fn recorded(&self) -> Option<String> {
        Some(self.text()).filter(|text| !text.is_empty())
    }
}

impl fmt::Debug for JobOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.kept.lock().map_or(0, |text| text.len());
        f.debug_struct("JobOutput")
            .field("bytes", &bytes)
            .field("limit", &self.limit)
            .finish()
    }
}

/// The longest end of `text` of at most `bytes` bytes that starts on a character.
fn tail(text: &str, bytes: usize) -> &str {
    let mut start = text.len().saturating_sub(bytes);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// A job's metadata: named values in the order they were added, a key at most once.
///
/// Keys are field names of the lines about the job, so they are identifiers: 1 to 64 lowercase ASCII
/// letters, digits and `_`, starting with a letter, none of the names those lines use themselves
/// (`job_id`, `attempt`, `error`, ...), at most 16 of them. A key should name a property, not hold data:
/// each distinct key is kept for the process's life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct JobMetadata(Vec<(String, MetadataValue)>);

impl JobMetadata {
    /// No entries.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`; a key already there keeps its place and returns its old value.
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<MetadataValue>,
    ) -> Option<MetadataValue> {
        let (key, value) = (key.into(), value.into());
        if let Some((_, old)) = self.0.iter_mut().find(|(existing, _)| *existing == key) {
            return Some(std::mem::replace(old, value));
        }
        self.0.push((key, value));
        None
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        self.0
            .iter()
            .find_map(|(existing, value)| (existing == key).then_some(value))
    }

    /// The entries, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.0.iter().map(|(key, value)| (key.as_str(), value))
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What is wrong with the metadata, if anything (see the type's documentation).
    ///
    /// # Errors
    /// A message naming the key that cannot be used, or saying there are too many.
    pub fn check(&self) -> Result<(), String> {
        if self.0.len() > MAX_METADATA_ENTRIES {
            return Err(format!(
                "it has {} metadata entries, more than {MAX_METADATA_ENTRIES}",
                self.0.len()
            ));
        }
        for (key, _) in &self.0 {
            let identifier = key.len() <= 64
                && key.starts_with(|c: char| c.is_ascii_lowercase())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !identifier {
                return Err(format!(
                    "metadata key `{key}` is not 1 to 64 lowercase ASCII letters, digits and `_` \
                     starting with a letter"
                ));
            }
            if RESERVED_FIELDS.contains(&key.as_str()) {
                return Err(format!(
                    "metadata key `{key}` is a field every line about a job has already"
                ));
            }
        }
        Ok(())
    }
}

impl<K: Into<String>, V: Into<MetadataValue>> FromIterator<(K, V)> for JobMetadata {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut metadata = Self::new();
        for (key, value) in entries {
            metadata.insert(key, value);
        }
        metadata
    }
}

/// A JSON object, in order.
impl Serialize for JobMetadata {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// Reads the object [`Serialize`] writes, in order (stores keep metadata as JSON).
impl<'de> Deserialize<'de> for JobMetadata {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;

        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = JobMetadata;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of strings and integers")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<JobMetadata, A::Error> {
                let mut metadata = JobMetadata::new();
                while let Some((key, value)) = map.next_entry::<String, MetadataValue>()? {
                    metadata.insert(key, value);
                }
                Ok(metadata)
            }
        }

        deserializer.deserialize_map(Entries)
    }
}

/// One metadata value: text or an integer, as JSON has them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum MetadataValue {
    /// Text (a repository's name, a delivery id).
    Text(String),
    /// An integer (an issue number).
    Integer(i64),
}

impl fmt::Display for MetadataValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Integer(number) => write!(f, "{number}"),
        }
    }
}

impl From<String> for MetadataValue {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

impl From<&str> for MetadataValue {
    fn from(text: &str) -> Self {
        Self::Text(text.to_owned())
    }
}

impl From<i64> for MetadataValue {
    fn from(number: i64) -> Self {
        Self::Integer(number)
    }
}

impl From<u32> for MetadataValue {
    fn from(number: u32) -> Self {
        Self::Integer(i64::from(number))
    }
}

impl From<i32> for MetadataValue {
    fn from(number: i32) -> Self {
        Self::Integer(i64::from(number))
    }
}

/// The answer to a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Submitted {
    /// Stored under this id; it will run. (`202` at the edge.)
    Accepted(JobId),
    /// The delivery was seen before; this is the id of the job it created. (`200 already_processed`.)
    Duplicate(JobId),
    /// Capacity reached or shutting down. Nothing was recorded, so a redelivery is accepted later.
    /// (`503` with `Retry-After`.)
    Busy,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_job_is_deduplicated_by_its_id_until_told_otherwise() {
        let job = NewJob::new("1347-72d3162e", ());
        assert_eq!(job.dedupe_key, "1347-72d3162e");
        assert_eq!(
            (job.kind.as_str(), job.lane.as_deref()),
            (DEFAULT_KIND, None)
        );
        let job = job
            .deduped_by("72d3162e")
            .in_lane("octo/repo#1347")
            .of_kind("issue")
            .with_metadata("issue_number", 1347);
        assert_eq!(job.id.as_str(), "1347-72d3162e");
        assert_eq!(job.dedupe_key, "72d3162e");
        assert_eq!(job.lane.as_deref(), Some("octo/repo#1347"));
        assert_eq!(job.kind, "issue");
        assert_eq!(
            job.metadata.get("issue_number"),
            Some(&MetadataValue::Integer(1347))
        );
        assert_eq!(job.problem(), None);
    }

    #[test]
    fn a_job_that_cannot_be_stored_or_logged_says_why() {
        let ok = || NewJob::new("1-d", ());
        let cases = [
            (NewJob::new("", ()), "its id is empty"),
            (ok().deduped_by(""), "its dedupe key is empty"),
            (ok().of_kind(""), "its kind is empty"),
            (ok().in_lane(""), "its lane is empty"),
            (ok().with_metadata("Issue", 1), "metadata key `Issue`"),
            (ok().with_metadata("2x", 1), "metadata key `2x`"),
            (ok().with_metadata("", 1), "metadata key ``"),
            (ok().with_metadata("job_id", 1), "a field every line"),
        ];
        for (job, problem) in cases {
            let found = job.problem().unwrap_or_default();
            assert!(found.contains(problem), "{found:?} should say {problem:?}");
        }
        let crowded: JobMetadata = (0..=MAX_METADATA_ENTRIES)
            .map(|n| (format!("k{n}"), 1))
            .collect();
        let mut job = ok();
        job.metadata = crowded;
        assert!(job.problem().unwrap_or_default().contains("more than 16"));
    }

    #[test]
    fn metadata_keeps_its_order_and_round_trips_through_json() {
        let mut metadata: JobMetadata = [
            ("issue_number", MetadataValue::from(1347)),
            ("repository", MetadataValue::from("octo/repo")),
            ("delivery_id", MetadataValue::from("72d3162e")),
        ]
        .into_iter()
        .collect();
        assert_eq!(
            metadata.insert("repository", "octo/other"),
            Some("octo/repo".into())
        );
        let json = serde_json::to_string(&metadata).unwrap();
        assert_eq!(
            json,
            r#"{"issue_number":1347,"repository":"octo/other","delivery_id":"72d3162e"}"#
        );
        let back: JobMetadata = serde_json::from_str(&json).unwrap();
        assert_eq!(back, metadata);
        let keys: Vec<&str> = back.iter().map(|(key, _)| key).collect();
        assert_eq!(keys, ["issue_number", "repository", "delivery_id"]);
        assert!(serde_json::from_str::<JobMetadata>(r#"{"a":null}"#).is_err());
    }

    #[test]
    fn state_names_round_trip_and_unknown_names_are_named() {
        for state in JobState::ALL {
            assert_eq!(state.as_str().parse::<JobState>(), Ok(state));
        }
        let err = "Queued".parse::<JobState>().unwrap_err();
        assert_eq!(err.to_string(), "unknown job state `Queued`");
    }

    #[test]
    fn snapshot_serializes_with_its_field_names() {
        let snapshot = JobSnapshot {
            seq: 4,
            job_id: JobId::new("1347-72d3162e"),
            state: JobState::Retrying,
            attempts: 2,
            dedupe_key: "72d3162e".to_owned(),
            lane: Some("octo/repo#1347".to_owned()),
            kind: "issue".to_owned(),
            metadata: [("issue_number", 1347)].into_iter().collect(),
            created_at: Timestamp::from_unix_millis(1_700_000_000_000),
            started_at: Some(Timestamp::from_unix_millis(1_700_000_001_500)),
            finished_at: None,
            retry_at: Some(Timestamp::from_unix_millis(1_700_000_011_500)),
            error: Some("clone timed out".to_owned()),
            output: Some("cloning\n".to_owned()),
        };
        let json = serde_json::to_value(&snapshot).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "seq": 4,
                "job_id": "1347-72d3162e",
                "state": "retrying",
                "attempts": 2,
                "dedupe_key": "72d3162e",
                "lane": "octo/repo#1347",
                "kind": "issue",
                "metadata": {"issue_number": 1347},
                "created_at": "2023-11-14T22:13:20.000Z",
                "started_at": "2023-11-14T22:13:21.500Z",
                "finished_at": null,
                "retry_at": "2023-11-14T22:13:31.500Z",
                "error": "clone timed out",
                "output": "cloning\n",
            })
        );
    }

    #[test]
    fn output_keeps_what_its_limit_says() {
        let output = JobOutput::with_limit(8);
        output.append("0123456789\n");
        assert_eq!(output.text(), "3456789\n");
        output.append("ab");
        assert_eq!(output.text(), "56789\nab");
        let nothing = JobOutput::with_limit(0);
        nothing.append("printed");
        assert_eq!(nothing.recorded(), None);
    }

    #[test]
    fn output_keeps_the_last_64_kib_in_whole_characters() {
        let output = JobOutput::default();
        assert_eq!(output.recorded(), None);
        output.append("first line\n");
        output.clone().append("second line\n");
        assert_eq!(output.text(), "first line\nsecond line\n");

        // A 3-byte character straddles the cut: it goes whole.
        output.append(&"é€".repeat(MAX_OUTPUT_BYTES / 5));
        output.append("last");
        let text = output.text();
        assert!(text.len() <= MAX_OUTPUT_BYTES && text.len() > MAX_OUTPUT_BYTES - 3);
        assert!(text.ends_with("é€last"), "{}", &text[text.len() - 20..]);
        assert!(!text.contains("line"));

        let huge = format!("{}end", "x".repeat(2 * MAX_OUTPUT_BYTES));
        output.append(&huge);
        assert_eq!(output.text().len(), MAX_OUTPUT_BYTES);
        assert!(output.text().ends_with("xend"));
    }
}
