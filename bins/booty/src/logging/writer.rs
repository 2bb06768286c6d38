//! Log lines leave the request path: the thread that logs hands the line to a writer thread, which writes
//! whatever has gathered with one `write`.
//!
//! A delivery's `webhook_answered` line used to cost a `write(2)` to standard output on the runtime thread
//! that answered, and a wake-up of whoever reads the pipe: about a tenth of booty's CPU per delivery in a
//! profile under load (`perf record -g`, 16 connections). Now a line is queued (a bounded channel) and the
//! writer thread, woken by the first line, lets lines gather for 2 ms and writes them all at once; lines
//! queued while it gathers or writes wake nobody.
//!
//! **When the writer falls behind** (standard output blocked: a full pipe, a stalled log collector), the
//! queue fills up to [`QUEUED_LINES`] and further lines are dropped and counted rather than stalling the
//! webhook path, where a stall would turn into GitHub's 10 s timeout and lost deliveries. Once the writer
//! gets through again it writes a `log_lines_dropped` line (`warn`, `dropped`: how many since the last
//! such line). **At exit** [`flush`] waits for everything queued to be written. **At a crash** (`kill -9`,
//! an abort) what is still queued is lost: the lines of the last few milliseconds.

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How many lines may wait for the writer before new ones are dropped.
pub(crate) const QUEUED_LINES: usize = 65_536;

/// The most the writer gathers into one `write`.
const BATCH_BYTES: usize = 256 * 1024;

/// How long the writer lets lines gather after the first one arrives. While it waits (or writes) it is not
/// blocked on the queue, so a line sent meanwhile costs its sender no wake-up of the writer: under load
/// the writer wakes and writes about once per interval instead of once per line.
const GATHER: Duration = Duration::from_millis(2);

/// What the writer thread is sent.
enum Message {
    Line(Vec<u8>),
    /// Answer once everything sent before has been written.
    Flush(SyncSender<()>),
}

/// The handle every event's line goes through: cheap to clone, never blocks.
#[derive(Clone)]
pub(crate) struct Background {
    sender: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
    on_dropped: Arc<OnceLock<DropReport>>,
}

/// Where the writer reports how many lines it dropped, besides its `log_lines_dropped` line: a metric.
type DropReport = Box<dyn Fn(u64) + Send + Sync>;

/// The process's writer, for [`flush`].
static WRITER: OnceLock<Background> = OnceLock::new();

impl Background {
    /// Starts the writer thread writing to `out` and returns its handle; the first handle started is the
    /// one [`flush`] flushes.
    pub(crate) fn start<W: Write + Send + 'static>(out: W) -> io::Result<Self> {
        Self::start_with_capacity(out, QUEUED_LINES)
    }

    fn start_with_capacity<W: Write + Send + 'static>(out: W, lines: usize) -> io::Result<Self> {
        let (sender, receiver) = mpsc::sync_channel(lines);
        let dropped = Arc::new(AtomicU64::new(0));
        let on_dropped = Arc::new(OnceLock::new());
        let (counted, report) = (Arc::clone(&dropped), Arc::clone(&on_dropped));
        std::thread::Builder::new()
            .name("booty-log".to_owned())
            .spawn(move || write_lines(&receiver, out, &counted, &report))?;
        let writer = Self {
            sender,
            dropped,
            on_dropped,
        };
        let _ = WRITER.set(writer.clone());
        Ok(writer)
    }

    /// Queues one line (or drops and counts it when the queue is full).
    pub(crate) fn send(&self, line: Vec<u8>) {
        // A writer that is gone (it could not write at all) has nowhere to report to: only a full queue
        // is counted.
        if let Err(TrySendError::Full(_)) = self.sender.try_send(Message::Line(line)) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Also reports each batch of dropped lines to `report` (the first one set is kept).
    pub(crate) fn report_drops_to(&self, report: impl Fn(u64) + Send + Sync + 'static) {
        let _ = self.on_dropped.set(Box::new(report));
    }

    /// Waits up to `timeout` for every line queued so far to be written.
    pub(crate) fn flush(&self, timeout: Duration) {
        let (done, written) = mpsc::sync_channel(1);
        // Blocks while the queue is full, which is what a flush is for.
        if self.sender.send(Message::Flush(done)).is_ok() {
            let _ = written.recv_timeout(timeout);
        }
    }
}

/// Reports the process's dropped log lines to `report` too (the metric `booty_log_lines_dropped_total`).
pub(crate) fn report_drops_to(report: impl Fn(u64) + Send + Sync + 'static) {
    if let Some(writer) = WRITER.get() {
        writer.report_drops_to(report);
    }
}

/// Waits up to `timeout` for every log line queued so far to be written: call before the process exits.
pub(crate) fn flush(timeout: Duration) {
    if let Some(writer) = WRITER.get() {
        writer.flush(timeout);
    }
}

/// The writer thread: waits for a line, lets others gather for [`GATHER`], takes every one queued (up to
/// [`BATCH_BYTES`]), writes them with one call, reports drops, and answers flushes once what came before
/// them is written.
fn write_lines<W: Write>(
    receiver: &Receiver<Message>,
    mut out: W,
    dropped: &AtomicU64,
    on_dropped: &OnceLock<DropReport>,
) {
    let mut batch = Vec::with_capacity(BATCH_BYTES);
    let mut flushes = Vec::new();
    loop {
        let first = match receiver.recv_timeout(Duration::from_secs(1)) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        if matches!(first, Some(Message::Line(_))) {
            std::thread::sleep(GATHER);
        }
        let mut next = first;
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => batch.extend_from_slice(&line),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() >= BATCH_BYTES {
                break;
            }
            next = receiver.try_recv().ok();
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            batch.extend_from_slice(&dropped_line(lost));
            if let Some(report) = on_dropped.get() {
                report(lost);
            }
        }
        if !batch.is_empty() {
            // A log line that cannot be written has nowhere to be reported; dropping it beats panicking.
            let _ = out.write_all(&batch).and_then(|()| out.flush());
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// The `log_lines_dropped` line, in the JSON format of the other lines.
fn dropped_line(dropped: u64) -> Vec<u8> {
    let mut timestamp = String::with_capacity(32);
    let _ = tracing_subscriber::fmt::time::FormatTime::format_time(
        &tracing_subscriber::fmt::time::SystemTime,
        &mut tracing_subscriber::fmt::format::Writer::new(&mut timestamp),
    );
    let line = serde_json::json!({
        "timestamp": timestamp,
        "level": "WARN",
        "message": "log_lines_dropped",
        "dropped": dropped,
        "target": "booty::logging",
    });
    let mut out = serde_json::to_vec(&line).unwrap_or_default();
    out.push(b'\n');
    out
}

/// One event's line, handed to the writer when the formatter is done with it.
pub(crate) struct LineWriter {
    writer: Background,
    line: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.writer.send(std::mem::take(&mut self.line));
        }
    }
}

impl<'a> MakeWriter<'a> for Background {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            writer: self.clone(),
            line: Vec::with_capacity(256),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Standard output stand-in: records each `write_all` as one write, and can be held shut.
    #[derive(Clone, Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        gate: Arc<Mutex<()>>,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.writes.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_and_flush_waits_for_them() {
        let out = Recorder::default();
        let writer = Background::start_with_capacity(out.clone(), 1024).unwrap();
        for n in 0..500 {
            let mut line = writer.make_writer();
            writeln!(line, "{{\"n\":{n}}}").unwrap();
        }
        writer.flush(Duration::from_secs(10));
        let written: Vec<u8> = out.writes.lock().unwrap().concat();
        let text = String::from_utf8(written).unwrap();
        let numbers: Vec<u64> = text
            .lines()
            .map(|line| {
                serde_json::from_str::<serde_json::Value>(line).unwrap()["n"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(numbers, (0..500).collect::<Vec<u64>>());
    }

    #[test]
    fn a_blocked_output_drops_lines_counts_them_and_says_so_once_it_writes_again() {
        let out = Recorder::default();
        let shut = out.gate.lock().unwrap();
        let writer = Background::start_with_capacity(out.clone(), 4).unwrap();
        let reported = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&reported);
        writer.report_drops_to(move |lines| {
            counter.fetch_add(lines, Ordering::Relaxed);
        });
        // The writer takes the first line and blocks writing it; four more fill the queue; the rest drop.
        for n in 0..20 {
            writer.send(format!("{{\"n\":{n}}}\n").into_bytes());
            std::thread::sleep(Duration::from_millis(if n == 0 { 50 } else { 0 }));
        }
        drop(shut);
        // Once the writer is through, nothing is dropped any more.
        writer.flush(Duration::from_secs(10));
        writer.send(b"{\"n\":\"after\"}\n".to_vec());
        writer.flush(Duration::from_secs(10));
        let text = String::from_utf8(out.writes.lock().unwrap().concat()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let kept: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|line| line.get("n").is_some())
            .collect();
        let reports: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|line| line["message"] == "log_lines_dropped")
            .collect();
        assert_eq!(reports.len(), 1, "{text}");
        assert_eq!(reports[0]["level"], "WARN");
        let dropped = reports[0]["dropped"].as_u64().unwrap();
        // Every line is either written or counted, none twice.
        assert_eq!(kept.len() as u64 + dropped, 21, "{text}");
        assert!(
            dropped >= 15,
            "at most the first line and four queued ones fit: {text}"
        );
        assert_eq!(kept.last().unwrap()["n"], "after");
        assert_eq!(
            reported.load(Ordering::Relaxed),
            dropped,
            "the metric counts what the line says"
        );
    }
}
