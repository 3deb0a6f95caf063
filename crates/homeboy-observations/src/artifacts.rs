//! Keeping an artifact's bytes: a file is copied under `<artifact root>/runs/<run id>/<name>` while its
//! SHA-256 and size are computed, and described by a [`StoredArtifact`] (with a MIME type guessed from its
//! name). Files larger than the caller's limit are described without being copied: a metadata-only record.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use homeboy_config::private_file;
use sha2::{Digest, Sha256};

use crate::artifact_path::check_relative;
use crate::model::StoredArtifact;
use crate::{ObservationError, new_id, now_rfc3339};

/// What to record about one file.
#[derive(Debug, Clone)]
pub struct ArtifactSource<'a> {
    pub run_id: &'a str,
    /// `file`, `findings`, `log`, `metrics`.
    pub kind: &'a str,
    /// The name under the run (a plain relative path).
    pub name: &'a str,
    /// Where the file came from, relative to the checkout (shown for metadata-only records).
    pub source_path: Option<&'a str>,
}

/// The MIME type homeboy reports for a file name.
pub fn mime_for(name: &str) -> String {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".sarif") || lower.ends_with(".sarif.json") {
        return "application/sarif+json".into();
    }
    if lower.ends_with(".log") {
        return "text/plain".into();
    }
    mime_guess::from_path(name)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_string()
}

/// How an artifact's file is created: `0600` in `0700` directories, since a run's output log and reports
/// are job output.
fn create_options() -> std::fs::OpenOptions {
    let mut options = private_file::options();
    options.write(true).create(true).truncate(true);
    options
}

/// `runs/<run id>/<name>`: where a run's artifact lives under the root.
pub fn stored_path(run_id: &str, name: &str) -> String {
    format!("runs/{run_id}/{name}")
}

/// Copies `file` (already opened by the caller, who decided it may be read) under the artifact root.
pub fn keep_file(
    root: &Path,
    source: &ArtifactSource<'_>,
    file: &mut File,
) -> Result<StoredArtifact, ObservationError> {
    check_relative(source.name)?;
    let relative = stored_path(source.run_id, source.name);
    let target = root.join(&relative);
    let parent = target.parent().unwrap_or(root);
    private_file::create_dir_all(parent).map_err(|e| ObservationError::io("create", parent, e))?;
    let temp = parent.join(format!(
        ".{}.part",
        target
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let mut out = private_file::open(&create_options(), &temp)
        .map_err(|e| ObservationError::io("create", &temp, e))?;
    let (size_bytes, sha256) = copy_hashing(file, Some(&mut out))
        .map_err(|e| ObservationError::io("copy an artifact to", &temp, e))?;
    out.sync_all()
        .map_err(|e| ObservationError::io("sync", &temp, e))?;
    std::fs::rename(&temp, &target).map_err(|e| ObservationError::io("rename", &target, e))?;
    Ok(record(source, Some(relative), size_bytes, sha256, None))
}

/// Stores `bytes` as an artifact under the root (the run's output log, generated reports).
pub fn keep_bytes(
    root: &Path,
    source: &ArtifactSource<'_>,
    bytes: &[u8],
) -> Result<StoredArtifact, ObservationError> {
    check_relative(source.name)?;
    let relative = stored_path(source.run_id, source.name);
    let target = root.join(&relative);
    let parent = target.parent().unwrap_or(root);
    private_file::create_dir_all(parent).map_err(|e| ObservationError::io("create", parent, e))?;
    let mut out = private_file::open(&create_options(), &target)
        .map_err(|e| ObservationError::io("create", &target, e))?;
    out.write_all(bytes)
        .and_then(|()| out.sync_all())
        .map_err(|e| ObservationError::io("write", &target, e))?;
    let sha256 = hex::encode(Sha256::digest(bytes));
    Ok(record(
        source,
        Some(relative),
        bytes.len() as u64,
        sha256,
        None,
    ))
}

/// Describes a file another part of homeboy already wrote at `<root>/runs/<run id>/<name>` (a managed
/// service's `preview-url.json`) as a kept artifact of that run.
pub fn describe_kept(
    root: &Path,
    source: &ArtifactSource<'_>,
) -> Result<StoredArtifact, ObservationError> {
    check_relative(source.name)?;
    let relative = stored_path(source.run_id, source.name);
    let path = root.join(&relative);
    let mut file = File::open(&path).map_err(|e| ObservationError::io("open", &path, e))?;
    let (size_bytes, sha256) =
        copy_hashing(&mut file, None).map_err(|e| ObservationError::io("read", &path, e))?;
    Ok(record(source, Some(relative), size_bytes, sha256, None))
}

/// Describes `file` without keeping its bytes (a metadata-only record), with the reason in `note`.
pub fn describe_only(
    source: &ArtifactSource<'_>,
    file: &mut File,
    note: &str,
) -> Result<StoredArtifact, ObservationError> {
    let (size_bytes, sha256) = copy_hashing(file, None).map_err(|e| {
        ObservationError::io(
            "read an artifact from",
            Path::new(source.source_path.unwrap_or(source.name)),
            e,
        )
    })?;
    Ok(record(source, None, size_bytes, sha256, Some(note.into())))
}

fn record(
    source: &ArtifactSource<'_>,
    stored_path: Option<String>,
    size_bytes: u64,
    sha256: String,
    note: Option<String>,
) -> StoredArtifact {
    StoredArtifact {
        id: new_id(),
        run_id: source.run_id.to_string(),
        kind: source.kind.to_string(),
        name: source.name.to_string(),
        stored_path,
        source_path: source.source_path.map(str::to_string),
        size_bytes,
        sha256,
        mime: mime_for(source.name),
        created_at: now_rfc3339(),
        note,
    }
}

/// The SHA-256 (hex) of everything left in `file`.
pub fn sha256_of(file: &mut File) -> std::io::Result<String> {
    copy_hashing(file, None).map(|(_, digest)| digest)
}

/// Reads `input` to the end, writing it to `out` if given; returns the size and SHA-256 (hex).
fn copy_hashing(input: &mut File, mut out: Option<&mut File>) -> std::io::Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = input.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        if let Some(out) = out.as_deref_mut() {
            out.write_all(&buffer[..n])?;
        }
        total += n as u64;
    }
    Ok((total, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::artifact_path::open_artifact;

    #[test]
    fn kept_files_hash_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("artifacts");
        let source_file = dir.path().join("lint.sarif");
        std::fs::write(&source_file, b"{\"version\": \"2.1.0\"}").unwrap();
        let source = ArtifactSource {
            run_id: "r1",
            kind: "findings",
            name: "reports/lint.sarif",
            source_path: Some("out/lint.sarif"),
        };
        let kept = keep_file(&root, &source, &mut File::open(&source_file).unwrap()).unwrap();
        assert_eq!(
            kept.stored_path.as_deref(),
            Some("runs/r1/reports/lint.sarif")
        );
        assert_eq!(kept.size_bytes, 20);
        assert_eq!(
            kept.sha256,
            hex::encode(Sha256::digest(b"{\"version\": \"2.1.0\"}"))
        );
        assert_eq!(kept.mime, "application/sarif+json");
        let opened = open_artifact(&root, &kept).unwrap();
        assert_eq!(opened.size_bytes, 20);

        let only =
            describe_only(&source, &mut File::open(&source_file).unwrap(), "too large").unwrap();
        assert_eq!(only.stored_path, None);
        assert_eq!(only.sha256, kept.sha256);
        assert_eq!(
            only.view().retrieval.mode,
            crate::model::RetrievalMode::MetadataOnly
        );

        let log = keep_bytes(
            &root,
            &ArtifactSource {
                name: "output.log",
                kind: "log",
                source_path: None,
                ..source
            },
            b"line\n",
        )
        .unwrap();
        assert_eq!(log.mime, "text/plain");
        let bad = ArtifactSource {
            name: "../escape",
            ..source
        };
        assert!(keep_bytes(&root, &bad, b"x").is_err());
        assert_eq!(mime_for("index.html"), "text/html");
        assert_eq!(mime_for("blob.bin"), "application/octet-stream");
    }
}
