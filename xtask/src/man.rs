//! `cargo xtask man`: the man pages of the three binaries, rendered by `clap_mangen` from the same clap
//! definitions that parse their command lines (`homeboy::command`, `homeboy_broker::command`,
//! `homeboy_ingress::command`), written as `target/man/<name>.1` with one page per subcommand
//! (`homeboy-daemon-start.1`, ...). The tests render every page with `man -l`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::workspace_root;

/// The command lines that get man pages.
pub fn commands() -> Vec<clap::Command> {
    vec![
        homeboy::command(),
        homeboy_broker::command(),
        homeboy_ingress::command(),
    ]
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let dir = match args.first() {
        Some(dir) => PathBuf::from(dir),
        None => target_dir().join("man"),
    };
    let pages = write_pages(&dir)?;
    println!("xtask man: {} pages in {}", pages.len(), dir.display());
    Ok(())
}

/// `CARGO_TARGET_DIR`, else `<workspace>/target`.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Writes every page into `dir` (created) and returns their paths, sorted.
pub fn write_pages(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    for command in commands() {
        let name = command.get_name().to_string();
        clap_mangen::generate_to(command, dir)
            .with_context(|| format!("write the man pages of {name} in {}", dir.display()))?;
    }
    let mut pages: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "1"))
        .collect();
    pages.sort();
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn every_page_renders_with_man() {
        let dir = tempfile::tempdir().unwrap();
        let pages = write_pages(dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for expected in [
            "homeboy.1",
            "homeboy-broker.1",
            "homeboy-ingress.1",
            "homeboy-daemon-start.1",
            "homeboy-tunnel-service-start.1",
            "homeboy-server-connect.1",
            "homeboy-ingress-serve.1",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "no {expected} in {names:?}"
            );
        }
        assert!(pages.len() > 40, "only {} pages: {names:?}", pages.len());
        // Two at a time: man and groff are single-threaded and there are a hundred pages.
        let (even, odd): (Vec<_>, Vec<_>) = pages.iter().enumerate().partition(|(i, _)| i % 2 == 0);
        std::thread::scope(|scope| {
            for half in [even, odd] {
                scope.spawn(move || {
                    for (_, page) in half {
                        renders(page);
                    }
                });
            }
        });
    }

    /// `man -l page` succeeds without a warning and shows the page's name and sections.
    fn renders(page: &Path) {
        let out = Command::new("man")
            .arg("-l")
            .arg(page)
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8")
            .output()
            .expect("run man (Debian: apt-get install man-db; `.ci/run` does)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "man -l {}: {stderr}", page.display());
        assert!(
            stderr.trim().is_empty(),
            "man -l {} warned: {stderr}",
            page.display()
        );
        let title = page.file_stem().unwrap().to_string_lossy();
        for section in ["NAME", "SYNOPSIS"] {
            assert!(
                stdout.contains(section),
                "{}: no {section} section in\n{stdout}",
                page.display()
            );
        }
        assert!(
            stdout.contains(title.as_ref()),
            "{title} not named in\n{stdout}"
        );
    }
}
