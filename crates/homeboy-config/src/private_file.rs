//! Files that can hold job output, tokens or anything else that is nobody else's business — the job store,
//! the observation store, kept artifacts and output logs, the daemon log — are created `0600` in
//! directories created `0700`, and a file an older build left wider is narrowed when it is opened again.
//! (Small JSON files get the same through [`crate::write_json_atomic`].)

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// `OpenOptions` that create a file `0600` (read/write/create/append/truncate are the caller's).
pub fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.mode(0o600);
    options
}

/// Opens `path` with `options` (from [`options`]) and narrows it to `0600` if group or others may use it.
pub fn open(options: &OpenOptions, path: &Path) -> io::Result<File> {
    let file = options.open(path)?;
    narrow(&file)?;
    Ok(file)
}

/// Opens (creating, never truncating) a store's file for reading and writing, `0600`: what redb's
/// `Database::create` does, with the file in the caller's hands (to fence it, or hand it to a backend).
pub fn open_store(path: &Path) -> io::Result<File> {
    open(
        options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false),
        path,
    )
}

/// Takes group and other permissions away from an open file that has any.
pub fn narrow(file: &File) -> io::Result<()> {
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

/// Creates `dir` and its missing parents `0700` (existing directories are left as they are).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn created_private_and_narrowed_when_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        create_dir_all(&nested).unwrap();
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&nested), 0o700);
        let path = nested.join("store.redb");
        let mut create = options();
        create.read(true).write(true).create(true).truncate(false);
        drop(open(&create, &path).unwrap());
        assert_eq!(mode(&path), 0o600);
        // A file an older build created 0644 is narrowed on the next open.
        std::fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        drop(open(&create, &path).unwrap());
        assert_eq!(mode(&path), 0o600);
    }
}
