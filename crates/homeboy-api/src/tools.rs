//! The typed tool allowlist on the wire: the analysis tool kinds, a tool's description as `GET /tools` shows
//! it, and the answer of a tool run request (`POST /tools/:id/run`, `/audit`, `/lint`, `/test`, `/bench`).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::jobs::{Job, Poll};

/// The analysis tools a component can declare; the wire name is also a run's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    Lint,
    Test,
    Audit,
    Bench,
    Build,
    Review,
}

impl ToolKind {
    /// Every tool, in listing order.
    pub const ALL: [ToolKind; 6] = [
        ToolKind::Lint,
        ToolKind::Test,
        ToolKind::Audit,
        ToolKind::Bench,
        ToolKind::Build,
        ToolKind::Review,
    ];

    /// The wire name (`lint`), also the run `kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolKind::Lint => "lint",
            ToolKind::Test => "test",
            ToolKind::Audit => "audit",
            ToolKind::Bench => "bench",
            ToolKind::Build => "build",
            ToolKind::Review => "review",
        }
    }

    /// Parses a wire name.
    pub fn parse(name: &str) -> Option<ToolKind> {
        ToolKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for ToolKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One accepted request field of a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ToolArgument {
    pub name: Cow<'static, str>,
    /// `string` or `integer`.
    #[serde(rename = "type")]
    pub value_type: Cow<'static, str>,
    pub required: bool,
    pub description: Cow<'static, str>,
}

/// One tool of the allowlist, as `GET /tools` and `GET /tools/:id` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ToolSpec {
    pub id: String,
    /// The CLI command that does the same.
    pub command: String,
    pub required_capability: String,
    /// `bounded_local_run` for every analysis tool.
    pub risk: Cow<'static, str>,
    pub runs_as_job: bool,
    pub allowed_arguments: Vec<ToolArgument>,
    // Additive fields.
    pub kind: ToolKind,
    pub description: String,
    /// The dedicated route that enqueues the same job, if any (`/lint`).
    pub route: Option<String>,
}

/// Longest `label` of a tool run request, in characters.
pub const MAX_LABEL_CHARS: usize = 200;

/// The body of a tool run request (`POST /tools/:id/run`, `/audit`, `/lint`, `/test`, `/bench`). Unknown
/// fields are refused (`validation.unknown_field`), and so are the mutating ones `fix`, `write`, `baseline`
/// and `ratchet` (`validation.mutating_field`), before any job exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct ToolRunRequest {
    /// The declared component to analyse.
    #[cfg_attr(feature = "schema", schemars(regex(pattern = crate::patterns::ID)))]
    pub component: String,
    /// A declared rig, recorded with the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(regex(pattern = crate::patterns::ID)))]
    pub rig: Option<String>,
    /// Seconds before the tool is stopped (default: the component's own, else 1800).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = crate::components::MAX_TIMEOUT_SECS)))]
    pub timeout_secs: Option<u64>,
    /// A note recorded with the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "schema", schemars(length(min = 1, max = MAX_LABEL_CHARS), regex(pattern = crate::patterns::NOT_BLANK)))]
    pub label: Option<String>,
}

/// The answer of a tool run request: the daemon-executed job that will run it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AnalysisJobAnswer {
    pub job: Job,
    pub poll: Poll,
    /// `{tool, arguments}` as the job keeps it.
    pub request: Value,
}
