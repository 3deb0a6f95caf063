//! The storage engine under the job store: redb for state and indexes, the write-ahead log for durability,
//! and one writer thread that applies operations in batches (group commit).
//!
//! Callers hand the writer a closure over a [`Tx`]; the writer runs every closure that is waiting in one redb
//! write transaction, appends all their changes to the log as one record with one `fdatasync`, commits the
//! transaction non-durably, and only then answers the callers. While one batch syncs, the next accumulates,
//! so concurrent callers share flushes. Reads never go through the writer: they open redb read transactions,
//! which see only committed — hence already durable — batches.

use std::any::Any;
use std::ops::Bound;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};

use crate::JobError;
use crate::tables::{META_CHECKPOINT_LSN, Table, read_u64, u64_key};
use crate::wal::{Mutation, Wal, encode_payload};

/// Bytes of the write-ahead log: a checkpoint (one durable redb commit) happens each time it fills.
const WAL_CAPACITY: u64 = 4 * 1024 * 1024;
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
type Op = Box<dyn FnOnce(&mut Tx<'_>) -> Result<Output, JobError> + Send>;

struct Pending {
    op: Op,
    reply: SyncSender<Result<Output, JobError>>,
}

/// An operation's view of the store: reads see everything earlier operations of the batch wrote.
pub struct Tx<'a> {
    txn: &'a WriteTransaction,
    mutations: Vec<Mutation>,
    changes: &'a mut Changes,
    /// The batch's time.
    pub now_ms: u64,
}

impl Tx<'_> {
    pub(crate) fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, JobError> {
        let t = self
            .txn
            .open_table(table.def())
            .map_err(JobError::storage)?;
        let value = t.get(key).map_err(JobError::storage)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    pub(crate) fn put(
        &mut self,
        table: Table,
        key: Vec<u8>,
        value: Vec<u8>,
    ) -> Result<(), JobError> {
        {
            let mut t = self
                .txn
                .open_table(table.def())
                .map_err(JobError::storage)?;
            t.insert(key.as_slice(), value.as_slice())
                .map_err(JobError::storage)?;
        }
        self.mutations.push(Mutation {
            table: table.code(),
            key,
            value: Some(value),
        });
        Ok(())
    }

    pub(crate) fn delete(&mut self, table: Table, key: Vec<u8>) -> Result<(), JobError> {
        {
            let mut t = self
                .txn
                .open_table(table.def())
                .map_err(JobError::storage)?;
            t.remove(key.as_slice()).map_err(JobError::storage)?;
        }
        self.mutations.push(Mutation {
            table: table.code(),
            key,
            value: None,
        });
        Ok(())
    }

    /// Visits entries of `table` with keys in `[start, end)` (end `None` = unbounded), in key order or in
    /// reverse, until `visit` returns `Ok(false)`. The visitor may read other tables.
    pub(crate) fn each(
        &self,
        table: Table,
        start: &[u8],
        end: Option<&[u8]>,
        reverse: bool,
        visit: impl FnMut(&[u8], &[u8]) -> Result<bool, JobError>,
    ) -> Result<(), JobError> {
        let t = self
            .txn
            .open_table(table.def())
            .map_err(JobError::storage)?;
        let range = (
            Bound::Included(start),
            end.map_or(Bound::Unbounded, Bound::Excluded),
        );
        walk(
            t.range::<&[u8]>(range).map_err(JobError::storage)?,
            reverse,
            visit,
        )
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
        visit(k.value(), v.value())
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

/// A read-only snapshot of the store.
pub struct Snapshot {
    txn: redb::ReadTransaction,
}

impl Snapshot {
    pub(crate) fn get(&self, table: Table, key: &[u8]) -> Result<Option<Vec<u8>>, JobError> {
        let t = self
            .txn
            .open_table(table.def())
            .map_err(JobError::storage)?;
        let value = t.get(key).map_err(JobError::storage)?;
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
        let t = self
            .txn
            .open_table(table.def())
            .map_err(JobError::storage)?;
        let range = (
            Bound::Included(start),
            end.map_or(Bound::Unbounded, Bound::Excluded),
        );
        walk(
            t.range::<&[u8]>(range).map_err(JobError::storage)?,
            reverse,
            visit,
        )
    }
}

/// The engine: a redb database, its log, and the writer thread.
pub struct Engine {
    db: Arc<Database>,
    sender: Mutex<Option<Sender<Pending>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    observer: Arc<RwLock<Option<Observer>>>,
    /// Log records replayed when the engine was opened.
    pub replayed: u64,
}

impl Engine {
    /// Opens `path` (and `path` + `.wal`), replays the log into redb, and starts the writer.
    pub fn open(path: &Path, clock: Clock) -> Result<Engine, JobError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(JobError::storage)?;
        }
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => JobError::Storage(format!(
                "{} is in use by another process (is another daemon serving this config dir?)",
                path.display()
            )),
            other => JobError::storage(other),
        })?;
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push(".wal");
        let mut wal = Wal::open(Path::new(&wal_path), WAL_CAPACITY).map_err(JobError::storage)?;
        let replayed = replay(&db, &mut wal)?;
        let db = Arc::new(db);
        let observer: Arc<RwLock<Option<Observer>>> = Arc::new(RwLock::new(None));
        let (sender, receiver) = mpsc::channel();
        let writer = {
            let db = db.clone();
            let observer = observer.clone();
            std::thread::Builder::new()
                .name("homeboy-jobs-writer".into())
                .spawn(move || write_loop(&db, wal, &receiver, &clock, &observer))
                .map_err(JobError::storage)?
        };
        Ok(Engine {
            db,
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            observer,
            replayed,
        })
    }

    /// Runs `op` in the next batch and returns its result once the batch is durable.
    pub fn write<R: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Tx<'_>) -> Result<R, JobError> + Send + 'static,
    ) -> Result<R, JobError> {
        let (reply, answer) = mpsc::sync_channel(1);
        let pending = Pending {
            op: Box::new(move |tx| op(tx).map(|r| Box::new(r) as Output)),
            reply,
        };
        {
            let sender = self.sender.lock().map_err(JobError::storage)?;
            let sender = sender
                .as_ref()
                .ok_or_else(|| JobError::Storage("the job store is closed".into()))?;
            sender
                .send(pending)
                .map_err(|_| JobError::Storage("the job store writer stopped".into()))?;
        }
        let output = answer
            .recv()
            .map_err(|_| JobError::Storage("the job store writer stopped".into()))??;
        output
            .downcast::<R>()
            .map(|r| *r)
            .map_err(|_| JobError::Storage("writer returned the wrong type".into()))
    }

    /// A consistent read-only view of everything committed so far.
    pub fn snapshot(&self) -> Result<Snapshot, JobError> {
        Ok(Snapshot {
            txn: self.db.begin_read().map_err(JobError::storage)?,
        })
    }

    /// Installs the function called after each committed batch.
    pub fn set_observer(&self, observer: Observer) {
        if let Ok(mut slot) = self.observer.write() {
            *slot = Some(observer);
        }
    }

    /// Stops the writer after the batches already submitted, with a final checkpoint.
    pub fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.close();
    }
}

/// Creates the tables, replays log records newer than the checkpoint, and checkpoints.
fn replay(db: &Database, wal: &mut Wal) -> Result<u64, JobError> {
    let txn = db.begin_write().map_err(JobError::storage)?;
    let checkpoint = {
        for table in Table::ALL {
            txn.open_table(table.def()).map_err(JobError::storage)?;
        }
        let meta = txn
            .open_table(Table::Meta.def())
            .map_err(JobError::storage)?;
        let value = meta.get(META_CHECKPOINT_LSN).map_err(JobError::storage)?;
        value.map_or(0, |v| read_u64(v.value()))
    };
    let records = wal.recover(checkpoint).map_err(JobError::storage)?;
    let replayed = records.len() as u64;
    let mut last = checkpoint;
    for (lsn, mutations) in records {
        apply(&txn, &mutations)?;
        last = lsn;
    }
    {
        let mut meta = txn
            .open_table(Table::Meta.def())
            .map_err(JobError::storage)?;
        meta.insert(META_CHECKPOINT_LSN, u64_key(last).as_slice())
            .map_err(JobError::storage)?;
    }
    txn.commit().map_err(JobError::storage)?;
    wal.restart_after(last);
    Ok(replayed)
}

fn apply(txn: &WriteTransaction, mutations: &[Mutation]) -> Result<(), JobError> {
    for m in mutations {
        let table = Table::from_code(m.table)
            .ok_or_else(|| JobError::Storage(format!("log names unknown table {}", m.table)))?;
        let mut t = txn.open_table(table.def()).map_err(JobError::storage)?;
        match &m.value {
            Some(v) => {
                t.insert(m.key.as_slice(), v.as_slice())
                    .map_err(JobError::storage)?;
            }
            None => {
                t.remove(m.key.as_slice()).map_err(JobError::storage)?;
            }
        }
    }
    Ok(())
}

fn write_loop(
    db: &Database,
    mut wal: Wal,
    receiver: &Receiver<Pending>,
    clock: &Clock,
    observer: &RwLock<Option<Observer>>,
) {
    while let Ok(first) = receiver.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let changes = run_batch(db, &mut wal, batch, clock());
        if let Some(changes) = changes
            && let Ok(guard) = observer.read()
            && let Some(observer) = guard.as_ref()
        {
            observer(&changes);
        }
    }
    // Closing: make everything durable in redb itself so the log is not needed on the next open.
    let _ = checkpoint(db, &mut wal);
}

/// Runs one batch; returns what it changed if it committed anything.
fn run_batch(db: &Database, wal: &mut Wal, batch: Vec<Pending>, now_ms: u64) -> Option<Changes> {
    let mut txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            fail_all(batch, &JobError::storage(e));
            return None;
        }
    };
    let mut changes = Changes::default();
    let mut mutations = Vec::new();
    let mut answers = Vec::with_capacity(batch.len());
    for pending in batch {
        let mut tx = Tx {
            txn: &txn,
            mutations: Vec::new(),
            changes: &mut changes,
            now_ms,
        };
        let result = (pending.op)(&mut tx);
        let wrote = std::mem::take(&mut tx.mutations);
        if result.is_err() && !wrote.is_empty() {
            // Operations validate before they write; one that failed half-way poisons the transaction.
            let error =
                JobError::Storage("a store operation failed after writing; batch aborted".into());
            let _ = pending.reply.send(Err(error.clone()));
            for (reply, _) in answers {
                let _: Result<(), _> = send(reply, Err(error.clone()));
            }
            drop(txn);
            return None;
        }
        mutations.extend(wrote);
        answers.push((pending.reply, result));
    }
    if mutations.is_empty() {
        drop(txn);
        for (reply, result) in answers {
            let _ = send(reply, result);
        }
        return None;
    }
    let payload = encode_payload(&mutations);
    let durable = if wal.fits(payload.len()) {
        let _ = txn.set_durability(Durability::None);
        wal.append(&payload)
            .map_err(JobError::storage)
            .and_then(|_| txn.commit().map_err(JobError::storage))
    } else {
        // The log is full: this batch becomes a durable redb commit that also checkpoints the log.
        let last = wal.next_lsn() - 1;
        let marked = txn
            .open_table(Table::Meta.def())
            .map_err(JobError::storage)
            .and_then(|mut meta| {
                meta.insert(META_CHECKPOINT_LSN, u64_key(last).as_slice())
                    .map(|_| ())
                    .map_err(JobError::storage)
            });
        let committed = marked.and_then(|()| {
            let _ = txn.set_durability(Durability::Immediate);
            txn.commit().map_err(JobError::storage)
        });
        if committed.is_ok() {
            wal.restart_after(last);
        }
        committed
    };
    match durable {
        Ok(()) => {
            for (reply, result) in answers {
                let _ = send(reply, result);
            }
            Some(changes)
        }
        Err(error) => {
            for (reply, _) in answers {
                let _ = send(reply, Err(error.clone()));
            }
            None
        }
    }
}

fn send(
    reply: SyncSender<Result<Output, JobError>>,
    result: Result<Output, JobError>,
) -> Result<(), ()> {
    reply.send(result).map_err(|_| ())
}

fn fail_all(batch: Vec<Pending>, error: &JobError) {
    for pending in batch {
        let _ = pending.reply.send(Err(error.clone()));
    }
}

/// A durable redb commit recording that everything logged so far is in redb; the log restarts.
fn checkpoint(db: &Database, wal: &mut Wal) -> Result<(), JobError> {
    let last = wal.next_lsn() - 1;
    let txn = db.begin_write().map_err(JobError::storage)?;
    {
        let mut meta = txn
            .open_table(Table::Meta.def())
            .map_err(JobError::storage)?;
        meta.insert(META_CHECKPOINT_LSN, u64_key(last).as_slice())
            .map_err(JobError::storage)?;
    }
    txn.commit().map_err(JobError::storage)?;
    wal.restart_after(last);
    Ok(())
}
