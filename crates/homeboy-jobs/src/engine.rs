//! The storage engine under the job store: redb for state and indexes, the write-ahead log for durability,
//! and a two-stage pipeline that applies operations in batches (group commit).
//!
//! Callers hand the **writer** thread a closure over a [`Tx`]. The writer runs every closure that is waiting
//! in one redb write transaction, commits it non-durably, takes a read snapshot of the result, and passes
//! the batch's changes, snapshot and answers to the **syncer** thread — then starts on the next batch. The
//! syncer appends the records of all batches it has in hand to the log with one `fdatasync`, and only then
//! publishes the newest snapshot as the *durable* state and answers the callers. So CPU work on one batch
//! overlaps the flush of the previous ones, and concurrent callers share flushes.
//!
//! Reads never go through the writer: they use the latest durable snapshot, so nobody can observe a change
//! before it is on disk, and a caller that got its answer always reads its own write. A failed log write
//! poisons the engine: redb already holds changes that are not durable, so every later call fails until
//! the process restarts and recovery runs (fail-stop, as databases do on fsync errors).

use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use crate::JobError;
use crate::tables::{META_CHECKPOINT_LSN, Table, read_u64, u64_key};

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
use crate::wal::{Mutation, RECORD_HEADER, Wal, encode_payload, payload_len};

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
type Op = Box<dyn FnOnce(&mut Tx<'_, '_>) -> Result<Output, JobError> + Send>;

struct Pending {
    op: Op,
    reply: SyncSender<Result<Output, JobError>>,
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

/// The engine: a redb database, its log, and the writer and syncer threads.
pub struct Engine {
    sender: Mutex<Option<Sender<Pending>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    durable: Arc<RwLock<Arc<ReadTable>>>,
    observer: Arc<RwLock<Option<Observer>>>,
    /// Log records replayed when the engine was opened.
    pub replayed: u64,
}

impl Engine {
    /// Opens `path` (and `path` + `.wal`), replays the log into redb, and starts the pipeline.
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
        let (replayed, next_seq) = replay(&db, &mut wal)?;
        let durable = Arc::new(RwLock::new(Arc::new(read_table(&db)?)));
        let observer: Arc<RwLock<Option<Observer>>> = Arc::new(RwLock::new(None));
        let (sender, receiver) = mpsc::channel();
        let writer = {
            let stage = Writer {
                db,
                next_seq,
                next_lsn: wal.next_lsn(),
                log_used: 0,
                log_capacity: WAL_CAPACITY,
                poisoned: Arc::new(AtomicBool::new(false)),
            };
            let syncer = Syncer {
                wal,
                durable: durable.clone(),
                observer: observer.clone(),
                poisoned: stage.poisoned.clone(),
            };
            std::thread::Builder::new()
                .name("homeboy-jobs-writer".into())
                .spawn(move || stage.run(&receiver, &clock, syncer))
                .map_err(JobError::storage)?
        };
        Ok(Engine {
            sender: Mutex::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            durable,
            observer,
            replayed,
        })
    }

    /// Runs `op` in the next batch and returns its result once the batch is durable.
    pub fn write<R: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Tx<'_, '_>) -> Result<R, JobError> + Send + 'static,
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

    /// The durable state as of the last acknowledged batch.
    pub fn snapshot(&self) -> Result<Snapshot, JobError> {
        let table = self.durable.read().map_err(JobError::storage)?.clone();
        Ok(Snapshot { table })
    }

    /// Installs the function called after each durable batch.
    pub fn set_observer(&self, observer: Observer) {
        if let Ok(mut slot) = self.observer.write() {
            *slot = Some(observer);
        }
    }

    /// Stops the pipeline after the batches already submitted, with a final checkpoint.
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

fn read_table(db: &Database) -> Result<ReadTable, JobError> {
    db.begin_read()
        .map_err(JobError::storage)?
        .open_table(STORE)
        .map_err(JobError::storage)
}

type Answer = (
    SyncSender<Result<Output, JobError>>,
    Result<Output, JobError>,
);

/// What the writer hands the syncer for one batch.
struct Handoff {
    log: LogAction,
    /// The state after the batch (`None` when the batch changed nothing).
    snapshot: Option<Arc<ReadTable>>,
    answers: Vec<Answer>,
    changes: Changes,
}

enum LogAction {
    /// Nothing to log (read-only or refused operations); answer after the earlier batches.
    Nothing,
    /// Append this record.
    Append { lsn: u64, payload: Vec<u8> },
    /// The batch was committed durably as a checkpoint covering records up to `lsn`: restart the log.
    Restart { after_lsn: u64 },
}

/// The first stage: runs operations and commits them to redb non-durably.
struct Writer {
    db: Database,
    next_seq: u64,
    next_lsn: u64,
    /// Bytes the syncer will have written to the log since its last restart.
    log_used: u64,
    log_capacity: u64,
    poisoned: Arc<AtomicBool>,
}

impl Writer {
    fn run(mut self, receiver: &Receiver<Pending>, clock: &Clock, syncer: Syncer) {
        let (handoff, stage2) = mpsc::channel::<Handoff>();
        let syncer = std::thread::Builder::new()
            .name("homeboy-jobs-syncer".into())
            .spawn(move || syncer.run(&stage2));
        let Ok(syncer) = syncer else {
            return;
        };
        while let Ok(first) = receiver.recv() {
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(more) => batch.push(more),
                    Err(_) => break,
                }
            }
            let item = if self.poisoned.load(Ordering::SeqCst) {
                refuse(batch, &poisoned_error())
            } else {
                self.run_batch(batch, clock())
            };
            if handoff.send(item).is_err() {
                break;
            }
        }
        drop(handoff);
        let _ = syncer.join();
        // Closing: make everything durable in redb itself so the log is not needed on the next open.
        if !self.poisoned.load(Ordering::SeqCst) {
            let _ = self.checkpoint_commit();
        }
    }

    fn run_batch(&mut self, batch: Vec<Pending>, now_ms: u64) -> Handoff {
        let mut txn = match self.db.begin_write() {
            Ok(txn) => txn,
            Err(e) => return refuse(batch, &JobError::storage(e)),
        };
        let mut changes = Changes::default();
        let mut mutations = Vec::new();
        let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
        let checkpointing;
        {
            let mut table = match txn.open_table(STORE) {
                Ok(table) => table,
                Err(e) => return refuse(batch, &JobError::storage(e)),
            };
            for pending in batch {
                let mut tx = Tx {
                    table: &mut table,
                    mutations: Vec::new(),
                    changes: &mut changes,
                    next_seq: &mut self.next_seq,
                    now_ms,
                };
                let result = (pending.op)(&mut tx);
                let wrote = std::mem::take(&mut tx.mutations);
                if result.is_err() && !wrote.is_empty() {
                    // Operations validate before they write; one that failed half-way poisons the batch.
                    let error = JobError::Storage(
                        "a store operation failed after writing; batch aborted".into(),
                    );
                    answers.push((pending.reply, Err(error.clone())));
                    return abort(answers, &error);
                }
                mutations.extend(wrote);
                answers.push((pending.reply, result));
            }
            if mutations.is_empty() {
                return Handoff {
                    log: LogAction::Nothing,
                    snapshot: None,
                    answers,
                    changes,
                };
            }
            let record_len = (RECORD_HEADER + payload_len(&mutations)) as u64;
            checkpointing = self.log_used + record_len > self.log_capacity;
            if checkpointing {
                // The log is full: this batch becomes a durable redb commit that also checkpoints the log.
                let marked = table.insert(
                    composite(Table::Meta, META_CHECKPOINT_LSN).as_slice(),
                    u64_key(self.next_lsn - 1).as_slice(),
                );
                if let Err(e) = marked {
                    return abort(answers, &JobError::storage(e));
                }
            } else {
                self.log_used += record_len;
            }
        }
        let durability = if checkpointing {
            Durability::Immediate
        } else {
            Durability::None
        };
        let _ = txn.set_durability(durability);
        if let Err(e) = txn.commit() {
            // Nothing of this batch reached redb; earlier batches are unaffected.
            return abort(answers, &JobError::storage(e));
        }
        let snapshot = match read_table(&self.db) {
            Ok(table) => Some(Arc::new(table)),
            Err(e) => return abort(answers, &e),
        };
        let log = if checkpointing {
            self.log_used = 0;
            LogAction::Restart {
                after_lsn: self.next_lsn - 1,
            }
        } else {
            let lsn = self.next_lsn;
            self.next_lsn += 1;
            LogAction::Append {
                lsn,
                payload: encode_payload(&mutations),
            }
        };
        Handoff {
            log,
            snapshot,
            answers,
            changes,
        }
    }

    /// A durable redb commit recording that every record handed to the syncer is in redb.
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

/// Every operation of the batch fails with `error`, in order with the batches before it.
fn refuse(batch: Vec<Pending>, error: &JobError) -> Handoff {
    abort(
        batch
            .into_iter()
            .map(|p| (p.reply, Err(error.clone())))
            .collect(),
        error,
    )
}

fn abort(answers: Vec<Answer>, error: &JobError) -> Handoff {
    Handoff {
        log: LogAction::Nothing,
        snapshot: None,
        answers: answers
            .into_iter()
            .map(|(reply, _)| (reply, Err(error.clone())))
            .collect(),
        changes: Changes::default(),
    }
}

/// The second stage: makes batches durable, publishes their state, answers their callers.
struct Syncer {
    wal: Wal,
    durable: Arc<RwLock<Arc<ReadTable>>>,
    observer: Arc<RwLock<Option<Observer>>>,
    poisoned: Arc<AtomicBool>,
}

impl Syncer {
    fn run(mut self, receiver: &Receiver<Handoff>) {
        while let Ok(first) = receiver.recv() {
            let mut items = vec![first];
            while let Ok(more) = receiver.try_recv() {
                items.push(more);
            }
            self.flush(items);
        }
    }

    fn flush(&mut self, items: Vec<Handoff>) {
        let mut unsynced = false;
        let mut failure = None;
        for item in &items {
            if failure.is_some() {
                break;
            }
            match &item.log {
                LogAction::Nothing => {}
                LogAction::Append { lsn, payload } => match self.wal.write_record(*lsn, payload) {
                    Ok(()) => unsynced = true,
                    Err(e) => failure = Some(e),
                },
                LogAction::Restart { after_lsn } => {
                    if unsynced {
                        if let Err(e) = self.wal.sync() {
                            failure = Some(e);
                            break;
                        }
                        unsynced = false;
                    }
                    self.wal.restart_after(*after_lsn);
                }
            }
        }
        if failure.is_none() && unsynced {
            failure = self.wal.sync().err();
        }
        if let Some(error) = failure {
            self.poisoned.store(true, Ordering::SeqCst);
            let error = JobError::Storage(format!("writing the job store log failed: {error}"));
            for item in items {
                for (reply, _) in item.answers {
                    let _ = reply.send(Err(error.clone()));
                }
            }
            return;
        }
        let mut merged = Changes::default();
        let mut newest = None;
        for item in &items {
            if let Some(snapshot) = &item.snapshot {
                newest = Some(snapshot.clone());
            }
            for job in &item.changes.jobs {
                if !merged.jobs.contains(job) {
                    merged.jobs.push(job.clone());
                }
            }
            merged.queue_grew |= item.changes.queue_grew;
        }
        if let Some(snapshot) = newest
            && let Ok(mut durable) = self.durable.write()
        {
            *durable = snapshot;
        }
        for item in items {
            for (reply, result) in item.answers {
                let _ = reply.send(result);
            }
        }
        if (!merged.jobs.is_empty() || merged.queue_grew)
            && let Ok(guard) = self.observer.read()
            && let Some(observer) = guard.as_ref()
        {
            observer(&merged);
        }
    }
}

/// Creates the table, replays log records newer than the checkpoint, and checkpoints. Returns how many
/// records were replayed and the next creation sequence number.
fn replay(db: &Database, wal: &mut Wal) -> Result<(u64, u64), JobError> {
    let txn = db.begin_write().map_err(JobError::storage)?;
    let mut table = txn.open_table(STORE).map_err(JobError::storage)?;
    let checkpoint = table
        .get(composite(Table::Meta, META_CHECKPOINT_LSN).as_slice())
        .map_err(JobError::storage)?
        .map_or(0, |v| read_u64(v.value()));
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
    Ok((replayed, next_seq))
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
