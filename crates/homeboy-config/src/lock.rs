//! Advisory file locks (`flock`): one serving daemon per config dir, one `start` deciding at a time. A lock
//! is released when dropped, or when its process dies — which is the point.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::ConfigError;

/// A held lock.
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits for the exclusive lock on `path`, creating the file (0600) if needed.
    pub fn exclusive(path: &Path) -> Result<FileLock, ConfigError> {
        let file = open(path)?;
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| ConfigError::io("lock", path, e.into()))?;
        Ok(FileLock { _file: file })
    }

    /// Takes the exclusive lock on `path` if nobody holds it; `Ok(None)` if somebody does.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>, ConfigError> {
        let file = open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(ConfigError::io("lock", path, e.into())),
        }
    }
}

fn open(path: &Path) -> Result<File, ConfigError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| ConfigError::io("create", dir, e))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ConfigError::io("open", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/serve.lock");
        let held = FileLock::try_exclusive(&path).unwrap().expect("free");
        assert!(FileLock::try_exclusive(&path).unwrap().is_none());
        drop(held);
        assert!(FileLock::try_exclusive(&path).unwrap().is_some());
    }
}
