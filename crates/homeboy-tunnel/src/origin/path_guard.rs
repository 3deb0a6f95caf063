//! Which artifact paths may be asked for: the one check, shared by `artifact-origin inspect` and every HTTP
//! request of `artifact-origin serve`, that a path stays inside the artifact root.
//!
//! Lexical rules (on the decoded path): no `..` segment, not absolute (`/etc/passwd`, `//etc/passwd` in a
//! URL), no backslash, no NUL byte, no empty segment except a trailing slash. URL paths are
//! percent-decoded once first, so `%2e%2e`, `%2E%2e%2f` and friends are caught the same way. Symlinks
//! that lead out of the root are a separate, filesystem-level check ([`escapes_root`]); the origin's file
//! backend additionally opens every file with `RESOLVE_BENEATH`, so no symlink can be followed out.

use std::borrow::Cow;
use std::path::Path;

/// Why a path was refused (for the one-line error and the HTTP 4xx body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// Checks an artifact-root-relative path as typed on the command line (no percent-decoding) and returns it
/// without leading `./` or surrounding slashes.
pub fn relative_path(raw: &str) -> Result<String, Refused> {
    if raw.starts_with('/') {
        return Err(Refused(
            "is absolute; give a path relative to the artifact root",
        ));
    }
    let trimmed = raw.trim_start_matches("./");
    check_segments(trimmed)?;
    Ok(trimmed.trim_end_matches('/').to_string())
}

/// Checks the path of an HTTP request (`/workflow-bench/x/report.html`) and returns it decoded, relative to
/// the root (`workflow-bench/x/report.html`; empty for `/`).
pub fn url_path(raw: &str) -> Result<String, Refused> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(Refused("does not start with '/'"));
    };
    let decoded: Cow<'_, str> = percent_encoding::percent_decode_str(rest)
        .decode_utf8()
        .map_err(|_| Refused("is not valid UTF-8 once percent-decoded"))?;
    if decoded.starts_with('/') {
        return Err(Refused("is absolute (it starts with '//')"));
    }
    check_segments(&decoded)?;
    Ok(decoded.into_owned())
}

fn check_segments(path: &str) -> Result<(), Refused> {
    if path.contains('\0') {
        return Err(Refused("contains a NUL byte"));
    }
    if path.contains('\\') {
        return Err(Refused("contains a backslash"));
    }
    let body = path.strip_suffix('/').unwrap_or(path);
    if body.is_empty() {
        return Ok(());
    }
    for segment in body.split('/') {
        match segment {
            ".." => {
                return Err(Refused(
                    "contains a '..' segment (it would leave the artifact root)",
                ));
            }
            "" => return Err(Refused("contains an empty segment ('//')")),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `relative` exists under `canonical_root` but resolves (through a symlink) to somewhere outside
/// it. A path that does not exist does not escape.
pub fn escapes_root(canonical_root: &Path, relative: &str) -> bool {
    match std::fs::canonicalize(canonical_root.join(relative)) {
        Ok(resolved) => !resolved.starts_with(canonical_root),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths() {
        assert_eq!(url_path("/").unwrap(), "");
        assert_eq!(url_path("/a/b%20c.html").unwrap(), "a/b c.html");
        assert_eq!(url_path("/dir/").unwrap(), "dir/");
        for bad in [
            "/../etc/passwd",
            "/a/../../x",
            "/%2e%2e/etc/passwd",
            "/%2E%2e%2Fetc%2fpasswd",
            "/a/%2e%2e",
            "//etc/passwd",
            "/%2fetc/passwd",
            "/a%5c..%5cx",
            "/a%00b",
            "/a//b",
            "relative",
            "/%ff",
        ] {
            assert!(url_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cli_paths() {
        assert_eq!(
            relative_path("./wb/x/report.html").unwrap(),
            "wb/x/report.html"
        );
        assert_eq!(relative_path("wb/x/").unwrap(), "wb/x");
        assert_eq!(relative_path("").unwrap(), "");
        for bad in ["/etc/passwd", "../x", "a/../../x", "a\\b"] {
            assert!(relative_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinks_out_of_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("inner")).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
        std::fs::write(root.join("inner/ok.txt"), "ok").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("leak.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("inner/ok.txt"), root.join("alias.txt")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        assert!(escapes_root(&root, "leak.txt"));
        assert!(!escapes_root(&root, "alias.txt"));
        assert!(!escapes_root(&root, "inner/ok.txt"));
        assert!(!escapes_root(&root, "missing.txt"));
    }
}
