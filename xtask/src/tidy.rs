//! Tidy: tests that keep the tree honest (as in rust-analyzer's `xtask/src/tidy.rs`).
//!
//! - every `.rs` file under `crates/`, `bins/` and `xtask/` opens with a `//!` module doc;
//! - every workspace member takes its lints from the workspace (`[lints] workspace = true`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::shell::project_root;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The first line that is not blank and not an inner attribute must be a `//!` doc comment.
fn has_module_doc(text: &str) -> bool {
    text.lines()
        .map(str::trim_start)
        .find(|line| !line.is_empty() && !line.starts_with("#!["))
        .is_some_and(|line| line.starts_with("//!"))
}

fn members() -> Vec<PathBuf> {
    let root = project_root();
    let manifest = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let start = manifest
        .find("members = [")
        .expect("root Cargo.toml lists its members");
    let list = &manifest[start..manifest[start..].find(']').unwrap() + start];
    list.split('"')
        .skip(1)
        .step_by(2)
        .map(|member| root.join(member))
        .collect()
}

#[test]
fn every_rust_file_has_a_module_doc() {
    let root = project_root();
    let mut files = Vec::new();
    for dir in ["crates", "bins", "xtask"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 5,
        "tidy found too few files under {}",
        root.display()
    );
    let missing: Vec<_> = files
        .iter()
        .filter(|path| !has_module_doc(&fs::read_to_string(path).unwrap()))
        .map(|path| path.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "these files lack a `//!` module doc at the top: {missing:#?}"
    );
}

#[test]
fn every_member_takes_lints_from_the_workspace() {
    let members = members();
    assert!(
        members.len() >= 7,
        "expected the seven members, found {members:?}"
    );
    let mut offenders = Vec::new();
    for member in &members {
        let manifest = fs::read_to_string(member.join("Cargo.toml")).unwrap();
        let lints = manifest
            .split("\n[")
            .find(|section| section.starts_with("lints]"));
        let inherits = lints.is_some_and(|section| {
            section
                .lines()
                .skip(1)
                .any(|line| line.replace(' ', "") == "workspace=true")
        });
        if !inherits {
            offenders.push(member.display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "members without `[lints] workspace = true`: {offenders:#?}"
    );
}

#[test]
fn module_doc_detection() {
    assert!(has_module_doc("//! doc\nfn f() {}"));
    assert!(has_module_doc("\n#![allow(x)]\n//! doc"));
    assert!(!has_module_doc("/// item doc\nfn f() {}"));
    assert!(!has_module_doc("use std::fs;\n//! late"));
    assert!(!has_module_doc(""));
}
