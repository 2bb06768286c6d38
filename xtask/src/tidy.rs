//! Tidy: tests that keep the tree honest (as in rust-analyzer's `xtask/src/tidy.rs`).
//!
//! - every `.rs` file under `crates/`, `bins/` and `xtask/` opens with a `//!` module doc;
//! - every workspace member takes its lints from the workspace (`[lints] workspace = true`);
//! - layers point down: a member's `[dependencies]` name only the booty crates its row of the table in
//!   `docs/architecture.md` allows, and `booty-testkit` is never a normal dependency (as rust-analyzer's
//!   tidy checks its `Cargo.toml` rules);
//! - every publishable member can be packaged for a registry: a description, a licence, a readme that
//!   exists, and a version on every dependency on another member.

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

/// The entries of `section` (`dependencies`, `dev-dependencies`, ...) of a manifest: `name = ...` lines,
/// and `name.workspace = true` as `(name, "workspace = true")`.
fn entries<'a>(manifest: &'a str, section: &str) -> Vec<(&'a str, &'a str)> {
    let header = format!("{section}]");
    // The first section starts the file, without the newline the others follow.
    manifest
        .strip_prefix('[')
        .unwrap_or(manifest)
        .split("\n[")
        .filter(|part| part.starts_with(&header))
        .flat_map(|part| part.lines().skip(1))
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(
            |(name, value)| match name.trim().strip_suffix(".workspace") {
                Some(name) => (name, "workspace = true"),
                None => (name.trim(), value.trim()),
            },
        )
        .collect()
}

/// The package name of a member.
fn package_name(manifest: &str) -> &str {
    entries(manifest, "package")
        .into_iter()
        .find(|(key, _)| *key == "name")
        .map(|(_, value)| value.trim_matches('"'))
        .expect("every member has a package name")
}

/// docs/architecture.md's layer table: crate name to the booty crates it may depend on.
fn layers() -> Vec<(String, Vec<String>)> {
    let text = fs::read_to_string(project_root().join("docs/architecture.md")).unwrap();
    text.lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
            let allowed = cells.next()?;
            let allowed = allowed
                .split(',')
                .filter_map(|entry| entry.trim().strip_prefix('`')?.split('`').next())
                .map(str::to_owned)
                .collect();
            Some((name.to_owned(), allowed))
        })
        .filter(|(name, _)| name == "xtask" || name.starts_with("booty"))
        .collect()
}

#[test]
fn every_member_depends_only_on_the_layers_below_it() {
    let layers = layers();
    assert!(
        layers.len() >= 9,
        "the layer table was not found: {layers:?}"
    );
    let mut offences = Vec::new();
    for member in members() {
        let manifest = fs::read_to_string(member.join("Cargo.toml")).unwrap();
        let name = package_name(&manifest);
        let Some((_, allowed)) = layers.iter().find(|(layer, _)| layer == name) else {
            offences.push(format!(
                "{name} has no row in docs/architecture.md's layer table"
            ));
            continue;
        };
        for section in ["dependencies", "build-dependencies"] {
            for (dependency, _) in entries(&manifest, section) {
                if dependency.starts_with("booty") && !allowed.iter().any(|ok| ok == dependency) {
                    offences.push(format!("{name} depends on {dependency} ([{section}])"));
                }
            }
        }
    }
    assert!(offences.is_empty(), "layers broken: {offences:#?}");
}

#[test]
fn every_publishable_member_can_be_packaged() {
    let root = project_root();
    let workspace = fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let mut offences = Vec::new();
    for member in members() {
        let manifest = fs::read_to_string(member.join("Cargo.toml")).unwrap();
        let name = package_name(&manifest);
        let package = entries(&manifest, "package");
        let inherited = entries(&workspace, "workspace.package");
        // A field the member inherits has the workspace's value.
        let field = |key: &str| {
            let own = package.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)?;
            if own == "workspace = true" {
                inherited.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
            } else {
                Some(own)
            }
        };
        if field("publish") == Some("false") {
            continue;
        }
        for required in ["description", "license", "readme"] {
            if field(required).is_none() {
                offences.push(format!("{name}: no `{required}`"));
            }
        }
        if let Some(readme) = field("readme") {
            let readme = readme.trim_matches('"');
            if !member.join(readme).is_file() {
                offences.push(format!("{name}: readme {readme} does not exist"));
            }
        }
        for (dependency, value) in entries(&manifest, "dependencies") {
            let unversioned = value.contains("path") && !value.contains("version");
            let inherited_unversioned = value.contains("workspace = true")
                && entries(&workspace, "workspace.dependencies")
                    .iter()
                    .any(|(name, value)| {
                        *name == dependency && value.contains("path") && !value.contains("version")
                    });
            if unversioned || inherited_unversioned {
                offences.push(format!("{name}: {dependency} by path without a version"));
            }
        }
    }
    assert!(offences.is_empty(), "cannot be packaged: {offences:#?}");
}

#[test]
fn module_doc_detection() {
    assert!(has_module_doc("//! doc\nfn f() {}"));
    assert!(has_module_doc("\n#![allow(x)]\n//! doc"));
    assert!(!has_module_doc("/// item doc\nfn f() {}"));
    assert!(!has_module_doc("use std::fs;\n//! late"));
    assert!(!has_module_doc(""));
}
