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

/// The layers of docs/ARCHITECTURE.md's code map, bottom up: `(rank, crate names)`. The code map's first
/// table has a row `| <rank> | <layer> | `crate`, `crate` | ... |` per layer.
fn layers_from_doc() -> Vec<(u32, Vec<String>)> {
    let doc = std::fs::read_to_string(workspace_root().join("docs/ARCHITECTURE.md"))
        .expect("docs/ARCHITECTURE.md exists");
    let mut layers = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let Ok(rank) = cells[1].parse::<u32>() else {
            continue;
        };
        let crates = cells[3]
            .split(',')
            .map(|c| c.trim().trim_matches('`').to_string())
            .filter(|c| !c.is_empty())
            .collect();
        layers.push((rank, crates));
    }
    layers
}

/// `name → [(dependency name, kinds)]` for every workspace member, normal and build dependencies only.
fn workspace_edges(meta: &Value) -> Vec<(String, String)> {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let mut edges = Vec::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let id = node["id"].as_str().unwrap();
        if !members.contains(id) {
            continue;
        }
        for dep in node["deps"].as_array().unwrap() {
            let pkg = dep["pkg"].as_str().unwrap();
            if !members.contains(pkg) {
                continue;
            }
            let runtime = dep["dep_kinds"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kind"].is_null() || k["kind"] == "build");
            if runtime {
                edges.push((names[id].to_string(), names[pkg].to_string()));
            }
        }
    }
    edges
}

#[test]
fn dependencies_point_down_the_layers_of_the_architecture_doc() {
    let layers = layers_from_doc();
    assert!(
        layers.len() >= 6,
        "docs/ARCHITECTURE.md has no layer table: {layers:?}"
    );
    let rank: HashMap<&str, u32> = layers
        .iter()
        .flat_map(|(r, crates)| crates.iter().map(move |c| (c.as_str(), *r)))
        .collect();
    let meta = metadata();
    let members: Vec<&str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| {
            meta["workspace_members"]
                .as_array()
                .unwrap()
                .contains(&p["id"])
        })
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    let unplaced: Vec<&&str> = members.iter().filter(|m| !rank.contains_key(**m)).collect();
    assert!(
        unplaced.is_empty(),
        "workspace members missing from the layer table of docs/ARCHITECTURE.md: {unplaced:?}"
    );
    let edges = workspace_edges(&meta);
    assert!(edges.len() > 10, "edges look wrong: {edges:?}");
    let upward: Vec<String> = edges
        .iter()
        .filter(|(from, to)| rank[from.as_str()] <= rank[to.as_str()])
        .map(|(from, to)| {
            format!(
                "{from} (layer {}) -> {to} (layer {})",
                rank[from.as_str()],
                rank[to.as_str()]
            )
        })
        .collect();
    assert!(
        upward.is_empty(),
        "dependencies must point to a lower layer: {upward:#?}"
    );
}

/// The contract crate's own dependencies: serde, serde_json, thiserror (and time, if a wire type needs it).
const CONTRACT_ALLOWED: &[&str] = &["serde", "serde_json", "thiserror", "time"];
/// Optional dependencies behind a feature a downstream crate does not need: schemars (`schema`, the JSON
/// Schemas and the OpenAPI document, decision 0008).
const CONTRACT_OPTIONAL: &[&str] = &["schemars"];

#[test]
fn the_contract_crate_depends_only_on_its_allowed_set() {
    let meta = metadata();
    let api = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "homeboy-api")
        .expect("homeboy-api");
    let outside: Vec<&str> = api["dependencies"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["kind"].is_null())
        .filter(|d| {
            let name = d["name"].as_str().unwrap();
            let optional = d["optional"].as_bool() == Some(true);
            !(CONTRACT_ALLOWED.contains(&name) || optional && CONTRACT_OPTIONAL.contains(&name))
        })
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        outside.is_empty(),
        "homeboy-api may depend on {CONTRACT_ALLOWED:?} (and optionally {CONTRACT_OPTIONAL:?}) only, \
         found {outside:?}"
    );
}

/// Package names in `cargo tree -p <package> -e normal`: what that binary or library actually links.
fn linked(package: &str) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree", "-p", package, "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn each_binary_links_only_what_it_uses() {
    let checks: [(&str, &[&str]); 3] = [
        ("homeboy-ingress", &["redb", "quick-xml", "homeboy-jobs"]),
        ("homeboy-broker", &["reqwest"]),
        (
            "homeboy-api",
            &["tokio", "hyper", "axum", "reqwest", "redb", "tower"],
        ),
    ];
    for (package, forbidden) in checks {
        let tree = linked(package);
        assert!(
            tree.contains(package) && tree.len() > 1,
            "cargo tree -p {package} looks wrong: {tree:?}"
        );
        let found: Vec<&&str> = forbidden.iter().filter(|f| tree.contains(**f)).collect();
        assert!(found.is_empty(), "{package} links {found:?}");
    }
    let homeboy_in_api: Vec<String> = linked("homeboy-api")
        .into_iter()
        .filter(|p| p.starts_with("homeboy-") && p != "homeboy-api")
        .collect();
    assert!(
        homeboy_in_api.is_empty(),
        "homeboy-api depends on {homeboy_in_api:?}"
    );
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

/// `docs/openapi.json` is what the contract's types generate: a contract change is always a visible diff.
#[test]
fn the_committed_openapi_document_is_generated() {
    let path = workspace_root().join(crate::codegen::OPENAPI);
    let committed = std::fs::read_to_string(&path).expect("docs/openapi.json");
    assert!(
        committed == homeboy_api::openapi::document_text(),
        "{} is out of date with the contract's types: run `cargo xtask codegen` and commit the diff",
        path.display()
    );
}
