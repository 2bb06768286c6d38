//! Verifying a 12 KB body next to a bare `ring::hmac::sign` over the same bytes.
//!
//! The verifier should cost within 10% of the bare HMAC: parsing the header and comparing the tag are
//! tiny next to hashing 12 KB.

use std::hint::black_box;

use booty_signature::{Verifier, sign};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ring::hmac;

const SECRET: &[u8] = b"a webhook secret of ordinary length";

fn body() -> Vec<u8> {
    // A JSON-ish 12 KB body; the content does not change the cost of an HMAC, only its length does.
    let mut body = Vec::with_capacity(12 * 1024);
    while body.len() < 12 * 1024 {
        body.extend_from_slice(
            br#"{"action":"labeled","issue":{"number":1347,"title":"Found a bug"}},"#,
        );
    }
    body.truncate(12 * 1024);
    body
}

fn verify_12kb(c: &mut Criterion) {
    let body = body();
    let header = sign(SECRET, &body);
    let verifier = Verifier::new(SECRET).expect("non-empty secret");
    let rotated = Verifier::with_previous("the new secret", [SECRET]).expect("non-empty secrets");
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET);

    let mut group = c.benchmark_group("12KB");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("ring_hmac_sign", |b| {
        b.iter(|| hmac::sign(black_box(&key), black_box(&body)));
    });
    group.bench_function("verify", |b| {
        b.iter(|| verifier.verify(black_box(Some(header.as_bytes())), black_box(&body)));
    });
    group.bench_function("verify_previous_secret", |b| {
        b.iter(|| rotated.verify(black_box(Some(header.as_bytes())), black_box(&body)));
    });
    group.finish();
}

criterion_group!(benches, verify_12kb);
criterion_main!(benches);
