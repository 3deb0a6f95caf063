//! The inputs and outputs of every store operation. The job itself, its states, events and outcome are the
//! contract's wire types (`homeboy_api::jobs`), re-exported here so store callers need one import.

use serde_json::Value;

pub use homeboy_api::jobs::{EventKind, Executor, Job, JobEvent, JobResult, JobStatus, NewEvent};

/// The one-byte code of a status in the store's index keys (never on the wire).
pub(crate) trait StatusCode {
    fn code(self) -> u8;
}

impl StatusCode for JobStatus {
    fn code(self) -> u8 {
        match self {
            JobStatus::Queued => 0,
            JobStatus::Running => 1,
            JobStatus::Succeeded => 2,
            JobStatus::Failed => 3,
            JobStatus::Cancelled => 4,
        }
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub operation: String,
    pub executor: Executor,
    /// The submission as the client sent it (kept verbatim and returned with the claim).
    pub request: Value,
    pub target_runner_id: Option<String>,
    pub project_id: Option<String>,
    /// Idempotency key: the same key with the same request returns the same job.
    pub submission_key: Option<String>,
    /// Attempts before a repeatedly expiring lease fails the job (default from the store options).
    pub max_attempts: Option<u32>,
}

/// What `enqueue` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Enqueued {
    pub job: Job,
    pub request: Value,
    /// False when an identical submission with the same key already existed.
    pub created: bool,
}

/// A runner asking for work.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    pub runner_id: String,
    /// Only jobs of this project when set.
    pub project_id: Option<String>,
    pub lease_ms: u64,
}

/// A granted claim: the job (now running) and its request.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub job: Job,
    pub request: Value,
}

/// Who is acting on a running job.
#[derive(Debug, Clone, PartialEq)]
pub enum Actor {
    /// The daemon's own executor, for daemon-executed jobs.
    Daemon,
    /// A runner holding a claim.
    Runner { runner_id: String, claim_id: String },
}

/// Filters of `list`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub operation: Option<String>,
    /// Matches the claiming runner or the target runner.
    pub runner_id: Option<String>,
    pub limit: usize,
    /// Continue after this cursor (from a previous page's `next_cursor`).
    pub cursor: Option<u64>,
}

/// One page of `list`, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct JobPage {
    pub jobs: Vec<Job>,
    pub next_cursor: Option<u64>,
}

/// What is kept of finished jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Keep at most this many terminal jobs (the newest).
    pub max_terminal_jobs: usize,
    /// Drop terminal jobs finished longer ago than this.
    pub max_terminal_age_ms: u64,
}

impl Default for PrunePolicy {
    fn default() -> Self {
        PrunePolicy {
            max_terminal_jobs: 10_000,
            max_terminal_age_ms: 7 * 24 * 3600 * 1000,
        }
    }
}

/// Store-wide settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreOptions {
    /// Events kept per job; older ones are dropped and counted (default 1000).
    pub event_retention: u64,
    /// Default `max_attempts` of new jobs (default 3).
    pub max_attempts: u32,
    /// Longest lease a runner may ask for.
    pub max_lease_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            event_retention: 1000,
            max_attempts: 3,
            max_lease_ms: 10 * 60 * 1000,
        }
    }
}

/// What recovery did when the store was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Log records replayed into the store (work acknowledged before a crash).
    pub replayed_records: u64,
    /// Daemon-executed jobs that were running when the previous process died, now failed as stale.
    pub failed_stale: Vec<String>,
    /// Times the write-ahead log has filled and restarted (each time a checkpoint), since the store was
    /// created.
    pub log_wraps: u64,
    /// Runner jobs that were running (claimed) when the store was opened; their leases keep counting.
    pub running_claims: u64,
}
