//! Property tests of the artifact origin's request paths (issue 16): any request path — arbitrary text, or
//! one built from escape pieces (`..` plain and percent-encoded, encoded slashes and backslashes, NUL,
//! dotfiles, symlinks out of the root, over-long segments) — goes through the origin's own guard and lookup
//! over a real directory tree. The properties: never panics, never serves a byte from outside the root or
//! from a dotfile, and what is served is the file the decoded path names.

use std::io::Read;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use super::backend::{Lookup, RootedBackend};
use super::path_guard::{served, url_path};

fn tree() -> (tempfile::TempDir, std::path::PathBuf) {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("root");
    std::fs::create_dir_all(root.join("d/.git")).unwrap();
    std::fs::write(base.path().join("secret.txt"), "OUTSIDE").unwrap();
    std::fs::write(root.join("a.txt"), "INSIDE a.txt").unwrap();
    std::fs::write(root.join("index.html"), "INSIDE index.html").unwrap();
    std::fs::write(root.join("d/b.txt"), "INSIDE d/b.txt").unwrap();
    std::fs::write(root.join("d/index.html"), "INSIDE d/index.html").unwrap();
    std::fs::write(root.join(".env"), "DOTFILE").unwrap();
    std::fs::write(root.join("d/.git/config"), "DOTFILE").unwrap();
    std::os::unix::fs::symlink("../secret.txt", root.join("out")).unwrap();
    std::os::unix::fs::symlink("..", root.join("up")).unwrap();
    std::os::unix::fs::symlink(base.path(), root.join("absdir")).unwrap();
    (base, root)
}

fn request_paths() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        Just("..".to_string()),
        Just("%2e%2e".to_string()),
        Just("%2E%2e".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("a.txt".to_string()),
        Just("d".to_string()),
        Just("b.txt".to_string()),
        Just("index.html".to_string()),
        Just(".env".to_string()),
        Just("%2eenv".to_string()),
        Just(".git".to_string()),
        Just("config".to_string()),
        Just("secret.txt".to_string()),
        Just("out".to_string()),
        Just("up".to_string()),
        Just("absdir".to_string()),
        Just("root".to_string()),
        Just("%2f".to_string()),
        Just("%5c".to_string()),
        Just("%00".to_string()),
        Just("%ff".to_string()),
        Just("n".repeat(256)),
    ];
    prop_oneof![
        proptest::collection::vec(segment, 0..6).prop_map(|s| format!("/{}", s.join("/"))),
        "/[ -~]{0,40}",
        any::<String>(),
    ]
}

/// One tree for every case (building one per case cost more than the lookups under test).
#[test]
fn request_paths_never_leave_the_root_or_reach_a_dotfile() {
    let (_base, root) = tree();
    let backend = RootedBackend::new(&root).unwrap();
    let config = ProptestConfig {
        cases: 4000,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    TestRunner::new(config)
        .run(&request_paths(), |raw| {
            let Ok(relative) = url_path(&raw) else {
                return Ok(());
            };
            prop_assert!(!relative.starts_with('/'));
            prop_assert!(
                !relative.split('/').any(|s| s == ".."),
                "{raw:?} → {relative:?}"
            );
            if served(&relative).is_err() {
                return Ok(());
            }
            if let Lookup::File {
                mut file, served, ..
            } = backend.lookup(&relative)
            {
                let mut text = String::new();
                file.read_to_string(&mut text).unwrap();
                prop_assert_eq!(text, format!("INSIDE {served}"), "{:?}", raw);
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
}
