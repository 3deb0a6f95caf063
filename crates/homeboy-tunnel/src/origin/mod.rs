//! The artifact origin: `homeboy tunnel artifact-origin status|inspect|serve`.
//!
//! The origin serves the artifact root (`HOMEBOY_ARTIFACT_ROOT`, else `<data>/artifacts`) as a static,
//! CORS-enabled HTTP origin. A public URL maps directly from the root-relative path:
//! `<root>/workflow-bench/<bundle>/report.html` → `${HOMEBOY_PUBLIC_ARTIFACT_BASE_URL}/workflow-bench/<bundle>/report.html`.
//! `status` and `inspect` show that mapping without starting anything; `serve` ([`server`]) answers
//! requests. The same [`path_guard`] decides, for both, which paths are allowed.

mod backend;
mod http;
pub mod path_guard;
#[cfg(test)]
mod proptests;
pub mod server;

use std::path::{Path, PathBuf};

use homeboy_config::{BeneathError, Paths, RootDir};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use rustix::fs::OFlags;
use serde::Serialize;

use crate::TunnelError;
use crate::declarations::check_http_url;

/// The variable holding the public base URL.
pub const PUBLIC_BASE_ENV: &str = "HOMEBOY_PUBLIC_ARTIFACT_BASE_URL";

/// Characters escaped in one URL path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The root and its public base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginConfig {
    pub root: PathBuf,
    pub public_base_url: Option<String>,
}

impl OriginConfig {
    /// The root from `paths` and the public base from `public_base` (normally the value of
    /// [`PUBLIC_BASE_ENV`]); an empty base counts as unset, a malformed one is refused.
    pub fn new(paths: &Paths, public_base: Option<String>) -> Result<Self, TunnelError> {
        let public_base_url = public_base.filter(|b| !b.trim().is_empty());
        if let Some(base) = &public_base_url {
            check_http_url(PUBLIC_BASE_ENV, base)?;
        }
        Ok(OriginConfig {
            root: paths.artifact_root().to_path_buf(),
            public_base_url,
        })
    }

    /// The public URL of a root-relative path, when a public base is configured.
    pub fn public_url(&self, relative: &str) -> Option<String> {
        let base = self.public_base_url.as_deref()?.trim_end_matches('/');
        let encoded: Vec<String> = relative
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
            .collect();
        Some(format!("{base}/{}", encoded.join("/")))
    }
}

/// What `artifact-origin status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct OriginStatus {
    pub root: PathBuf,
    pub root_exists: bool,
    /// Entries directly under the root (0 when it does not exist).
    pub root_entries: usize,
    pub public_base_url: Option<String>,
    pub public_base_env: &'static str,
    /// `<root>/<path> -> <base>/<path>`.
    pub mapping: String,
}

/// The configured root and URL mapping; starts nothing.
pub fn status(config: &OriginConfig) -> OriginStatus {
    let entries = std::fs::read_dir(&config.root).map(|d| d.count());
    OriginStatus {
        root: config.root.clone(),
        root_exists: config.root.is_dir(),
        root_entries: entries.unwrap_or(0),
        public_base_url: config.public_base_url.clone(),
        public_base_env: PUBLIC_BASE_ENV,
        mapping: format!(
            "{}/<path> -> {}/<path>",
            config.root.display(),
            config.public_base_url.as_deref().map_or(
                "(no public base: set HOMEBOY_PUBLIC_ARTIFACT_BASE_URL)",
                |b| b.trim_end_matches('/')
            )
        ),
    }
}

/// What `artifact-origin inspect <path>` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The root-relative path.
    pub path: String,
    pub file_path: PathBuf,
    pub exists: bool,
    /// `file`, `directory` or `missing`.
    pub kind: &'static str,
    /// For a directory, the size of the `index.html` the origin would serve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
    /// The `Content-Type` the origin serves it with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// For a directory: whether it has the `index.html` the origin serves for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_html: Option<bool>,
    pub public_url: Option<String>,
}

/// Inspects one root-relative path with the origin's own rules: traversal, symlinks out of the root and
/// paths the origin does not serve (dotfiles, over-long names) are refused.
pub fn inspect(config: &OriginConfig, raw: &str) -> Result<Inspection, TunnelError> {
    let refused = |problem: &str| TunnelError::PathRefused {
        path: raw.to_string(),
        problem: problem.to_string(),
    };
    let relative = path_guard::relative_path(raw).map_err(|r| refused(r.0))?;
    path_guard::served(&relative).map_err(|r| refused(r.0))?;
    let file_path = config.root.join(&relative);
    let public_url = config.public_url(&relative);
    let mut inspection = Inspection {
        path: relative.clone(),
        file_path: file_path.clone(),
        exists: false,
        kind: "missing",
        size_bytes: None,
        content_type: None,
        index_html: None,
        public_url,
    };
    // The same opener the origin serves through; `O_PATH` opens without reading (or blocking on a FIFO).
    let Ok(root) = RootDir::open(&config.root) else {
        return Ok(inspection);
    };
    let metadata = |relative: &str| {
        root.open_beneath(relative, OFlags::PATH).and_then(|file| {
            file.metadata().map_err(|source| BeneathError::Io {
                path: relative.into(),
                source,
            })
        })
    };
    match metadata(&relative) {
        Ok(meta) if meta.is_dir() => {
            let index = metadata(&format!("{relative}/index.html"))
                .ok()
                .filter(std::fs::Metadata::is_file);
            inspection.exists = true;
            inspection.kind = "directory";
            inspection.index_html = Some(index.is_some());
            inspection.size_bytes = index.as_ref().map(std::fs::Metadata::len);
            inspection.content_type = index.map(|_| "text/html".to_string());
        }
        Ok(meta) => {
            inspection.exists = true;
            inspection.kind = "file";
            inspection.size_bytes = Some(meta.len());
            inspection.content_type = Some(content_type(&file_path));
        }
        Err(BeneathError::Escapes { .. }) => {
            return Err(refused("leads out of the artifact root through a symlink"));
        }
        Err(_) => {}
    }
    Ok(inspection)
}

/// The content type the origin serves `path` with, guessed from its extension.
pub fn content_type(path: &Path) -> String {
    mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path, base: Option<&str>) -> OriginConfig {
        let paths = Paths::at(dir.join("c"), dir.join("d"));
        OriginConfig::new(&paths, base.map(str::to_string)).unwrap()
    }

    #[test]
    fn mapping_and_inspection() {
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), Some("https://artifacts.example.test/"));
        let bundle = config.root.join("workflow-bench/run 1");
        std::fs::create_dir_all(bundle.join("files")).unwrap();
        std::fs::write(bundle.join("report.html"), "<html></html>").unwrap();
        std::fs::write(bundle.join("files/runtime-snapshot.json"), "{}").unwrap();

        let s = status(&config);
        assert!(s.root_exists);
        assert_eq!(s.root_entries, 1);
        assert!(
            s.mapping
                .ends_with("-> https://artifacts.example.test/<path>"),
            "{}",
            s.mapping
        );

        let i = inspect(&config, "workflow-bench/run 1/report.html").unwrap();
        assert_eq!((i.exists, i.kind, i.size_bytes), (true, "file", Some(13)));
        assert_eq!(i.content_type.as_deref(), Some("text/html"));
        assert_eq!(
            i.public_url.as_deref(),
            Some("https://artifacts.example.test/workflow-bench/run%201/report.html")
        );
        let i = inspect(&config, "workflow-bench/run 1/files/runtime-snapshot.json").unwrap();
        assert_eq!(i.content_type.as_deref(), Some("application/json"));
        let i = inspect(&config, "workflow-bench/run 1").unwrap();
        assert_eq!((i.kind, i.index_html), ("directory", Some(false)));
        let i = inspect(&config, "nope.html").unwrap();
        assert_eq!((i.exists, i.kind), (false, "missing"));

        std::fs::write(dir.path().join("outside.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside.txt"), config.root.join("leak"))
            .unwrap();
        std::fs::write(config.root.join(".env"), "SECRET=1").unwrap();
        for bad in [
            "leak",
            "../x",
            "/etc/passwd",
            ".env",
            "workflow-bench/.git/config",
        ] {
            assert!(
                inspect(&config, bad).unwrap_err().is_refused_input(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_or_missing_public_base() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        assert!(OriginConfig::new(&paths, Some("artifacts.example".into())).is_err());
        let config = OriginConfig::new(&paths, Some(String::new())).unwrap();
        assert_eq!(config.public_url("a"), None);
        assert!(!status(&config).root_exists);
    }
}
