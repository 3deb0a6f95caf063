//! The job store contract ([`JobStore`]) and its embedded implementation on redb ([`RedbJobStore`]).
//!
//! Every mutating operation runs through the engine's writer (group commit) and returns only after its
//! change is durable; reads use snapshots. The state machine of the wire contract lives in
//! [`crate::machine`], shared with every backend; this file keeps redb's records, queues and indexes in step
//! with what it decides. Daemon-executed jobs have a queue of their own, so the daemon's executor (woken by
//! every enqueue) looks at its own jobs only, never at the runners' backlog.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::JobError;
use crate::engine::{Clock, Engine, Observer, Snapshot, Tx, system_clock};
use crate::machine::{self, Appended, JobMut};
use crate::model::*;
use crate::tables::{Table, created_value, event_key, lease_job_id, lease_key, read_u64, u64_key};

/// The operations of a job queue. A second backend implements this trait; callers never see redb.
///
/// **Lease boundary.** A runner's lease is live while `now < claim_expires_at_ms` and has expired from the
/// millisecond `now == claim_expires_at_ms` on: from then every claim-scoped call (heartbeat, events,
/// finish) is refused as `ClaimExpired`, and the next sweep (or claim) requeues or fails the job. A
/// heartbeat answered before that millisecond moves the expiry to `now + lease_ms`, and the old expiry
/// no longer means anything.
pub trait JobStore: Send + Sync {
    /// Adds a queued job (or returns the existing one for a repeated submission key).
    fn enqueue(&self, job: NewJob) -> Result<Enqueued, JobError>;
    /// Gives the oldest eligible queued runner job to `req.runner_id` with a lease, or `None`.
    fn claim(&self, req: ClaimRequest) -> Result<Option<Claimed>, JobError>;
    /// Starts the oldest queued daemon-executed job, or `None`.
    fn start_next_daemon_job(&self) -> Result<Option<Claimed>, JobError>;
    /// Extends a runner's lease. A job cancelled under the claim is returned as it is (status cancelled),
    /// so the runner learns to stop.
    fn heartbeat(&self, job_id: &str, actor: &Actor, lease_ms: u64) -> Result<Job, JobError>;
    /// Appends events (never `status`, which only the store writes) to a running job.
    fn append_events(
        &self,
        job_id: &str,
        actor: &Actor,
        events: Vec<NewEvent>,
    ) -> Result<Vec<JobEvent>, JobError>;
    /// Records the outcome: exit 0 → succeeded, else failed (with an `error` event). The result is kept as
    /// a `result` event.
    fn finish(&self, job_id: &str, actor: &Actor, result: JobResult) -> Result<Job, JobError>;
    /// Cancels a queued or running job; cancelling a cancelled job is a no-op.
    fn cancel(&self, job_id: &str) -> Result<Job, JobError>;
    fn get(&self, job_id: &str) -> Result<Option<Job>, JobError>;
    /// The request the job was submitted with.
    fn request(&self, job_id: &str) -> Result<Option<Value>, JobError>;
    fn list(&self, filter: &JobFilter) -> Result<JobPage, JobError>;
    /// Events with `sequence > after`, oldest first, at most `limit`.
    fn events(&self, job_id: &str, after: u64, limit: usize) -> Result<Vec<JobEvent>, JobError>;
    /// Requeues (or fails, after `max_attempts`) runner jobs whose lease has passed.
    fn expire_leases(&self) -> Result<Vec<Job>, JobError>;
    /// Deletes terminal jobs beyond the policy; never queued or running ones. Returns how many.
    fn prune(&self, policy: &PrunePolicy) -> Result<usize, JobError>;
    /// Called after every committed change (for long polls and event streams).
    fn set_observer(&self, observer: Observer);
    /// How many jobs are in each status, in `JobStatus::ALL` order (metrics and the daemon's idle check).
    /// The default pages through [`JobStore::list`]; a backend with an index does better.
    fn count_by_status(&self) -> Result<[(JobStatus, u64); 5], JobError> {
        let mut counts = JobStatus::ALL.map(|s| (s, 0u64));
        for (status, count) in &mut counts {
            let mut cursor = None;
            loop {
                let page = self.list(&JobFilter {
                    status: Some(*status),
                    limit: 500,
                    cursor,
                    ..JobFilter::default()
                })?;
                *count += page.jobs.len() as u64;
                match page.next_cursor {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        Ok(counts)
    }
}

/// The stored form of a job: the public job plus bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    job: Job,
    /// Creation sequence (orders listing and the by-status index).
    seq: u64,
    /// Queue position; kept so a requeued job returns to its original place.
    queue_seq: u64,
    /// Claim ids of earlier attempts, so their late calls are told "expired", not "mismatch".
    #[serde(default)]
    past_claims: Vec<String>,
    /// The oldest retained event sequence.
    first_retained: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Submission {
    job_id: String,
    request_sha256: String,
}

/// The embedded job store.
pub struct RedbJobStore {
    engine: Engine,
    options: StoreOptions,
}

impl RedbJobStore {
    /// Opens (creating) the store at `path` with the system clock. Recovery runs first: the log is replayed
    /// and daemon-executed jobs that were running when the last process died are failed as stale.
    pub fn open(path: &Path, options: StoreOptions) -> Result<(RedbJobStore, Recovery), JobError> {
        Self::open_with_clock(path, options, system_clock())
    }

    /// Like [`RedbJobStore::open`] with an explicit clock (tests move time forward by hand).
    pub fn open_with_clock(
        path: &Path,
        options: StoreOptions,
        clock: Clock,
    ) -> Result<(RedbJobStore, Recovery), JobError> {
        Self::start(Engine::open(path, clock)?, options)
    }

    /// Runs recovery on an opened engine.
    pub(crate) fn start(
        engine: Engine,
        options: StoreOptions,
    ) -> Result<(RedbJobStore, Recovery), JobError> {
        let store = RedbJobStore { engine, options };
        store.engine.write(split_daemon_queue)?;
        let (failed_stale, running_claims) = store.engine.write(fail_stale_daemon_jobs)?;
        let recovery = Recovery {
            replayed_records: store.engine.replayed,
            failed_stale,
            log_wraps: store.engine.log_wraps,
            running_claims,
        };
        Ok((store, recovery))
    }

    /// The engine, for the crash tests.
    #[cfg(test)]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Flushes and stops the writer (also done on drop).
    pub fn close(&self) {
        self.engine.close();
    }
}

impl JobStore for RedbJobStore {
    fn enqueue(&self, new: NewJob) -> Result<Enqueued, JobError> {
        let default_attempts = self.options.max_attempts;
        self.engine
            .write(move |tx| enqueue(tx, new, default_attempts))
    }

    fn claim(&self, req: ClaimRequest) -> Result<Option<Claimed>, JobError> {
        let lease_ms = machine::validate_claim(&req, &self.options)?;
        self.engine.write(move |tx| {
            expire(tx)?;
            claim(tx, &req, lease_ms)
        })
    }

    fn start_next_daemon_job(&self) -> Result<Option<Claimed>, JobError> {
        self.engine.write(start_next_daemon_job)
    }

    fn heartbeat(&self, job_id: &str, actor: &Actor, lease_ms: u64) -> Result<Job, JobError> {
        let (job_id, actor) = (job_id.to_string(), actor.clone());
        let lease_ms = machine::lease_ms(lease_ms, &self.options);
        self.engine
            .write(move |tx| heartbeat(tx, &job_id, &actor, lease_ms))
    }

    fn append_events(
        &self,
        job_id: &str,
        actor: &Actor,
        events: Vec<NewEvent>,
    ) -> Result<Vec<JobEvent>, JobError> {
        machine::validate_events(&events)?;
        let (job_id, actor) = (job_id.to_string(), actor.clone());
        let retention = self.options.event_retention;
        self.engine
            .write(move |tx| append_events(tx, &job_id, &actor, events, retention))
    }

    fn finish(&self, job_id: &str, actor: &Actor, result: JobResult) -> Result<Job, JobError> {
        let (job_id, actor) = (job_id.to_string(), actor.clone());
        let retention = self.options.event_retention;
        self.engine
            .write(move |tx| finish(tx, &job_id, &actor, result, retention))
    }

    fn cancel(&self, job_id: &str) -> Result<Job, JobError> {
        let job_id = job_id.to_string();
        let retention = self.options.event_retention;
        self.engine.write(move |tx| cancel(tx, &job_id, retention))
    }

    fn get(&self, job_id: &str) -> Result<Option<Job>, JobError> {
        let snap = self.engine.snapshot()?;
        Ok(read_record(&snap, job_id)?.map(|r| r.job))
    }

    fn request(&self, job_id: &str) -> Result<Option<Value>, JobError> {
        let snap = self.engine.snapshot()?;
        snap.get(Table::Requests, job_id.as_bytes())?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(JobError::storage))
            .transpose()
    }

    fn list(&self, filter: &JobFilter) -> Result<JobPage, JobError> {
        let snap = self.engine.snapshot()?;
        list(&snap, filter)
    }

    /// One scan of the creation index, which holds each job's status code: no record is read.
    fn count_by_status(&self) -> Result<[(JobStatus, u64); 5], JobError> {
        let snap = self.engine.snapshot()?;
        let mut counts = JobStatus::ALL.map(|s| (s, 0u64));
        snap.each(Table::Created, &[], None, false, |_, value| {
            let code = value.first().copied().unwrap_or(u8::MAX);
            if let Some((_, count)) = counts.iter_mut().find(|(s, _)| s.code() == code) {
                *count += 1;
            }
            Ok(true)
        })?;
        Ok(counts)
    }

    fn events(&self, job_id: &str, after: u64, limit: usize) -> Result<Vec<JobEvent>, JobError> {
        let snap = self.engine.snapshot()?;
        if snap.get(Table::Jobs, job_id.as_bytes())?.is_none() {
            return Err(JobError::NotFound(job_id.to_string()));
        }
        let start = event_key(job_id, after.saturating_add(1));
        let end = event_key(job_id, u64::MAX);
        let mut events = Vec::new();
        snap.each(Table::Events, &start, Some(&end), false, |_, value| {
            if events.len() >= limit {
                return Ok(false);
            }
            events.push(serde_json::from_slice(value).map_err(JobError::storage)?);
            Ok(true)
        })?;
        Ok(events)
    }

    fn expire_leases(&self) -> Result<Vec<Job>, JobError> {
        self.engine.write(expire)
    }

    fn prune(&self, policy: &PrunePolicy) -> Result<usize, JobError> {
        // In slices, so one prune never makes a huge batch.
        let mut total = 0;
        loop {
            let policy = *policy;
            let pruned = self.engine.write(move |tx| prune_some(tx, &policy, 64))?;
            total += pruned;
            if pruned < 64 {
                return Ok(total);
            }
        }
    }

    fn set_observer(&self, observer: Observer) {
        self.engine.set_observer(observer);
    }
}

// ---- operations (run inside the writer) -------------------------------------------------------------
//
// Each operation loads the record, lets the shared state machine (`crate::machine`) change the job, and
// hands the result to `write_back`, which moves the indexes by what changed and writes the events.

fn enqueue(tx: &mut Tx<'_, '_>, new: NewJob, default_attempts: u32) -> Result<Enqueued, JobError> {
    let max_attempts = machine::validate_new(&new, default_attempts)?;
    let digest = machine::request_digest(&new.request);
    if let Some(key) = &new.submission_key
        && let Some(bytes) = tx.get(Table::Submissions, key.as_bytes())?
    {
        let existing: Submission = serde_json::from_slice(&bytes).map_err(JobError::storage)?;
        if existing.request_sha256 != digest {
            return Err(JobError::SubmissionConflict {
                key: key.clone(),
                job_id: existing.job_id,
            });
        }
        let record = require(tx, &existing.job_id)?;
        let request = load_request(tx, &existing.job_id)?;
        return Ok(Enqueued {
            job: record.job,
            request,
            created: false,
        });
    }
    let seq = tx.next_seq();
    // Time-ordered ids keep the records of recent (active) jobs on neighbouring B-tree pages.
    let id = uuid::Uuid::now_v7().to_string();
    let mut record = Record {
        job: machine::new_job(id.clone(), &new, max_attempts, tx.now_ms),
        seq,
        queue_seq: seq,
        past_claims: Vec::new(),
        first_retained: 1,
    };
    let appended = machine::enqueued(&mut record.view(), tx.now_ms);
    if let Some(key) = &new.submission_key {
        let submission = Submission {
            job_id: id.clone(),
            request_sha256: digest,
        };
        tx.put(
            Table::Submissions,
            key.as_bytes().to_vec(),
            serde_json::to_vec(&submission).map_err(JobError::storage)?,
        )?;
    }
    tx.put(
        Table::Requests,
        id.as_bytes().to_vec(),
        serde_json::to_vec(&new.request).map_err(JobError::storage)?,
    )?;
    write_back(tx, &Before::NEW, &record, &appended)?;
    Ok(Enqueued {
        job: record.job,
        request: new.request,
        created: true,
    })
}

fn claim(
    tx: &mut Tx<'_, '_>,
    req: &ClaimRequest,
    lease_ms: u64,
) -> Result<Option<Claimed>, JobError> {
    let runner = req.runner_id.as_bytes();
    let project = req.project_id.as_deref().map(str::as_bytes);
    let Some(job_id) = first_queued(tx, Table::Queue, |entry| {
        entry.target.is_none_or(|t| t == runner) && project.is_none_or(|p| entry.project == Some(p))
    })?
    else {
        return Ok(None);
    };
    let mut record = require(tx, &job_id)?;
    let before = Before::of(&record);
    let claim_id = uuid::Uuid::new_v4().to_string();
    let now = tx.now_ms;
    let appended = machine::claim(&mut record.view(), &req.runner_id, claim_id, now, lease_ms)?;
    write_back(tx, &before, &record, &appended)?;
    let request = load_request(tx, &job_id)?;
    Ok(Some(Claimed {
        job: record.job,
        request,
    }))
}

/// The id of the oldest entry of `queue` that satisfies `eligible`.
fn first_queued(
    tx: &Tx<'_, '_>,
    queue: Table,
    eligible: impl Fn(&QueueEntry<'_>) -> bool,
) -> Result<Option<String>, JobError> {
    let mut found = None;
    tx.each(
        queue,
        &[],
        None,
        false,
        |_, value| match parse_queue_entry(value) {
            Some(entry) if eligible(&entry) => {
                found = Some(String::from_utf8_lossy(entry.id).into_owned());
                Ok(false)
            }
            _ => Ok(true),
        },
    )?;
    Ok(found)
}

fn start_next_daemon_job(tx: &mut Tx<'_, '_>) -> Result<Option<Claimed>, JobError> {
    // Daemon jobs have a queue of their own, so looking for one never walks the runners' backlog.
    let Some(id) = first_queued(tx, Table::DaemonQueue, |_| true)? else {
        return Ok(None);
    };
    let mut record = require(tx, &id)?;
    let before = Before::of(&record);
    let appended = machine::start_daemon(&mut record.view(), tx.now_ms)?;
    write_back(tx, &before, &record, &appended)?;
    let request = load_request(tx, &id)?;
    Ok(Some(Claimed {
        job: record.job,
        request,
    }))
}

fn heartbeat(
    tx: &mut Tx<'_, '_>,
    job_id: &str,
    actor: &Actor,
    lease_ms: u64,
) -> Result<Job, JobError> {
    let mut record = require(tx, job_id)?;
    let before = Before::of(&record);
    if machine::heartbeat(&mut record.view(), actor, tx.now_ms, lease_ms)? {
        write_back(tx, &before, &record, &Appended::default())?;
    }
    Ok(record.job)
}

fn append_events(
    tx: &mut Tx<'_, '_>,
    job_id: &str,
    actor: &Actor,
    events: Vec<NewEvent>,
    retention: u64,
) -> Result<Vec<JobEvent>, JobError> {
    let mut record = require(tx, job_id)?;
    let before = Before::of(&record);
    let appended = machine::append(&mut record.view(), actor, events, tx.now_ms, retention)?;
    write_back(tx, &before, &record, &appended)?;
    Ok(appended.events)
}

fn finish(
    tx: &mut Tx<'_, '_>,
    job_id: &str,
    actor: &Actor,
    result: JobResult,
    retention: u64,
) -> Result<Job, JobError> {
    let mut record = require(tx, job_id)?;
    let before = Before::of(&record);
    let appended = machine::finish(&mut record.view(), actor, result, tx.now_ms, retention)?;
    write_back(tx, &before, &record, &appended)?;
    Ok(record.job)
}

fn cancel(tx: &mut Tx<'_, '_>, job_id: &str, retention: u64) -> Result<Job, JobError> {
    let mut record = require(tx, job_id)?;
    let before = Before::of(&record);
    if let Some(appended) = machine::cancel(&mut record.view(), tx.now_ms, retention)? {
        write_back(tx, &before, &record, &appended)?;
    }
    Ok(record.job)
}

/// Runner jobs whose lease has passed: back to the queue, or failed after `max_attempts`.
fn expire(tx: &mut Tx<'_, '_>) -> Result<Vec<Job>, JobError> {
    let now = tx.now_ms;
    let end = u64_key(now + 1);
    let expired = tx.collect(Table::Leases, &[], Some(&end))?;
    let mut changed = Vec::new();
    for (key, _) in expired {
        let job_id = lease_job_id(&key);
        let Some(mut record) = load(tx, &job_id)? else {
            tx.delete(Table::Leases, key)?;
            continue;
        };
        let before = Before::of(&record);
        if before.lease.map(|t| lease_key(t, &job_id)).as_ref() != Some(&key) {
            tx.delete(Table::Leases, key)?; // Left behind; `write_back` moves only the record's own lease.
        }
        let Some(appended) = machine::expire(&mut record.view(), now) else {
            continue;
        };
        write_back(tx, &before, &record, &appended)?;
        changed.push(record.job);
    }
    Ok(changed)
}

/// On open: daemon-executed jobs that were running belonged to a process that is gone. Also counts the
/// runner claims that are kept.
fn fail_stale_daemon_jobs(tx: &mut Tx<'_, '_>) -> Result<(Vec<String>, u64), JobError> {
    let running: Vec<String> = tx
        .collect(Table::Created, &[], None)?
        .iter()
        .map(|(k, v)| created_entry(k, v))
        .filter(|(_, status, _)| *status == JobStatus::Running.code())
        .map(|(_, _, id)| id)
        .collect();
    let mut failed = Vec::new();
    let mut claims = 0;
    for id in running {
        let mut record = require(tx, &id)?;
        if record.job.executor != Executor::Daemon {
            claims += 1;
            continue; // Runner claims keep their lease until it expires.
        }
        let before = Before::of(&record);
        if let Some(appended) = machine::fail_stale_daemon(&mut record.view(), tx.now_ms) {
            write_back(tx, &before, &record, &appended)?;
            failed.push(id);
        }
    }
    Ok((failed, claims))
}

/// On open: stores written before daemon jobs had a queue of their own keep them in the runners' queue;
/// move them over once.
fn split_daemon_queue(tx: &mut Tx<'_, '_>) -> Result<(), JobError> {
    let daemon_entries: Vec<_> = tx
        .collect(Table::Queue, &[], None)?
        .into_iter()
        .filter(|(_, value)| {
            parse_queue_entry(value).is_some_and(|e| e.executor == Executor::Daemon)
        })
        .collect();
    for (key, value) in daemon_entries {
        tx.delete(Table::Queue, key.clone())?;
        tx.put(Table::DaemonQueue, key, value)?;
    }
    Ok(())
}

fn prune_some(tx: &mut Tx<'_, '_>, policy: &PrunePolicy, max: usize) -> Result<usize, JobError> {
    let now = tx.now_ms;
    let terminal_codes = [
        JobStatus::Succeeded.code(),
        JobStatus::Failed.code(),
        JobStatus::Cancelled.code(),
    ];
    // Oldest first (creation order).
    let terminal: Vec<(u64, String)> = tx
        .collect(Table::Created, &[], None)?
        .iter()
        .map(|(k, v)| created_entry(k, v))
        .filter(|(_, status, _)| terminal_codes.contains(status))
        .map(|(seq, _, id)| (seq, id))
        .collect();
    let over_count = terminal.len().saturating_sub(policy.max_terminal_jobs);
    let mut doomed = Vec::new();
    for (index, (_, id)) in terminal.iter().enumerate() {
        if doomed.len() >= max {
            break;
        }
        let record = require(tx, id)?;
        let finished = record
            .job
            .finished_at_ms
            .unwrap_or(record.job.updated_at_ms);
        if index < over_count || now.saturating_sub(finished) > policy.max_terminal_age_ms {
            doomed.push(record);
        }
    }
    for record in &doomed {
        let id = &record.job.id;
        let start = event_key(id, 0);
        let end = event_key(id, u64::MAX);
        for (key, _) in tx.collect(Table::Events, &start, Some(&end))? {
            tx.delete(Table::Events, key)?;
        }
        tx.delete(Table::Jobs, id.as_bytes().to_vec())?;
        tx.delete(Table::Requests, id.as_bytes().to_vec())?;
        tx.delete(Table::Created, u64_key(record.seq))?;
        if let Some(key) = &record.job.submission_key {
            tx.delete(Table::Submissions, key.as_bytes().to_vec())?;
        }
        tx.touched(id);
    }
    Ok(doomed.len())
}

// ---- helpers ----------------------------------------------------------------------------------------

impl Record {
    /// The record as the state machine sees it.
    fn view(&mut self) -> JobMut<'_> {
        JobMut {
            job: &mut self.job,
            past_claims: &mut self.past_claims,
            first_retained: &mut self.first_retained,
        }
    }
}

/// What the indexes said about a record before an operation changed it.
struct Before {
    /// `None` for a job that did not exist yet.
    status: Option<JobStatus>,
    lease: Option<u64>,
    last_sequence: u64,
}

impl Before {
    const NEW: Before = Before {
        status: None,
        lease: None,
        last_sequence: 0,
    };

    fn of(record: &Record) -> Before {
        Before {
            status: Some(record.job.status),
            lease: machine::lease_of(&record.job),
            last_sequence: record.job.last_sequence,
        }
    }
}

/// Persists what an operation did: the appended events still retained, the events retention dropped, the
/// status index, queue membership, the lease index, and the record itself.
fn write_back(
    tx: &mut Tx<'_, '_>,
    before: &Before,
    record: &Record,
    appended: &Appended,
) -> Result<(), JobError> {
    let job = &record.job;
    for event in appended.kept() {
        tx.put(
            Table::Events,
            event_key(&job.id, event.sequence),
            serde_json::to_vec(event).map_err(JobError::storage)?,
        )?;
    }
    // Only events stored before this operation need deleting; newer dropped ones were never written.
    let stored_end = appended.dropped.end.min(before.last_sequence + 1);
    for sequence in appended.dropped.start..stored_end {
        tx.delete(Table::Events, event_key(&job.id, sequence))?;
    }
    if before.status != Some(job.status) {
        tx.put(
            Table::Created,
            u64_key(record.seq),
            created_value(job.status.code(), &job.id),
        )?;
    }
    let queue = match job.executor {
        Executor::Daemon => Table::DaemonQueue,
        Executor::Runner => Table::Queue,
    };
    let (was_queued, is_queued) = (
        before.status == Some(JobStatus::Queued),
        job.status == JobStatus::Queued,
    );
    if was_queued && !is_queued {
        tx.delete(queue, u64_key(record.queue_seq))?;
    } else if !was_queued && is_queued {
        tx.put(queue, u64_key(record.queue_seq), queue_entry(job))?;
        tx.queue_grew();
    }
    let lease = machine::lease_of(job);
    if before.lease != lease {
        if let Some(old) = before.lease {
            tx.delete(Table::Leases, lease_key(old, &job.id))?;
        }
        if let Some(new) = lease {
            tx.put(Table::Leases, lease_key(new, &job.id), Vec::new())?;
        }
    }
    save(tx, record)
}

/// A queue entry carries what claim eligibility needs, so a claim reads only the queue until it finds a
/// job: `executor u8 | target_len u16 | target | project_len u16 | project | job id`
/// (`u16::MAX` length = none).
fn queue_entry(job: &Job) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + job.id.len());
    out.push(match job.executor {
        Executor::Daemon => 0,
        Executor::Runner => 1,
    });
    for field in [&job.target_runner_id, &job.project_id] {
        match field {
            Some(text) => {
                out.extend_from_slice(
                    &(text.len().min(u16::MAX as usize - 1) as u16).to_be_bytes(),
                );
                out.extend_from_slice(&text.as_bytes()[..text.len().min(u16::MAX as usize - 1)]);
            }
            None => out.extend_from_slice(&u16::MAX.to_be_bytes()),
        }
    }
    out.extend_from_slice(job.id.as_bytes());
    out
}

struct QueueEntry<'a> {
    executor: Executor,
    target: Option<&'a [u8]>,
    project: Option<&'a [u8]>,
    id: &'a [u8],
}

fn parse_queue_entry(bytes: &[u8]) -> Option<QueueEntry<'_>> {
    let executor = match *bytes.first()? {
        0 => Executor::Daemon,
        _ => Executor::Runner,
    };
    let mut rest = &bytes[1..];
    let mut field = || -> Option<Option<&[u8]>> {
        let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?);
        rest = &rest[2..];
        if len == u16::MAX {
            return Some(None);
        }
        let (text, tail) = (rest.get(..len as usize)?, rest.get(len as usize..)?);
        rest = tail;
        Some(Some(text))
    };
    let target = field()?;
    let project = field()?;
    Some(QueueEntry {
        executor,
        target,
        project,
        id: rest,
    })
}

fn load_request(tx: &Tx<'_, '_>, job_id: &str) -> Result<Value, JobError> {
    Ok(tx
        .get(Table::Requests, job_id.as_bytes())?
        .map(|b| serde_json::from_slice(&b).map_err(JobError::storage))
        .transpose()?
        .unwrap_or(Value::Null))
}

fn load(tx: &Tx<'_, '_>, job_id: &str) -> Result<Option<Record>, JobError> {
    tx.get(Table::Jobs, job_id.as_bytes())?
        .map(|b| serde_json::from_slice(&b).map_err(JobError::storage))
        .transpose()
}

fn require(tx: &Tx<'_, '_>, job_id: &str) -> Result<Record, JobError> {
    load(tx, job_id)?.ok_or_else(|| JobError::NotFound(job_id.to_string()))
}

fn read_record(snap: &Snapshot, job_id: &str) -> Result<Option<Record>, JobError> {
    snap.get(Table::Jobs, job_id.as_bytes())?
        .map(|b| serde_json::from_slice(&b).map_err(JobError::storage))
        .transpose()
}

fn save(tx: &mut Tx<'_, '_>, record: &Record) -> Result<(), JobError> {
    tx.put(
        Table::Jobs,
        record.job.id.as_bytes().to_vec(),
        serde_json::to_vec(record).map_err(JobError::storage)?,
    )?;
    tx.touched(&record.job.id);
    Ok(())
}

/// `(creation seq, status code, job id)` of a `Created` entry.
fn created_entry(key: &[u8], value: &[u8]) -> (u64, u8, String) {
    let status = value.first().copied().unwrap_or(u8::MAX);
    let id = String::from_utf8_lossy(value.get(1..).unwrap_or_default()).into_owned();
    (read_u64(key), status, id)
}

fn list(snap: &Snapshot, filter: &JobFilter) -> Result<JobPage, JobError> {
    let limit = if filter.limit == 0 { 50 } else { filter.limit };
    let end = u64_key(filter.cursor.unwrap_or(u64::MAX));
    let status_code = filter.status.map(JobStatus::code);
    let mut jobs = Vec::new();
    let mut last_seq = None;
    let mut more = false;
    // Newest first; the status filter reads the index, the others the loaded records.
    snap.each(Table::Created, &[], Some(&end), true, |key, value| {
        let (seq, status, id) = created_entry(key, value);
        if status_code.is_some_and(|code| code != status) {
            return Ok(true);
        }
        let Some(record) = read_record(snap, &id)? else {
            return Ok(true);
        };
        let job = &record.job;
        if filter
            .operation
            .as_deref()
            .is_some_and(|op| op != job.operation)
        {
            return Ok(true);
        }
        if let Some(runner) = filter.runner_id.as_deref()
            && job.claimed_by_runner_id.as_deref() != Some(runner)
            && job.target_runner_id.as_deref() != Some(runner)
        {
            return Ok(true);
        }
        if jobs.len() == limit {
            more = true;
            return Ok(false);
        }
        last_seq = Some(seq);
        jobs.push(record.job);
        Ok(true)
    })?;
    Ok(JobPage {
        jobs,
        next_cursor: if more { last_seq } else { None },
    })
}

#[cfg(test)]
#[path = "redb_store_tests.rs"]
mod tests;
