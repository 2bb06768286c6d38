//! GitHub webhook deliveries and events.
//!
//! This crate will own the delivery headers (`X-GitHub-Event`, `X-GitHub-Delivery`, ...), payload decoding
//! (`application/json` and `application/x-www-form-urlencoded`), a typed event model that survives new GitHub
//! fields and actions, and trigger matching. It does no I/O and needs no runtime.
