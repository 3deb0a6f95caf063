//! The job store contract ([`JobStore`]) and its embedded implementation on redb ([`RedbJobStore`]).
//!
//! Every mutating operation runs through the engine's writer (group commit) and returns only after its
//! change is durable; reads use snapshots. The state machine of the wire contract is enforced here, once:
//! queued → running | failed | cancelled; running → succeeded | failed | cancelled; a runner's expired lease
//! returns the job to queued until `max_attempts`, then fails it with `stale_reason: "claim_expired"`.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::JobError;
use crate::engine::{Clock, Engine, Observer, Snapshot, Tx, system_clock};
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
        if req.runner_id.is_empty() {
            return Err(JobError::invalid("runner_id", "must not be empty"));
        }
        let lease_ms = req.lease_ms.clamp(1, self.options.max_lease_ms);
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
        let lease_ms = lease_ms.clamp(1, self.options.max_lease_ms);
        self.engine
            .write(move |tx| heartbeat(tx, &job_id, &actor, lease_ms))
    }

    fn append_events(
        &self,
        job_id: &str,
        actor: &Actor,
        events: Vec<NewEvent>,
    ) -> Result<Vec<JobEvent>, JobError> {
        if let Some(bad) = events.iter().find(|e| e.kind == EventKind::Status) {
            return Err(JobError::invalid(
                "kind",
                format!("{:?} events are written by the store only", bad.kind),
            ));
        }
        let (job_id, actor) = (job_id.to_string(), actor.clone());
        let retention = self.options.event_retention;
        self.engine.write(move |tx| {
            let mut record = load_for(tx, &job_id, &actor)?;
            let appended = events
                .into_iter()
                .map(|e| push_event(tx, &mut record, e.kind, e.message, e.data, retention))
                .collect::<Result<Vec<_>, _>>()?;
            save(tx, &record)?;
            Ok(appended)
        })
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

/// SHA-256 of the request with object keys sorted, so key order does not make two equal submissions differ.
fn request_digest(request: &Value) -> String {
    fn write(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push(b'{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(Value::String(key.clone()).to_string().as_bytes());
                    out.push(b':');
                    write(&map[key], out);
                }
                out.push(b'}');
            }
            Value::Array(items) => {
                out.push(b'[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    write(item, out);
                }
                out.push(b']');
            }
            scalar => out.extend_from_slice(scalar.to_string().as_bytes()),
        }
    }
    let mut canonical = Vec::new();
    write(request, &mut canonical);
    hex::encode(Sha256::digest(&canonical))
}

fn enqueue(tx: &mut Tx<'_, '_>, new: NewJob, default_attempts: u32) -> Result<Enqueued, JobError> {
    if new.operation.trim().is_empty() {
        return Err(JobError::invalid("operation", "must not be empty"));
    }
    let max_attempts = new.max_attempts.unwrap_or(default_attempts);
    if max_attempts == 0 {
        return Err(JobError::invalid("max_attempts", "must be at least 1"));
    }
    let digest = request_digest(&new.request);
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
    let now = tx.now_ms;
    let mut record = Record {
        job: Job {
            id: id.clone(),
            operation: new.operation,
            status: JobStatus::Queued,
            created_at_ms: now,
            updated_at_ms: now,
            event_count: 0,
            started_at_ms: None,
            finished_at_ms: None,
            stale_reason: None,
            target_runner_id: new.target_runner_id,
            claim_id: None,
            claimed_by_runner_id: None,
            claimed_at_ms: None,
            claim_expires_at_ms: None,
            artifacts: Vec::new(),
            executor: new.executor,
            project_id: new.project_id,
            attempt: 0,
            max_attempts,
            last_sequence: 0,
            events_dropped: 0,
            exit_code: None,
            submission_key: new.submission_key.clone(),
        },
        seq,
        queue_seq: seq,
        past_claims: Vec::new(),
        first_retained: 1,
    };
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
    tx.put(Table::Queue, u64_key(seq), queue_entry(&record.job))?;
    tx.put(
        Table::Created,
        u64_key(seq),
        created_value(JobStatus::Queued.code(), &id),
    )?;
    push_status_event(
        tx,
        &mut record,
        "job queued",
        json!({"status": "queued"}),
        u64::MAX,
    )?;
    save(tx, &record)?;
    tx.queue_grew();
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
    let Some(job_id) = first_queued(tx, |entry| {
        entry.executor == Executor::Runner
            && entry.target.is_none_or(|t| t == runner)
            && project.is_none_or(|p| entry.project == Some(p))
    })?
    else {
        return Ok(None);
    };
    let mut record = require(tx, &job_id)?;
    let now = tx.now_ms;
    let claim_id = uuid::Uuid::new_v4().to_string();
    let expires = now + lease_ms;
    tx.delete(Table::Queue, u64_key(record.queue_seq))?;
    set_status(tx, &mut record, JobStatus::Running)?;
    let job = &mut record.job;
    job.attempt += 1;
    job.started_at_ms = Some(now);
    job.claim_id = Some(claim_id);
    job.claimed_by_runner_id = Some(req.runner_id.clone());
    job.claimed_at_ms = Some(now);
    job.claim_expires_at_ms = Some(expires);
    tx.put(Table::Leases, lease_key(expires, &job.id), Vec::new())?;
    let data = json!({"status": "running", "runner_id": req.runner_id, "attempt": job.attempt});
    push_status_event(tx, &mut record, "job claimed", data, u64::MAX)?;
    save(tx, &record)?;
    let request = load_request(tx, &job_id)?;
    Ok(Some(Claimed {
        job: record.job,
        request,
    }))
}

/// The id of the oldest queued job whose queue entry satisfies `eligible`.
fn first_queued(
    tx: &Tx<'_, '_>,
    eligible: impl Fn(&QueueEntry<'_>) -> bool,
) -> Result<Option<String>, JobError> {
    let mut found = None;
    tx.each(
        Table::Queue,
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
    let Some(id) = first_queued(tx, |entry| entry.executor == Executor::Daemon)? else {
        return Ok(None);
    };
    let mut record = require(tx, &id)?;
    tx.delete(Table::Queue, u64_key(record.queue_seq))?;
    set_status(tx, &mut record, JobStatus::Running)?;
    record.job.attempt += 1;
    record.job.started_at_ms = Some(tx.now_ms);
    push_status_event(
        tx,
        &mut record,
        "job started",
        json!({"status": "running"}),
        u64::MAX,
    )?;
    save(tx, &record)?;
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
    match check_actor(&record, actor, tx.now_ms) {
        Ok(()) => {}
        // The runner still holds the claim, but the job was cancelled: tell it, so it stops.
        Err(JobError::NotRunning { .. })
            if record.job.status == JobStatus::Cancelled && holds_live_claim(&record, actor) =>
        {
            return Ok(record.job);
        }
        Err(e) => return Err(e),
    }
    if let Actor::Runner { .. } = actor {
        let old = record.job.claim_expires_at_ms.unwrap_or(0);
        let expires = tx.now_ms + lease_ms;
        tx.delete(Table::Leases, lease_key(old, job_id))?;
        tx.put(Table::Leases, lease_key(expires, job_id), Vec::new())?;
        record.job.claim_expires_at_ms = Some(expires);
        record.job.updated_at_ms = tx.now_ms;
        save(tx, &record)?;
    }
    Ok(record.job)
}

fn finish(
    tx: &mut Tx<'_, '_>,
    job_id: &str,
    actor: &Actor,
    result: JobResult,
    retention: u64,
) -> Result<Job, JobError> {
    let mut record = load_for(tx, job_id, actor)?;
    let status = if result.exit_code == 0 {
        JobStatus::Succeeded
    } else {
        JobStatus::Failed
    };
    release_lease(tx, &record)?;
    let exit_code = result.exit_code;
    record.job.artifacts = result.artifacts.clone();
    record.job.exit_code = Some(exit_code);
    let result_json = serde_json::to_value(&result).map_err(JobError::storage)?;
    push_event(
        tx,
        &mut record,
        EventKind::Result,
        Some("job result".into()),
        Some(result_json),
        retention,
    )?;
    if status == JobStatus::Failed {
        let message = format!("job exited with code {exit_code}");
        push_event(
            tx,
            &mut record,
            EventKind::Error,
            Some(message),
            Some(json!({"exit_code": exit_code})),
            retention,
        )?;
    }
    set_status(tx, &mut record, status)?;
    record.job.finished_at_ms = Some(tx.now_ms);
    let data = json!({"status": status.as_str(), "exit_code": exit_code});
    push_status_event(
        tx,
        &mut record,
        &format!("job {}", status.as_str()),
        data,
        retention,
    )?;
    save(tx, &record)?;
    Ok(record.job)
}

fn cancel(tx: &mut Tx<'_, '_>, job_id: &str, retention: u64) -> Result<Job, JobError> {
    let mut record = require(tx, job_id)?;
    match record.job.status {
        JobStatus::Cancelled => return Ok(record.job),
        JobStatus::Queued => tx.delete(Table::Queue, u64_key(record.queue_seq))?,
        JobStatus::Running => release_lease(tx, &record)?,
        other => {
            return Err(JobError::IllegalTransition {
                job_id: job_id.to_string(),
                from: other.as_str().into(),
                to: "cancelled".into(),
            });
        }
    }
    set_status(tx, &mut record, JobStatus::Cancelled)?;
    record.job.finished_at_ms = Some(tx.now_ms);
    push_status_event(
        tx,
        &mut record,
        "job cancelled",
        json!({"status": "cancelled"}),
        retention,
    )?;
    save(tx, &record)?;
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
        tx.delete(Table::Leases, key)?;
        let Some(mut record) = load(tx, &job_id)? else {
            continue;
        };
        if record.job.status != JobStatus::Running || record.job.executor != Executor::Runner {
            continue;
        }
        let claim_id = record.job.claim_id.take().unwrap_or_default();
        let runner = record.job.claimed_by_runner_id.take();
        record.past_claims.push(claim_id);
        record.job.claimed_at_ms = None;
        record.job.claim_expires_at_ms = None;
        if record.job.attempt < record.job.max_attempts {
            // Running → queued is not a client transition; only lease expiry does it.
            move_status_index(tx, &record, JobStatus::Queued)?;
            record.job.status = JobStatus::Queued;
            record.job.updated_at_ms = now;
            tx.put(
                Table::Queue,
                u64_key(record.queue_seq),
                queue_entry(&record.job),
            )?;
            let data = json!({"status": "queued", "reason": "claim_expired", "expired_runner_id": runner, "attempt": record.job.attempt});
            push_status_event(
                tx,
                &mut record,
                "claim expired; job requeued",
                data,
                u64::MAX,
            )?;
            tx.queue_grew();
        } else {
            set_status(tx, &mut record, JobStatus::Failed)?;
            record.job.stale_reason = Some("claim_expired".into());
            record.job.finished_at_ms = Some(now);
            let data = json!({"status": "failed", "stale_reason": "claim_expired", "attempts": record.job.attempt});
            push_status_event(
                tx,
                &mut record,
                "claim expired; no attempts left",
                data,
                u64::MAX,
            )?;
        }
        save(tx, &record)?;
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
        set_status(tx, &mut record, JobStatus::Failed)?;
        record.job.stale_reason = Some("daemon_restarted".into());
        record.job.finished_at_ms = Some(tx.now_ms);
        let data = json!({"status": "failed", "stale_reason": "daemon_restarted"});
        push_status_event(
            tx,
            &mut record,
            "the daemon stopped while this job ran",
            data,
            u64::MAX,
        )?;
        save(tx, &record)?;
        failed.push(id);
    }
    Ok((failed, claims))
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

/// The record of a running job the actor may act on.
fn load_for(tx: &Tx<'_, '_>, job_id: &str, actor: &Actor) -> Result<Record, JobError> {
    let record = require(tx, job_id)?;
    check_actor(&record, actor, tx.now_ms)?;
    Ok(record)
}

fn holds_live_claim(record: &Record, actor: &Actor) -> bool {
    matches!(actor, Actor::Runner { runner_id, claim_id }
        if record.job.claim_id.as_deref() == Some(claim_id.as_str())
            && record.job.claimed_by_runner_id.as_deref() == Some(runner_id.as_str()))
}

/// Every claim-scoped call must name the claiming runner, the live claim id, a running job and an
/// unexpired lease; the daemon may act only on its own running jobs.
fn check_actor(record: &Record, actor: &Actor, now: u64) -> Result<(), JobError> {
    let job = &record.job;
    let not_running = || JobError::NotRunning {
        job_id: job.id.clone(),
        status: job.status.as_str().into(),
    };
    match actor {
        Actor::Daemon => {
            if job.executor != Executor::Daemon {
                return Err(JobError::ClaimMismatch {
                    job_id: job.id.clone(),
                });
            }
            if job.status != JobStatus::Running {
                return Err(not_running());
            }
            Ok(())
        }
        Actor::Runner { claim_id, .. } => {
            if job.executor != Executor::Runner {
                return Err(JobError::ClaimMismatch {
                    job_id: job.id.clone(),
                });
            }
            if holds_live_claim(record, actor) {
                if job.status != JobStatus::Running {
                    return Err(not_running());
                }
                if job.claim_expires_at_ms.is_some_and(|t| t <= now) {
                    return Err(JobError::ClaimExpired {
                        job_id: job.id.clone(),
                    });
                }
                return Ok(());
            }
            if record.past_claims.iter().any(|c| c == claim_id) {
                return Err(JobError::ClaimExpired {
                    job_id: job.id.clone(),
                });
            }
            Err(JobError::ClaimMismatch {
                job_id: job.id.clone(),
            })
        }
    }
}

fn release_lease(tx: &mut Tx<'_, '_>, record: &Record) -> Result<(), JobError> {
    if let Some(expires) = record.job.claim_expires_at_ms {
        tx.delete(Table::Leases, lease_key(expires, &record.job.id))?;
    }
    Ok(())
}

/// A contract transition: refuses what the state machine forbids and keeps the status index in step.
fn set_status(tx: &mut Tx<'_, '_>, record: &mut Record, next: JobStatus) -> Result<(), JobError> {
    let current = record.job.status;
    if !current.can_become(next) {
        return Err(JobError::IllegalTransition {
            job_id: record.job.id.clone(),
            from: current.as_str().into(),
            to: next.as_str().into(),
        });
    }
    move_status_index(tx, record, next)?;
    record.job.status = next;
    record.job.updated_at_ms = tx.now_ms;
    Ok(())
}

fn move_status_index(
    tx: &mut Tx<'_, '_>,
    record: &Record,
    next: JobStatus,
) -> Result<(), JobError> {
    tx.put(
        Table::Created,
        u64_key(record.seq),
        created_value(next.code(), &record.job.id),
    )
}

/// `(creation seq, status code, job id)` of a `Created` entry.
fn created_entry(key: &[u8], value: &[u8]) -> (u64, u8, String) {
    let status = value.first().copied().unwrap_or(u8::MAX);
    let id = String::from_utf8_lossy(value.get(1..).unwrap_or_default()).into_owned();
    (read_u64(key), status, id)
}

fn push_status_event(
    tx: &mut Tx<'_, '_>,
    record: &mut Record,
    message: &str,
    data: Value,
    retention: u64,
) -> Result<JobEvent, JobError> {
    push_event(
        tx,
        record,
        EventKind::Status,
        Some(message.to_string()),
        Some(data),
        retention,
    )
}

/// Appends one event, dropping (and counting) the oldest beyond `retention`. Status events of a terminal
/// job are the only events allowed after it ends, which `load_for` already guarantees for clients.
fn push_event(
    tx: &mut Tx<'_, '_>,
    record: &mut Record,
    kind: EventKind,
    message: Option<String>,
    data: Option<Value>,
    retention: u64,
) -> Result<JobEvent, JobError> {
    let job = &mut record.job;
    let event = JobEvent {
        sequence: job.last_sequence + 1,
        job_id: job.id.clone(),
        kind,
        timestamp_ms: tx.now_ms,
        message,
        data,
    };
    tx.put(
        Table::Events,
        event_key(&job.id, event.sequence),
        serde_json::to_vec(&event).map_err(JobError::storage)?,
    )?;
    job.last_sequence = event.sequence;
    job.event_count += 1;
    job.updated_at_ms = tx.now_ms;
    let retention = retention.max(1);
    while job.last_sequence + 1 - record.first_retained > retention {
        tx.delete(Table::Events, event_key(&job.id, record.first_retained))?;
        record.first_retained += 1;
        job.events_dropped += 1;
    }
    Ok(event)
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
#[path = "store_tests.rs"]
mod tests;
