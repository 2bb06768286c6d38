//! Reading back what a library logged: a subscriber for this thread whose output a test can search.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::subscriber::DefaultGuard;
use tracing_subscriber::fmt::format::FmtSpan;

/// What was logged while a [`capture_logs`] guard lived.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything logged so far, one line per event (span closings included).
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// Captures what this thread logs, in tracing-subscriber's plain format without colours and with a line
/// for each closed span, until the guard drops. Use it on a current-thread runtime (`#[tokio::test]`'s
/// default), where everything the test drives logs on its thread.
pub fn capture_logs() -> (Captured, DefaultGuard) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_span_events(FmtSpan::CLOSE)
        .finish();
    (captured, tracing::subscriber::set_default(subscriber))
}

/// The first logged line holding `message`.
///
/// # Panics
/// When no line holds it; the message shows the whole log.
pub fn line_with<'log>(log: &'log str, message: &str) -> &'log str {
    log.lines()
        .find(|line| line.contains(message))
        .unwrap_or_else(|| panic!("no {message} line in:\n{log}"))
}
