//! An error with all its causes, for the log line of a `5xx`.

use std::error::Error;
use std::fmt;

/// Displays an error and every [`source`](Error::source) under it, joined by `: ` (`outer: inner:
/// innermost`), so a `503` behind a failing insert says why the insert failed.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("storing the job failed")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("database is locked")]
    struct Inner;

    #[test]
    fn every_cause_follows_the_error() {
        assert_eq!(
            Chain(&Outer(Inner)).to_string(),
            "storing the job failed: database is locked"
        );
        assert_eq!(Chain(&Inner).to_string(), "database is locked");
    }
}
