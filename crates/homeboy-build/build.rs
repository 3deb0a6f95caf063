//! Stamps the build with `HOMEBOY_BUILD_ID`: the git short hash of the checkout, or `version+timestamp`
//! when the source is not a git checkout (a tarball build). `homeboy daemon start` compares it with the
//! running daemon's to decide whether to replace it.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    // Rebuild when HEAD moves (or first appears): HEAD itself, the branch refs, and packed refs.
    if let Some(git_dir) = git(&["rev-parse", "--git-dir"]) {
        println!(
            "cargo:rerun-if-changed={}",
            Path::new(&git_dir).join("HEAD").display()
        );
        if let Some(common) = git(&["rev-parse", "--git-common-dir"]) {
            let common = Path::new(&common);
            println!(
                "cargo:rerun-if-changed={}",
                common.join("refs/heads").display()
            );
            println!(
                "cargo:rerun-if-changed={}",
                common.join("packed-refs").display()
            );
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
    let build_id = git(&["rev-parse", "--short=7", "HEAD"]).unwrap_or_else(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("{}+{secs}", env!("CARGO_PKG_VERSION"))
    });
    println!("cargo:rustc-env=HOMEBOY_BUILD_ID={build_id}");
}
