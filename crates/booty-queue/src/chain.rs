//! Errors as log fields: an error and its sources on one line. Used by the engine and the stores alike,
//! so it depends on neither.

use std::error::Error;
use std::fmt;

/// Displays an error with its sources, `outer: inner: innermost`, for log fields.
pub(crate) struct Chain<'a>(pub(crate) &'a dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn chain_shows_every_source() {
        let err = StoreError::Backend {
            store: "sqlite",
            operation: "insert",
            source: "disk I/O error".into(),
        };
        assert_eq!(
            Chain(&err).to_string(),
            "sqlite store: insert failed: disk I/O error"
        );
    }
}
