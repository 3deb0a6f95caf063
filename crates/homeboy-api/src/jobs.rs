//! The job and runner-broker wire types: a job, its states and events, a job's outcome, and the request and
//! answer bodies of `/jobs*` and `/runner/*`. Field names are the contract's; new fields are only ever added.
//! Request bodies ignore fields they do not know (older brokers keep working with newer clients) unless a
//! route says otherwise.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Default lease of a claim when the runner asks for none.
pub const DEFAULT_LEASE_MS: u64 = 30_000;
/// Longest `wait_ms` of a claim long poll.
pub const MAX_CLAIM_WAIT_MS: u64 = 30_000;
/// The operation of a runner job submitted without one.
pub const RUNNER_EXEC: &str = "runner.exec";

/// A job's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
}

/// Who runs a job: the daemon's own executor, or a runner that claims it over the broker routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    Daemon,
    Runner,
}

/// A job as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// `now == claim_expires_at_ms` it has expired.
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
    /// The wire name (also the SSE `event:` of the event stream).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Status => "status",
            EventKind::Stdout => "stdout",
            EventKind::Stderr => "stderr",
            EventKind::Progress => "progress",
            EventKind::Result => "result",
            EventKind::Error => "error",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<EventKind> {
        serde_json::from_value(Value::String(name.to_string())).ok()
    }
}

/// One entry of a job's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NewEvent {
    pub kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// A job's outcome.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
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

/// `GET /jobs`: one page, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JobList {
    pub jobs: Vec<Job>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<u64>,
}

/// `GET /jobs/:id`: the job and the request it was submitted with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JobDetail {
    pub job: Job,
    pub request: Value,
}

/// `GET /jobs/:id/events`: one page of a job's events after `after`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JobEvents {
    pub job_id: String,
    pub status: JobStatus,
    pub events: Vec<JobEvent>,
    /// Pass as `after` for the next page.
    pub next_after: u64,
    pub last_sequence: u64,
    pub events_dropped: u64,
}

/// An answer that is one job: `POST /jobs/:id/cancel`, `POST /runner/jobs/:id/finish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct JobAnswer {
    pub job: Job,
}

/// Where to follow a job that was just enqueued.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Poll {
    /// `/jobs/<id>`.
    pub job: String,
    /// `/jobs/<id>/events`.
    pub events: String,
}

impl Poll {
    /// The poll routes of job `id`.
    pub fn for_job(id: &str) -> Poll {
        Poll {
            job: format!("/jobs/{id}"),
            events: format!("/jobs/{id}/events"),
        }
    }
}

/// `GET /runtime/jobs`: what the daemon's job runtime holds right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RuntimeJobs {
    /// Claim long polls parked right now, each woken by the next job that becomes claimable.
    pub claim_waiters: usize,
}

/// Longest identifying text a runner session may carry, in characters.
pub const MAX_SESSION_FIELD_CHARS: usize = 256;

/// `POST /runner/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionRequest {
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_SESSION_FIELD_CHARS), regex(pattern = crate::patterns::NOT_BLANK)))]
    pub runner_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_SESSION_FIELD_CHARS)))]
    pub controller_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_SESSION_FIELD_CHARS)))]
    pub homeboy_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(max = MAX_SESSION_FIELD_CHARS)))]
    pub build_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_pid: Option<u64>,
}

/// A runner session as the broker recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunnerSession {
    pub id: String,
    pub runner_id: String,
    pub controller_id: Option<String>,
    pub homeboy_version: Option<String>,
    pub build_id: Option<String>,
    pub worker_pid: Option<u64>,
    pub created_at_ms: u64,
}

/// The answer of `POST /runner/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SessionAnswer {
    pub session: RunnerSession,
}

/// `POST /runner/jobs`: a command for a runner (argv, no shell). Secret values never travel in it: name them
/// in `secret_env_names` and the runner resolves them from its own configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema_rules::no_inline_secrets))]
pub struct SubmitRequest {
    #[cfg_attr(feature = "schema", schemars(regex(pattern = crate::patterns::NOT_BLANK)))]
    pub runner_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    #[serde(default = "runner_exec")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = crate::patterns::NOT_BLANK)))]
    pub operation: String,
    /// argv: the first word names the program.
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema_rules::argv))]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    /// Plain environment values; names that look sensitive are refused (use `secret_env_names`).
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema_rules::plain_env_names))]
    pub env: BTreeMap<String, String>,
    /// Secrets the runner resolves from its own `runner.secret_env` at execution time.
    #[serde(default)]
    #[cfg_attr(feature = "schema", schemars(inner(regex(pattern = crate::patterns::ENV_NAME))))]
    pub secret_env_names: Vec<String>,
    /// Free-form; `submission_key` (a non-empty string) makes the submission idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema_rules::submission_metadata))]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub max_attempts: Option<u32>,
    /// Fields of newer clients are tolerated; the broker refuses known secret-carrying ones.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

fn runner_exec() -> String {
    RUNNER_EXEC.to_string()
}

/// The request a runner job carries (what the broker stored from a [`SubmitRequest`], and what a runner
/// gets back with its claim).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunnerJobRequest {
    #[serde(default)]
    pub runner_id: String,
    #[serde(default)]
    pub project_id: Option<String>,
    #[serde(default)]
    pub operation: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub secret_env_names: Vec<String>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// The answer of `POST /runner/jobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SubmitAnswer {
    pub job: Job,
    pub poll: Poll,
    pub request: Value,
    /// False when an identical submission with the same `metadata.submission_key` already existed.
    pub created: bool,
}

/// `POST /runner/jobs/claim`. `wait_ms` makes it a long poll (answered by the transport).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClaimBody {
    #[cfg_attr(feature = "schema", schemars(regex(pattern = crate::patterns::NOT_BLANK)))]
    pub runner_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<String>,
    /// Milliseconds the claim holds without a heartbeat (default 30000; capped by the broker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1)))]
    pub lease_ms: Option<u64>,
    /// Milliseconds to wait for work (a long poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(max = MAX_CLAIM_WAIT_MS)))]
    pub wait_ms: Option<u64>,
}

/// The answer of a claim: `null` when there was no work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClaimAnswer {
    pub claim: Option<ClaimedJob>,
}

/// A granted claim: the job (now running, with its `claim_id`) and its request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClaimedJob {
    pub job: Job,
    pub request: Value,
}

/// Who is acting on a claimed job: every claim-scoped route carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ClaimRef {
    pub runner_id: String,
    pub claim_id: String,
}

/// `POST /runner/jobs/:id/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HeartbeatBody {
    #[serde(flatten)]
    pub claim: ClaimRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

/// The answer of a heartbeat: the job, and whether it was cancelled (the runner should stop).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct HeartbeatAnswer {
    pub job: Job,
    pub cancelled: bool,
}

/// One event a runner posts (`kind` is checked by the broker: not `status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventItem {
    /// `stdout`, `stderr`, `progress`, `result` or `error` (`status` events are the broker's).
    #[cfg_attr(feature = "schema", schemars(transform = crate::schema_rules::runner_event_kind))]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// `POST /runner/jobs/:id/events`: one event (its fields inline) or a batch in `events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(feature = "schema", schemars(transform = crate::schema_rules::one_event_or_a_batch))]
pub struct EventsBody {
    #[serde(flatten)]
    pub claim: ClaimRef,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub single: Option<EventItem>,
    /// Additive batch form: many events in one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1)))]
    pub events: Option<Vec<EventItem>>,
}

/// The answer to a single event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventAnswer {
    pub event: Option<JobEvent>,
}

/// The answer to a batch of events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventsAnswer {
    pub events: Vec<JobEvent>,
}

/// `POST /runner/jobs/:id/finish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FinishBody {
    #[serde(flatten)]
    pub claim: ClaimRef,
    pub result: JobResult,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_and_transition() {
        for s in JobStatus::ALL {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert!(JobStatus::Queued.can_become(JobStatus::Running));
        assert!(!JobStatus::Succeeded.can_become(JobStatus::Running));
        assert_eq!(EventKind::parse("stdout"), Some(EventKind::Stdout));
        assert_eq!(EventKind::parse("nope"), None);
    }

    #[test]
    fn event_bodies_take_one_event_or_a_batch() {
        let one: EventsBody = serde_json::from_value(serde_json::json!({
            "runner_id": "r", "claim_id": "c", "kind": "stdout", "message": "hi"
        }))
        .unwrap();
        assert_eq!(one.single.unwrap().kind, "stdout");
        let batch: EventsBody = serde_json::from_value(serde_json::json!({
            "runner_id": "r", "claim_id": "c", "events": [{"kind": "stderr"}]
        }))
        .unwrap();
        assert!(batch.single.is_none());
        assert_eq!(batch.events.unwrap().len(), 1);
    }
}
