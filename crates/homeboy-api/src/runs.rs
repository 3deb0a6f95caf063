//! The run, artifact and finding wire types, and the answers of `/runs*`, `/audit/runs`, `/bench/runs`.
//! Field names are the contract's; new fields are only ever added.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A run's outcome so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Pass,
    Fail,
    Error,
    Skipped,
    Stale,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Running,
        RunStatus::Pass,
        RunStatus::Fail,
        RunStatus::Error,
        RunStatus::Skipped,
        RunStatus::Stale,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Pass => "pass",
            RunStatus::Fail => "fail",
            RunStatus::Error => "error",
            RunStatus::Skipped => "skipped",
            RunStatus::Stale => "stale",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<RunStatus> {
        RunStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One analysis run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Run {
    /// A UUIDv7: ids sort in creation order.
    pub id: String,
    /// `lint`, `test`, `audit`, `bench`, `build`, `review`.
    pub kind: String,
    pub component_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rig_id: Option<String>,
    pub status: RunStatus,
    /// RFC 3339 UTC with milliseconds.
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The tool's argv as one line, for people (the argv itself is `metadata.argv`).
    pub command: String,
    pub cwd: String,
    pub homeboy_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_sha: Option<String>,
    /// `owner` {pid, start_time, process}, `job_id`, `tool`, `argv`, `exit_code`, `duration_ms`, `metrics`,
    /// `findings`, ...
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Set by readers for a running run whose owner cannot be verified (see `homeboy_observations::owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_note: Option<String>,
}

impl Run {
    /// The benchmark metrics recorded with the run (`metadata.metrics`), name → value.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        match self.metadata.get("metrics") {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(name, value)| value.as_f64().map(|v| (name.clone(), v)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// How a client gets an artifact's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum RetrievalMode {
    /// `content_url` streams the bytes and `fetch_command` fetches them.
    DirectDownload,
    /// Evidence metadata only; no byte endpoint is expected to work.
    MetadataOnly,
    /// The bytes are inline in this answer, base64-encoded in `content_field`.
    InlineBase64,
}

/// The `retrieval` member of an artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Retrieval {
    pub mode: RetrievalMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_field: Option<String>,
}

/// An artifact as the contract shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Artifact {
    pub id: String,
    pub run_id: String,
    pub kind: String,
    #[serde(rename = "type")]
    pub artifact_type: String,
    /// Relative to the artifact root when the bytes are held, else the source path in the checkout.
    pub path: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub mime: String,
    pub created_at: String,
    pub content_available: bool,
    pub content_url: Option<String>,
    pub fetch_command: Option<String>,
    pub retrieval: Retrieval,
    // Additive fields.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One finding of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Finding {
    /// `<run_id>:<sequence>`.
    pub id: String,
    pub run_id: String,
    /// The tool that reported it (SARIF driver name, `junit`, checkstyle's `source` family).
    pub tool: String,
    pub rule: String,
    pub file: Option<String>,
    pub line: Option<u32>,
    /// `error`, `warning`, `note`, `info`.
    pub severity: String,
    /// Stable across runs for the same finding (see `homeboy_observations::findings::fingerprint`).
    pub fingerprint: String,
    pub message: String,
    pub fixable: bool,
    pub created_at: String,
}

/// `GET /runs`, `/audit/runs`, `/bench/runs`: one page of runs, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunList {
    pub runs: Vec<Run>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// `GET /runs/:id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunAnswer {
    pub run: Run,
}

/// `GET /runs/:id/artifacts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ArtifactList {
    pub run_id: String,
    pub artifacts: Vec<Artifact>,
}

/// `GET /runs/:id/artifacts/sync`: every artifact with the retrieval contract that holds now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ArtifactSync {
    pub run_id: String,
    pub artifacts: Vec<Artifact>,
    pub summary: SyncSummary,
}

/// The counts of an [`ArtifactSync`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SyncSummary {
    pub total: usize,
    pub available: usize,
    pub unavailable: usize,
    pub metadata_only: usize,
    /// `size` or `sha256`.
    pub verified: String,
}

/// `GET /runs/:id/artifacts/:artifact_id`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ArtifactAnswer {
    pub artifact: Artifact,
}

/// The transport-free answer of `GET /runs/:id/artifacts/:artifact_id/content`: the bytes inline. (The
/// daemon's HTTP route streams the bytes themselves instead.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct InlineContent {
    pub artifact: Artifact,
    pub retrieval: Retrieval,
    pub size_bytes: usize,
    pub content_base64: String,
}

/// `GET /runs/:id/findings`: one page of a run's findings, in the order they were reported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FindingList {
    pub run_id: String,
    pub findings: Vec<Finding>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<u32>,
}
