//! Stamps the build with `HOMEBOY_BUILD_ID`: the git short hash of the checkout, or `version+timestamp`
//! when the source is not a git checkout (a tarball build). `homeboy daemon start` compares it with the
//! running daemon's to decide whether to replace it.

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
    let build_id = match git(&["rev-parse", "--short=7", "HEAD"]) {
        Some(hash) => {
            // Rebuild when HEAD moves: the HEAD file itself, the branch it names, and packed refs.
            for path in ["HEAD", "packed-refs"] {
                if let Some(p) = git(&["rev-parse", "--git-path", path]) {
                    println!("cargo:rerun-if-changed={p}");
                }
            }
            if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
                && let Some(p) = git(&["rev-parse", "--git-path", &branch])
            {
                println!("cargo:rerun-if-changed={p}");
            }
            hash
        }
        None => {
            println!("cargo:rerun-if-changed=build.rs");
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            format!("{}+{secs}", env!("CARGO_PKG_VERSION"))
        }
    };
    println!("cargo:rustc-env=HOMEBOY_BUILD_ID={build_id}");
}
