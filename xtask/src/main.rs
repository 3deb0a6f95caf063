//! `cargo xtask`: the project's chores in one binary.
//!
//! - `cargo xtask ci` — fmt check, clippy with `-D warnings`, the generated files' check, the whole test
//!   suite, schemathesis's contract fuzzing included (what `.ci/run` calls).
//! - `cargo xtask codegen [--check]` — writes (or checks) the committed generated files: `docs/openapi.json`.
//! - `cargo xtask bench <name>` — builds release binaries and runs a benchmark that compares homeboy with a
//!   ceiling or peer started in the same run, printing ratios. Names: `daemon`, `jobs`, `origin`, `preview`.
//! - `cargo xtask man [DIR]` — the man pages of `homeboy`, `homeboy-broker` and `homeboy-ingress` (one per
//!   subcommand), generated from their clap definitions into `target/man/` (or DIR).

mod bench;
mod ci;
mod codegen;
mod man;
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
        Some("codegen") => codegen::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("man") => man::run(&args[1..]),
        // Internal: the optimised half of `bench`, run from target/release.
        Some("bench-exec") => bench::exec(&args[1..]),
        Some("bench-hello") => bench::hello::serve(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | codegen [--check] | bench [daemon|jobs|jobs-pg|origin|preview|reads|all] | man [DIR]>"
            );
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
