//! Deciding on the real 12 KB `issues`/`labeled` payload, next to a bare `serde_json` parse of it.
//!
//! `minimal_struct` is the floor: `serde_json` into a struct holding only the issue number and the label name,
//! skipping everything else. `decide_trigger` is the fast path the edge runs (typed `IssuesEvent`, moved into
//! an `IssueTrigger`) and should stay within 2x of it; `event_decode` is the full `Event::decode`.

use std::hint::black_box;

use booty_event::{Decision, Event, TriggerRule};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::Deserialize;

const ISSUES_LABELED: &[u8] = include_bytes!("../tests/fixtures/issues.labeled.json");

#[derive(Deserialize)]
struct Minimal {
    issue: MinimalIssue,
    label: MinimalLabel,
}

#[derive(Deserialize)]
struct MinimalIssue {
    number: u64,
}

#[derive(Deserialize)]
struct MinimalLabel {
    name: String,
}

fn issues_labeled(c: &mut Criterion) {
    // The example's label is `bug`; a rule for it makes the payload a trigger.
    let rule = TriggerRule::new("bug").expect("non-empty label");
    assert!(matches!(
        rule.decide("issues", ISSUES_LABELED),
        Ok(Decision::Trigger(_))
    ));

    let mut group = c.benchmark_group("issues_labeled_12KB");
    group.throughput(Throughput::Bytes(ISSUES_LABELED.len() as u64));
    group.bench_function("minimal_struct", |b| {
        b.iter(|| {
            let minimal: Minimal =
                serde_json::from_slice(black_box(ISSUES_LABELED)).expect("valid fixture");
            (minimal.issue.number, minimal.label.name)
        });
    });
    group.bench_function("decide_trigger", |b| {
        b.iter(|| rule.decide(black_box("issues"), black_box(ISSUES_LABELED)));
    });
    group.bench_function("event_decode", |b| {
        b.iter(|| Event::decode(black_box("issues"), black_box(ISSUES_LABELED)));
    });
    group.finish();
}

criterion_group!(benches, issues_labeled);
criterion_main!(benches);
