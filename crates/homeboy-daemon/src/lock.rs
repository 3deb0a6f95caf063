//! Advisory file locks (`flock`): one serving daemon per config dir, one `start` deciding at a time.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use rustix::fs::{FlockOperation, flock};

use crate::DaemonError;

/// A held lock; released when dropped (or when the process dies, which is the point).
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Waits for the exclusive lock on `path`, creating the file if needed.
    pub fn exclusive(path: &Path) -> Result<FileLock, DaemonError> {
        let file = open(path)?;
        flock(&file, FlockOperation::LockExclusive)
            .map_err(|e| DaemonError::io(format!("lock {}", path.display()), e.into()))?;
        Ok(FileLock { _file: file })
    }

    /// Takes the exclusive lock on `path` if nobody holds it; `Ok(None)` if somebody does.
    pub fn try_exclusive(path: &Path) -> Result<Option<FileLock>, DaemonError> {
        let file = open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(DaemonError::io(
                format!("lock {}", path.display()),
                e.into(),
            )),
        }
    }
}

fn open(path: &Path) -> Result<File, DaemonError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| DaemonError::io(format!("create {}", dir.display()), e))?;
    }
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| DaemonError::io(format!("open {}", path.display()), e))
}
