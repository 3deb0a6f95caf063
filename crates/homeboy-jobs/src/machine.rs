//! The job state machine of the wire contract, written once for every backend. Each function takes a job
//! (with the bookkeeping stored next to it), the time, and the caller's input, checks what the contract
//! allows, changes the job, and returns the events the change appended. It does no I/O: a backend loads the
//! job, calls one of these, and persists the job, the appended events and the retention floor in one
//! transaction. The redb store and the PostgreSQL store therefore cannot disagree about a transition, an
//! event or a refusal.
//!
//! Transitions: queued → running | failed | cancelled; running → succeeded | failed | cancelled; a runner's
//! expired lease returns the job to queued until `max_attempts`, then fails it with
//! `stale_reason: "claim_expired"`.

use std::ops::Range;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::JobError;
use crate::model::*;

/// A job and the bookkeeping every backend stores with it, borrowed from the backend's own record.
pub struct JobMut<'a> {
    pub job: &'a mut Job,
    /// Claim ids of earlier attempts, so their late calls are told "expired", not "mismatch".
    pub past_claims: &'a mut Vec<String>,
    /// The oldest retained event sequence.
    pub first_retained: &'a mut u64,
}

/// The events one operation appended, and what retention dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Appended {
    /// Every appended event, oldest first (including any that retention dropped at once).
    pub events: Vec<JobEvent>,
    /// Event sequences retention dropped: from the oldest kept before the operation to the oldest kept after.
    pub dropped: Range<u64>,
}

impl Appended {
    fn starting_at(first_retained: u64) -> Appended {
        Appended {
            events: Vec::new(),
            dropped: first_retained..first_retained,
        }
    }

    /// The appended events that are still retained: what a backend writes.
    pub fn kept(&self) -> impl Iterator<Item = &JobEvent> {
        let floor = self.dropped.end;
        self.events.iter().filter(move |e| e.sequence >= floor)
    }
}

impl JobMut<'_> {
    /// Appends one event, dropping (and counting) the oldest beyond `retention`.
    fn push(
        &mut self,
        out: &mut Appended,
        now: u64,
        (kind, message, data): (EventKind, Option<String>, Option<Value>),
        retention: u64,
    ) {
        let job = &mut *self.job;
        let event = JobEvent {
            sequence: job.last_sequence + 1,
            job_id: job.id.clone(),
            kind,
            timestamp_ms: now,
            message,
            data,
        };
        job.last_sequence = event.sequence;
        job.event_count += 1;
        job.updated_at_ms = now;
        let retention = retention.max(1);
        while job.last_sequence + 1 - *self.first_retained > retention {
            *self.first_retained += 1;
            job.events_dropped += 1;
        }
        out.dropped.end = *self.first_retained;
        out.events.push(event);
    }

    /// A status event: only the store writes these.
    fn status(&mut self, out: &mut Appended, now: u64, message: &str, data: Value, retention: u64) {
        let event = (EventKind::Status, Some(message.to_string()), Some(data));
        self.push(out, now, event, retention);
    }

    /// A contract transition: refuses what the state machine forbids.
    fn become_(&mut self, next: JobStatus, now: u64) -> Result<(), JobError> {
        let current = self.job.status;
        if !current.can_become(next) {
            return Err(JobError::IllegalTransition {
                job_id: self.job.id.clone(),
                from: current.as_str().into(),
                to: next.as_str().into(),
            });
        }
        self.job.status = next;
        self.job.updated_at_ms = now;
        Ok(())
    }
}

/// SHA-256 of the request with object keys sorted, so key order does not make two equal submissions differ.
pub fn request_digest(request: &Value) -> String {
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

/// Checks a submission and returns its `max_attempts` (the store default when unset).
pub fn validate_new(new: &NewJob, default_attempts: u32) -> Result<u32, JobError> {
    if new.operation.trim().is_empty() {
        return Err(JobError::invalid("operation", "must not be empty"));
    }
    let max_attempts = new.max_attempts.unwrap_or(default_attempts);
    if max_attempts == 0 {
        return Err(JobError::invalid("max_attempts", "must be at least 1"));
    }
    Ok(max_attempts)
}

/// Refuses `status` events from clients: only the store writes them.
pub fn validate_events(events: &[NewEvent]) -> Result<(), JobError> {
    match events.iter().find(|e| e.kind == EventKind::Status) {
        Some(bad) => Err(JobError::invalid(
            "kind",
            format!("{:?} events are written by the store only", bad.kind),
        )),
        None => Ok(()),
    }
}

/// A new queued job with id `id` (already validated by [`validate_new`]); its bookkeeping starts empty
/// (no past claims, first retained event 1). Call [`enqueued`] on it for its first event.
pub fn new_job(id: String, new: &NewJob, max_attempts: u32, now: u64) -> Job {
    Job {
        id,
        operation: new.operation.clone(),
        status: JobStatus::Queued,
        created_at_ms: now,
        updated_at_ms: now,
        event_count: 0,
        started_at_ms: None,
        finished_at_ms: None,
        stale_reason: None,
        target_runner_id: new.target_runner_id.clone(),
        claim_id: None,
        claimed_by_runner_id: None,
        claimed_at_ms: None,
        claim_expires_at_ms: None,
        artifacts: Vec::new(),
        executor: new.executor,
        project_id: new.project_id.clone(),
        attempt: 0,
        max_attempts,
        last_sequence: 0,
        events_dropped: 0,
        exit_code: None,
        submission_key: new.submission_key.clone(),
    }
}

/// The first event of a new job.
pub fn enqueued(v: &mut JobMut<'_>, now: u64) -> Appended {
    let mut out = Appended::starting_at(*v.first_retained);
    v.status(
        &mut out,
        now,
        "job queued",
        json!({"status": "queued"}),
        u64::MAX,
    );
    out
}

/// Checks a claim request and returns its lease, clamped to the store's limits.
pub fn validate_claim(req: &ClaimRequest, options: &StoreOptions) -> Result<u64, JobError> {
    if req.runner_id.is_empty() {
        return Err(JobError::invalid("runner_id", "must not be empty"));
    }
    Ok(lease_ms(req.lease_ms, options))
}

/// A requested lease clamped to `1..=max_lease_ms`.
pub fn lease_ms(requested: u64, options: &StoreOptions) -> u64 {
    requested.clamp(1, options.max_lease_ms)
}

/// Whether a runner job is eligible for `runner_id` (and `project_id`, when asked).
pub fn claimable_by(job: &Job, runner_id: &str, project_id: Option<&str>) -> bool {
    job.status == JobStatus::Queued
        && job.executor == Executor::Runner
        && job
            .target_runner_id
            .as_deref()
            .is_none_or(|t| t == runner_id)
        && project_id.is_none_or(|p| job.project_id.as_deref() == Some(p))
}

/// A runner claims a queued runner job: running, one more attempt, a fresh fencing `claim_id`, a lease.
pub fn claim(
    v: &mut JobMut<'_>,
    runner_id: &str,
    claim_id: String,
    now: u64,
    lease_ms: u64,
) -> Result<Appended, JobError> {
    v.become_(JobStatus::Running, now)?;
    let job = &mut *v.job;
    job.attempt += 1;
    job.started_at_ms = Some(now);
    job.claim_id = Some(claim_id);
    job.claimed_by_runner_id = Some(runner_id.to_string());
    job.claimed_at_ms = Some(now);
    job.claim_expires_at_ms = Some(now + lease_ms);
    let data = json!({"status": "running", "runner_id": runner_id, "attempt": job.attempt});
    let mut out = Appended::starting_at(*v.first_retained);
    v.status(&mut out, now, "job claimed", data, u64::MAX);
    Ok(out)
}

/// The daemon starts one of its own queued jobs.
pub fn start_daemon(v: &mut JobMut<'_>, now: u64) -> Result<Appended, JobError> {
    v.become_(JobStatus::Running, now)?;
    v.job.attempt += 1;
    v.job.started_at_ms = Some(now);
    let mut out = Appended::starting_at(*v.first_retained);
    v.status(
        &mut out,
        now,
        "job started",
        json!({"status": "running"}),
        u64::MAX,
    );
    Ok(out)
}

/// A heartbeat: extends a runner's lease to `now + lease_ms`. Returns whether the job changed: a job
/// cancelled under the claim is left as it is (status cancelled), so the runner learns to stop, and the
/// daemon's heartbeat on its own running job changes nothing.
pub fn heartbeat(
    v: &mut JobMut<'_>,
    actor: &Actor,
    now: u64,
    lease_ms: u64,
) -> Result<bool, JobError> {
    match check_actor(v.job, v.past_claims, actor, now) {
        Ok(()) => {}
        Err(JobError::NotRunning { .. })
            if v.job.status == JobStatus::Cancelled && holds_live_claim(v.job, actor) =>
        {
            return Ok(false);
        }
        Err(e) => return Err(e),
    }
    if let Actor::Runner { .. } = actor {
        v.job.claim_expires_at_ms = Some(now + lease_ms);
        v.job.updated_at_ms = now;
        return Ok(true);
    }
    Ok(false)
}

/// Appends client events (already checked by [`validate_events`]) to a running job the actor may act on.
pub fn append(
    v: &mut JobMut<'_>,
    actor: &Actor,
    events: Vec<NewEvent>,
    now: u64,
    retention: u64,
) -> Result<Appended, JobError> {
    check_actor(v.job, v.past_claims, actor, now)?;
    let mut out = Appended::starting_at(*v.first_retained);
    for e in events {
        v.push(&mut out, now, (e.kind, e.message, e.data), retention);
    }
    Ok(out)
}

/// Records the outcome: exit 0 → succeeded, else failed (with an `error` event). The result is kept as a
/// `result` event.
pub fn finish(
    v: &mut JobMut<'_>,
    actor: &Actor,
    result: JobResult,
    now: u64,
    retention: u64,
) -> Result<Appended, JobError> {
    check_actor(v.job, v.past_claims, actor, now)?;
    let status = if result.exit_code == 0 {
        JobStatus::Succeeded
    } else {
        JobStatus::Failed
    };
    let exit_code = result.exit_code;
    v.job.artifacts = result.artifacts.clone();
    v.job.exit_code = Some(exit_code);
    let result_json = serde_json::to_value(&result).map_err(JobError::storage)?;
    let mut out = Appended::starting_at(*v.first_retained);
    let result_event = (
        EventKind::Result,
        Some("job result".into()),
        Some(result_json),
    );
    v.push(&mut out, now, result_event, retention);
    if status == JobStatus::Failed {
        let error_event = (
            EventKind::Error,
            Some(format!("job exited with code {exit_code}")),
            Some(json!({"exit_code": exit_code})),
        );
        v.push(&mut out, now, error_event, retention);
    }
    v.become_(status, now)?;
    v.job.finished_at_ms = Some(now);
    let data = json!({"status": status.as_str(), "exit_code": exit_code});
    let message = format!("job {}", status.as_str());
    v.status(&mut out, now, &message, data, retention);
    Ok(out)
}

/// Cancels a queued or running job. `None` when it already was cancelled (a no-op).
pub fn cancel(v: &mut JobMut<'_>, now: u64, retention: u64) -> Result<Option<Appended>, JobError> {
    if v.job.status == JobStatus::Cancelled {
        return Ok(None);
    }
    v.become_(JobStatus::Cancelled, now)?;
    v.job.finished_at_ms = Some(now);
    let mut out = Appended::starting_at(*v.first_retained);
    v.status(
        &mut out,
        now,
        "job cancelled",
        json!({"status": "cancelled"}),
        retention,
    );
    Ok(Some(out))
}

/// A runner job whose lease has passed goes back to the queue, or fails after `max_attempts`. `None` when
/// the job is not a running runner job with an expired lease (another sweeper got there first).
pub fn expire(v: &mut JobMut<'_>, now: u64) -> Option<Appended> {
    let job = &mut *v.job;
    if job.status != JobStatus::Running
        || job.executor != Executor::Runner
        || job.claim_expires_at_ms.is_none_or(|t| t > now)
    {
        return None;
    }
    let claim_id = job.claim_id.take().unwrap_or_default();
    let runner = job.claimed_by_runner_id.take();
    v.past_claims.push(claim_id);
    job.claimed_at_ms = None;
    job.claim_expires_at_ms = None;
    let mut out = Appended::starting_at(*v.first_retained);
    if job.attempt < job.max_attempts {
        // Running → queued is not a client transition; only lease expiry does it.
        job.status = JobStatus::Queued;
        job.updated_at_ms = now;
        let data = json!({"status": "queued", "reason": "claim_expired", "expired_runner_id": runner, "attempt": job.attempt});
        v.status(&mut out, now, "claim expired; job requeued", data, u64::MAX);
    } else {
        job.status = JobStatus::Failed;
        job.updated_at_ms = now;
        job.stale_reason = Some("claim_expired".into());
        job.finished_at_ms = Some(now);
        let data =
            json!({"status": "failed", "stale_reason": "claim_expired", "attempts": job.attempt});
        v.status(
            &mut out,
            now,
            "claim expired; no attempts left",
            data,
            u64::MAX,
        );
    }
    Some(out)
}

/// A daemon-executed job that was running when its daemon died is failed as stale. `None` for any other job.
pub fn fail_stale_daemon(v: &mut JobMut<'_>, now: u64) -> Option<Appended> {
    if v.job.executor != Executor::Daemon || v.job.status != JobStatus::Running {
        return None;
    }
    v.job.status = JobStatus::Failed;
    v.job.updated_at_ms = now;
    v.job.stale_reason = Some("daemon_restarted".into());
    v.job.finished_at_ms = Some(now);
    let mut out = Appended::starting_at(*v.first_retained);
    v.status(
        &mut out,
        now,
        "the daemon stopped while this job ran",
        json!({"status": "failed", "stale_reason": "daemon_restarted"}),
        u64::MAX,
    );
    Some(out)
}

/// Whether `actor` is the runner holding the job's current claim (expired or not).
pub fn holds_live_claim(job: &Job, actor: &Actor) -> bool {
    matches!(actor, Actor::Runner { runner_id, claim_id }
        if job.claim_id.as_deref() == Some(claim_id.as_str())
            && job.claimed_by_runner_id.as_deref() == Some(runner_id.as_str()))
}

/// Every claim-scoped call must name the claiming runner, the live claim id, a running job and an
/// unexpired lease; the daemon may act only on its own running jobs.
pub fn check_actor(
    job: &Job,
    past_claims: &[String],
    actor: &Actor,
    now: u64,
) -> Result<(), JobError> {
    let not_running = || JobError::NotRunning {
        job_id: job.id.clone(),
        status: job.status.as_str().into(),
    };
    let mismatch = || JobError::ClaimMismatch {
        job_id: job.id.clone(),
    };
    let expired = || JobError::ClaimExpired {
        job_id: job.id.clone(),
    };
    match actor {
        Actor::Daemon => {
            if job.executor != Executor::Daemon {
                return Err(mismatch());
            }
            if job.status != JobStatus::Running {
                return Err(not_running());
            }
            Ok(())
        }
        Actor::Runner { claim_id, .. } => {
            if job.executor != Executor::Runner {
                return Err(mismatch());
            }
            if holds_live_claim(job, actor) {
                if job.status != JobStatus::Running {
                    return Err(not_running());
                }
                if job.claim_expires_at_ms.is_some_and(|t| t <= now) {
                    return Err(expired());
                }
                return Ok(());
            }
            if past_claims.iter().any(|c| c == claim_id) {
                return Err(expired());
            }
            Err(mismatch())
        }
    }
}

/// The lease a backend indexes for the sweeper: a running runner job's expiry.
pub fn lease_of(job: &Job) -> Option<u64> {
    if job.status == JobStatus::Running && job.executor == Executor::Runner {
        job.claim_expires_at_ms
    } else {
        None
    }
}
