//! Crash-safe small-file writes: a reader sees the old file or the new one, never a torn mix.
//!
//! The recipe is the classic one: write a temp file in the same directory, fsync it, rename it over the
//! target, fsync the directory so the rename itself is durable. Files are created `0600`: homeboy's config
//! holds credential digests and server details that are nobody else's business.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ConfigError;

/// Serialises `value` as pretty JSON (with a trailing newline) and writes it atomically to `path`.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<(), ConfigError> {
    let mut bytes =
        serde_json::to_vec_pretty(value).map_err(|source| ConfigError::InvalidJson {
            path: path.to_path_buf(),
            source,
        })?;
    bytes.push(b'\n');
    write_bytes_atomic(path, &bytes)
}

/// Writes `bytes` atomically to `path`, creating parent directories (mode `0700`) as needed.
pub fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), ConfigError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = parent_of(path);
    create_private_dir(dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| ConfigError::io("create", &tmp, e))?;
        file.write_all(bytes)
            .map_err(|e| ConfigError::io("write", &tmp, e))?;
        file.sync_all()
            .map_err(|e| ConfigError::io("fsync", &tmp, e))?;
        fs::rename(&tmp, path).map_err(|e| ConfigError::io("rename into place", path, e))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads and parses a JSON file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let bytes = fs::read(path).map_err(|e| ConfigError::io("read", path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| ConfigError::InvalidJson {
        path: path.to_path_buf(),
        source,
    })
}

/// Like [`read_json`], but a missing file is `Ok(None)`.
pub fn read_json_opt<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ConfigError> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| ConfigError::InvalidJson {
                    path: path.to_path_buf(),
                    source,
                })
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::io("read", path, e)),
    }
}

/// Removes a file and makes the removal durable. A file that is already gone is not an error.
pub fn remove_file_durable(path: &Path) -> Result<(), ConfigError> {
    match fs::remove_file(path) {
        Ok(()) => sync_dir(parent_of(path)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ConfigError::io("remove", path, e)),
    }
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ConfigError> {
    crate::private_file::create_dir_all(dir)
        .map_err(|e| ConfigError::io("create directory", dir, e))
}

fn sync_dir(dir: &Path) -> Result<(), ConfigError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ConfigError::io("fsync directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn writes_reads_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/thing.json");
        write_json_atomic(&path, &serde_json::json!({"a": 1})).unwrap();
        let v: serde_json::Value = read_json(&path).unwrap();
        assert_eq!(v["a"], 1);
        write_json_atomic(&path, &serde_json::json!({"a": 2})).unwrap();
        let v: serde_json::Value = read_json(&path).unwrap();
        assert_eq!(v["a"], 2);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // No temp files are left behind.
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("thing.json")]);
    }

    #[test]
    fn missing_and_invalid_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.json");
        assert!(read_json_opt::<serde_json::Value>(&path).unwrap().is_none());
        fs::write(&path, b"{not json").unwrap();
        let err = read_json::<serde_json::Value>(&path).unwrap_err();
        assert!(err.to_string().contains("invalid JSON"), "{err}");
        remove_file_durable(&path).unwrap();
        remove_file_durable(&path).unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keep.json");
        write_json_atomic(&path, &serde_json::json!({"v": "old"})).unwrap();
        // Renaming over a directory fails; the old content must survive and no temp file may remain.
        let blocked = dir.path().join("blocked");
        fs::create_dir(&blocked).unwrap();
        fs::write(blocked.join("x"), b"").unwrap();
        assert!(write_bytes_atomic(&blocked, b"new").is_err());
        let v: serde_json::Value = read_json(&path).unwrap();
        assert_eq!(v["v"], "old");
        let count = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(count, 2);
    }
}
