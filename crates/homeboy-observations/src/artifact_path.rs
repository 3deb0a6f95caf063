//! The one place an artifact's bytes are opened: [`open_artifact`], used by the transport-free handler (which
//! inlines them as base64) and by the daemon's HTTP layer (which streams them), so both refuse the same paths.
//!
//! A recorded path must be a plain relative path (no `..` segment, not absolute, no NUL, no backslash, no
//! empty segment) and must resolve inside the artifact root: the file is opened with the workspace's one
//! path-safe opener (`homeboy_config::beneath`: `openat2(RESOLVE_BENEATH)` relative to the root, or its
//! fallback walk), so no symlink (or `..`) can lead out of it. Only regular files open: the open itself is
//! non-blocking, so a FIFO or a device put where a file was expected is refused as
//! [`ArtifactAccess::NotAFile`] instead of blocking its reader.

use std::fs::{File, Metadata};
use std::path::Path;
use std::time::SystemTime;

use homeboy_config::{BeneathError, RootDir};

use crate::error::ArtifactAccess;
use crate::model::StoredArtifact;

/// An artifact file opened for reading.
#[derive(Debug)]
pub struct OpenedArtifact {
    pub file: File,
    pub size_bytes: u64,
    /// The file's modification time (for `Last-Modified`).
    pub modified: Option<SystemTime>,
    pub mime: String,
    /// The artifact's file name (for `Content-Disposition`).
    pub file_name: String,
}

/// Checks a root-relative path lexically.
pub fn check_relative(path: &str) -> Result<(), ArtifactAccess> {
    let refuse = |problem| {
        Err(ArtifactAccess::InvalidPath {
            path: path.to_string(),
            problem,
        })
    };
    if path.is_empty() {
        return refuse("is empty");
    }
    if path.starts_with('/') {
        return refuse("is absolute");
    }
    if path.contains('\0') {
        return refuse("contains a NUL byte");
    }
    if path.contains('\\') {
        return refuse("contains a backslash");
    }
    for segment in path.split('/') {
        match segment {
            ".." => return refuse("contains a '..' segment"),
            "" => return refuse("contains an empty segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Opens the bytes of `artifact` under `root`, refusing metadata-only records, paths that are not plain
/// relative paths, and paths that lead out of the root.
pub fn open_artifact(
    root: &Path,
    artifact: &StoredArtifact,
) -> Result<OpenedArtifact, ArtifactAccess> {
    let Some(relative) = artifact.stored_path.as_deref() else {
        return Err(ArtifactAccess::MetadataOnly {
            artifact_id: artifact.id.clone(),
        });
    };
    let (file, metadata) = open_regular(root, relative).map_err(|e| match e {
        ArtifactAccess::Missing { .. } => ArtifactAccess::Missing {
            artifact_id: artifact.id.clone(),
        },
        other => other,
    })?;
    Ok(OpenedArtifact {
        file,
        size_bytes: metadata.len(),
        modified: metadata.modified().ok(),
        mime: artifact.mime.clone(),
        file_name: artifact
            .name
            .rsplit('/')
            .next()
            .unwrap_or(&artifact.name)
            .to_string(),
    })
}

/// Opens the regular file `relative` for reading strictly beneath `root` (anything else, such as a
/// directory or a FIFO, is [`ArtifactAccess::NotAFile`]), with the one path-safe opener.
pub fn open_beneath(root: &Path, relative: &str) -> Result<File, ArtifactAccess> {
    open_regular(root, relative).map(|(file, _)| file)
}

fn open_regular(root: &Path, relative: &str) -> Result<(File, Metadata), ArtifactAccess> {
    check_relative(relative)?;
    let missing = || ArtifactAccess::Missing {
        artifact_id: relative.to_string(),
    };
    let root = RootDir::open(root).map_err(|_| missing())?;
    root.open_regular(relative).map_err(|e| match e {
        BeneathError::Escapes { .. } => ArtifactAccess::Escapes {
            path: relative.to_string(),
        },
        BeneathError::Directory { .. } | BeneathError::NotAFile { .. } => {
            ArtifactAccess::NotAFile {
                path: relative.to_string(),
            }
        }
        BeneathError::Missing { .. } | BeneathError::Denied { .. } | BeneathError::Io { .. } => {
            missing()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;

    fn artifact(path: Option<&str>) -> StoredArtifact {
        StoredArtifact {
            id: "a1".into(),
            run_id: "r1".into(),
            kind: "file".into(),
            name: "dir/report.txt".into(),
            stored_path: path.map(str::to_string),
            source_path: None,
            size_bytes: 0,
            sha256: String::new(),
            mime: "text/plain".into(),
            created_at: String::new(),
            note: None,
        }
    }

    #[test]
    fn only_files_beneath_the_root_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("artifacts");
        std::fs::create_dir_all(root.join("runs/r1/dir")).unwrap();
        std::fs::write(root.join("runs/r1/dir/report.txt"), "report").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("runs/r1/leak.txt"))
            .unwrap();
        std::os::unix::fs::symlink("../../../secret.txt", root.join("runs/r1/rel-leak.txt"))
            .unwrap();
        std::os::unix::fs::symlink("dir/report.txt", root.join("runs/r1/alias.txt")).unwrap();

        let mut opened = open_artifact(&root, &artifact(Some("runs/r1/dir/report.txt"))).unwrap();
        let mut text = String::new();
        opened.file.read_to_string(&mut text).unwrap();
        assert_eq!((text.as_str(), opened.size_bytes), ("report", 6));
        assert_eq!(opened.file_name, "report.txt");
        assert!(open_artifact(&root, &artifact(Some("runs/r1/alias.txt"))).is_ok());

        for (path, expected) in [
            ("runs/r1/leak.txt", "Escapes"),
            ("runs/r1/rel-leak.txt", "Escapes"),
            ("../secret.txt", "InvalidPath"),
            ("runs/../../secret.txt", "InvalidPath"),
            ("/etc/passwd", "InvalidPath"),
            ("runs//r1", "InvalidPath"),
            ("runs\\r1", "InvalidPath"),
            ("runs/r1/missing.txt", "Missing"),
            ("runs/r1/dir", "NotAFile"),
        ] {
            let err = open_artifact(&root, &artifact(Some(path))).unwrap_err();
            assert!(format!("{err:?}").starts_with(expected), "{path}: {err:?}");
        }
        assert!(matches!(
            open_artifact(&root, &artifact(None)),
            Err(ArtifactAccess::MetadataOnly { .. })
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("runs/r1")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("runs/r1/pipe"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Before the fix, opening blocked until something wrote to the FIFO: run it where a hang is a failure.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let opened = open_beneath(&root, "runs/r1/pipe").map(|_| ());
            let _ = tx.send(opened);
        });
        let opened = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("opening a FIFO must not block");
        assert!(
            matches!(opened, Err(ArtifactAccess::NotAFile { .. })),
            "{opened:?}"
        );
        // A regular file opened through the same path reads normally (blocking mode restored).
        std::fs::write(dir.path().join("runs/r1/ok.txt"), "ok").unwrap();
        let file = open_beneath(dir.path(), "runs/r1/ok.txt").unwrap();
        let flags = rustix::fs::fcntl_getfl(&file).unwrap();
        assert!(!flags.contains(OFlags::NONBLOCK));
    }
}
