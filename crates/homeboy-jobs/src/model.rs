//! The job model of the wire contract: jobs, their states and transitions, events, and the inputs and
//! outputs of every store operation. Field names are the contract's; new fields are only ever added.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A job's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    /// Terminal states are never left.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<JobStatus> {
        JobStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the contract allows `self → next`: queued → running | failed | cancelled;
    /// running → succeeded | failed | cancelled (and back to queued only through lease expiry).
    pub fn can_become(self, next: JobStatus) -> bool {
        use JobStatus::*;
        matches!(
            (self, next),
            (Queued, Running | Failed | Cancelled) | (Running, Succeeded | Failed | Cancelled)
        )
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            JobStatus::Queued => 0,
            JobStatus::Running => 1,
            JobStatus::Succeeded => 2,
            JobStatus::Failed => 3,
            JobStatus::Cancelled => 4,
        }
    }
}

/// Who runs a job: the daemon's own executor, or a runner that claims it over the broker routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    Daemon,
    Runner,
}

/// A job as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub operation: String,
    pub status: JobStatus,
    pub created_at_ms: u64,
    pub updated_at_ms: u64,
    /// Events appended so far (including any dropped by retention).
    pub event_count: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_runner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_by_runner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_at_ms: Option<u64>,
    /// When the runner's lease ends. The lease is live while `now < claim_expires_at_ms`; at
    /// `now == claim_expires_at_ms` it has expired (see [`crate::JobStore`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim_expires_at_ms: Option<u64>,
    #[serde(default)]
    pub artifacts: Vec<Value>,
    // Additive fields.
    pub executor: Executor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Claims so far (1 for the first run).
    #[serde(default)]
    pub attempt: u32,
    pub max_attempts: u32,
    /// The sequence number of the newest event (sequences start at 1 and never repeat).
    pub last_sequence: u64,
    /// Events dropped by per-job retention, oldest first.
    #[serde(default)]
    pub events_dropped: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submission_key: Option<String>,
}

/// Kinds of job events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Status,
    Stdout,
    Stderr,
    Progress,
    Result,
    Error,
}

impl EventKind {
    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<EventKind> {
        serde_json::from_value(Value::String(name.to_string())).ok()
    }
}

/// One entry of a job's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobEvent {
    pub sequence: u64,
    pub job_id: String,
    pub kind: EventKind,
    pub timestamp_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// An event to append (the store assigns sequence and time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
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

/// A job's outcome.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct JobResult {
    pub exit_code: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(default)]
    pub artifacts: Vec<Value>,
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
