//! Managed services (`homeboy tunnel service`) as the daemon's read route `GET /tunnel/services` shows
//! them: one summary per declared service — where it stands, its URLs and readiness — computed by
//! `homeboy-tunnel` from the declaration and the recorded runtime state. (The full report is
//! `homeboy tunnel service status <id> --format json`.)

use serde::{Deserialize, Serialize};

use crate::components::BrokenDeclaration;

/// Where a service (or its backend) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// No runtime state: never started, or stopped.
    NotRunning,
    /// Something of its process group is alive.
    Running,
    /// Its process group is gone (it ended by itself); `exit_code` says how.
    Exited,
}

impl ServiceState {
    pub fn label(self) -> &'static str {
        match self {
            ServiceState::NotRunning => "not running",
            ServiceState::Running => "running",
            ServiceState::Exited => "exited",
        }
    }
}

/// One managed service, summarised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ManagedService {
    pub service_id: String,
    pub state: ServiceState,
    /// The runtime local URL, or the declared one when not started.
    pub local_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// The command's exit code once it ended (`128 + N` for signal N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Whether every readiness gate passes (absent when the service is not started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_ready: Option<bool>,
    /// The gates that do not pass yet, for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

/// An item of `GET /tunnel/services`: a service, or a declaration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum ManagedServiceItem {
    Service(ManagedService),
    Broken(BrokenDeclaration),
}

/// `GET /tunnel/services`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ManagedServices {
    pub services: Vec<ManagedServiceItem>,
}
