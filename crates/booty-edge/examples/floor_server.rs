//! The floor under the edge: the least a server can do for the same deliveries, so `cargo xtask bench`
//! can show what the edge (and booty on top of it) adds to what this machine allows.
//!
//! ```text
//! floor_server --secret SECRET --label LABEL --payload FILE
//! ```
//!
//! The same command line and output as `ingest_server`. It is a bare hyper 1 HTTP/1.1 server on a
//! current-thread runtime: the HMAC of the body (ring, through booty-signature), a serde decode of the
//! four fields a trigger needs, a bounded in-memory dedupe of delivery ids, a short JSON answer; no
//! timeouts, no HTTP/2, no connection limits, no logging and no checks of the headers beyond what the
//! work needs. Not a server to run: a measuring stick.

#![allow(
    clippy::print_stdout,
    reason = "an example program that reports its address to the process that started it"
)]

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::convert::Infallible;
use std::rc::Rc;

use booty_event::DEFAULT_TRIGGER_LABEL;
use booty_signature::Verifier;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

#[path = "../benches/support/bench_server.rs"]
mod bench_server;

/// How many delivery ids the dedupe remembers.
const REMEMBERED: usize = 100_000;

/// The fields of an `issues` payload a trigger needs, and nothing else.
#[derive(Deserialize)]
struct Trigger<'a> {
    #[serde(borrow)]
    action: &'a str,
    label: Option<Label<'a>>,
    issue: Issue,
    #[serde(borrow)]
    repository: Repository<'a>,
}

#[derive(Deserialize)]
struct Label<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
}

#[derive(Deserialize)]
struct Issue {
    number: u64,
}

#[derive(Deserialize)]
struct Repository<'a> {
    #[serde(borrow)]
    full_name: &'a str,
}

/// Delivery ids seen, oldest first, at most [`REMEMBERED`].
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    /// Whether `id` is new (and now remembered).
    fn insert(&mut self, id: &str) -> bool {
        if self.ids.contains(id) {
            return false;
        }
        if self.order.len() == REMEMBERED
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }
}

struct Floor {
    verifier: Verifier,
    label: String,
    seen: RefCell<Seen>,
}

impl Floor {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let Ok(body) = body
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
        else {
            return reply(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"broken body\"}".to_owned(),
            );
        };
        let signature = parts
            .headers
            .get("x-hub-signature-256")
            .map(hyper::header::HeaderValue::as_bytes);
        if self.verifier.verify(signature, &body).is_err() {
            return reply(
                StatusCode::FORBIDDEN,
                "{\"error\":\"bad signature\"}".to_owned(),
            );
        }
        let Some(delivery) = parts
            .headers
            .get("x-github-delivery")
            .and_then(|value| value.to_str().ok())
        else {
            return reply(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"no delivery\"}".to_owned(),
            );
        };
        let Ok(trigger) = serde_json::from_slice::<Trigger<'_>>(&body) else {
            return reply(
                StatusCode::BAD_REQUEST,
                "{\"error\":\"bad payload\"}".to_owned(),
            );
        };
        let labeled = trigger.action == "labeled"
            && trigger.label.is_some_and(|label| label.name == self.label);
        if !labeled {
            return reply(StatusCode::OK, "{\"status\":\"ignored\"}".to_owned());
        }
        if !self.seen.borrow_mut().insert(delivery) {
            return reply(StatusCode::OK, "{\"status\":\"duplicate\"}".to_owned());
        }
        let job = format!(
            "{{\"status\":\"accepted\",\"job_id\":\"{}#{}-{delivery}\"}}",
            trigger.repository.full_name, trigger.issue.number
        );
        reply(StatusCode::ACCEPTED, job)
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = bench_server::Args::parse()?;
    let floor = Rc::new(Floor {
        verifier: Verifier::new(&args.secret)?,
        label: (args.label.as_deref())
            .unwrap_or(DEFAULT_TRIGGER_LABEL)
            .to_owned(),
        seen: RefCell::default(),
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        args.announce(listener.local_addr()?)?;
        let mut stdin_closed = bench_server::stdin_closed();
        loop {
            let stream = tokio::select! {
                _ = &mut stdin_closed => return Ok(()),
                accepted = listener.accept() => accepted?.0,
            };
            stream.set_nodelay(true)?;
            let floor = Rc::clone(&floor);
            tokio::task::spawn_local(async move {
                let service = service_fn(move |request| {
                    let floor = Rc::clone(&floor);
                    async move { Ok::<_, Infallible>(floor.answer(request).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
