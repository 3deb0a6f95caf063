//! `cargo xtask bench <name>`: builds release binaries, then runs the named benchmark from the optimised
//! xtask binary. Every benchmark starts its baseline (a ceiling or a peer) in the same run and prints ratios,
//! because absolute figures drift between runs on small machines.

mod daemon;
pub mod hello;
mod jobs;
mod jobs_pg;
pub mod load;
mod origin;
mod preview;
mod preview_live;
mod reads;
pub mod report;
mod store_load;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use crate::workspace_root;

const BENCHES: &[&str] = &["daemon", "jobs", "jobs-pg", "origin", "preview", "reads"];

/// `cargo xtask bench [name...]`: build in release, then hand over to `target/release/xtask bench-exec`.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let names: Vec<String> = if args.is_empty() || args.iter().any(|a| a == "all") {
        BENCHES.iter().map(|s| s.to_string()).collect()
    } else {
        args.to_vec()
    };
    for name in &names {
        if !BENCHES.contains(&name.as_str()) {
            bail!("unknown benchmark {name:?}; choose from {BENCHES:?} or all");
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["build", "--release", "--bins", "--workspace"])
        .current_dir(workspace_root())
        .status()
        .context("build release binaries")?;
    if !status.success() {
        bail!("release build failed");
    }
    let status = Command::new(release_bin("xtask"))
        .arg("bench-exec")
        .args(&names)
        .status()
        .context("run the release xtask")?;
    if !status.success() {
        bail!("benchmark failed");
    }
    Ok(())
}

/// The optimised half: run each named benchmark.
pub fn exec(names: &[String]) -> anyhow::Result<()> {
    for name in names {
        match name.as_str() {
            "daemon" => daemon::run()?,
            "jobs" => jobs::run()?,
            "jobs-pg" => jobs_pg::run()?,
            "origin" => origin::run()?,
            "preview" => preview::run()?,
            "reads" => reads::run()?,
            other => bail!("unknown benchmark {other:?}"),
        }
    }
    Ok(())
}

/// `target/release/<name>`.
pub fn release_bin(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("release").join(name)
}
