//! A simulated disk for crash tests of the stores: real files behind redb's `StorageBackend` trait (the
//! seam both stores open their files through), with a hook that can make any call fail `fdatasync`, tear a
//! write at any byte, or cut the power — after which only what was synced survives (or, with
//! [`Loss::Scramble`], an arbitrary mix of the unsynced writes, each kept whole, dropped or torn). Nothing
//! here is used outside tests.
//!
//! Every write goes through to the real file, so the process under test reads back what it wrote, as it
//! would from the page cache. The disk also keeps, per file, the bytes as of the last successful
//! `sync_data` (the *durable image*) and the writes since. A successful sync makes them durable without a
//! real `fdatasync` (nothing real is at stake, and the tests stay fast); a failed one leaves them unsynced,
//! as a kernel that dropped the dirty pages would. Losing the power writes each file's surviving image into
//! the real file and fails every later call, so the store in the test process is dead; a test then drops
//! it and opens the same paths again with the production code, which finds exactly what a machine would
//! find after the crash. Directory entries are not simulated (files count as created durably), and locks
//! are the real file's range locks.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Bound;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use redb::backends::FileBackend;
use redb::{BackendError, StorageBackend};

/// One call on a file, as the hook sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    Write { offset: u64, len: usize },
    SetLen(u64),
    Sync,
}

/// A call about to happen.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// The file's name (its last path component).
    pub file: &'a str,
    pub io: Io,
    /// Calls (writes, length changes, syncs) on this disk before this one, over all files.
    pub seq: u64,
}

/// What the hook makes of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The call happens normally.
    Proceed,
    /// The call fails with EIO and changes nothing (a failed sync leaves its writes unsynced).
    Fail,
    /// A write lands only up to this byte (clamped below the write's length), then fails with EIO.
    /// Other calls fail as with [`Action::Fail`].
    Tear(usize),
    /// The power fails before the call: nothing of it lands.
    PowerLoss,
    /// A write lands up to this byte, then the power fails.
    TearThenPowerLoss(usize),
    /// The call completes (a sync makes its file's writes durable), then the power fails.
    PowerLossAfter,
}

/// What survives of the writes that were not synced when the power fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// Nothing: every file is exactly as its last successful sync left it.
    DropUnsynced,
    /// An arbitrary mix, seeded: each unsynced write is independently kept whole, dropped, or torn at a
    /// random byte (the disk may reorder and tear what it was never asked to make durable).
    Scramble(u64),
    /// Everything: the process died but the machine did not, so every write had reached the page cache
    /// (a `kill -9`).
    KeepUnsynced,
}

type Hook = Box<dyn FnMut(&Event<'_>) -> Action + Send>;

enum Unsynced {
    Write { offset: u64, data: Vec<u8> },
    SetLen(u64),
}

struct Tracked {
    name: String,
    file: File,
    durable: Vec<u8>,
    unsynced: Vec<Unsynced>,
}

struct State {
    files: Vec<Tracked>,
    powered: bool,
    hook: Option<Hook>,
    loss: Loss,
    seq: u64,
}

/// One simulated machine's disk: the files opened through it share a power supply and a hook.
#[derive(Clone)]
pub struct Disk {
    state: Arc<Mutex<State>>,
}

impl Default for Disk {
    fn default() -> Self {
        Self::new()
    }
}

impl Disk {
    /// A disk with power, no hook, and [`Loss::DropUnsynced`].
    pub fn new() -> Disk {
        Disk {
            state: Arc::new(Mutex::new(State {
                files: Vec::new(),
                powered: true,
                hook: None,
                loss: Loss::DropUnsynced,
                seq: 0,
            })),
        }
    }

    /// Opens (creating, mode 0600) the real file at `path` through this disk. Its current content counts
    /// as durable.
    pub fn open(&self, path: &Path) -> io::Result<FaultFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)?;
        let len = file.metadata()?.len();
        let mut durable = vec![0u8; len as usize];
        file.read_exact_at(&mut durable, 0)?;
        let backend = FileBackend::new(file.try_clone()?).map_err(io::Error::other)?;
        let mut state = self.lock();
        state.files.push(Tracked {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            file,
            durable,
            unsynced: Vec::new(),
        });
        Ok(FaultFile {
            state: self.state.clone(),
            index: state.files.len() - 1,
            backend,
        })
    }

    /// Decides what happens to every later call (replacing any earlier hook).
    pub fn set_hook(&self, hook: impl FnMut(&Event<'_>) -> Action + Send + 'static) {
        self.lock().hook = Some(Box::new(hook));
    }

    /// Every later call proceeds normally.
    pub fn clear_hook(&self) {
        self.lock().hook = None;
    }

    /// What survives the next power loss.
    pub fn set_loss(&self, loss: Loss) {
        self.lock().loss = loss;
    }

    /// Cuts the power now.
    pub fn power_loss(&self) {
        self.lock().power_loss();
    }

    /// Whether the power is still on.
    pub fn powered(&self) -> bool {
        self.lock().powered
    }

    /// Calls (writes, length changes, syncs) seen so far.
    pub fn calls(&self) -> u64 {
        self.lock().seq
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// Writes each file's surviving image into the real file; every later call fails.
    fn power_loss(&mut self) {
        if !self.powered {
            return;
        }
        self.powered = false;
        let loss = self.loss;
        for (index, tracked) in self.files.iter_mut().enumerate() {
            let mut image = std::mem::take(&mut tracked.durable);
            let mut rng = SplitMix(match loss {
                Loss::Scramble(seed) => seed ^ (index as u64).wrapping_mul(0x9e37),
                _ => 0,
            });
            for unsynced in tracked.unsynced.drain(..) {
                let choice = match loss {
                    Loss::DropUnsynced => break,
                    Loss::KeepUnsynced => 0,
                    Loss::Scramble(_) => rng.next() % 3,
                };
                match unsynced {
                    Unsynced::Write { offset, data } => match choice {
                        0 => apply_write(&mut image, offset, &data),
                        1 => {}
                        _ => {
                            let keep = (rng.next() % (data.len() as u64 + 1)) as usize;
                            apply_write(&mut image, offset, &data[..keep]);
                        }
                    },
                    Unsynced::SetLen(len) => {
                        if choice != 1 {
                            image.resize(len as usize, 0);
                        }
                    }
                }
            }
            // The real file becomes what the machine would find after the crash.
            let restored = tracked
                .file
                .set_len(image.len() as u64)
                .and_then(|()| tracked.file.write_all_at(&image, 0));
            if let Err(e) = restored {
                panic!("restoring {} after the power loss: {e}", tracked.name);
            }
            tracked.durable = image;
        }
    }

    /// Asks the hook about a call on file `index`.
    fn decide(&mut self, index: usize, io: Io) -> Result<Action, io::Error> {
        if !self.powered {
            return Err(power_off());
        }
        let event = Event {
            file: &self.files[index].name,
            io,
            seq: self.seq,
        };
        self.seq += 1;
        Ok(match self.hook.as_mut() {
            Some(hook) => hook(&event),
            None => Action::Proceed,
        })
    }
}

fn apply_write(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let end = offset as usize + data.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset as usize..end].copy_from_slice(data);
}

fn eio() -> io::Error {
    io::Error::from_raw_os_error(5)
}

fn power_off() -> io::Error {
    io::Error::other("the simulated power is off")
}

/// A tiny seeded generator (SplitMix64), so a scrambled loss is reproducible from its seed.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// A file on a [`Disk`]: a redb storage backend (for a redb database or any other file a store keeps).
pub struct FaultFile {
    state: Arc<Mutex<State>>,
    index: usize,
    /// The real file, for the I/O that goes through and for its range locks.
    backend: FileBackend,
}

impl std::fmt::Debug for FaultFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultFile")
            .field("index", &self.index)
            .finish()
    }
}

impl FaultFile {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A call that cannot tear (a length change, a sync): `apply` does it unless the hook says otherwise.
    fn whole_call(
        &self,
        io: Io,
        apply: impl FnOnce(&mut Tracked) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut state = self.lock();
        let action = state.decide(self.index, io)?;
        match action {
            Action::Proceed | Action::PowerLossAfter => {
                apply(&mut state.files[self.index])?;
                if action == Action::PowerLossAfter {
                    state.power_loss();
                }
                Ok(())
            }
            Action::Fail | Action::Tear(_) => Err(eio()),
            Action::PowerLoss | Action::TearThenPowerLoss(_) => {
                state.power_loss();
                Err(power_off())
            }
        }
    }
}

/// A hook that answers `action` to the first call `matches` picks (it sees every call until then), and lets
/// every other call proceed.
pub fn once(
    mut matches: impl FnMut(&Event<'_>) -> bool + Send + 'static,
    action: Action,
) -> impl FnMut(&Event<'_>) -> Action + Send + 'static {
    let mut fired = false;
    move |event| {
        if !fired && matches(event) {
            fired = true;
            action
        } else {
            Action::Proceed
        }
    }
}

/// Seeds of a randomized crash loop: `default`, or `HOMEBOY_CRASH_SEEDS` for a longer hunt.
pub fn seeds(default: u64) -> u64 {
    std::env::var("HOMEBOY_CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One seeded fault of a randomized crash loop: what goes wrong at which call, and how the process ends.
#[derive(Debug, Clone, Copy)]
pub struct Fault {
    /// The call, counted from when the fault is armed, that goes wrong.
    pub at: u64,
    pub action: Action,
    /// How the process ends afterwards: the power fails with this loss, or (`None`) it is simply dropped.
    pub ending: Option<Loss>,
}

impl Fault {
    /// A fault at one of the first `calls` calls; tears keep up to `tear_bytes` bytes.
    pub fn random(seed: u64, calls: u64, tear_bytes: usize) -> Fault {
        let mut rng = SplitMix(seed.wrapping_mul(0x2545_f491_4f6c_dd1d));
        let tear = (rng.next() % (tear_bytes as u64 + 1)) as usize;
        let action = match rng.next() % 6 {
            0 => Action::PowerLoss,
            1 => Action::PowerLossAfter,
            2 => Action::TearThenPowerLoss(tear),
            3 => Action::Tear(tear),
            _ => Action::Fail,
        };
        let ending = match rng.next() % 4 {
            0 => Some(Loss::DropUnsynced),
            1 => Some(Loss::Scramble(seed)),
            2 => Some(Loss::KeepUnsynced),
            _ => None,
        };
        Fault {
            at: rng.next() % calls.max(1),
            action,
            ending,
        }
    }

    /// Arms the fault on `disk`, counting calls from now.
    pub fn arm(&self, disk: &Disk) {
        let (at, action) = (disk.calls() + self.at, self.action);
        disk.set_hook(move |e| if e.seq == at { action } else { Action::Proceed });
    }

    /// Ends the process as the fault says: the power fails, or the disk simply works again.
    pub fn end(&self, disk: &Disk) {
        match self.ending {
            Some(loss) => {
                disk.set_loss(loss);
                disk.power_loss();
            }
            None => disk.clear_hook(),
        }
    }
}

impl StorageBackend for FaultFile {
    fn len(&self) -> Result<u64, io::Error> {
        if !self.lock().powered {
            return Err(power_off());
        }
        self.backend.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        if !self.lock().powered {
            return Err(power_off());
        }
        self.backend.read(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.whole_call(Io::SetLen(len), |tracked| {
            self.backend.set_len(len)?;
            tracked.unsynced.push(Unsynced::SetLen(len));
            Ok(())
        })
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.whole_call(Io::Sync, |tracked| {
            for unsynced in std::mem::take(&mut tracked.unsynced) {
                match unsynced {
                    Unsynced::Write { offset, data } => {
                        apply_write(&mut tracked.durable, offset, &data)
                    }
                    Unsynced::SetLen(len) => tracked.durable.resize(len as usize, 0),
                }
            }
            Ok(())
        })
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut state = self.lock();
        let action = state.decide(
            self.index,
            Io::Write {
                offset,
                len: data.len(),
            },
        )?;
        let landed = match action {
            Action::Proceed | Action::PowerLossAfter => data,
            Action::Tear(at) | Action::TearThenPowerLoss(at) => {
                &data[..at.min(data.len().saturating_sub(1))]
            }
            Action::Fail => return Err(eio()),
            Action::PowerLoss => {
                state.power_loss();
                return Err(power_off());
            }
        };
        self.backend.write(offset, landed)?;
        state.files[self.index].unsynced.push(Unsynced::Write {
            offset,
            data: landed.to_vec(),
        });
        match action {
            Action::Proceed => Ok(()),
            Action::PowerLossAfter => {
                state.power_loss();
                Ok(())
            }
            Action::TearThenPowerLoss(_) => {
                state.power_loss();
                Err(power_off())
            }
            _ => Err(eio()),
        }
    }

    fn close(&self) -> Result<(), io::Error> {
        self.backend.close()
    }

    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.backend.try_lock_range(start, end)
    }

    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.backend.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.backend.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.backend.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.backend.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.backend.query_lock_range(start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn content(path: &Path) -> Vec<u8> {
        std::fs::read(path).unwrap()
    }

    #[test]
    fn only_synced_writes_survive_a_power_loss() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let disk = Disk::new();
        let file = disk.open(&path).unwrap();
        file.write(0, b"durable").unwrap();
        file.sync_data().unwrap();
        file.write(0, b"DUR").unwrap();
        file.write(7, b"+tail").unwrap();
        let mut back = [0u8; 12];
        file.read(0, &mut back).unwrap();
        assert_eq!(&back, b"DURable+tail", "the process reads its own writes");
        disk.power_loss();
        assert_eq!(content(&path), b"durable");
        assert!(file.write(0, b"x").is_err() && file.sync_data().is_err());
        assert!(file.read(0, &mut back).is_err());
    }

    #[test]
    fn a_failed_sync_leaves_its_writes_unsynced_and_a_tear_lands_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let disk = Disk::new();
        let file = disk.open(&path).unwrap();
        let mut syncs = 0;
        disk.set_hook(move |e| match e.io {
            Io::Sync => {
                syncs += 1;
                if syncs == 1 {
                    Action::Fail
                } else {
                    Action::Proceed
                }
            }
            Io::Write { offset: 100, .. } => Action::Tear(3),
            _ => Action::Proceed,
        });
        file.write(0, b"lost").unwrap();
        assert_eq!(file.sync_data().unwrap_err().raw_os_error(), Some(5));
        assert!(file.write(100, b"abcdef").is_err());
        assert_eq!(
            &content(&path)[100..],
            b"abc",
            "the torn prefix is on the file"
        );
        disk.power_loss();
        assert!(content(&path).is_empty(), "nothing was ever synced");
    }

    #[test]
    fn power_loss_after_a_sync_keeps_that_sync() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let disk = Disk::new();
        let (fa, fb) = (disk.open(&a).unwrap(), disk.open(&b).unwrap());
        disk.set_hook(|e| match (e.file, e.io) {
            ("a", Io::Sync) => Action::PowerLossAfter,
            _ => Action::Proceed,
        });
        fb.write(0, b"unsynced").unwrap();
        fa.write(0, b"synced").unwrap();
        fa.sync_data().unwrap();
        assert!(!disk.powered());
        assert_eq!(content(&a), b"synced");
        assert!(content(&b).is_empty());
    }

    #[test]
    fn a_scrambled_loss_is_reproducible_and_keeps_synced_bytes() {
        let run = |seed: u64| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let disk = Disk::new();
            disk.set_loss(Loss::Scramble(seed));
            let file = disk.open(&path).unwrap();
            file.write(0, &[1u8; 64]).unwrap();
            file.sync_data().unwrap();
            for i in 0..16u8 {
                file.write(64 + u64::from(i) * 8, &[i + 2; 8]).unwrap();
            }
            disk.power_loss();
            content(&path)
        };
        let (one, again) = (run(7), run(7));
        assert_eq!(one, again);
        assert_eq!(&one[..64], &[1u8; 64]);
        assert!(
            (0..32).any(|seed| run(seed) != one),
            "different seeds scramble differently"
        );
    }
}
