//! The one path-safe opener: [`RootDir`], a directory handle, and [`RootDir::open_beneath`], which opens a
//! root-relative path so that nothing — a `..`, an absolute path, a symlink (relative or absolute), a
//! rename racing the open — can make it open something outside that directory.
//!
//! Two strategies give the same answers (the tests run one table of cases through both):
//!
//! - **`openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`** relative to the root handle: the kernel resolves
//!   the path and refuses (`EXDEV`) any step that would leave the root. This is the normal path.
//! - **The walk**, for kernels without `openat2` (`ENOSYS`, before Linux 5.6) and for sandboxes whose seccomp
//!   filter refuses it (`EPERM`) — the one fallback policy; any other error is an answer, not a reason to
//!   fall back. The walk resolves the path itself, one component at a time from the root handle, the way
//!   `realpath` canonicalises: `..` pops back to the parent directory it came from (and refuses to pop above
//!   the root), a symlink's target is read and spliced into the remaining path (an absolute target is
//!   refused, as `RESOLVE_BENEATH` does), and every step opens with `O_NOFOLLOW` relative to the handle of the
//!   directory before it. The prefix check is structural — the walk never holds a directory outside the
//!   root — so there is no window between checking a path and opening it.
//!
//! Once `openat2` has been found unavailable the process uses the walk for every later open. A test can
//! force the walk with [`RootDir::with_strategy`].
//!
//! [`RootDir::open_regular`] is the common case on top: a regular file opened for reading, non-blocking
//! while it is opened (so a FIFO planted where a file was expected is refused instead of blocking the
//! reader), then switched back to blocking reads. What the path means (artifact record, URL, checkout file)
//! and what a refusal becomes (envelope, CLI line) is the caller's.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::BeneathError;

/// Symlinks followed in one resolution before it counts as a loop (Linux's own limit).
const MAX_SYMLINKS: usize = 40;

/// Set once `openat2` was refused with `ENOSYS` or `EPERM`: later opens go straight to the walk.
static OPENAT2_UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// How [`RootDir::open_beneath`] resolves paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// `openat2(RESOLVE_BENEATH)`, falling back to the walk where it is unavailable (the default).
    Auto,
    /// Always the walk, as on a kernel without `openat2` (for tests of the fallback).
    Walk,
}

/// A directory that paths are opened beneath. Cheap to clone (the handle is shared).
#[derive(Debug, Clone)]
pub struct RootDir {
    path: PathBuf,
    dir: Arc<OwnedFd>,
    strategy: Strategy,
}

impl RootDir {
    /// Opens the directory at `path` (symlinks in `path` itself are followed: the root is what it names now).
    pub fn open(path: &Path) -> std::io::Result<RootDir> {
        let dir = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(RootDir {
            path: path.to_path_buf(),
            dir: Arc::new(dir),
            strategy: Strategy::Auto,
        })
    }

    /// The same root resolving paths with `strategy`.
    pub fn with_strategy(mut self, strategy: Strategy) -> RootDir {
        self.strategy = strategy;
        self
    }

    /// The path the root was opened by.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `relative` beneath the root with `flags` (`O_CLOEXEC` is always added, and `O_NOCTTY` unless
    /// `flags` has `O_PATH`). An empty path or `.` is the root itself; a trailing `/` requires a directory.
    pub fn open_beneath(
        &self,
        relative: impl AsRef<Path>,
        flags: OFlags,
    ) -> Result<File, BeneathError> {
        let relative = relative.as_ref();
        // openat2 refuses (EINVAL) any flag beside O_PATH but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC.
        let flags = if flags.contains(OFlags::PATH) {
            flags | OFlags::CLOEXEC
        } else {
            flags | OFlags::CLOEXEC | OFlags::NOCTTY
        };
        if self.strategy == Strategy::Auto && !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed) {
            match self.openat2(relative, flags) {
                Err(Errno::NOSYS | Errno::PERM) => {
                    OPENAT2_UNAVAILABLE.store(true, Ordering::Relaxed);
                }
                Ok(fd) => return Ok(File::from(fd)),
                Err(errno) => return Err(refusal(relative, errno)),
            }
        }
        self.walk(relative, flags).map(File::from)
    }

    /// Opens the regular file `relative` for reading; a directory is [`BeneathError::Directory`], anything
    /// else that is not a regular file (FIFO, socket, device) is [`BeneathError::NotAFile`].
    pub fn open_regular(
        &self,
        relative: impl AsRef<Path>,
    ) -> Result<(File, Metadata), BeneathError> {
        let relative = relative.as_ref();
        let file = self.open_beneath(relative, OFlags::RDONLY | OFlags::NONBLOCK)?;
        let io = |source| BeneathError::Io {
            path: relative.to_path_buf(),
            source,
        };
        let metadata = file.metadata().map_err(io)?;
        if metadata.is_dir() {
            return Err(BeneathError::Directory {
                path: relative.to_path_buf(),
            });
        }
        if !metadata.is_file() {
            return Err(BeneathError::NotAFile {
                path: relative.to_path_buf(),
            });
        }
        let flags = rustix::fs::fcntl_getfl(&file).map_err(|e| io(e.into()))?;
        rustix::fs::fcntl_setfl(&file, flags - OFlags::NONBLOCK).map_err(|e| io(e.into()))?;
        Ok((file, metadata))
    }

    fn openat2(&self, relative: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
        let relative = if relative.as_os_str().is_empty() {
            Path::new(".")
        } else {
            relative
        };
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        // EAGAIN: a rename or mount raced the resolution; the kernel asks for a retry.
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&*self.dir, relative, flags, Mode::empty(), resolve) {
                Err(Errno::AGAIN) if tries < 8 => tries += 1,
                other => return other,
            }
        }
    }

    /// The fallback (see the module docs): resolve component by component from the root handle.
    fn walk(&self, relative: &Path, flags: OFlags) -> Result<OwnedFd, BeneathError> {
        let refuse = |errno| refusal(relative, errno);
        if relative.as_os_str().as_bytes().starts_with(b"/") {
            return Err(refuse(Errno::XDEV));
        }
        let mut pending = VecDeque::new();
        splice(&mut pending, relative.as_os_str());
        // Directories entered below the root; the current directory is the last one (or the root).
        let mut entered: Vec<OwnedFd> = Vec::new();
        let mut links = 0;
        while let Some(step) = pending.pop_front() {
            let here = entered.last().unwrap_or(&*self.dir);
            let name = match step {
                Step::Parent => {
                    if entered.pop().is_none() {
                        return Err(refuse(Errno::XDEV));
                    }
                    continue;
                }
                Step::Name(name) => name,
            };
            let stat = rustix::fs::statat(here, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(refuse)?;
            let kind = FileType::from_raw_mode(stat.st_mode);
            if kind == FileType::Symlink {
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(refuse(Errno::LOOP));
                }
                let target = rustix::fs::readlinkat(here, name.as_os_str(), Vec::new())
                    .map_err(|_| refuse(Errno::NOENT))?;
                let target = OsStr::from_bytes(target.as_bytes());
                if target.as_bytes().starts_with(b"/") {
                    return Err(refuse(Errno::XDEV));
                }
                let rest = std::mem::take(&mut pending);
                splice(&mut pending, target);
                pending.extend(rest);
                continue;
            }
            if pending.is_empty() {
                // The last component: opened with the caller's flags, never through a symlink (one
                // swapped in since the stat fails with ELOOP, or opens the link itself under O_PATH).
                let fd = rustix::fs::openat(
                    here,
                    name.as_os_str(),
                    flags | OFlags::NOFOLLOW,
                    Mode::empty(),
                )
                .map_err(|e| refuse(if e == Errno::LOOP { Errno::XDEV } else { e }))?;
                return Ok(fd);
            }
            if kind != FileType::Directory {
                return Err(refuse(Errno::NOTDIR));
            }
            // A directory swapped for a symlink since the stat fails here (ENOTDIR), never followed.
            let dir = rustix::fs::openat(
                here,
                name.as_os_str(),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| refuse(if e == Errno::NOTDIR { Errno::XDEV } else { e }))?;
            entered.push(dir);
        }
        // The path named a directory (empty, `.`, a trailing `/`, or ending in `..`).
        let here = entered.last().unwrap_or(&*self.dir);
        rustix::fs::openat(here, ".", flags, Mode::empty()).map_err(refuse)
    }
}

/// One step of the walk.
enum Step {
    Name(OsString),
    Parent,
}

/// Appends the steps of `path` to `pending`. A path that ends in `/` (or `/.`) names a directory: it
/// gets a final `.`-like step (resolution continues into the directory), so a file there is `ENOTDIR`.
fn splice(pending: &mut VecDeque<Step>, path: &OsStr) {
    let bytes = path.as_bytes();
    for segment in bytes.split(|b| *b == b'/') {
        match segment {
            b"" | b"." => {}
            b".." => pending.push_back(Step::Parent),
            name => pending.push_back(Step::Name(OsStr::from_bytes(name).to_os_string())),
        }
    }
    let names_a_directory = bytes.ends_with(b"/") || bytes.ends_with(b"/.") || bytes == b".";
    if names_a_directory && matches!(pending.back(), Some(Step::Name(_))) {
        // "dir/" resolves "dir" as an intermediate directory, then opens "." inside it.
        pending.push_back(Step::Name(OsString::from(".")));
    }
}

/// The refusal an errno from resolving `relative` means (the same for both strategies).
fn refusal(relative: &Path, errno: Errno) -> BeneathError {
    let path = relative.to_path_buf();
    match errno {
        Errno::XDEV => BeneathError::Escapes { path },
        Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG | Errno::LOOP => {
            BeneathError::Missing { path }
        }
        Errno::ACCESS => BeneathError::Denied { path },
        other => BeneathError::Io {
            path,
            source: other.into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::time::Duration;

    /// A root with the cases every strategy must answer alike, and a secret beside it.
    fn fixture() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("d/e")).unwrap();
        std::fs::write(root.join("d/a.txt"), "hello").unwrap();
        std::fs::write(root.join("d/e/b.txt"), "deep").unwrap();
        std::fs::write(dir.path().join("secret"), "TOP-SECRET").unwrap();
        std::fs::create_dir(dir.path().join("outside-dir")).unwrap();
        std::fs::write(dir.path().join("outside-dir/x"), "TOP-SECRET").unwrap();
        let link =
            |target: &Path, at: &str| std::os::unix::fs::symlink(target, root.join(at)).unwrap();
        link(Path::new("a.txt"), "d/alias");
        link(Path::new("e"), "d/e-link");
        link(Path::new("../a.txt"), "d/e/up-alias");
        link(Path::new("../../secret"), "d/leak");
        link(Path::new("../.."), "d/up-up");
        link(&dir.path().join("secret"), "abs-leak");
        link(&root.join("d/a.txt"), "abs-inside");
        link(&dir.path().join("outside-dir"), "escape-dir");
        link(Path::new("loop-b"), "loop-a");
        link(Path::new("loop-a"), "loop-b");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        (dir, root)
    }

    fn outcome(result: Result<(File, Metadata), BeneathError>) -> String {
        match result {
            Ok((mut file, _)) => {
                let mut text = String::new();
                file.read_to_string(&mut text).unwrap();
                format!("ok:{text}")
            }
            Err(e) => format!("{e:?}")
                .split_whitespace()
                .next()
                .unwrap()
                .to_string(),
        }
    }

    const CASES: &[(&str, &str)] = &[
        ("d/a.txt", "ok:hello"),
        ("./d/./a.txt", "ok:hello"),
        ("d/alias", "ok:hello"),
        ("d/e-link/b.txt", "ok:deep"),
        ("d/e/up-alias", "ok:hello"),
        ("d/e/../a.txt", "ok:hello"),
        ("d/../d/e/b.txt", "ok:deep"),
        // Traversal.
        ("../secret", "Escapes"),
        ("../nothing-there", "Escapes"),
        ("d/../../secret", "Escapes"),
        ("d/e/../../../secret", "Escapes"),
        ("/etc/passwd", "Escapes"),
        // Symlink escapes: relative, through a directory link, absolute (even to inside the root).
        ("d/leak", "Escapes"),
        ("d/up-up/secret", "Escapes"),
        ("escape-dir/x", "Escapes"),
        ("abs-leak", "Escapes"),
        ("abs-inside", "Escapes"),
        // Not there, or not a file.
        ("d/missing", "Missing"),
        ("d/a.txt/", "Missing"),
        ("d/a.txt/x", "Missing"),
        ("loop-a", "Missing"),
        ("d", "Directory"),
        ("d/", "Directory"),
        ("", "Directory"),
        (".", "Directory"),
        ("d/e/..", "Directory"),
        ("fifo", "NotAFile"),
    ];

    fn check_strategy(strategy: Strategy) {
        let (_dir, root) = fixture();
        let rooted = RootDir::open(&root).unwrap().with_strategy(strategy);
        let long = "n".repeat(256);
        let mut cases: Vec<(&str, &str)> = CASES.to_vec();
        cases.push((&long, "Missing"));
        for (path, expected) in cases {
            // Opening must never block (a FIFO without a writer would): run each case where a hang fails.
            let (tx, rx) = std::sync::mpsc::channel();
            let rooted = rooted.clone();
            let owned = path.to_string();
            std::thread::spawn(move || {
                let _ = tx.send(outcome(rooted.open_regular(&owned)));
            });
            let got = rx
                .recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("{strategy:?} {path:?}: the open blocked"));
            assert_eq!(got, expected, "{strategy:?} {path:?}");
        }
        // Directories open with O_PATH, and files read in blocking mode once opened.
        assert!(
            rooted
                .open_beneath("d/e-link", OFlags::PATH)
                .unwrap()
                .metadata()
                .unwrap()
                .is_dir()
        );
        let (file, metadata) = rooted.open_regular("d/a.txt").unwrap();
        assert_eq!(metadata.len(), 5);
        assert!(
            !rustix::fs::fcntl_getfl(&file)
                .unwrap()
                .contains(OFlags::NONBLOCK)
        );
    }

    #[test]
    fn openat2_refuses_traversal_and_symlink_escapes() {
        check_strategy(Strategy::Auto);
        assert!(
            !OPENAT2_UNAVAILABLE.load(Ordering::Relaxed),
            "openat2 is unavailable here, so this test ran the walk twice and openat2 is untested"
        );
    }

    #[test]
    fn the_fallback_walk_refuses_the_same() {
        check_strategy(Strategy::Walk);
    }

    #[test]
    fn refusals_name_the_relative_path_only() {
        let (dir, root) = fixture();
        let rooted = RootDir::open(&root).unwrap();
        let err = rooted.open_regular("d/leak").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("d/leak"), "{text}");
        assert!(!text.contains(dir.path().to_str().unwrap()), "{text}");
    }
}
