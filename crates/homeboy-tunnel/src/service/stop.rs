//! `service stop`: terminate the backend's process group, then the service's (SIGTERM, grace, SIGKILL),
//! remove the runtime state, keep the logs.

use std::time::Duration;

use homeboy_config::{ConfigError, Paths};
use serde::Serialize;

use super::spawn;
use super::state::{LogPaths, ProcessRecord, RuntimeState, ServiceFiles};
use crate::{TunnelError, declarations};

/// What `stop` found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopOutcome {
    /// A live process group was terminated.
    Stopped,
    /// The runtime state described a service that had already ended; it was cleaned up.
    AlreadyExited,
    /// Nothing was started.
    NotRunning,
}

/// The report of `stop`.
#[derive(Debug, Clone, Serialize)]
pub struct StopReport {
    pub service_id: String,
    pub outcome: StopOutcome,
    /// Whether SIGKILL was needed for the service's group.
    pub forced: bool,
    /// Whether SIGKILL was needed for the backend's group.
    pub backend_forced: bool,
    /// The exit code the command had recorded, if it ended before `stop`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The logs, which `stop` keeps.
    pub logs: LogPaths,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_logs: Option<LogPaths>,
}

/// Stops service `id`. Stopping a service that is not running is not an error (the outcome says so); an id
/// that is neither declared nor started is.
pub fn stop(paths: &Paths, id: &str, grace: Duration) -> Result<StopReport, TunnelError> {
    let files = ServiceFiles::new(paths, id)?;
    let _lock = files.lock()?;
    let Some(runtime) = files.read_runtime()? else {
        if declarations::store(paths).get_opt(id)?.is_none() {
            return Err(ConfigError::NotFound {
                kind: "tunnel service",
                id: id.to_string(),
            }
            .into());
        }
        return Ok(StopReport {
            service_id: id.to_string(),
            outcome: StopOutcome::NotRunning,
            forced: false,
            backend_forced: false,
            exit_code: None,
            logs: files.service_logs(),
            backend_logs: None,
        });
    };
    let was_running = runtime.service_running();
    let (forced, backend_forced) = terminate_groups(&runtime, grace);
    let exit_code = spawn::recorded_exit_code(&runtime.process)
        .or_else(|| runtime.ended.as_ref().and_then(|e| e.exit_code));
    files.clear_runtime()?;
    Ok(StopReport {
        service_id: id.to_string(),
        outcome: if was_running {
            StopOutcome::Stopped
        } else {
            StopOutcome::AlreadyExited
        },
        forced,
        backend_forced,
        exit_code,
        logs: runtime.process.logs.clone(),
        backend_logs: runtime.backend_process.as_ref().map(|b| b.logs.clone()),
    })
}

/// Terminates the backend's group first (it is what exposes the service), then the service's. Returns
/// whether SIGKILL was needed for (service, backend).
pub(super) fn terminate_groups(runtime: &RuntimeState, grace: Duration) -> (bool, bool) {
    let backend_forced = runtime
        .backend_process
        .as_ref()
        .is_some_and(|b| terminate(b, grace));
    // Once the reaper recorded the end, the group id is no longer ours to signal.
    let forced = runtime.ended.is_none() && terminate(&runtime.process, grace);
    (forced, backend_forced)
}

fn terminate(record: &ProcessRecord, grace: Duration) -> bool {
    spawn::group_running(record) && homeboy_process::terminate_group(record.pgid, grace)
}
