//! The storage engine under the job store: redb for state and indexes, the write-ahead log for durability,
//! and leader-based group commit.
//!
//! A caller puts its operation (a closure over a [`Tx`]) in a queue and tries to become the **leader**. The
//! leader takes every queued operation, runs them in one redb write transaction, commits it non-durably,
//! takes a read snapshot, and writes the batch's changes to the log as one record — all under the writer
//! lock, so records are in commit order. Then it releases the lock, so the next leader can start on the next
//! batch while this one flushes: it calls `fdatasync`, publishes its snapshot as the *durable* state (unless
//! a newer one already is), and answers the callers of its batch. Callers that are not leading wait for their
//! answer. With one caller nothing changes threads at all; with many, they share flushes and CPU work
//! overlaps I/O.
//!
//! Reads never take the writer lock: they use the latest durable snapshot, so nobody observes a change before
//! it is on disk, and a caller that got its answer always reads its own write.
//!
//! **Poisoning.** Once redb holds a batch that its log record does not (a failed flush, a failed or torn
//! log write, a failed commit), nothing may build on it: the engine is poisoned and every later call —
//! reads included — fails until the process restarts and recovery runs (fail-stop, as databases do on fsync
//! errors). Poisoning also fences redb's file (every later write to it fails, so closing the database cannot
//! make the unacknowledged batch durable) and erases the first log record no caller was answered for, so
//! a restart recovers exactly what was acknowledged. (If the disk refuses even that erasure, a batch nobody
//! was answered for may come back whole, never in part.)
//!
//! Both files are reached through redb's `StorageBackend` trait: [`Engine::open`] uses the real files,
//! crash tests pass files that fail on cue ([`StoreFiles`]).

use std::any::Any;
use std::collections::VecDeque;
use std::ops::Bound;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Duration;

use homeboy_config::private_file;
use redb::backends::FileBackend;
use redb::{
    BackendError, Database, Durability, ReadableDatabase, ReadableTable, StorageBackend,
    TableDefinition,
};

use crate::JobError;
use crate::tables::{META_CHECKPOINT_LSN, META_LOG_WRAPS, Table, read_u64, u64_key};

/// Every logical table lives in this one redb table under a one-byte prefix: a batch then dirties one
/// B-tree, which keeps non-durable commits cheap.
const STORE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("homeboy_jobs");

type StoreTable<'t> = redb::Table<'t, &'static [u8], &'static [u8]>;

fn composite(table: Table, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + key.len());
    out.push(table.code());
    out.extend_from_slice(key);
    out
}

/// `[prefix+start, prefix+end)` of one logical table.
fn bounds(table: Table, start: &[u8], end: Option<&[u8]>) -> (Vec<u8>, Vec<u8>) {
    let lower = composite(table, start);
    let upper = match end {
        Some(end) => composite(table, end),
        None => vec![table.code() + 1],
    };
    (lower, upper)
}
use crate::wal::{LogFile, Mutation, RECORD_HEADER, Wal, encode_payload, payload_len};

/// Bytes of the write-ahead log: a checkpoint (one durable redb commit) happens each time it fills.
const WAL_CAPACITY: u64 = 1024 * 1024;
/// Most operations in one batch.
const MAX_BATCH: usize = 512;

/// A source of "now" in milliseconds since the Unix epoch (tests pass their own).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    })
}

/// What a committed batch changed, for observers (long polls, event streams).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Jobs whose record or events changed.
    pub jobs: Vec<String>,
    /// Whether a job became claimable (enqueued or requeued).
    pub queue_grew: bool,
}

/// Called after each committed batch.
pub type Observer = Arc<dyn Fn(&Changes) + Send + Sync>;

type Output = Box<dyn Any + Send>;
/// An owned table entry.
pub(crate) type KeyValue = (Vec<u8>, Vec<u8>);
type Op = Box<dyn FnOnce(&mut Tx<'_, '_>) -> Result<Output, JobError> + Send>;

struct Pending {
    op: Op,
    reply: Arc<Slot>,
}

/// Where a caller's answer lands.
#[derive(Default)]
struct Slot {
    answer: Mutex<Option<Result<Output, JobError>>>,
    ready: Condvar,
}

impl Slot {
    fn fill(&self, answer: Result<Output, JobError>) {
        if let Ok(mut slot) = self.answer.lock() {
            *slot = Some(answer);
        }
        self.ready.notify_one();
    }

    fn take(&self) -> Option<Result<Output, JobError>> {
        self.answer.lock().ok()?.take()
    }

    /// Waits (briefly) for the answer.
    fn wait(&self, timeout: Duration) -> Option<Result<Output, JobError>> {
        let guard = self.answer.lock().ok()?;
        let (mut guard, _) = self
            .ready
            .wait_timeout_while(guard, timeout, |a| a.is_none())
            .ok()?;
        guard.take()
    }
}

/// An operation's view of the store: reads see everything earlier operations of the batch wrote.
pub struct Tx<'a, 't> {
    table: &'a mut StoreTable<'t>,
    mutations: Vec<Mutation>,
    changes: &'a mut Changes,
    next_seq: &'a mut u64,
    /// The batch's time.
    pub now_ms: u64,
}

impl Tx<'_, '_> {
    pub(crate) fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, JobError> {
        let value = self
            .table
            .get(composite(table, key).as_slice())
            .map_err(JobError::storage)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    pub(crate) fn put(
        &mut self,
        table: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), JobError> {
        self.table
            .insert(composite(table, &key).as_slice(), value.as_slice())
            .map_err(JobError::storage)?;
        self.mutations.push(Mutation {
            table: table.code(),
            key,
            value: Some(value),
        });
        Ok(())
    }

    pub(crate) fn delete(&mut self, table: Table, key: Vec<u8>) -> Result<(), JobError> {
        self.table
            .remove(composite(table, &key).as_slice())
            .map_err(JobError::storage)?;
        self.mutations.push(Mutation {
            table: table.code(),
            key,
            value: None,
        });
        Ok(())
    }

    /// A new, never reused sequence number (creation order of jobs).
    pub(crate) fn next_seq(&mut self) -> u64 {
        let seq = *self.next_seq;
        *self.next_seq += 1;
        seq
    }

    /// Visits entries of `table` with keys in `[start, end)` (end `None` = unbounded), in key order or in
    /// reverse, until `visit` returns `Ok(false)`. Keys are given without the table prefix.
    pub(crate) fn each(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: impl FnMut(&[u8], &[u8]) -> Result<bool, JobError>,
    ) -> Result<(), JobError> {
        let (lower, upper) = bounds(table, start, end);
        let range = self
            .table
            .range::<&[u8]>(lower.as_slice()..upper.as_slice())
            .map_err(JobError::storage)?;
        walk(range, reverse, visit)
    }

    /// All entries with keys in `[start, end)`, for operations that change what they scanned.
    pub(crate) fn collect(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
    ) -> Result<Vec<KeyValue>, JobError> {
        let mut out = Vec::new();
        self.each(table, start, end, false, |k, v| {
            out.push((k.to_vec(), v.to_vec()));
            Ok(true)
        })?;
        Ok(out)
    }

    /// Records that `job_id` changed.
    pub(crate) fn touched(&mut self, job_id: &str) {
        if !self.changes.jobs.iter().any(|j| j == job_id) {
            self.changes.jobs.push(job_id.to_string());
        }
    }

    /// Records that a job became claimable.
    pub(crate) fn queue_grew(&mut self) {
        self.changes.queue_grew = true;
    }
}

type Entry<'a> = Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

fn walk<'a>(
    iter: impl DoubleEndedIterator<Item = Entry<'a>>,
    reverse: bool,
    mut visit: impl FnMut(&[u8], &[u8]) -> Result<bool, JobError>,
) -> Result<(), JobError> {
    let mut step = |item: Entry<'a>| -> Result<bool, JobError> {
        let (k, v) = item.map_err(JobError::storage)?;
        // Strip the one-byte table prefix.
        visit(&k.value()[1..], v.value())
    };
    if reverse {
        for item in iter.rev() {
            if !step(item)? {
                break;
            }
        }
    } else {
        for item in iter {
            if !step(item)? {
                break;
            }
        }
    }
    Ok(())
}

type ReadTable = redb::ReadOnlyTable<&'static [u8], &'static [u8]>;

/// A read-only snapshot of the durable state of the store.
pub struct Snapshot {
    table: Arc<ReadTable>,
}

impl Snapshot {
    pub(crate) fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, JobError> {
        let value = self
            .table
            .get(composite(table, key).as_slice())
            .map_err(JobError::storage)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// See [`Tx::each`].
    pub(crate) fn each(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: impl FnMut(&[u8], &[u8]) -> Result<bool, JobError>,
    ) -> Result<(), JobError> {
        let (lower, upper) = bounds(table, start, end);
        let range = self
            .table
            .range::<&[u8]>(lower.as_slice()..upper.as_slice())
            .map_err(JobError::storage)?;
        walk(range, reverse, visit)
    }
}

/// The files an engine runs on, behind redb's `StorageBackend` trait.
#[cfg(test)]
pub(crate) struct StoreFiles {
    /// The redb database.
    pub db: Box<dyn StorageBackend>,
    /// The write-ahead log (zero-filled to `wal_capacity` on open).
    pub wal: LogFile,
    pub wal_capacity: u64,
}

/// The database file as redb sees it: every call goes to `inner` until the engine is poisoned; from then
/// on writes, length changes and syncs fail, so nothing (not even redb's own close) can make a batch
/// durable that the log does not hold.
#[derive(Debug)]
struct Fenced {
    inner: Box<dyn StorageBackend>,
    poisoned: Arc<AtomicBool>,
}

impl Fenced {
    fn check(&self) -> std::io::Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(std::io::Error::other(
                "the job store is poisoned; nothing more is written",
            ));
        }
        Ok(())
    }
}

impl StorageBackend for Fenced {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.inner.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.inner.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.inner.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.inner.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.inner.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.inner.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.inner.query_lock_range(start, end)
    }
}

/// The engine: a redb database, its log, and the group-commit state shared by all callers.
pub struct Engine {
    shared: Arc<Shared>,
    /// Log records replayed when the engine was opened.
    pub replayed: u64,
    /// Times the log had filled and restarted (since the store was created) when the engine was opened.
    pub log_wraps: u64,
}

struct Shared {
    /// Operations waiting for a leader.
    queue: Mutex<Vec<Pending>>,
    /// Held by the leader while it runs a batch and writes its log record.
    writer: Mutex<Writer>,
    /// The log file, for flushing without holding the writer lock.
    log_file: LogFile,
    /// Held while flushing, so concurrent leaders wait and then find their record already flushed.
    flush: Mutex<()>,
    /// The newest batch whose log record has been written (not necessarily flushed).
    written: AtomicU64,
    /// The newest batch known durable: every batch up to it is flushed (or checkpointed).
    flushed: AtomicU64,
    /// The newest durable state and the batch number it belongs to.
    durable: RwLock<(u64, Arc<ReadTable>)>,
    observer: RwLock<Option<Observer>>,
    /// Set (under the flush lock) once the engine is poisoned; also fences redb's file.
    poisoned: Arc<AtomicBool>,
    closed: AtomicBool,
    clock: Clock,
}

/// How long a waiting caller sleeps before checking whether it should lead.
const FOLLOWER_POLL: Duration = Duration::from_millis(2);

impl Engine {
    /// Opens `path` (and `path` + `.wal`) and replays the log into redb.
    pub fn open(path: &Path, clock: Clock) -> Result<Engine, JobError> {
        if let Some(dir) = path.parent() {
            private_file::create_dir_all(dir).map_err(JobError::storage)?;
        }
        // What `Database::create` does, with the file in our hands so it can be fenced; `0600`: jobs carry
        // their output.
        let file = private_file::open_store(path).map_err(JobError::storage)?;
        let db = FileBackend::new(file).map_err(JobError::storage)?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push(".wal");
        let wal = Wal::open(Path::new(&wal_path), WAL_CAPACITY).map_err(JobError::storage)?;
        let name = path.display().to_string();
        Self::start(Box::new(db), wal, WAL_CAPACITY, clock, &name)
    }

    /// Opens the engine on `files` (crash tests pass files that fail on cue).
    #[cfg(test)]
    pub(crate) fn open_files(files: StoreFiles, clock: Clock) -> Result<Engine, JobError> {
        let wal = Wal::on(files.wal, files.wal_capacity).map_err(JobError::storage)?;
        Self::start(files.db, wal, files.wal_capacity, clock, "the job store")
    }

    fn start(
        db: Box<dyn StorageBackend>,
        mut wal: Wal,
        wal_capacity: u64,
        clock: Clock,
        name: &str,
    ) -> Result<Engine, JobError> {
        let poisoned = Arc::new(AtomicBool::new(false));
        let db = Database::builder()
            .create_with_backend(Fenced {
                inner: db,
                poisoned: poisoned.clone(),
            })
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => JobError::Storage(format!(
                    "{name} is in use by another process (is another daemon serving this config dir?)"
                )),
                other => JobError::storage(other),
            })?;
        let replayed = replay(&db, &mut wal)?;
        let log_file = wal.file_handle();
        let durable = RwLock::new((0, Arc::new(read_table(&db)?)));
        let writer = Writer {
            next_seq: replayed.next_seq,
            next_lsn: wal.next_lsn(),
            log_used: 0,
            log_capacity: wal_capacity,
            log_wraps: replayed.log_wraps,
            batch: 0,
            unflushed: VecDeque::new(),
            erased: false,
            db,
            wal,
        };
        Ok(Engine {
            shared: Arc::new(Shared {
                queue: Mutex::new(Vec::new()),
                writer: Mutex::new(writer),
                log_file,
                flush: Mutex::new(()),
                written: AtomicU64::new(0),
                flushed: AtomicU64::new(0),
                durable,
                observer: RwLock::new(None),
                poisoned,
                closed: AtomicBool::new(false),
                clock,
            }),
            replayed: replayed.records,
            log_wraps: replayed.log_wraps,
        })
    }

    /// Times the log has filled and restarted since the store was created.
    #[cfg(test)]
    pub(crate) fn log_wraps(&self) -> u64 {
        self.shared
            .writer
            .lock()
            .map(|w| w.log_wraps)
            .unwrap_or_default()
    }

    /// Runs `op` in the next batch and returns its result once the batch is durable.
    pub fn write<R: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Tx<'_, '_>) -> Result<R, JobError> + Send + 'static,
    ) -> Result<R, JobError> {
        let shared = &self.shared;
        if shared.closed.load(Ordering::SeqCst) {
            return Err(JobError::Storage("the job store is closed".into()));
        }
        let slot = Arc::new(Slot::default());
        shared
            .queue
            .lock()
            .map_err(JobError::storage)?
            .push(Pending {
                op: Box::new(move |tx| op(tx).map(|r| Box::new(r) as Output)),
                reply: slot.clone(),
            });
        let output = loop {
            if let Some(answer) = slot.take() {
                break answer;
            }
            if !shared.lead() {
                // Someone else is leading; our answer comes from them, or we lead next.
                if let Some(answer) = slot.wait(FOLLOWER_POLL) {
                    break answer;
                }
            }
        }?;
        output
            .downcast::<R>()
            .map(|r| *r)
            .map_err(|_| JobError::Storage("operation returned the wrong type".into()))
    }

    /// The durable state as of the last acknowledged batch.
    pub fn snapshot(&self) -> Result<Snapshot, JobError> {
        if self.shared.poisoned.load(Ordering::SeqCst) {
            return Err(poisoned_error());
        }
        let table = self
            .shared
            .durable
            .read()
            .map_err(JobError::storage)?
            .1
            .clone();
        Ok(Snapshot { table })
    }

    /// Installs the function called after each durable batch.
    pub fn set_observer(&self, observer: Observer) {
        if let Ok(mut slot) = self.shared.observer.write() {
            *slot = Some(observer);
        }
    }

    /// Refuses new operations, waits for the ones in flight, and checkpoints so the next open needs no log.
    pub fn close(&self) {
        let shared = &self.shared;
        if shared.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Drain whatever is queued, then checkpoint under the writer lock.
        while shared.queue.lock().map(|q| !q.is_empty()).unwrap_or(false) {
            if !shared.lead() {
                std::thread::sleep(FOLLOWER_POLL);
            }
        }
        if let Ok(writer) = shared.writer.lock()
            && !shared.poisoned.load(Ordering::SeqCst)
        {
            let _ = writer.checkpoint_commit();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.close();
    }
}

impl Shared {
    /// Leads one batch if nobody else is leading and there is work. Returns whether it led.
    fn lead(&self) -> bool {
        let Ok(mut writer) = self.writer.try_lock() else {
            return false;
        };
        // While a flush is under way, let operations gather: a bigger batch costs one redb commit and one
        // flush instead of several, and on a busy machine CPU, not the disk, is what runs out first.
        drop(self.flush.lock().unwrap_or_else(|e| e.into_inner()));
        let batch: Vec<Pending> = match self.queue.lock() {
            Ok(mut queue) => {
                let n = queue.len().min(MAX_BATCH);
                queue.drain(..n).collect()
            }
            Err(_) => return false,
        };
        if batch.is_empty() {
            return false;
        }
        let done = if self.poisoned.load(Ordering::SeqCst) {
            refuse(batch, &poisoned_error())
        } else {
            writer.run_batch(batch, (self.clock)(), self)
        };
        if done.poison {
            self.poison(&mut writer);
        }
        if done.needs_flush {
            self.written.fetch_max(done.batch, Ordering::SeqCst);
        }
        drop(writer); // The next leader may start while this batch flushes...
        self.wake_next_leader(); // ...so wake whoever waits first in line.
        self.complete(done);
        true
    }

    /// Wakes the caller of the oldest queued operation so it can lead the next batch.
    fn wake_next_leader(&self) {
        let Ok(queue) = self.queue.lock() else { return };
        if let Some(next) = queue.first() {
            // Taking the slot's lock orders this wake after the waiter's check, so it cannot be lost.
            let _held = next.reply.answer.lock();
            next.reply.ready.notify_one();
        }
    }

    /// Makes sure batch `number`'s record is on disk. One flush covers every record written before it
    /// starts, so leaders that queue behind a flush usually find theirs done. A failed flush poisons the
    /// engine before the flush lock is released, so no later flush can acknowledge a batch built on the
    /// failed one.
    fn flush_through(&self, number: u64) -> Result<(), JobError> {
        if self.flushed.load(Ordering::SeqCst) >= number {
            return Ok(());
        }
        let _flushing = self.flush.lock().unwrap_or_else(|e| e.into_inner());
        if self.flushed.load(Ordering::SeqCst) >= number {
            return Ok(());
        }
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(poisoned_error());
        }
        let covered = self.written.load(Ordering::SeqCst);
        if let Err(e) = self.log_file.sync_data() {
            self.poisoned.store(true, Ordering::SeqCst);
            return Err(JobError::Storage(format!(
                "flushing the job store log failed: {e}"
            )));
        }
        self.flushed.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }

    /// Poisons the engine (see the module doc): fences redb's file and erases the first log record whose
    /// batch was not acknowledged. Called with the writer lock held.
    fn poison(&self, writer: &mut Writer) {
        let _flushing = self.flush.lock().unwrap_or_else(|e| e.into_inner());
        self.poisoned.store(true, Ordering::SeqCst);
        if !writer.erased {
            writer.erased = true;
            writer.erase_unacknowledged(self.flushed.load(Ordering::SeqCst));
        }
    }

    /// Flushes a batch's record (if any), publishes its state, answers its callers.
    fn complete(&self, done: Completed) {
        let mut answers = done.answers;
        if done.needs_flush
            && let Err(error) = self.flush_through(done.batch)
        {
            if let Ok(mut writer) = self.writer.lock() {
                self.poison(&mut writer);
            }
            for (_, answer) in &mut answers {
                *answer = Err(error.clone());
            }
            for (slot, answer) in answers {
                slot.fill(answer);
            }
            return;
        }
        if let Some(snapshot) = done.snapshot
            && let Ok(mut durable) = self.durable.write()
            && durable.0 < done.batch
        {
            *durable = (done.batch, snapshot);
        }
        for (slot, answer) in answers {
            slot.fill(answer);
        }
        if (!done.changes.jobs.is_empty() || done.changes.queue_grew)
            && let Ok(guard) = self.observer.read()
            && let Some(observer) = guard.as_ref()
        {
            observer(&done.changes);
        }
    }
}

fn read_table(db: &Database) -> Result<ReadTable, JobError> {
    db.begin_read()
        .map_err(JobError::storage)?
        .open_table(STORE)
        .map_err(JobError::storage)
}

type Answer = (Arc<Slot>, Result<Output, JobError>);

/// A batch run under the writer lock, waiting to be flushed and answered.
struct Completed {
    /// Its number, in commit order.
    batch: u64,
    /// Whether its log record still needs `fdatasync` (false when nothing changed or it was a durable
    /// checkpoint commit).
    needs_flush: bool,
    /// Whether redb now holds changes the log does not: the engine must be poisoned.
    poison: bool,
    snapshot: Option<Arc<ReadTable>>,
    answers: Vec<Answer>,
    changes: Changes,
}

/// The state only the leader touches.
struct Writer {
    db: Database,
    wal: Wal,
    next_seq: u64,
    next_lsn: u64,
    /// Bytes written to the log since its last restart.
    log_used: u64,
    log_capacity: u64,
    /// Times the log has filled and restarted since the store was created.
    log_wraps: u64,
    /// Batches run so far.
    batch: u64,
    /// `(batch, offset)` of the records of this log cycle that may not be flushed yet, oldest first.
    unflushed: VecDeque<(u64, u64)>,
    /// Whether poisoning has erased the unacknowledged records.
    erased: bool,
}

impl Writer {
    /// Makes the first record of a batch after `flushed` unreadable, so recovery ends before every
    /// record no caller was answered for (the next record's place when there is none).
    fn erase_unacknowledged(&mut self, flushed: u64) {
        while self.unflushed.front().is_some_and(|(b, _)| *b <= flushed) {
            self.unflushed.pop_front();
        }
        let offset = self
            .unflushed
            .front()
            .map_or(self.wal.offset(), |(_, offset)| *offset);
        if let Err(e) = self.wal.erase_at(offset) {
            eprintln!("homeboy jobs: erasing unacknowledged log records failed: {e}");
        }
    }

    fn run_batch(&mut self, batch: Vec<Pending>, now_ms: u64, shared: &Shared) -> Completed {
        let flushed = shared.flushed.load(Ordering::SeqCst);
        while self.unflushed.front().is_some_and(|(b, _)| *b <= flushed) {
            self.unflushed.pop_front();
        }
        self.batch += 1;
        let number = self.batch;
        // redb failing to start or run a transaction means its file failed (it latches I/O errors):
        // fail-stop, like every other storage failure under the writer.
        let mut txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => return refuse_poisoned(batch, &JobError::storage(e)),
        };
        let mut changes = Changes::default();
        let mut mutations = Vec::new();
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        let checkpointing;
        {
            let mut table = match txn.open_table(STORE) {
                Ok(table) => table,
                Err(e) => return refuse_poisoned(batch, &JobError::storage(e)),
            };
            let mut batch = batch.into_iter();
            while let Some(pending) = batch.next() {
                let mut tx = Tx {
                    table: &mut table,
                    mutations: Vec::new(),
                    changes: &mut changes,
                    next_seq: &mut self.next_seq,
                    now_ms,
                };
                let result = (pending.op)(&mut tx);
                let wrote = std::mem::take(&mut tx.mutations);
                let storage_failed = matches!(result, Err(JobError::Storage(_)));
                if storage_failed || (result.is_err() && !wrote.is_empty()) {
                    // Operations validate before they write; one that failed half-way aborts the batch
                    // (nothing of it is committed), and a storage failure also stops the engine.
                    let error = match result {
                        Err(e @ JobError::Storage(_)) => e,
                        _ => JobError::Storage(
                            "a store operation failed after writing; batch aborted".into(),
                        ),
                    };
                    answers.push((pending.reply, Err(error.clone())));
                    answers.extend(batch.map(|p| (p.reply, Err(error.clone()))));
                    let aborted = abort(answers, &error);
                    return Completed {
                        poison: storage_failed,
                        ..aborted
                    };
                }
                mutations.extend(wrote);
                answers.push((pending.reply, result));
            }
            if mutations.is_empty() {
                return Completed {
                    batch: number,
                    needs_flush: false,
                    poison: false,
                    snapshot: None,
                    answers,
                    changes,
                };
            }
            let record_len = (RECORD_HEADER + payload_len(&mutations)) as u64;
            checkpointing = self.log_used + record_len > self.log_capacity;
            if checkpointing {
                // The log is full: this batch becomes a durable redb commit that also checkpoints the log.
                let marked = table
                    .insert(
                        composite(Table::Meta, META_CHECKPOINT_LSN).as_slice(),
                        u64_key(self.next_lsn - 1).as_slice(),
                    )
                    .map(drop)
                    .and_then(|()| {
                        table
                            .insert(
                                composite(Table::Meta, META_LOG_WRAPS).as_slice(),
                                u64_key(self.log_wraps + 1).as_slice(),
                            )
                            .map(drop)
                    });
                if let Err(e) = marked {
                    return abort(answers, &JobError::storage(e));
                }
            }
        }
        let durability = if checkpointing {
            Durability::Immediate
        } else {
            Durability::None
        };
        let _ = txn.set_durability(durability);
        // A checkpoint makes every earlier batch durable, so it must not race a failing flush: it commits
        // under the flush lock, only if the engine is not poisoned, and counts as flushed before the lock
        // is released.
        let flushing =
            checkpointing.then(|| shared.flush.lock().unwrap_or_else(|e| e.into_inner()));
        if flushing.is_some() && shared.poisoned.load(Ordering::SeqCst) {
            return abort(answers, &poisoned_error());
        }
        if let Err(e) = txn.commit() {
            // Whether any of it reached redb is unknown (a durable commit may have half-landed): stop.
            return poisoned(answers, &JobError::storage(e));
        }
        let snapshot = match read_table(&self.db) {
            Ok(table) => Some(Arc::new(table)),
            Err(e) => return poisoned(answers, &e),
        };
        if checkpointing {
            self.log_used = 0;
            self.log_wraps += 1;
            self.unflushed.clear();
            self.wal.restart_after(self.next_lsn - 1);
            shared.written.fetch_max(number, Ordering::SeqCst);
            shared.flushed.fetch_max(number, Ordering::SeqCst);
            drop(flushing);
        } else {
            let payload = encode_payload(&mutations);
            let offset = self.wal.offset();
            if let Err(e) = self.wal.write_record(self.next_lsn, &payload) {
                // redb holds the batch but the log does not: nothing later may build on it.
                return poisoned(
                    answers,
                    &JobError::Storage(format!("writing the job store log failed: {e}")),
                );
            }
            self.unflushed.push_back((number, offset));
            self.next_lsn += 1;
            self.log_used += (RECORD_HEADER + payload.len()) as u64;
        }
        Completed {
            batch: number,
            needs_flush: !checkpointing,
            poison: false,
            snapshot,
            answers,
            changes,
        }
    }

    /// A durable redb commit recording that every logged record is in redb.
    fn checkpoint_commit(&self) -> Result<(), JobError> {
        let txn = self.db.begin_write().map_err(JobError::storage)?;
        {
            let mut table = txn.open_table(STORE).map_err(JobError::storage)?;
            table
                .insert(
                    composite(Table::Meta, META_CHECKPOINT_LSN).as_slice(),
                    u64_key(self.next_lsn - 1).as_slice(),
                )
                .map_err(JobError::storage)?;
        }
        txn.commit().map_err(JobError::storage)
    }
}

fn poisoned_error() -> JobError {
    JobError::Storage(
        "the job store log could not be written; restart the daemon to recover".into(),
    )
}

/// Every operation of the batch fails with `error`, and the engine is poisoned.
fn refuse_poisoned(batch: Vec<Pending>, error: &JobError) -> Completed {
    Completed {
        poison: true,
        ..refuse(batch, error)
    }
}

/// Every operation of the batch fails with `error`.
fn refuse(batch: Vec<Pending>, error: &JobError) -> Completed {
    abort(
        batch
            .into_iter()
            .map(|p| (p.reply, Err(error.clone())))
            .collect(),
        error,
    )
}

/// Every operation of the batch fails with `error`, and the engine is poisoned: redb may hold the batch.
fn poisoned(answers: Vec<Answer>, error: &JobError) -> Completed {
    Completed {
        poison: true,
        ..abort(answers, error)
    }
}

fn abort(answers: Vec<Answer>, error: &JobError) -> Completed {
    Completed {
        batch: 0,
        needs_flush: false,
        poison: false,
        snapshot: None,
        answers: answers
            .into_iter()
            .map(|(slot, _)| (slot, Err(error.clone())))
            .collect(),
        changes: Changes::default(),
    }
}

/// What [`replay`] found.
struct Replayed {
    /// Log records replayed.
    records: u64,
    /// The next creation sequence number.
    next_seq: u64,
    /// Times the log has filled and restarted since the store was created.
    log_wraps: u64,
}

/// Creates the table, replays log records newer than the checkpoint, and checkpoints.
fn replay(db: &Database, wal: &mut Wal) -> Result<Replayed, JobError> {
    let txn = db.begin_write().map_err(JobError::storage)?;
    let mut table = txn.open_table(STORE).map_err(JobError::storage)?;
    let meta = |table: &StoreTable<'_>, key: &[u8]| -> Result<u64, JobError> {
        Ok(table
            .get(composite(Table::Meta, key).as_slice())
            .map_err(JobError::storage)?
            .map_or(0, |v| read_u64(v.value())))
    };
    let checkpoint = meta(&table, META_CHECKPOINT_LSN)?;
    let log_wraps = meta(&table, META_LOG_WRAPS)?;
    let records = wal.recover(checkpoint).map_err(JobError::storage)?;
    let replayed = records.len() as u64;
    let mut last = checkpoint;
    for (lsn, mutations) in records {
        apply(&mut table, &mutations)?;
        last = lsn;
    }
    table
        .insert(
            composite(Table::Meta, META_CHECKPOINT_LSN).as_slice(),
            u64_key(last).as_slice(),
        )
        .map_err(JobError::storage)?;
    let next_seq = {
        let (lower, upper) = bounds(Table::Created, &[], None);
        let mut range = table
            .range::<&[u8]>(lower.as_slice()..upper.as_slice())
            .map_err(JobError::storage)?;
        match range.next_back() {
            Some(entry) => read_u64(&entry.map_err(JobError::storage)?.0.value()[1..]) + 1,
            None => 1,
        }
    };
    drop(table);
    txn.commit().map_err(JobError::storage)?;
    wal.restart_after(last);
    Ok(Replayed {
        records: replayed,
        next_seq,
        log_wraps,
    })
}

fn apply(table: &mut StoreTable<'_>, mutations: &[Mutation]) -> Result<(), JobError> {
    for m in mutations {
        let logical = Table::from_code(m.table)
            .ok_or_else(|| JobError::Storage(format!("log names unknown table {}", m.table)))?;
        let key = composite(logical, &m.key);
        match &m.value {
            Some(v) => {
                table
                    .insert(key.as_slice(), v.as_slice())
                    .map_err(JobError::storage)?;
            }
            None => {
                table.remove(key.as_slice()).map_err(JobError::storage)?;
            }
        }
    }
    Ok(())
}
