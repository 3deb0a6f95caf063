//! The `homeboy` binary's command line: it parses, tells the truth in `--help` and `--version`, and refuses
//! unknown arguments with exit code 2. (Being an integration test, it also makes `cargo test` build the
//! binary that the end-to-end tests in `tests/` run.)

use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_homeboy"))
        .args(args)
        .output()
        .expect("run homeboy")
}

#[test]
fn version_and_help() {
    let out = run(&["--version"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("homeboy "));
    let out = run(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: homeboy"));
}

#[test]
fn unknown_arguments_exit_2() {
    let out = run(&["--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}
