//! Integration tests for booty-event, on the real payloads of `@octokit/webhooks-examples` (vendored under
//! `tests/fixtures/`, refreshed by `cargo xtask fixtures`; nothing here touches the network).

mod corpus;
mod delivery;
mod payload;
mod trigger;

use std::path::PathBuf;

use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The real `issues`/`labeled` payload, byte for byte as GitHub would send it.
fn issues_labeled() -> Vec<u8> {
    std::fs::read(fixtures().join("issues.labeled.json"))
        .expect("tests/fixtures/issues.labeled.json is vendored")
}

/// One example of the corpus: the event name, its position among that event's examples, the parsed JSON
/// (to compare against) and the bytes given to the decoder.
struct Example {
    event: String,
    index: usize,
    raw: Value,
    bytes: Vec<u8>,
}

impl Example {
    fn id(&self) -> String {
        format!("{}[{}]", self.event, self.index)
    }
}

/// Every example of `api.github.com/index.json`, in order.
fn corpus() -> Vec<Example> {
    let path = fixtures().join("octokit-webhooks-examples/api.github.com/index.json");
    let bytes =
        std::fs::read(path).expect("the corpus is vendored; `cargo xtask fixtures` restores it");
    let index: Vec<Value> = serde_json::from_slice(&bytes).expect("index.json is a JSON array");
    let mut examples = Vec::new();
    for entry in index {
        let event = entry["name"]
            .as_str()
            .expect("every entry has a name")
            .to_owned();
        let list = entry["examples"]
            .as_array()
            .expect("every entry has examples");
        for (index, raw) in list.iter().enumerate() {
            examples.push(Example {
                event: event.clone(),
                index,
                bytes: serde_json::to_vec(raw).expect("a Value serializes"),
                raw: raw.clone(),
            });
        }
    }
    examples
}

/// `application/x-www-form-urlencoded` encoding of one value, as a browser or Ruby's `URI.encode_www_form`
/// does it: unreserved bytes as they are, space as `+`, everything else as `%XX`.
fn form_encode(value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() * 3);
    for &byte in value {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => out.push(byte),
            b' ' => out.push(b'+'),
            _ => out.extend_from_slice(format!("%{byte:02X}").as_bytes()),
        }
    }
    out
}

/// `payload=<value, form-encoded>`.
fn form_body(json: &[u8]) -> Vec<u8> {
    let mut body = b"payload=".to_vec();
    body.extend(form_encode(json));
    body
}

/// The fixture with one top-level field replaced (or removed, for `None`).
fn issues_labeled_with(field: &str, value: Option<Value>) -> Vec<u8> {
    let mut raw: Value = serde_json::from_slice(&issues_labeled()).expect("the fixture is JSON");
    let object = raw.as_object_mut().expect("the fixture is an object");
    match value {
        Some(value) => object.insert(field.to_owned(), value),
        None => object.remove(field),
    };
    serde_json::to_vec(&raw).expect("a Value serializes")
}
