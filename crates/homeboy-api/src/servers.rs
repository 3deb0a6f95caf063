//! The server view: a server declaration as every command and answer shows it (`homeboy server show|list`,
//! `homeboy runner status`, `--format json`). It holds no secret: `runner.env` values under sensitive names
//! are `[redacted]` and `secret_env` entries are references (`{"env": NAME}` / `{"file": PATH}`), never values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// What a redacted value is shown as.
pub const REDACTED: &str = "[redacted]";

/// One SSH server, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServerView {
    pub id: String,
    pub name: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ServerAuthView>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerView>,
    pub forward_agent: bool,
}

/// A managed SSH session policy, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ServerAuthView {
    /// `key_plus_password_controlmaster`.
    pub mode: String,
    pub control_path: String,
    pub persist: String,
}

/// The runner capability of a server, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunnerView {
    pub workspace_root: String,
    pub homeboy_path: String,
    pub daemon: bool,
    pub concurrency_limit: u32,
    pub artifact_policy: String,
    pub policy: RunnerPolicyView,
    /// Values under sensitive names are [`REDACTED`].
    pub env: BTreeMap<String, String>,
    /// References only.
    pub secret_env: BTreeMap<String, SecretRefView>,
    pub resources: Map<String, Value>,
}

/// Runner policy, as shown.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunnerPolicyView {
    pub snapshot_excludes: Vec<String>,
}

/// Where a secret is read from at execution time: `{"env": NAME}` or `{"file": PATH}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum SecretRefView {
    Env { env: String },
    File { file: String },
}

impl std::fmt::Display for SecretRefView {
    /// `env:NAME` or `file:PATH`: how status output shows a reference.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRefView::Env { env } => write!(f, "env:{env}"),
            SecretRefView::File { file } => write!(f, "file:{file}"),
        }
    }
}

/// What `homeboy runner status` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunnerStatus {
    pub server_id: String,
    pub name: String,
    /// `user@host:port`.
    pub destination: String,
    pub runner: RunnerView,
    /// Present when the caller asked to check the secrets here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_checks: Option<Vec<SecretCheck>>,
}

/// Whether one `secret_env` entry resolves on this machine. Never holds the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SecretCheck {
    pub name: String,
    pub reference: SecretRefView,
    pub resolves: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
