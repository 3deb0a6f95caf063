//! Which artifact paths may be asked for: the one check, shared by `artifact-origin inspect` and every HTTP
//! request of `artifact-origin serve`, that a path stays inside the artifact root.
//!
//! Lexical rules (on the decoded path): no `..` segment, not absolute (`/etc/passwd`, `//etc/passwd` in a
//! URL), no backslash, no NUL byte, no empty segment except a trailing slash. URL paths are
//! percent-decoded once first, so `%2e%2e`, `%2E%2e%2f` and friends are caught the same way.
//!
//! Some paths pass those rules and are still not served ([`served`]): a dotfile or dot-directory
//! (`.env`, `.git/config`) — artifacts are published reports, and a dotfile in a bundle is a leftover, not
//! content — and a segment longer than a file name can be (`NAME_MAX`, 255 bytes). Symlinks that lead out
//! of the root are the path-safe opener's to refuse (`homeboy_config::beneath`), when the file is opened.

use std::borrow::Cow;

/// The longest file name a segment can be (Linux `NAME_MAX`).
pub const MAX_SEGMENT_BYTES: usize = 255;

/// The longest request path (as sent, percent-encoded) the origin reads: a longer one is 414. Linux
/// `PATH_MAX`; no file under the root has a longer path.
pub const MAX_URL_PATH_BYTES: usize = 4096;

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

/// Whether a checked root-relative path is one the origin serves at all (see the module docs); the refusal
/// says why not.
pub fn served(relative: &str) -> Result<(), Refused> {
    for segment in relative.split('/') {
        if segment.starts_with('.') {
            return Err(Refused(
                "names a dotfile or dot-directory, which the origin does not serve",
            ));
        }
        if segment.len() > MAX_SEGMENT_BYTES {
            return Err(Refused("has a segment longer than a file name can be"));
        }
    }
    Ok(())
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
    fn dotfiles_and_overlong_segments_are_not_served() {
        for ok in ["", "a/b.html", "dir/", "a.b/c..d", &"n".repeat(255)] {
            assert_eq!(served(ok), Ok(()), "{ok}");
        }
        for hidden in [
            ".env",
            "a/.git/config",
            ".well-known/x",
            "a/.",
            &"n".repeat(256),
        ] {
            assert!(served(hidden).is_err(), "{hidden}");
        }
    }
}
