//! The HTTP edge.
//!
//! This crate will own the hyper server: routes, limits, status codes, correlation ids and graceful
//! shutdown. It verifies signatures with `booty-signature`, decodes with `booty-event`, and hands triggers
//! to a sink trait; it does not know the queue.
