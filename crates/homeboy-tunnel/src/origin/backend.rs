//! The origin's handle on the artifact root: which file answers a request path. Every open goes through the
//! workspace's one path-safe opener (`homeboy_config::beneath`, `openat2(RESOLVE_BENEATH)` or its fallback
//! walk), so no `..` or symlink leads out of the root and there is no check-then-open race; only regular
//! files open (a FIFO or device under the root is refused without blocking the worker).
//!
//! A path ending in `/` (or the root, `/`) is served by its `index.html`; a directory named without the
//! slash is redirected to it, so relative links inside its index resolve. Everything HTTP is
//! [`super::http`]'s and `homeboy_http::files`'.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

use homeboy_config::{BeneathError, RootDir};

/// Opens files beneath one root directory. Cheap to clone (the handle is shared).
#[derive(Debug, Clone)]
pub struct RootedBackend {
    root: RootDir,
}

/// What a request path leads to.
#[derive(Debug)]
pub enum Lookup {
    /// A regular file, with the root-relative path it was opened by (`dir/index.html` for `dir/`).
    File {
        file: File,
        metadata: Metadata,
        served: String,
    },
    /// A directory named without its trailing `/`.
    Directory,
    /// Nothing servable: the opener's refusal.
    Refused(BeneathError),
}

impl RootedBackend {
    /// Opens the (canonical) root directory.
    pub fn new(canonical_root: &Path) -> io::Result<Self> {
        Ok(RootedBackend {
            root: RootDir::open(canonical_root)?,
        })
    }

    /// The same backend opening through `root` (a test forces the opener's fallback this way).
    #[cfg(test)]
    pub fn with_root(root: RootDir) -> Self {
        RootedBackend { root }
    }

    /// The file that answers `relative` (a checked, decoded root-relative path; empty for the root).
    pub fn lookup(&self, relative: &str) -> Lookup {
        let served = if relative.is_empty() || relative.ends_with('/') {
            format!("{relative}index.html")
        } else {
            relative.to_string()
        };
        match self.root.open_regular(&served) {
            Ok((file, metadata)) => Lookup::File {
                file,
                metadata,
                served,
            },
            Err(BeneathError::Directory { .. }) if served == relative => Lookup::Directory,
            Err(refused) => Lookup::Refused(refused),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeboy_config::beneath::Strategy;
    use std::io::Read;

    #[test]
    fn files_index_files_directories_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("d/bare")).unwrap();
        std::fs::write(root.join("d/a.txt"), "hello").unwrap();
        std::fs::write(root.join("d/index.html"), "<p>index</p>").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("d/leak")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        for backend in [
            RootedBackend::new(&root).unwrap(),
            RootedBackend::with_root(RootDir::open(&root).unwrap().with_strategy(Strategy::Walk)),
        ] {
            let read = |relative: &str| match backend.lookup(relative) {
                Lookup::File {
                    mut file, served, ..
                } => {
                    let mut text = String::new();
                    file.read_to_string(&mut text).unwrap();
                    format!("{served}={text}")
                }
                Lookup::Directory => "directory".to_string(),
                Lookup::Refused(e) => format!("{e:?}").split_whitespace().next().unwrap().into(),
            };
            assert_eq!(read("d/a.txt"), "d/a.txt=hello");
            assert_eq!(read("d/"), "d/index.html=<p>index</p>");
            assert_eq!(read("d"), "directory");
            assert_eq!(read("d/bare/"), "Missing");
            assert_eq!(read(""), "Missing");
            assert_eq!(read("d/leak"), "Escapes");
            assert_eq!(read("d/a.txt/"), "Missing");
        }
    }
}
