//! `cargo xtask ci`: the gate every change passes — formatting, clippy with warnings denied, the committed
//! generated files, cargo-deny's bans/licenses/sources checks, all tests, and the contract fuzzing.

use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace_root;

pub fn run() -> anyhow::Result<()> {
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ])?;
    // The committed generated files match the code (docs/openapi.json).
    crate::codegen::run(&["--check".to_string()])?;
    // Licences, sources and bans of every dependency (advisories need the network: left to operators).
    ensure_cargo_deny()?;
    cargo(&["deny", "check", "bans", "licenses", "sources"])?;
    cargo(&["test", "--workspace", "--no-fail-fast"])?;
    println!("xtask ci: all green");
    Ok(())
}

/// Installs cargo-deny from crates.io when this machine does not have it (a fresh clone must pass `ci`).
fn ensure_cargo_deny() -> anyhow::Result<()> {
    let program = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let present = Command::new(&program)
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|out| out.status.success());
    if present {
        return Ok(());
    }
    cargo(&["install", "cargo-deny", "--locked", "--quiet"])
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    println!("$ cargo {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .with_context(|| format!("run cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
