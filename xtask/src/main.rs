//! `cargo xtask`: the project's chores in one binary.
//!
//! - `cargo xtask ci` — fmt check, clippy with `-D warnings`, the whole test suite (what `.ci/run` calls).
//! - `cargo xtask bench <name>` — builds release binaries and runs a benchmark that compares homeboy with a
//!   ceiling or peer started in the same run, printing ratios. Names: `daemon`, `jobs`, `origin`, `preview`.

mod bench;
mod ci;
#[cfg(test)]
mod tidy;

use std::path::PathBuf;

/// The same allocator as the homeboy binaries, so in-process store benchmarks measure what they run with.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::run(),
        Some("bench") => bench::run(&args[1..]),
        // Internal: the optimised half of `bench`, run from target/release.
        Some("bench-exec") => bench::exec(&args[1..]),
        Some("bench-hello") => bench::hello::serve(&args[1..]),
        _ => {
            eprintln!("usage: cargo xtask <ci | bench [daemon|jobs|origin|preview|all]>");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}
