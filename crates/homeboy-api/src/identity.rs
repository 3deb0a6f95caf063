//! Who is answering: the answers of `GET /health` and `GET /version`, and where a daemon keeps its files
//! (`GET /config/paths`).

use serde::{Deserialize, Serialize};

/// Who is answering: reported by `/health` and `/version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DaemonIdentity {
    pub pid: u32,
    pub version: String,
    pub build_id: String,
    /// RFC 3339 UTC timestamp of when the daemon started.
    pub started_at: String,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Health {
    /// `ok`.
    pub status: String,
    pub pid: u32,
    pub version: String,
    pub build_id: String,
    pub started_at: String,
}

impl Health {
    /// The health answer of `identity`.
    pub fn of(identity: &DaemonIdentity) -> Health {
        Health {
            status: "ok".into(),
            pid: identity.pid,
            version: identity.version.clone(),
            build_id: identity.build_id.clone(),
            started_at: identity.started_at.clone(),
        }
    }
}

/// `GET /version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Version {
    pub version: String,
    pub build_id: String,
}

/// `GET /config/paths`: the daemon's directories and files (loopback callers only ever see these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConfigPaths {
    pub homeboy: String,
    pub data: String,
    pub servers: String,
    pub components: String,
    pub rigs: String,
    pub stacks: String,
    pub daemon_state: String,
    pub daemon_jobs: String,
    pub daemon_log: String,
    pub broker_auth: String,
    pub artifacts: String,
    pub observations: String,
}
