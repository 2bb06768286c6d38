//! One 12 KB `issues.labeled` delivery through `Edge::handle` (no socket) to a sink that routes it as
//! booty-service's does, next to its two big parts measured alone: the HMAC over the body and
//! booty-event's trigger decision (which the sink makes).
//!
//! The difference between `handle` and the sum of the parts is what the edge itself costs per request:
//! routing, reading the body into one buffer, the span, the sink call and the JSON answer.

use std::hint::black_box;
use std::sync::Arc;

use booty_edge::{Edge, EdgeConfig};
use booty_event::TriggerRule;
use booty_signature::{Verifier, sign};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http_body_util::Full;
use hyper::Request;
use hyper::body::Bytes;

#[path = "support/accept.rs"]
mod accept;

use accept::Accept;

const SECRET: &str = "a webhook secret of ordinary length";
const FIXTURE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../booty-event/tests/fixtures/issues.labeled.json"
));

fn delivery(body: &Bytes, signature: &str) -> Request<Full<Bytes>> {
    Request::post("/webhooks/github")
        .header("x-github-event", "issues")
        .header("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
        .header("content-type", "application/json")
        .header("user-agent", "GitHub-Hookshot/044aadd")
        .header("x-hub-signature-256", signature)
        .body(Full::new(body.clone()))
        .expect("a valid request")
}

fn handle_12kb(c: &mut Criterion) {
    let body = Bytes::from_static(FIXTURE);
    let signature = sign(SECRET.as_bytes(), &body);
    let verifier = Verifier::new(SECRET).expect("non-empty secret");
    let rule = TriggerRule::new("bug").expect("non-empty label");
    let edge = Edge::new(
        EdgeConfig::new(verifier.clone()),
        Arc::new(Accept(rule.clone())),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");

    let mut group = c.benchmark_group("issues.labeled 12KB");
    group.bench_function("verify", |b| {
        b.iter(|| verifier.verify(black_box(Some(signature.as_bytes())), black_box(&body)));
    });
    group.bench_function("decide", |b| {
        b.iter(|| rule.decide(black_box("issues"), black_box(&body)));
    });
    group.bench_function("edge_handle", |b| {
        b.iter_batched(
            || delivery(&body, &signature),
            |request| {
                let response = runtime.block_on(edge.handle(request));
                assert_eq!(response.status(), 202);
                response
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, handle_12kb);
criterion_main!(benches);
