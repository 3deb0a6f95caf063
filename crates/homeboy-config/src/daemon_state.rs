//! The daemon state file, `<config>/daemon/state.json`: how clients find the running daemon.
//!
//! Written atomically by the serving process once it listens, removed by it on shutdown (only if it still
//! names this process), and cleaned by `stop`/`start` when its pid is gone.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Paths};

/// The content of the state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonState {
    pub pid: u32,
    /// `host:port` the daemon listens on.
    pub addr: String,
    pub build_id: String,
    pub version: String,
    /// RFC 3339 UTC start time.
    pub started_at: String,
    /// Where a background daemon's stdout/stderr go; `null` for a foreground `serve`.
    pub log_path: Option<PathBuf>,
    /// When the serving process started, in clock ticks since boot (`/proc/<pid>/stat`), where that could
    /// be read (additive). A later process that reuses the pid has another start time, so a stale state
    /// file never gets some other program stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_started: Option<u64>,
}

impl DaemonState {
    /// The base URL of the daemon, `http://host:port`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Reads the state file; `None` when there is none.
pub fn read(paths: &Paths) -> Result<Option<DaemonState>, ConfigError> {
    crate::read_json_opt(&paths.daemon_state())
}

/// Writes the state file atomically.
pub fn write(paths: &Paths, state: &DaemonState) -> Result<(), ConfigError> {
    crate::write_json_atomic(&paths.daemon_state(), state)
}

/// Removes the state file if it names `pid` (so a stopping daemon never deletes a successor's file).
pub fn remove_if_owned(paths: &Paths, pid: u32) -> Result<(), ConfigError> {
    match read(paths) {
        Ok(Some(state)) if state.pid == pid => remove(paths),
        _ => Ok(()),
    }
}

/// Removes the state file unconditionally.
pub fn remove(paths: &Paths) -> Result<(), ConfigError> {
    crate::remove_file_durable(&paths.daemon_state())
}
