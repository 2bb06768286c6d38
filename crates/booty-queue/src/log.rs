//! Log lines about jobs, with the job's metadata as fields of their own.
//!
//! Every line about a job carries `job_id`, then each entry of the job's metadata as a field (booty-service
//! puts `issue_number`, `repository` and `delivery_id` there), then the line's own fields. The job span
//! the handler runs in carries the same fields, so the handler's own lines do too.
//!
//! tracing names fields at compile time, and a job's metadata keys are only known at run time. So these
//! lines go through callsites made here at run time: one per level, kind (event or span) and list of field
//! names, made on first use, registered with tracing like any other, and kept for the process's life as
//! tracing keeps its own. Metadata keys are few and fixed per embedder ([`JobMetadata::check`] bounds
//! them), so there are a handful of these callsites.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError};

use tracing::callsite::{Callsite, Identifier};
use tracing::field::{Field, FieldSet, Value};
use tracing::level_filters::LevelFilter;
use tracing::metadata::Kind;
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Span, dispatcher};

use crate::job::{Job, JobId, JobMetadata, JobSnapshot, MetadataValue, NewJob};

/// The target of every line made here: filter them with `booty_queue=...`.
const TARGET: &str = "booty_queue";

/// The most fields a line can have: the message, `job_id`, [`MAX_METADATA_ENTRIES`] metadata entries and
/// the line's own (tracing takes a line's values as an array of a size known at compile time).
const MAX_FIELDS: usize = 32;

/// Metadata entries a job may have: each is a field of every line about it.
pub(crate) const MAX_METADATA_ENTRIES: usize = 16;

/// Field names the lines about jobs use for themselves; a metadata key may not take one.
pub(crate) const RESERVED_FIELDS: &[&str] = &[
    "message",
    "job_id",
    "worker_id",
    "attempt",
    "error",
    "reason",
    "retry_at",
    "retry_in_ms",
];

/// What identifies a job on a line: its id and its metadata.
#[derive(Clone, Copy)]
pub(crate) struct JobFields<'a> {
    pub(crate) id: &'a JobId,
    pub(crate) metadata: &'a JobMetadata,
}

impl<'a, P> From<&'a Job<P>> for JobFields<'a> {
    fn from(job: &'a Job<P>) -> Self {
        Self {
            id: &job.id,
            metadata: &job.metadata,
        }
    }
}

impl<'a, P> From<&'a NewJob<P>> for JobFields<'a> {
    fn from(job: &'a NewJob<P>) -> Self {
        Self {
            id: &job.id,
            metadata: &job.metadata,
        }
    }
}

impl<'a> From<&'a JobSnapshot> for JobFields<'a> {
    fn from(job: &'a JobSnapshot) -> Self {
        Self {
            id: &job.job_id,
            metadata: &job.metadata,
        }
    }
}

/// An event about a job: `job_id`, the job's metadata entries, then `name = value` fields.
///
/// `job_event!(WARN, &job, "job_retrying", attempt = 2, error = "timeout")`; a value is anything tracing
/// records (`tracing::field::display(x)` for a `Display`).
macro_rules! job_event {
    ($level:ident, $job:expr, $message:literal $(, $name:ident = $value:expr)* $(,)?) => {
        $crate::log::event(
            ::tracing::Level::$level,
            $message,
            $crate::log::JobFields::from($job),
            &[$((stringify!($name), &$value as &dyn ::tracing::Value)),*],
        )
    };
}
pub(crate) use job_event;

/// Emits an event about `job` at `level` (see [`job_event!`]).
pub(crate) fn event(
    level: Level,
    message: &'static str,
    job: JobFields<'_>,
    fields: &[(&'static str, &dyn Value)],
) {
    if level > LevelFilter::current() {
        return;
    }
    let message = tracing::field::display(message);
    let Some(site) = site(level, Kind::EVENT, "job event", "message", job, fields) else {
        return;
    };
    let metadata = Callsite::metadata(site);
    dispatcher::get_default(|dispatch| {
        if dispatch.enabled(metadata) {
            with_values(metadata, ("message", &message), job, fields, |values| {
                dispatch.event(&Event::new(metadata, values));
            });
        }
    });
}

/// The `job` span of one attempt: `job_id`, the job's metadata entries, then `fields`. A span nobody
/// listens to is [`Span::none`].
pub(crate) fn span(job: JobFields<'_>, fields: &[(&'static str, &dyn Value)]) -> Span {
    let job_id = job.id.as_str();
    let Some(site) = site(Level::INFO, Kind::SPAN, "job", "job_id", job, fields) else {
        return Span::none();
    };
    let metadata = Callsite::metadata(site);
    if !dispatcher::get_default(|dispatch| dispatch.enabled(metadata)) {
        return Span::none();
    }
    let mut span = Span::none();
    with_values(metadata, ("job_id", &job_id), job, fields, |values| {
        span = Span::new(metadata, values);
    });
    span
}

/// The callsite for a line with these fields, made and registered on first use; `None` if no
/// subscriber will ever want it.
fn site(
    level: Level,
    kind: Kind,
    name: &'static str,
    first: &'static str,
    job: JobFields<'_>,
    fields: &[(&'static str, &dyn Value)],
) -> Option<&'static Site> {
    static SITES: LazyLock<Mutex<HashMap<SiteKey, &'static Site>>> = LazyLock::new(Mutex::default);
    let is_span = kind.is_span();
    let names = names(first, job, fields);
    let key = (level, is_span, names);
    let mut sites = SITES.lock().unwrap_or_else(PoisonError::into_inner);
    let site = if let Some(site) = sites.get(&key) {
        *site
    } else {
        let site: &'static Site = Box::leak(Box::new(Site {
            metadata: OnceLock::new(),
            interest: AtomicU8::new(SOMETIMES),
        }));
        let names: &'static [&'static str] = Box::leak(key.2.clone().into_boxed_slice());
        let fields = FieldSet::new(names, Identifier(site));
        let metadata = Metadata::new(
            name,
            TARGET,
            level,
            Some(file!()),
            Some(line!()),
            Some(module_path!()),
            fields,
            kind,
        );
        // Set once, here, before anyone can see the site.
        let _ = site.metadata.set(metadata);
        tracing::callsite::register(site);
        sites.insert(key, site);
        site
    };
    drop(sites);
    (site.interest.load(Ordering::Relaxed) != NEVER).then_some(site)
}

/// Level, whether a span, and field names.
type SiteKey = (Level, bool, Vec<&'static str>);

/// The field names of a line: `first`, the metadata keys, the line's own; at most [`MAX_FIELDS`].
fn names(
    first: &'static str,
    job: JobFields<'_>,
    fields: &[(&'static str, &dyn Value)],
) -> Vec<&'static str> {
    let mut names = Vec::with_capacity(2 + job.metadata.len() + fields.len());
    names.push(first);
    if first != "job_id" {
        names.push("job_id");
    }
    names.extend(job.metadata.iter().map(|(key, _)| intern(key)));
    names.extend(fields.iter().map(|(name, _)| *name));
    names.truncate(MAX_FIELDS);
    names
}

/// Calls `with` on the line's values, in the order [`names`] gave their fields.
fn with_values(
    metadata: &'static Metadata<'static>,
    first: (&'static str, &dyn Value),
    job: JobFields<'_>,
    fields: &[(&'static str, &dyn Value)],
    with: impl FnOnce(&tracing::field::ValueSet<'_>),
) {
    let job_id = job.id.as_str();
    let mut values: Vec<&dyn Value> = Vec::with_capacity(MAX_FIELDS);
    values.push(first.1);
    if first.0 != "job_id" {
        values.push(&job_id);
    }
    for (_, value) in job.metadata.iter() {
        values.push(match value {
            MetadataValue::Text(text) => text,
            MetadataValue::Integer(number) => number,
        });
    }
    values.extend(fields.iter().map(|(_, value)| *value));
    let set = metadata.fields();
    let keys: Vec<Field> = set.iter().collect();
    let Some(padding) = keys.first() else {
        return;
    };
    // Slots past the line's fields repeat its first field with no value, which records nothing.
    let pairs: [(&Field, Option<&dyn Value>); MAX_FIELDS] =
        std::array::from_fn(|index| match (keys.get(index), values.get(index)) {
            (Some(key), value) => (key, value.copied()),
            (None, _) => (padding, None),
        });
    with(&set.value_set(&pairs));
}

/// A metadata key as a field name, which tracing wants `'static`: kept once per distinct key.
fn intern(key: &str) -> &'static str {
    static KEYS: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Mutex::default);
    let mut keys = KEYS.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(kept) = keys.get(key) {
        return kept;
    }
    let kept: &'static str = Box::leak(key.to_owned().into_boxed_str());
    keys.insert(kept);
    kept
}

const NEVER: u8 = 0;
const SOMETIMES: u8 = 1;
const ALWAYS: u8 = 2;

/// A callsite made at run time. Its metadata names the site itself, so it is set right after the site
/// is made, before it is registered.
struct Site {
    metadata: OnceLock<Metadata<'static>>,
    interest: AtomicU8,
}

impl Callsite for Site {
    fn set_interest(&self, interest: Interest) {
        let interest = if interest.is_never() {
            NEVER
        } else if interest.is_always() {
            ALWAYS
        } else {
            SOMETIMES
        };
        self.interest.store(interest, Ordering::Relaxed);
    }

    fn metadata(&self) -> &Metadata<'_> {
        self.metadata
            .get()
            .expect("a site's metadata is set before the site is registered or returned")
    }
}
