//! Property tests of the one path-safe opener (issue 16): paths built from every piece that has ever led
//! out of a root — `..`, absolute paths, symlinks to outside files and directories, absolute symlinks,
//! symlink loops, `.` and empty segments — are opened under a real directory tree, through `openat2` and
//! through the fallback walk. The properties: never a byte from outside the root, and both strategies
//! agree on every path (the same file, or a refusal of the same kind).

use std::io::Read;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use crate::beneath::{RootDir, Strategy as Resolve};
use crate::error::BeneathError;

/// `base/secret.txt` (outside), and under `base/root`: files, a directory, and symlinks that stay inside,
/// leave it (relative and absolute), or loop. Every file inside starts with `INSIDE`.
fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    std::fs::create_dir_all(root.join("d/e")).unwrap();
    std::fs::write(base.path().join("secret.txt"), "OUTSIDE").unwrap();
    std::fs::write(root.join("a.txt"), "INSIDE a").unwrap();
    std::fs::write(root.join("d/b.txt"), "INSIDE b").unwrap();
    std::fs::write(root.join("d/e/c.txt"), "INSIDE c").unwrap();
    let link =
        |target: &Path, name: &str| std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    link(Path::new("../secret.txt"), "out");
    link(&base.path().join("secret.txt"), "abs");
    link(Path::new(".."), "up");
    link(base.path(), "absdir");
    link(Path::new("d/b.txt"), "in");
    link(Path::new("d"), "indir");
    link(Path::new("loop"), "loop");
    link(Path::new("e/../../out"), "d/sneaky");
    (base, root)
}

/// Paths made of the tree's names and the pieces of escapes.
fn paths() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just(".."),
        Just("."),
        Just(""),
        Just("a.txt"),
        Just("d"),
        Just("e"),
        Just("b.txt"),
        Just("c.txt"),
        Just("secret.txt"),
        Just("root"),
        Just("out"),
        Just("abs"),
        Just("up"),
        Just("absdir"),
        Just("in"),
        Just("indir"),
        Just("loop"),
        Just("sneaky"),
        Just("missing"),
    ];
    (
        any::<bool>(),
        proptest::collection::vec(segment, 1..7),
        any::<bool>(),
    )
        .prop_map(|(absolute, segments, trailing)| {
            let mut path = segments.join("/");
            if absolute {
                path.insert(0, '/');
            }
            if trailing {
                path.push('/');
            }
            path
        })
}

/// What an open came to: the file's content, or the kind of refusal.
fn outcome(root: &RootDir, path: &str) -> Result<String, &'static str> {
    match root.open_regular(path) {
        Ok((mut file, _)) => {
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            Ok(text)
        }
        Err(BeneathError::Escapes { .. }) => Err("escapes"),
        Err(BeneathError::Missing { .. }) => Err("missing"),
        Err(BeneathError::Directory { .. }) => Err("directory"),
        Err(BeneathError::NotAFile { .. }) => Err("not a file"),
        Err(BeneathError::Denied { .. }) => Err("denied"),
        Err(BeneathError::Io { .. }) => Err("io"),
    }
}

/// One tree for every case (building one per case cost more than the opens under test).
#[test]
fn never_a_byte_from_outside_the_root_and_both_strategies_agree() {
    let (_base, root_path) = tree();
    let kernel = RootDir::open(&root_path).unwrap();
    let walk = RootDir::open(&root_path)
        .unwrap()
        .with_strategy(Resolve::Walk);
    let config = ProptestConfig {
        cases: 4000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    TestRunner::new(config)
        .run(&paths(), |path| {
            let by_kernel = outcome(&kernel, &path);
            let by_walk = outcome(&walk, &path);
            for text in [&by_kernel, &by_walk].into_iter().flatten() {
                prop_assert!(text.starts_with("INSIDE"), "{path:?} read {text:?}");
            }
            prop_assert_eq!(by_kernel, by_walk, "{:?}", path);
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}
