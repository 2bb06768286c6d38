//! Logging: JSON lines with span fields flattened in (the default), or tracing's human format.
//!
//! tracing-subscriber's own JSON formatter nests span fields under `"span"`; booty's contract is that every
//! line about a job carries `job_id`, `issue_number` and `delivery_id` at the top level, so `jq .job_id` and
//! `grep '"job_id":"42-...'` both work. [`JsonLines`] does that: each span keeps its fields as JSON values in
//! its extensions, and an event's line is its span fields (outermost first), then its own fields.

use std::io::{IsTerminal as _, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

mod writer;

use writer::Background;
pub(crate) use writer::{flush, report_drops_to};

use crate::config::{ConfigError, LogFormat};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};

/// Installs the process-wide subscriber writing to stdout. `RUST_LOG`, when set, wins over `level`.
///
/// # Errors
/// A [`ConfigError`] (exit code 2) for a `RUST_LOG` that is not a filter; `log_level` was checked when the
/// configuration was loaded.
pub(crate) fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => EnvFilter::try_new(&directives)
            .map_err(|err| ConfigError::Environment {
                variable: "RUST_LOG",
                message: format!("{directives:?} is not a tracing filter: {err}"),
            })?,
        _ => EnvFilter::try_new(level)
            .map_err(|err| anyhow::anyhow!("invalid `log_level` {level:?}: {err}"))?,
    };
    let registry = tracing_subscriber::registry();
    // Lines are written by a thread of their own, off the request path (see `writer`).
    let out = Background::start(std::io::stdout())
        .map_err(|err| anyhow::anyhow!("could not start the log writer thread: {err}"))?;
    match format {
        LogFormat::Json => registry
            .with(JsonLines::new(out).with_filter(filter))
            .try_init(),
        // Colours only for a terminal: a file or a pipe gets plain text.
        LogFormat::Pretty => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(out)
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_filter(filter),
            )
            .try_init(),
    }
    .map_err(|err| anyhow::anyhow!("could not install the logger: {err}"))
}

/// A layer writing one JSON object per event: `timestamp`, `level`, `message`, then the fields of every
/// enclosing span and of the event itself, then `target`.
pub(crate) struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub(crate) fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// A span's fields, kept in its extensions.
#[derive(Default)]
struct SpanFields(Map<String, Value>);

/// Records tracing fields as JSON values.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole chain, as `booty` prints errors: "outer: inner: root".
        self.0.insert(
            field.name().to_owned(),
            Value::from(booty_service::error_chain(value)),
        );
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::from(format!("{value:?}")));
    }
}

impl<S, W> Layer<S> for JsonLines<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::default();
        attrs.record(&mut JsonVisitor(&mut fields.0));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(&mut JsonVisitor(&mut fields.0));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(span_fields) = span.extensions().get::<SpanFields>() {
                    fields.extend(span_fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        event.record(&mut JsonVisitor(&mut fields));
        let message = fields.remove("message").unwrap_or(Value::Null);
        let metadata = event.metadata();

        let mut out = Vec::with_capacity(256);
        out.push(b'{');
        let mut timestamp = String::with_capacity(32);
        // RFC 3339 in UTC with microseconds; writing to a String cannot fail.
        let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
        push_field(&mut out, "timestamp", &timestamp);
        push_field(&mut out, "level", metadata.level().as_str());
        push_field(&mut out, "message", &message);
        for (key, value) in &fields {
            push_field(&mut out, key, value);
        }
        push_field(&mut out, "target", metadata.target());
        out.pop(); // the last comma
        out.extend_from_slice(b"}\n");
        // A log line that cannot be written has nowhere to be reported; dropping it beats panicking.
        let _ = self.make_writer.make_writer().write_all(&out);
    }
}

/// Appends `"key":value,` to a line under construction.
fn push_field(out: &mut Vec<u8>, key: &str, value: &(impl serde::Serialize + ?Sized)) {
    serde_json::to_writer(&mut *out, key).expect("a string serialises to a Vec");
    out.push(b':');
    serde_json::to_writer(&mut *out, value).expect("a JSON value serialises to a Vec");
    out.push(b',');
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::{info, info_span};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(buf)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(body: impl FnOnce()) -> Vec<Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            tracing_subscriber::registry().with(JsonLines::new(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, body);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    }

    #[test]
    fn span_fields_are_flattened_into_every_line() {
        let lines = capture(|| {
            let outer = info_span!(
                "job",
                job_id = "42-abc",
                issue_number = 42_u64,
                delivery_id = "abc"
            );
            let _outer = outer.enter();
            let inner = info_span!(
                "attempt",
                attempt = 1_u64,
                worker_id = tracing::field::Empty
            );
            let _inner = inner.enter();
            inner.record("worker_id", 3_u64);
            info!(exit_code = 0_i64, "job_succeeded");
        });
        assert_eq!(lines.len(), 1);
        let line = &lines[0];
        assert_eq!(line["message"], "job_succeeded");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["job_id"], "42-abc");
        assert_eq!(line["issue_number"], 42);
        assert_eq!(line["delivery_id"], "abc");
        assert_eq!(line["attempt"], 1);
        assert_eq!(line["worker_id"], 3);
        assert_eq!(line["exit_code"], 0);
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(line["target"].as_str().unwrap().starts_with("booty"));
    }

    #[test]
    fn event_fields_win_over_span_fields_and_errors_carry_their_chain() {
        let lines = capture(|| {
            let span = info_span!("request", status = 0_u64);
            let _span = span.enter();
            let err = anyhow::anyhow!("root cause").context("outer");
            let err: &(dyn std::error::Error + 'static) = err.as_ref();
            info!(status = 202_u64, error = err, "done");
        });
        assert_eq!(lines[0]["status"], 202);
        assert_eq!(lines[0]["error"], "outer: root cause");
    }

    #[test]
    fn lines_outside_spans_have_the_fixed_keys_first() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            tracing_subscriber::registry().with(JsonLines::new(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || info!("shutdown_started"));
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let expected_start = "{\"timestamp\":\"";
        assert!(text.starts_with(expected_start), "{text}");
        let rest = &text[text.find("Z\",").unwrap()..];
        assert!(
            rest.starts_with(
                "Z\",\"level\":\"INFO\",\"message\":\"shutdown_started\",\"target\":\"booty"
            ),
            "{text}"
        );
        assert!(text.ends_with("}\n"));
    }
}
