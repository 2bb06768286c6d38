//! Logging: JSON lines with span fields flattened in (the default), or tracing's human format.
//!
//! tracing-subscriber's own JSON formatter nests span fields under `"span"`; booty's contract is that every
//! line about a job carries `job_id`, `issue_number` and `delivery_id` at the top level, so `jq .job_id` and
//! `grep '"job_id":"42-...'` both work. [`JsonLines`] does that: each span keeps its fields as JSON values in
//! its extensions, and an event's line is its span fields (outermost first), then its own fields.

use std::io::{IsTerminal as _, Write};

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

/// A layer writing one JSON object per event: `timestamp`, `level`, `message`, then the event's own
/// fields, then those of its enclosing spans (innermost first) that the event does not set, then
/// `target`.
///
/// Lines are written straight into a buffer, not built as a JSON map first: at `info`, every webhook
/// writes one, so this is on the request path. A span's fields are kept already written as JSON.
pub(crate) struct JsonLines<W> {
    make_writer: W,
}

impl<W> JsonLines<W> {
    pub(crate) fn new(make_writer: W) -> Self {
        Self { make_writer }
    }
}

/// A span's fields, each value already written as JSON, kept in its extensions.
#[derive(Default)]
struct SpanFields(Vec<(&'static str, String)>);

impl SpanFields {
    /// Sets `name` to the JSON `value`, replacing what it held.
    fn set(&mut self, name: &'static str, value: String) {
        match self.0.iter_mut().find(|(key, _)| *key == name) {
            Some((_, held)) => *held = value,
            None => self.0.push((name, value)),
        }
    }
}

/// Records a span's fields into its [`SpanFields`].
struct SpanVisitor<'a>(&'a mut SpanFields);

impl Visit for SpanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.set(field.name(), json::to_string(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(field.name(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field.name(), value.to_string());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.set(field.name(), value.to_string());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.set(field.name(), json::to_string(&value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.set(
            field.name(),
            json::to_string(&booty_service::error_chain(value)),
        );
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let mut out = vec![b'"'];
        json::debug_unquoted(&mut out, value);
        out.push(b'"');
        self.0.set(
            field.name(),
            String::from_utf8(out).expect("JSON text is UTF-8"),
        );
    }
}

/// Writes an event's fields as `"key":value,` into `fields`, its message (unquoted, escaped) into
/// `message`, and remembers which names it wrote.
struct EventVisitor<'a> {
    fields: &'a mut Vec<u8>,
    message: &'a mut Vec<u8>,
    has_message: bool,
    names: &'a mut Vec<&'static str>,
}

impl EventVisitor<'_> {
    fn key(&mut self, field: &Field) -> &mut Vec<u8> {
        self.names.push(field.name());
        json::key(self.fields, field.name());
        self.fields
    }
}

impl Visit for EventVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.has_message = true;
            json::escaped(self.message, value);
            return;
        }
        json::value(self.key(field), value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        json::value(self.key(field), &value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        json::value(self.key(field), &value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        json::value(self.key(field), &value);
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        json::value(self.key(field), &value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // The whole chain, as `booty` prints errors: "outer: inner: root".
        json::value(self.key(field), &booty_service::error_chain(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.has_message = true;
            json::debug_unquoted(self.message, value);
            return;
        }
        json::debug(self.key(field), value);
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
        attrs.record(&mut SpanVisitor(&mut fields));
        span.extensions_mut().insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(&mut SpanVisitor(fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // The thread's buffers, or new ones if they are in use: an event recorded while a line is
        // being written (a `Debug` impl that logs) or while the thread's locals are being torn down.
        let written = LINE.try_with(|line| {
            let mut line = line.try_borrow_mut().ok()?;
            self.write_line(&mut line, event, &ctx);
            Some(())
        });
        if !matches!(written, Ok(Some(()))) {
            self.write_line(&mut Line::default(), event, &ctx);
        }
    }
}

impl<W> JsonLines<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn write_line<S>(&self, line: &mut Line, event: &Event<'_>, ctx: &Context<'_, S>)
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
        let Line {
            out,
            fields,
            message,
            names,
            timestamp,
        } = line;
        out.clear();
        fields.clear();
        message.clear();
        names.clear();
        timestamp.clear();
        let mut visitor = EventVisitor {
            fields,
            message,
            has_message: false,
            names,
        };
        event.record(&mut visitor);
        let has_message = visitor.has_message;
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                let extensions = span.extensions();
                let Some(span_fields) = extensions.get::<SpanFields>() else {
                    continue;
                };
                for (name, value) in &span_fields.0 {
                    if !names.contains(name) {
                        names.push(name);
                        json::key(fields, name);
                        fields.extend_from_slice(value.as_bytes());
                        fields.push(b',');
                    }
                }
            }
        }
        let metadata = event.metadata();
        out.extend_from_slice(b"{\"timestamp\":\"");
        // RFC 3339 in UTC with microseconds; writing to a String cannot fail.
        let _ = SystemTime.format_time(&mut Writer::new(timestamp));
        out.extend_from_slice(timestamp.as_bytes());
        out.extend_from_slice(b"\",\"level\":\"");
        out.extend_from_slice(metadata.level().as_str().as_bytes());
        out.extend_from_slice(b"\",\"message\":");
        if has_message {
            out.push(b'"');
            out.extend_from_slice(message);
            out.extend_from_slice(b"\",");
        } else {
            out.extend_from_slice(b"null,");
        }
        out.extend_from_slice(fields);
        json::key(out, "target");
        json::value(out, metadata.target());
        out.pop(); // the last comma
        out.extend_from_slice(b"}\n");
        // A log line that cannot be written has nowhere to be reported; dropping it beats panicking.
        let _ = self.make_writer.make_writer().write_all(out);
    }
}

/// The buffers one thread writes its lines in, kept between lines.
#[derive(Default)]
struct Line {
    out: Vec<u8>,
    fields: Vec<u8>,
    message: Vec<u8>,
    /// The field names written so far, so a span's field the event also sets is left out.
    names: Vec<&'static str>,
    timestamp: String,
}

thread_local! {
    static LINE: std::cell::RefCell<Line> = std::cell::RefCell::default();
}

/// Writing JSON text into byte buffers.
mod json {
    use std::fmt::{self, Write as _};

    /// `"key":`.
    pub(super) fn key(out: &mut Vec<u8>, key: &str) {
        serde_json::to_writer(&mut *out, key).expect("a string serialises to a Vec");
        out.push(b':');
    }

    /// `value,` as JSON.
    pub(super) fn value(out: &mut Vec<u8>, value: &(impl serde::Serialize + ?Sized)) {
        serde_json::to_writer(&mut *out, value).expect("a JSON value serialises to a Vec");
        out.push(b',');
    }

    /// `value` as JSON text.
    pub(super) fn to_string(value: &(impl serde::Serialize + ?Sized)) -> String {
        serde_json::to_string(value).expect("a JSON value serialises to a String")
    }

    /// `"{value:?}",`.
    pub(super) fn debug(out: &mut Vec<u8>, value: &dyn fmt::Debug) {
        out.push(b'"');
        debug_unquoted(out, value);
        out.extend_from_slice(b"\",");
    }

    /// `{value:?}` escaped as the inside of a JSON string.
    pub(super) fn debug_unquoted(out: &mut Vec<u8>, value: &dyn fmt::Debug) {
        // Writing to a Vec cannot fail; a Debug impl that fails leaves what it wrote.
        let _ = write!(Escaping(out), "{value:?}");
    }

    /// `text` escaped as the inside of a JSON string.
    pub(super) fn escaped(out: &mut Vec<u8>, text: &str) {
        let _ = Escaping(out).write_str(text);
    }

    /// Escapes what is written to it as the inside of a JSON string (RFC 8259: `"`, `\\` and the
    /// control characters).
    struct Escaping<'a>(&'a mut Vec<u8>);

    impl fmt::Write for Escaping<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            let bytes = text.as_bytes();
            let mut start = 0;
            for (at, &byte) in bytes.iter().enumerate() {
                let escape: &[u8] = match byte {
                    b'"' => b"\\\"",
                    b'\\' => b"\\\\",
                    b'\n' => b"\\n",
                    b'\r' => b"\\r",
                    b'\t' => b"\\t",
                    0..=0x1f => b"",
                    _ => continue,
                };
                self.0.extend_from_slice(&bytes[start..at]);
                if escape.is_empty() {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    self.0.extend_from_slice(b"\\u00");
                    self.0.push(HEX[usize::from(byte >> 4)]);
                    self.0.push(HEX[usize::from(byte & 0xf)]);
                } else {
                    self.0.extend_from_slice(escape);
                }
                start = at + 1;
            }
            self.0.extend_from_slice(&bytes[start..]);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
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
            .map(|line| serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}")))
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
    fn text_is_escaped_as_json_whatever_it_holds() {
        let awkward = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \0 é ✓";
        let lines = capture(|| {
            let span = info_span!("outer", held = awkward, debugged = ?awkward);
            let _span = span.enter();
            info!(text = awkward, debug = ?awkward, error = &std::io::Error::other(awkward) as &(dyn std::error::Error + 'static), "{awkward}");
        });
        let line = &lines[0];
        assert_eq!(line["message"], awkward);
        assert_eq!(line["text"], awkward);
        assert_eq!(line["held"], awkward);
        assert_eq!(line["debug"], format!("{awkward:?}"));
        assert_eq!(line["debugged"], format!("{awkward:?}"));
        assert_eq!(line["error"], awkward);
    }

    #[test]
    fn numbers_and_booleans_keep_their_types_and_every_name_appears_once() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber =
            tracing_subscriber::registry().with(JsonLines::new(move || writer.clone()));
        tracing::subscriber::with_default(subscriber, || {
            let outer = info_span!("outer", shared = "outer", only_outer = 1_u64);
            let _outer = outer.enter();
            let inner = info_span!("inner", shared = "inner", ratio = 0.5_f64);
            let _inner = inner.enter();
            info!(negative = -3_i64, flag = true, nan = f64::NAN, "numbers");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(line["negative"], -3);
        assert_eq!(line["flag"], true);
        assert_eq!(line["nan"], Value::Null);
        assert_eq!(line["ratio"], 0.5);
        assert_eq!(line["only_outer"], 1);
        assert_eq!(line["shared"], "inner", "the innermost span wins: {text}");
        assert_eq!(text.matches("\"shared\"").count(), 1, "{text}");
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
