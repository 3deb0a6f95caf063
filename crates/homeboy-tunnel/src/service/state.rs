//! Where a managed service keeps its files and what its runtime state file says.
//!
//! Layout, one directory per service under the data dir: `<data>/tunnel/services/<id>/` holds
//! `runtime.json` (written atomically; present while the service is started, removed by `stop`),
//! `stdout.log`/`stderr.log` and `backend.stdout.log`/`backend.stderr.log` (kept after `stop` as evidence),
//! `exit_code`/`backend.exit_code` (written by the supervising wrapper when the command ends), the
//! `preview-url.json` artifact when no source run id was given, and `.lock`, which serialises `start` and
//! `stop` of one service.
//!
//! The runtime state records environment variable *names* only, never values.

use std::fs::File;
use std::path::{Path, PathBuf};

use homeboy_config::Paths;
use homeboy_config::declarations::validate_id;
use serde::{Deserialize, Serialize};

use super::readiness::ReadinessSpec;
use crate::TunnelError;

/// Schema name of `runtime.json`.
pub const RUNTIME_SCHEMA: &str = "homeboy/tunnel-service-runtime/v1";

/// The files of one managed service.
#[derive(Debug, Clone)]
pub struct ServiceFiles {
    dir: PathBuf,
}

impl ServiceFiles {
    /// The files of service `id` (the id is checked: it becomes a directory name).
    pub fn new(paths: &Paths, id: &str) -> Result<Self, TunnelError> {
        validate_id("tunnel service", id)?;
        Ok(ServiceFiles {
            dir: paths.data_dir().join("tunnel").join("services").join(id),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn runtime(&self) -> PathBuf {
        self.dir.join("runtime.json")
    }
    pub fn service_logs(&self) -> LogPaths {
        LogPaths {
            stdout: self.dir.join("stdout.log"),
            stderr: self.dir.join("stderr.log"),
        }
    }
    pub fn backend_logs(&self) -> LogPaths {
        LogPaths {
            stdout: self.dir.join("backend.stdout.log"),
            stderr: self.dir.join("backend.stderr.log"),
        }
    }
    pub fn service_exit_file(&self) -> PathBuf {
        self.dir.join("exit_code")
    }
    pub fn backend_exit_file(&self) -> PathBuf {
        self.dir.join("backend.exit_code")
    }
    pub fn preview_artifact(&self) -> PathBuf {
        self.dir.join("preview-url.json")
    }

    /// Takes the per-service lock unless someone holds it (a `start` waiting for readiness, a `stop`).
    pub fn try_lock(&self) -> Result<Option<ServiceLock>, TunnelError> {
        let (path, file) = self.lock_file()?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ServiceLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(TunnelError::io("lock", &path, e)),
        }
    }

    /// Takes the per-service lock (blocking until another `start`/`stop` of this service is done).
    pub fn lock(&self) -> Result<ServiceLock, TunnelError> {
        let (path, file) = self.lock_file()?;
        file.lock().map_err(|e| TunnelError::io("lock", &path, e))?;
        Ok(ServiceLock { _file: file })
    }

    /// The per-service lock file, opened (created in the private service directory if need be).
    fn lock_file(&self) -> Result<(PathBuf, File), TunnelError> {
        create_private_dir(&self.dir)?;
        let path = self.dir.join(".lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| TunnelError::io("open", &path, e))?;
        Ok((path, file))
    }

    /// The runtime state, if the service was started and not stopped since.
    pub fn read_runtime(&self) -> Result<Option<RuntimeState>, TunnelError> {
        Ok(homeboy_config::read_json_opt(&self.runtime())?)
    }

    /// Writes the runtime state atomically.
    pub fn write_runtime(&self, state: &RuntimeState) -> Result<(), TunnelError> {
        Ok(homeboy_config::write_json_atomic(&self.runtime(), state)?)
    }

    /// Removes the runtime state and the exit-code files (logs and artifacts stay).
    pub fn clear_runtime(&self) -> Result<(), TunnelError> {
        for path in [
            self.runtime(),
            self.service_exit_file(),
            self.backend_exit_file(),
        ] {
            homeboy_config::remove_file_durable(&path)?;
        }
        Ok(())
    }
}

/// Held while starting or stopping one service; released on drop.
pub struct ServiceLock {
    _file: File,
}

/// Creates `dir` (and parents) readable by the owner only.
pub fn create_private_dir(dir: &Path) -> Result<(), TunnelError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| TunnelError::io("create directory", dir, e))
}

/// Where a process writes its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPaths {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// A supervised process group: the wrapper that leads it, its command, logs and exit-code file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// The developer's command, run as `sh -c <command>` inside the group.
    pub command: String,
    /// The supervising wrapper (the group leader).
    pub pid: u32,
    /// The process group (equal to `pid`: the wrapper leads its own session and group).
    pub pgid: u32,
    pub logs: LogPaths,
    /// Where the wrapper writes the command's exit code when it ends.
    pub exit_code_file: PathBuf,
    /// When the wrapper started, in clock ticks since boot (`/proc/<pid>/stat`), where that could be read
    /// (additive). With it, a process group number the kernel has since handed to someone else is never
    /// taken for this group, nor signalled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
}

/// The public tunnel backend of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// No backend: the service stays on loopback.
    #[default]
    None,
    /// A provider-neutral command started and stopped with the service.
    Command,
}

impl BackendKind {
    pub fn label(self) -> &'static str {
        match self {
            BackendKind::None => "none",
            BackendKind::Command => "command",
        }
    }
}

/// The run/workflow that owns this service start, when the caller said.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceIds {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
}

/// `runtime.json`: everything `status` and `stop` need, and nothing secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeState {
    pub schema: String,
    pub service_id: String,
    pub started_at: String,
    pub cwd: PathBuf,
    pub host: String,
    pub port: u16,
    pub local_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_path: Option<String>,
    /// Names of the `--env` variables given to the command (values are never recorded).
    pub env_names: Vec<String>,
    pub process: ProcessRecord,
    pub readiness: ReadinessSpec,
    pub backend: BackendKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_process: Option<ProcessRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(default)]
    pub source: SourceIds,
    /// Where `start` wrote the `homeboy/preview-url/v1` artifact, when the preview policy applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_artifact_path: Option<PathBuf>,
    /// Recorded by the reaper once the service's process group is gone (additive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<EndRecord>,
}

impl RuntimeState {
    /// Whether the service still runs: not recorded as ended, and something of its group is alive.
    pub fn service_running(&self) -> bool {
        self.ended.is_none() && super::spawn::group_running(&self.process)
    }
}

/// How and when a managed service's process group ended, as the reaper saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndRecord {
    /// RFC 3339 UTC: when the reaper noticed.
    pub at: String,
    /// The command's exit code (`128 + N` for signal N), when its supervisor lived to record it; `null`
    /// when the whole group was killed at once.
    pub exit_code: Option<i32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_id_check() {
        let paths = Paths::at("/c", "/d");
        let files = ServiceFiles::new(&paths, "site-preview").unwrap();
        assert_eq!(
            files.runtime(),
            Path::new("/d/tunnel/services/site-preview/runtime.json")
        );
        assert_eq!(
            files.service_logs().stderr,
            Path::new("/d/tunnel/services/site-preview/stderr.log")
        );
        assert!(ServiceFiles::new(&paths, "../x").is_err());
    }
}
