//! The HTTP edge: a hyper server that answers GitHub correctly under load, bad input and shutdown.
//!
//! placeholder
mod admin;
mod body;
mod config;
mod decode;
mod edge;
mod reply;
mod request_id;
mod server;
mod sink;
mod sniff;
mod traced;

pub use admin::{Admin, DEFAULT_JOB_LIMIT, JobInspector, JobView, MAX_JOB_LIMIT, serve_admin};
pub use config::{DEFAULT_MAX_BODY_BYTES, EdgeConfig, Limits};
pub use edge::{Edge, HEALTH_PATH, WEBHOOK_PATH, serve};
pub use reply::{REQUEST_ID_HEADER, ResponseBody};
pub use server::ServeError;
pub use sink::{Sink, SinkAnswer, Submission};
