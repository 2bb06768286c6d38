//! Test support: real repositories, real smart-HTTP servers, captured logs, real tmpfs mounts, and another
//! process holding a lock. The benchmark uses `repo` and `server` too.

pub(crate) mod holder;
pub(crate) mod logs;
pub(crate) mod repo;
pub(crate) mod server;
