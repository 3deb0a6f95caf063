//! Tidy tests: the architecture invariants of docs/ARCHITECTURE.md, checked under plain `cargo test`.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::workspace_root;

/// Crates that carry a transport; the contract crate must not reach them, even indirectly.
const TRANSPORT_CRATES: &[&str] = &["axum", "hyper", "tokio", "reqwest", "tower", "tower-http"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if name == "target" || name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ["crates", "bins", "xtask", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 10, "found only {} files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.strip_prefix(&root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a //! module doc: {missing:#?}"
    );
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata JSON")
}

/// Names of every package reachable from `root_name` through normal (non-dev, non-build) dependencies.
fn normal_closure(meta: &Value, root_name: &str) -> BTreeSet<String> {
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["id"].as_str().unwrap(), n))
        .collect();
    let root = names
        .iter()
        .find(|(_, name)| **name == root_name)
        .map(|(id, _)| *id)
        .unwrap_or_else(|| panic!("no package {root_name}"));
    let mut seen = BTreeSet::new();
    let mut stack = vec![root];
    while let Some(id) = stack.pop() {
        if !seen.insert(names[id].to_string()) && id != root {
            continue;
        }
        for dep in nodes[id]["deps"].as_array().unwrap() {
            let normal = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null());
            if normal {
                stack.push(dep["pkg"].as_str().unwrap());
            }
        }
    }
    seen
}

#[test]
fn the_contract_crate_has_no_transport_dependencies() {
    let meta = metadata();
    let closure = normal_closure(&meta, "homeboy-api");
    assert!(
        closure.contains("serde_json"),
        "closure looks wrong: {closure:?}"
    );
    let leaked: Vec<&&str> = TRANSPORT_CRATES
        .iter()
        .filter(|t| closure.contains(**t))
        .collect();
    assert!(
        leaked.is_empty(),
        "homeboy-api must stay transport-free, but depends on {leaked:?}"
    );
}

#[test]
fn library_crates_do_not_depend_on_anyhow() {
    let meta = metadata();
    for package in meta["packages"].as_array().unwrap() {
        let manifest = package["manifest_path"].as_str().unwrap();
        if !manifest.contains("/crates/") {
            continue;
        }
        let uses_anyhow = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "anyhow" && d["kind"].is_null());
        assert!(
            !uses_anyhow,
            "{} is a library crate and must use a thiserror enum, not anyhow",
            package["name"]
        );
    }
}

#[test]
fn architecture_doc_names_every_workspace_member() {
    let meta = metadata();
    let doc = std::fs::read_to_string(workspace_root().join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md exists");
    let members: Vec<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    for package in meta["packages"].as_array().unwrap() {
        if !members.contains(&package["id"].as_str().unwrap()) {
            continue;
        }
        let name = package["name"].as_str().unwrap();
        assert!(
            doc.contains(&format!("`{name}`")),
            "docs/ARCHITECTURE.md does not describe `{name}`"
        );
    }
}
