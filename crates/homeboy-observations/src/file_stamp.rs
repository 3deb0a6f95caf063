//! An open file's change stamp — size, modification and change times — for telling, with one `fstat`, that
//! no process has written to the store file since a stamp was taken.
//!
//! Every write to the file moves its modification time, but the kernel takes that time from a coarse clock
//! (a few milliseconds per tick), so two writes in one tick can leave the same stamp. A stamp is therefore
//! trusted only once it has *settled*: its modification time is at least [`SETTLE`] older than the moment it
//! was read, so any later write falls in a later tick and shows (git's "racily clean" index entries, solved
//! the same way).

use std::os::unix::fs::MetadataExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a file must have been left alone before its stamp is trusted.
pub(crate) const SETTLE: Duration = Duration::from_millis(50);

/// What `stat` says about a file's content and metadata changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileStamp {
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// The stamp of the open `file` (an `fstat`: no path lookup) and whether it has settled; `None` when
    /// it cannot be read.
    pub(crate) fn of(file: &std::fs::File) -> Option<(FileStamp, bool)> {
        let meta = file.metadata().ok()?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
        let stamp = FileStamp {
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        };
        let modified = Duration::new(
            u64::try_from(meta.mtime()).ok()?,
            u32::try_from(meta.mtime_nsec()).ok()?,
        );
        let settled = now.checked_sub(modified).is_some_and(|age| age >= SETTLE);
        Some((stamp, settled))
    }
}
