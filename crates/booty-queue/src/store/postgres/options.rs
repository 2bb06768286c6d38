//! What a [`PostgresStore`](super::PostgresStore) is told when it connects, and how connecting fails.

use std::time::Duration;

use crate::store::{BoxError, Retention};

/// How a [`PostgresStore`](super::PostgresStore) connects and what it keeps. Start from
/// `PostgresOptions::default()` and set fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The schema that holds booty's tables, created if missing: lowercase ASCII letters, digits and `_`,
    /// not starting with a digit, at most 63 bytes. `None` (the default) uses the connection's current
    /// schema (`public` unless the URL or the role says otherwise). Every process of one queue must name
    /// the same schema; queues in different schemas of one database do not see each other.
    pub schema: Option<String>,
    /// Connections this process keeps open at most, the one that listens for notifications included
    /// (default 10).
    pub max_connections: u32,
    /// How long an operation waits for a connection, and a submission for the insert lock (default 2 s).
    /// While the database is unreachable, or another process stalls holding that lock, a submission fails
    /// after this long, so the webhook is answered `503` and GitHub redelivers it later.
    pub acquire_timeout: Duration,
    /// How often idle workers look for work without being notified (default 1 s). Notifications wake them
    /// at once; the poll covers the ones lost with a connection and retries that fall due while another
    /// process holds the lane.
    pub poll_interval: Duration,
    /// How long the workers' operations (claim, renew, finish, taking back expired leases) keep retrying
    /// a lost or unreachable database before they report the error (default 10 s). Submissions and
    /// inspection retry a dropped connection once, at once, and never wait for an unreachable database.
    pub retry_for: Duration,
    /// Dedupe keys remembered after their job is gone and finished jobs kept (default
    /// [`Retention::default`]).
    pub retention: Retention,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(2),
            poll_interval: Duration::from_secs(1),
            retry_for: Duration::from_secs(10),
            retention: Retention::default(),
        }
    }
}

impl PostgresOptions {
    /// The first setting that cannot work, as `(field, why)`.
    pub(super) fn check(&self) -> Result<(), PostgresError> {
        if let Some(schema) = &self.schema {
            check_schema_name(schema)?;
        }
        let problem = if self.max_connections < 2 {
            Some((
                "max_connections",
                "must be at least 2 (one listens for notifications)",
            ))
        } else if self.acquire_timeout.is_zero() {
            Some(("acquire_timeout", "must be longer than zero"))
        } else if self.poll_interval.is_zero() {
            Some(("poll_interval", "must be longer than zero"))
        } else {
            None
        };
        match problem {
            Some((option, problem)) => Err(PostgresError::Option { option, problem }),
            None => Ok(()),
        }
    }
}

/// Schema names are spliced into `CREATE SCHEMA` and `search_path`, so only plain lowercase identifiers
/// pass: they need no quoting, and PostgreSQL folds nothing about them.
fn check_schema_name(schema: &str) -> Result<(), PostgresError> {
    let problem = if schema.is_empty() {
        Some("is empty")
    } else if schema.len() > 63 {
        Some("is longer than PostgreSQL's 63-byte identifier limit")
    } else if schema.starts_with(|c: char| c.is_ascii_digit()) {
        Some("starts with a digit")
    } else if !schema
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Some("may only hold lowercase ASCII letters, digits and `_`")
    } else if schema.starts_with("pg_") {
        Some("uses the `pg_` prefix PostgreSQL reserves")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(PostgresError::Schema {
            schema: schema.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// [`PostgresStore::connect`](super::PostgresStore::connect) failed. No message repeats the URL, which
/// may hold a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PostgresError {
    /// The URL is not a PostgreSQL connection URL.
    #[error("the store URL is not a valid PostgreSQL URL")]
    Url(#[source] BoxError),
    /// [`PostgresOptions::schema`] is not a name the store accepts.
    #[error("PostgreSQL schema `{schema}` {problem}")]
    Schema {
        /// The name given.
        schema: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Another setting of [`PostgresOptions`] cannot work.
    #[error("PostgreSQL store option `{option}` {problem}")]
    Option {
        /// The field of `PostgresOptions`.
        option: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The server could not be reached, refused the connection, or failed a query while the store set up.
    #[error("could not connect to PostgreSQL database `{database}` at {host}:{port}")]
    Connect {
        /// The host from the URL.
        host: String,
        /// The port from the URL.
        port: u16,
        /// The database from the URL (or the user name, PostgreSQL's default).
        database: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
    /// The embedded migrations could not be applied: a migration failed, or the database holds
    /// migrations this version of booty does not know (a newer booty ran against it).
    #[error("could not migrate the PostgreSQL store's tables in database `{database}`")]
    Migrate {
        /// The database from the URL.
        database: String,
        /// What went wrong.
        #[source]
        source: BoxError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_lowercase_identifiers() {
        for good in ["booty", "booty_queue_2", "_private", &"a".repeat(63)] {
            assert!(check_schema_name(good).is_ok(), "{good}");
        }
        let cases = [
            ("", "is empty"),
            ("Booty", "may only hold"),
            ("booty-queue", "may only hold"),
            ("booty\"; DROP TABLE x; --", "may only hold"),
            ("2booty", "starts with a digit"),
            ("pg_booty", "`pg_` prefix"),
        ];
        for (bad, why) in cases {
            let err = check_schema_name(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
            assert!(err.contains(&format!("`{bad}`")), "{err}");
        }
        let long = "a".repeat(64);
        assert!(check_schema_name(&long).is_err());
    }

    #[test]
    fn options_that_cannot_work_are_named() {
        let mut options = PostgresOptions::default();
        assert!(options.check().is_ok());
        options.max_connections = 1;
        let err = options.check().unwrap_err().to_string();
        assert!(err.contains("`max_connections`"), "{err}");
        options = PostgresOptions::default();
        options.poll_interval = Duration::ZERO;
        let err = options.check().unwrap_err().to_string();
        assert!(err.contains("`poll_interval`"), "{err}");
    }
}
