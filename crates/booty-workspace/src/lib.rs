//! Workspaces for jobs.
//!
//! This crate will own shallow, single-branch clones with gix into fresh, isolated directories, the
//! `agent/issue-{n}` branch, in-memory credentials, time limits, cleanup on every path, and sweeping
//! leftovers of a crashed run.
