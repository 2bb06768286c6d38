//! The job queue.
//!
//! This crate will own jobs and their states, dedupe by delivery id, per-issue ordering, the worker pool,
//! retries with backoff, graceful shutdown, and the stores behind one seam (memory, `SQLite`, `PostgreSQL`).
