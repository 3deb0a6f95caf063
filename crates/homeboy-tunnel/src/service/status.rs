//! `service status`: what a service is doing now, recomputed from its declaration and recorded runtime
//! state — process group liveness, the exit code once it ended, readiness (health included), the backend,
//! log paths and, when the preview policy applies, the preview artifact — and `summaries`, one line per
//! declared service, which the daemon answers at `GET /tunnel/services`.

use std::path::PathBuf;

use homeboy_api::components::{BrokenDeclaration, ItemError};
use homeboy_api::tunnel::{ManagedService, ManagedServiceItem, ManagedServices};
use homeboy_config::tunnel_services::TunnelService;
use homeboy_config::{ConfigError, Paths};
use serde::Serialize;

use super::readiness::{self, Check, Readiness, Target};
use super::spawn;
use super::state::{BackendKind, LogPaths, ProcessRecord, RuntimeState, ServiceFiles, SourceIds};
use crate::preview_artifact::{self, PreviewUrlArtifact};
use crate::{TunnelError, declarations};

/// Where a service (or its backend) stands: the contract's type.
pub use homeboy_api::tunnel::ServiceState;

/// The report of `status` (and, flattened, of `start`).
#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub service_id: String,
    pub state: ServiceState,
    /// The runtime local URL, or the declared one when not started.
    pub local_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgid: Option<u32>,
    /// Live members of the process group.
    pub group_members: Vec<u32>,
    /// The command's exit code once it ended (`128 + N` for signal N).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the reaper noticed the process group was gone (a running daemon records it within a second).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Names of the `--env` variables (never values).
    pub env_names: Vec<String>,
    /// The health check, when a health path was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<Check>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
    pub backend: BackendStatus,
    pub logs: LogPaths,
    pub runtime_file: PathBuf,
    pub source: SourceIds,
    /// The `homeboy/preview-url/v1` artifact, when the preview policy applies and the service is started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<PreviewUrlArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_artifact_path: Option<PathBuf>,
    /// The declaration, when it (still) exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub declaration: Option<TunnelService>,
}

/// The backend part of a status.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    /// `none` or `command`.
    pub kind: BackendKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<ServiceState>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logs: Option<LogPaths>,
}

/// The status of service `id`: an error only if it is neither declared nor started.
pub fn status(paths: &Paths, id: &str) -> Result<ServiceStatus, TunnelError> {
    let declaration = declarations::store(paths).get_opt(id)?;
    let files = ServiceFiles::new(paths, id)?;
    let runtime = files.read_runtime()?;
    if declaration.is_none() && runtime.is_none() {
        return Err(ConfigError::NotFound {
            kind: "tunnel service",
            id: id.to_string(),
        }
        .into());
    }
    Ok(describe(id, declaration.as_ref(), &files, runtime.as_ref()))
}

/// `GET /tunnel/services`: every declared service, summarised from its status (a declaration that does not
/// parse is listed with its error).
pub fn summaries(paths: &Paths) -> Result<ManagedServices, TunnelError> {
    let services = declarations::list(paths)?
        .into_iter()
        .map(|listed| match listed.item {
            Ok(declaration) => {
                let files = ServiceFiles::new(paths, &declaration.id)?;
                let runtime = files.read_runtime()?;
                let status = describe(
                    &declaration.id,
                    Some(&declaration),
                    &files,
                    runtime.as_ref(),
                );
                Ok(ManagedServiceItem::Service(summary(&status)))
            }
            Err(e) => Ok(ManagedServiceItem::Broken(BrokenDeclaration {
                id: listed.id,
                error: ItemError {
                    code: "config.invalid_declaration".into(),
                    message: e.to_string(),
                },
            })),
        })
        .collect::<Result<Vec<_>, TunnelError>>()?;
    Ok(ManagedServices { services })
}

/// The summary of one status.
pub fn summary(status: &ServiceStatus) -> ManagedService {
    ManagedService {
        service_id: status.service_id.clone(),
        state: status.state,
        local_url: status.local_url.clone(),
        public_url: status.public_url.clone(),
        pid: status.pid,
        started_at: status.started_at.clone(),
        exit_code: status.exit_code,
        ready: status.readiness.as_ref().map(|r| r.ready),
        preview_ready: status.readiness.as_ref().map(|r| r.preview_ready),
        pending: status
            .readiness
            .as_ref()
            .filter(|r| !r.ready)
            .map(Readiness::pending),
    }
}

/// Builds the status from what is on record, probing the live process group and gates.
pub(super) fn describe(
    id: &str,
    declaration: Option<&TunnelService>,
    files: &ServiceFiles,
    runtime: Option<&RuntimeState>,
) -> ServiceStatus {
    let Some(runtime) = runtime else {
        return ServiceStatus {
            service_id: id.to_string(),
            state: ServiceState::NotRunning,
            local_url: declaration.map(declarations::url).unwrap_or_default(),
            public_url: None,
            pid: None,
            pgid: None,
            group_members: Vec::new(),
            exit_code: None,
            started_at: None,
            ended_at: None,
            command: None,
            cwd: None,
            env_names: Vec::new(),
            health: None,
            readiness: None,
            backend: BackendStatus {
                kind: BackendKind::None,
                state: None,
                command: None,
                pid: None,
                pgid: None,
                exit_code: None,
                logs: None,
            },
            logs: files.service_logs(),
            runtime_file: files.runtime(),
            source: SourceIds::default(),
            preview: None,
            preview_artifact_path: None,
            declaration: declaration.cloned(),
        };
    };
    let (mut state, members, mut exit_code) = process_state(&runtime.process);
    if let Some(ended) = &runtime.ended {
        state = ServiceState::Exited;
        exit_code = exit_code.or(ended.exit_code);
    }
    let target = Target {
        host: &runtime.host,
        port: runtime.port,
        health_path: runtime.health_path.as_deref(),
        stdout_log: &runtime.process.logs.stdout,
    };
    let readiness =
        readiness::evaluate(&runtime.readiness, &target, state == ServiceState::Running);
    let health = readiness
        .checks
        .iter()
        .find(|c| c.name == "health")
        .cloned();
    let preview = declaration
        .filter(|d| preview_artifact::applies(&d.preview))
        .map(|d| preview_artifact::build(&d.preview, runtime));
    ServiceStatus {
        service_id: runtime.service_id.clone(),
        state,
        local_url: runtime.local_url.clone(),
        public_url: runtime.public_url.clone(),
        pid: Some(runtime.process.pid),
        pgid: Some(runtime.process.pgid),
        group_members: members,
        exit_code,
        started_at: Some(runtime.started_at.clone()),
        ended_at: runtime.ended.as_ref().map(|e| e.at.clone()),
        command: Some(runtime.process.command.clone()),
        cwd: Some(runtime.cwd.clone()),
        env_names: runtime.env_names.clone(),
        health,
        readiness: Some(readiness),
        backend: backend_status(runtime),
        logs: runtime.process.logs.clone(),
        runtime_file: files.runtime(),
        source: runtime.source.clone(),
        preview,
        preview_artifact_path: runtime.preview_artifact_path.clone(),
        declaration: declaration.cloned(),
    }
}

fn process_state(record: &ProcessRecord) -> (ServiceState, Vec<u32>, Option<i32>) {
    let running = spawn::group_running(record);
    // The members of a group that is no longer ours (its number reused) are not the service's.
    let mut members = if running {
        homeboy_process::group_members(record.pgid).unwrap_or_default()
    } else {
        Vec::new()
    };
    members.sort_unstable();
    let state = if running {
        ServiceState::Running
    } else {
        ServiceState::Exited
    };
    (state, members, spawn::recorded_exit_code(record))
}

fn backend_status(runtime: &RuntimeState) -> BackendStatus {
    let Some(record) = &runtime.backend_process else {
        return BackendStatus {
            kind: runtime.backend,
            state: None,
            command: None,
            pid: None,
            pgid: None,
            exit_code: None,
            logs: None,
        };
    };
    let (state, _, exit_code) = process_state(record);
    BackendStatus {
        kind: runtime.backend,
        state: Some(state),
        command: Some(record.command.clone()),
        pid: Some(record.pid),
        pgid: Some(record.pgid),
        exit_code,
        logs: Some(record.logs.clone()),
    }
}
