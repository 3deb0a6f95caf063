//! The filesystem backend under tower-http's `ServeDir`: every file and directory is opened relative to
//! the artifact root with `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`, so the kernel itself refuses
//! any `..` or symlink that would lead out of the root — no check-then-open race. (Kernels without
//! `openat2` fall back to opening by path after a canonical-prefix check.)
//!
//! It is also the origin's speed: reads are plain synchronous `read(2)`s on the async worker instead of
//! tokio's blocking-pool round trip per operation. For a static origin over page-cached report bundles a
//! read costs microseconds, and it is what nginx does too without `aio threads`; the price is that a cold,
//! slow disk read stalls one worker for its duration.
//!
//! tower-http keeps all of HTTP: content types, `ETag`/`Last-Modified`, conditional requests, `Range`,
//! `HEAD`, `index.html` for directories.

use std::fs::File;
use std::future::{Ready, ready};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustix::fs::{Mode, OFlags, ResolveFlags};
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tower_http::services::fs::{Backend, File as BackendFile};

/// Opens files beneath one root directory.
///
/// `ServeDir` asks for a path's metadata and then opens the same path. So that this costs one open and one
/// `statx` rather than two of each, `metadata` opens the file for reading and keeps it, and the following
/// `open` of the same path takes it. The slot belongs to one clone (`ServeDir` clones its backend for each
/// request), and even if it were shared, a kept file is only ever handed out for the path it was opened by.
pub struct RootedBackend {
    root: Arc<Root>,
    kept: Mutex<Option<(PathBuf, SyncFile)>>,
}

impl Clone for RootedBackend {
    fn clone(&self) -> Self {
        RootedBackend {
            root: Arc::clone(&self.root),
            kept: Mutex::new(None),
        }
    }
}

struct Root {
    /// Canonical path of the root (what `ServeDir` joins request paths onto).
    path: PathBuf,
    /// The root opened `O_PATH`, the anchor of every `openat2`.
    dir: OwnedFd,
}

impl RootedBackend {
    /// Opens the (canonical) root directory.
    pub fn new(canonical_root: &Path) -> io::Result<Self> {
        let dir = rustix::fs::open(
            canonical_root,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootedBackend {
            root: Arc::new(Root {
                path: canonical_root.to_path_buf(),
                dir,
            }),
            kept: Mutex::new(None),
        })
    }

    fn open_beneath(&self, path: &Path, flags: OFlags) -> io::Result<File> {
        let relative = path.strip_prefix(&self.root.path).map_err(|_| {
            io::Error::new(io::ErrorKind::PermissionDenied, "outside the artifact root")
        })?;
        let relative = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        match rustix::fs::openat2(
            &self.root.dir,
            relative,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) {
            Ok(fd) => Ok(File::from(fd)),
            // EXDEV: the path resolves outside the root. Reported like a missing permission, which
            // ServeDir answers with 404; the HTTP layer turns it into a clear 403.
            Err(rustix::io::Errno::XDEV) => Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "leaves the artifact root",
            )),
            Err(rustix::io::Errno::NOSYS) => self.open_checked(path, flags),
            Err(e) => Err(e.into()),
        }
    }

    /// The fallback without `openat2`: canonicalise, check the prefix, open.
    fn open_checked(&self, path: &Path, flags: OFlags) -> io::Result<File> {
        let resolved = std::fs::canonicalize(path)?;
        if !resolved.starts_with(&self.root.path) {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "leaves the artifact root",
            ));
        }
        let fd = rustix::fs::open(&resolved, flags | OFlags::CLOEXEC, Mode::empty())?;
        Ok(File::from(fd))
    }
}

impl Backend for RootedBackend {
    type File = SyncFile;
    type Metadata = std::fs::Metadata;
    type OpenFuture = Ready<io::Result<SyncFile>>;
    type MetadataFuture = Ready<io::Result<std::fs::Metadata>>;

    fn open(&self, path: PathBuf) -> Self::OpenFuture {
        let kept = self.kept.lock().ok().and_then(|mut slot| slot.take());
        match kept {
            Some((kept_path, file)) if kept_path == path => ready(Ok(file)),
            _ => ready(
                self.open_beneath(&path, OFlags::RDONLY)
                    .and_then(SyncFile::new),
            ),
        }
    }

    fn metadata(&self, path: PathBuf) -> Self::MetadataFuture {
        let file = match self
            .open_beneath(&path, OFlags::RDONLY)
            .and_then(SyncFile::new)
        {
            Ok(file) => file,
            Err(e) => return ready(Err(e)),
        };
        let metadata = file.metadata.clone();
        if let Ok(mut slot) = self.kept.lock() {
            *slot = Some((path, file));
        }
        ready(Ok(metadata))
    }
}

/// An open file read synchronously (see the module docs).
pub struct SyncFile {
    file: File,
    metadata: std::fs::Metadata,
    position: u64,
}

impl SyncFile {
    fn new(file: File) -> io::Result<Self> {
        let metadata = file.metadata()?;
        Ok(SyncFile {
            file,
            metadata,
            position: 0,
        })
    }
}

impl AsyncRead for SyncFile {
    fn poll_read(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Initialise (zero) only as much of the buffer as the file can still fill.
        let left = this.metadata.len().saturating_sub(this.position);
        let want = usize::try_from(left)
            .unwrap_or(usize::MAX)
            .min(buf.remaining());
        if want == 0 {
            return Poll::Ready(Ok(()));
        }
        let dst = buf.initialize_unfilled_to(want);
        let n = this.file.read(dst)?;
        buf.advance(n);
        this.position += n as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for SyncFile {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        this.position = this.file.seek(position)?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.position))
    }
}

impl BackendFile for SyncFile {
    type Metadata = std::fs::Metadata;
    type MetadataFuture<'a> = Ready<io::Result<std::fs::Metadata>>;

    fn metadata(&self) -> Self::MetadataFuture<'_> {
        ready(Ok(self.metadata.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_beneath_and_refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/a.txt"), "hello").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("d/leak")).unwrap();
        std::os::unix::fs::symlink("a.txt", root.join("d/alias")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let backend = RootedBackend::new(&root).unwrap();

        let mut text = String::new();
        let mut file = backend
            .open_beneath(&root.join("d/alias"), OFlags::RDONLY)
            .unwrap();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
        assert!(
            backend
                .open_beneath(&root, OFlags::PATH)
                .unwrap()
                .metadata()
                .unwrap()
                .is_dir()
        );

        let err = backend
            .open_beneath(&root.join("d/leak"), OFlags::RDONLY)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let err = backend
            .open_beneath(&root.join("d/../../secret"), OFlags::PATH)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        let err = backend
            .open_beneath(Path::new("/etc/passwd"), OFlags::RDONLY)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }
}
