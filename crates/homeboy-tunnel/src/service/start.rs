//! `service start`: validate the request against the declaration, start the supervised command, record the
//! runtime state, wait for readiness, start the backend command, write the preview artifact.
//!
//! Failure leaves nothing half-done: a service that never became ready within the wait is stopped and its
//! runtime state removed (logs stay); a service that exited during the wait keeps its runtime state so
//! `status` can show the exit code; a refused request starts nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use homeboy_config::Paths;
use homeboy_config::declarations::validate_id;
use homeboy_config::net::is_loopback_host;
use homeboy_config::tunnel_services::TunnelService;
use serde::Serialize;

use super::readiness::{self, FileStamp, Readiness, ReadinessSpec, Target, WaitOutcome};
use super::spawn::{self, SpawnSpec};
use super::state::{BackendKind, RUNTIME_SCHEMA, RuntimeState, ServiceFiles, SourceIds};
use super::status::{self, ServiceStatus};
use super::stop::terminate_groups;
use crate::declarations::{self, check_http_url, http_url};
use crate::{TunnelError, clock, preview_artifact};

/// What `service start` asks for. `host` and `port` default to the declaration's.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub id: String,
    pub command: String,
    /// Working directory; `None` means the caller's current directory.
    pub cwd: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub health_path: Option<String>,
    /// `KEY=VALUE` pairs for the command's environment (see [`parse_env`]).
    pub env: Vec<(String, String)>,
    pub backend: BackendKind,
    pub backend_command: Option<String>,
    pub public_url: Option<String>,
    pub source: SourceIds,
    /// Readiness gates; a relative artifact path is resolved against `cwd`.
    pub readiness: ReadinessSpec,
    /// How long to wait for readiness; zero returns right after starting.
    pub wait: Duration,
    /// SIGTERM grace when a service that never became ready is stopped.
    pub grace: Duration,
    /// An already running service is reported instead of refused.
    pub if_not_running: bool,
}

/// Whether `start` started the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartOutcome {
    Started,
    /// `--if-not-running` and it was: nothing was started.
    AlreadyRunning,
}

/// The report of `start`: the outcome and the service status after it.
#[derive(Debug, Clone, Serialize)]
pub struct StartReport {
    pub outcome: StartOutcome,
    #[serde(flatten)]
    pub status: ServiceStatus,
}

/// Parses repeated `--env KEY=VALUE` arguments. Errors name the variable, never its value.
pub fn parse_env(args: &[String]) -> Result<Vec<(String, String)>, TunnelError> {
    args.iter()
        .map(|arg| {
            let Some((name, value)) = arg.split_once('=') else {
                return Err(TunnelError::invalid(
                    "--env",
                    "expected KEY=VALUE (an argument has no '=')",
                ));
            };
            let valid = !name.is_empty()
                && !name.as_bytes()[0].is_ascii_digit()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(TunnelError::invalid(
                    "--env",
                    format!("{name:?} is not an environment variable name"),
                ));
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

/// Starts service `request.id` (see the module docs).
pub fn start(paths: &Paths, request: StartRequest) -> Result<StartReport, TunnelError> {
    start_showing(paths, request, &mut |_| {})
}

/// [`start`], showing `waiting` the readiness gates after every look while it waits for them (for a
/// progress display).
pub fn start_showing(
    paths: &Paths,
    request: StartRequest,
    waiting: &mut dyn FnMut(&Readiness),
) -> Result<StartReport, TunnelError> {
    let declaration = declarations::show(paths, &request.id)?;
    let plan = Plan::new(&declaration, request)?;
    let files = ServiceFiles::new(paths, &declaration.id)?;
    let _lock = files.lock()?;

    if let Some(existing) = files.read_runtime()? {
        if existing.service_running() {
            if plan.request.if_not_running {
                let status =
                    status::describe(&declaration.id, Some(&declaration), &files, Some(&existing));
                return Ok(StartReport {
                    outcome: StartOutcome::AlreadyRunning,
                    status,
                });
            }
            return Err(TunnelError::AlreadyRunning {
                id: declaration.id.clone(),
                pid: existing.process.pid,
            });
        }
        // It ended by itself; its backend may still run. Clean up before starting afresh.
        terminate_groups(&existing, plan.request.grace);
        files.clear_runtime()?;
    }

    let mut runtime = spawn_service(&plan, &files)?;
    files.write_runtime(&runtime)?;
    if !plan.request.wait.is_zero() {
        wait_until_ready(&plan, &files, &runtime, waiting)?;
    }
    if let Err(e) = finish_start(paths, &plan, &declaration, &files, &mut runtime) {
        terminate_groups(&runtime, plan.request.grace);
        files.clear_runtime()?;
        return Err(e);
    }
    let status = status::describe(&declaration.id, Some(&declaration), &files, Some(&runtime));
    Ok(StartReport {
        outcome: StartOutcome::Started,
        status,
    })
}

/// A validated request with everything resolved.
struct Plan {
    request: StartRequest,
    id: String,
    cwd: PathBuf,
    host: String,
    port: u16,
}

impl Plan {
    fn new(declaration: &TunnelService, mut request: StartRequest) -> Result<Plan, TunnelError> {
        if request.command.trim().is_empty() {
            return Err(TunnelError::invalid("--command", "must not be empty"));
        }
        let host = request
            .host
            .clone()
            .unwrap_or_else(|| declaration.remote_host.clone());
        if !is_loopback_host(&host) {
            return Err(TunnelError::invalid(
                "--host",
                format!("{host:?} is not a loopback host: managed services stay private-loopback"),
            ));
        }
        let port = request.port.unwrap_or(declaration.remote_port);
        if port == 0 {
            return Err(TunnelError::invalid(
                "--port",
                "must be between 1 and 65535",
            ));
        }
        if let Some(path) = &request.health_path
            && !path.starts_with('/')
        {
            return Err(TunnelError::invalid(
                "--health-path",
                format!("{path:?} must start with '/'"),
            ));
        }
        check_backend(&request)?;
        for (field, id) in [
            ("--source-run-id", &request.source.run_id),
            ("--source-workflow-id", &request.source.workflow_id),
        ] {
            if let Some(id) = id {
                validate_id("run", id).map_err(|_| {
                    TunnelError::invalid(
                        field,
                        format!("{id:?}: use letters, digits, '.', '_' and '-'"),
                    )
                })?;
            }
        }
        let cwd = resolve_cwd(request.cwd.as_deref())?;
        if let Some(gate) = &mut request.readiness.artifact {
            if gate.path.is_relative() {
                gate.path = cwd.join(&gate.path);
            }
            gate.stale = FileStamp::of(&gate.path);
        }
        request.readiness.validate()?;
        Ok(Plan {
            id: declaration.id.clone(),
            request,
            cwd,
            host,
            port,
        })
    }

    fn local_url(&self) -> String {
        http_url(&self.host, self.port)
    }
}

fn check_backend(request: &StartRequest) -> Result<(), TunnelError> {
    match (request.backend, &request.backend_command) {
        (BackendKind::Command, None) => {
            return Err(TunnelError::invalid(
                "--public-tunnel-command",
                "is required with --public-tunnel-backend command",
            ));
        }
        (BackendKind::Command, Some(cmd)) if cmd.trim().is_empty() => {
            return Err(TunnelError::invalid(
                "--public-tunnel-command",
                "must not be empty",
            ));
        }
        (BackendKind::None, Some(_)) => {
            return Err(TunnelError::invalid(
                "--public-tunnel-command",
                "needs --public-tunnel-backend command",
            ));
        }
        _ => {}
    }
    if let Some(url) = &request.public_url {
        check_http_url("--public-tunnel-public-url", url)?;
    }
    Ok(())
}

fn resolve_cwd(cwd: Option<&Path>) -> Result<PathBuf, TunnelError> {
    let here = std::env::current_dir().map_err(|e| TunnelError::io("read", ".", e))?;
    let cwd = match cwd {
        Some(dir) => here.join(dir),
        None => here,
    };
    if !cwd.is_dir() {
        return Err(TunnelError::invalid(
            "--cwd",
            format!("{} is not a directory", cwd.display()),
        ));
    }
    Ok(cwd)
}

fn spawn_service(plan: &Plan, files: &ServiceFiles) -> Result<RuntimeState, TunnelError> {
    let process = spawn::spawn_supervised(SpawnSpec {
        what: format!("service {}", plan.id),
        command: &plan.request.command,
        cwd: &plan.cwd,
        env: &plan.request.env,
        logs: files.service_logs(),
        exit_code_file: &files.service_exit_file(),
    })?;
    let mut env_names: Vec<String> = plan.request.env.iter().map(|(k, _)| k.clone()).collect();
    env_names.sort();
    env_names.dedup();
    Ok(RuntimeState {
        schema: RUNTIME_SCHEMA.to_string(),
        service_id: plan.id.clone(),
        started_at: clock::now_rfc3339(),
        cwd: plan.cwd.clone(),
        host: plan.host.clone(),
        port: plan.port,
        local_url: plan.local_url(),
        health_path: plan.request.health_path.clone(),
        env_names,
        process,
        readiness: plan.request.readiness.clone(),
        backend: plan.request.backend,
        backend_process: None,
        public_url: plan.request.public_url.clone(),
        source: plan.request.source.clone(),
        preview_artifact_path: None,
        ended: None,
    })
}

fn wait_until_ready(
    plan: &Plan,
    files: &ServiceFiles,
    runtime: &RuntimeState,
    waiting: &mut dyn FnMut(&Readiness),
) -> Result<(), TunnelError> {
    let target = Target {
        host: &runtime.host,
        port: runtime.port,
        health_path: runtime.health_path.as_deref(),
        stdout_log: &runtime.process.logs.stdout,
    };
    let running = || spawn::group_running(&runtime.process);
    match readiness::wait(
        &runtime.readiness,
        &target,
        plan.request.wait,
        running,
        waiting,
    ) {
        WaitOutcome::Ready(_) => Ok(()),
        WaitOutcome::Exited(_) => Err(TunnelError::ExitedBeforeReady {
            id: plan.id.clone(),
            exit_code: spawn::recorded_exit_code(&runtime.process),
            stderr_log: runtime.process.logs.stderr.clone(),
        }),
        WaitOutcome::TimedOut(readiness) => {
            terminate_groups(runtime, plan.request.grace);
            files.clear_runtime()?;
            Err(TunnelError::NotReady {
                id: plan.id.clone(),
                waited_secs: plan.request.wait.as_secs(),
                pending: readiness.pending(),
                log_dir: files.dir().to_path_buf(),
            })
        }
    }
}

/// The ready service gets its backend and its preview artifact.
fn finish_start(
    paths: &Paths,
    plan: &Plan,
    declaration: &TunnelService,
    files: &ServiceFiles,
    runtime: &mut RuntimeState,
) -> Result<(), TunnelError> {
    if let Some(command) = &plan.request.backend_command {
        let env = vec![
            ("HOMEBOY_SERVICE_ID".to_string(), plan.id.clone()),
            (
                "HOMEBOY_SERVICE_LOCAL_URL".to_string(),
                runtime.local_url.clone(),
            ),
            (
                "HOMEBOY_TUNNEL_PUBLIC_URL".to_string(),
                runtime.public_url.clone().unwrap_or_default(),
            ),
        ];
        runtime.backend_process = Some(spawn::spawn_supervised(SpawnSpec {
            what: format!("the public tunnel backend of {}", plan.id),
            command,
            cwd: &plan.cwd,
            env: &env,
            logs: files.backend_logs(),
            exit_code_file: &files.backend_exit_file(),
        })?);
        files.write_runtime(runtime)?;
    }
    if preview_artifact::applies(&declaration.preview) {
        let path = preview_artifact::location(paths, files, &runtime.source);
        preview_artifact::write(
            &path,
            &preview_artifact::build(&declaration.preview, runtime),
        )?;
        if let Some(run_id) = &runtime.source.run_id {
            preview_artifact::record_in_run(paths, run_id)?;
        }
        runtime.preview_artifact_path = Some(path);
        files.write_runtime(runtime)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::declarations::{ExposeRequest, expose};
    use crate::service::{DEFAULT_GRACE, ServiceState, status, stop};
    use homeboy_config::tunnel_services::{AuthMode, PreviewMode};

    fn declare(paths: &Paths, id: &str, port: u16, preview: PreviewMode) {
        expose(
            paths,
            ExposeRequest {
                id: id.into(),
                server: None,
                remote_host: "127.0.0.1".into(),
                remote_port: port,
                auth_mode: AuthMode::None,
                auth_env: None,
                auth_header: None,
                allowed_clients: vec![],
                preview_mode: preview,
                keep_alive_until: None,
            },
        )
        .unwrap();
    }

    fn request(id: &str, command: &str, cwd: &Path) -> StartRequest {
        StartRequest {
            id: id.into(),
            command: command.into(),
            cwd: Some(cwd.to_path_buf()),
            host: None,
            port: None,
            health_path: None,
            env: vec![],
            backend: BackendKind::None,
            backend_command: None,
            public_url: None,
            source: SourceIds::default(),
            readiness: ReadinessSpec::default(),
            wait: Duration::from_secs(10),
            grace: Duration::from_secs(2),
            if_not_running: false,
        }
    }

    #[test]
    fn start_status_stop_with_env_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        declare(&paths, "svc", 7999, PreviewMode::Always);
        let mut req = request("svc", "echo started; exec sleep 30", dir.path());
        req.env = parse_env(&["SVC_TOKEN=s3cr3t-value".to_string()]).unwrap();
        req.readiness.stdout_regex = Some("^started$".into());
        let report = start(&paths, req.clone()).unwrap();
        assert_eq!(report.outcome, StartOutcome::Started);
        assert_eq!(report.status.state, ServiceState::Running);
        assert!(report.status.readiness.as_ref().unwrap().ready);
        let preview = report.status.preview.as_ref().expect("policy always");
        assert_eq!(preview.local_url, "http://127.0.0.1:7999");
        assert!(
            report
                .status
                .preview_artifact_path
                .as_ref()
                .unwrap()
                .is_file()
        );

        let runtime_text = std::fs::read_to_string(report.status.runtime_file.clone()).unwrap();
        assert!(runtime_text.contains("SVC_TOKEN"));
        assert!(!runtime_text.contains("s3cr3t-value"), "{runtime_text}");

        let err = start(&paths, req.clone()).unwrap_err();
        assert!(matches!(err, TunnelError::AlreadyRunning { .. }), "{err}");
        req.if_not_running = true;
        assert_eq!(
            start(&paths, req).unwrap().outcome,
            StartOutcome::AlreadyRunning
        );

        let pgid = report.status.pgid.unwrap();
        let stopped = stop(&paths, "svc", DEFAULT_GRACE).unwrap();
        assert_eq!(stopped.outcome, crate::service::StopOutcome::Stopped);
        assert!(!homeboy_process::group_alive(pgid));
        assert!(stopped.logs.stdout.is_file(), "logs are kept");
        assert_eq!(
            status(&paths, "svc").unwrap().state,
            ServiceState::NotRunning
        );
    }

    type Change = dyn Fn(&mut StartRequest);

    #[test]
    fn refused_requests_start_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        declare(&paths, "svc", 7999, PreviewMode::None);
        let cases: Vec<Box<Change>> = vec![
            Box::new(|r| r.host = Some("0.0.0.0".into())),
            Box::new(|r| r.health_path = Some("health".into())),
            Box::new(|r| r.backend = BackendKind::Command),
            Box::new(|r| r.backend_command = Some("x".into())),
            Box::new(|r| r.public_url = Some("preview.example".into())),
            Box::new(|r| r.source.run_id = Some("../x".into())),
            Box::new(|r| r.cwd = Some("/no/such/dir".into())),
            Box::new(|r| r.command = " ".into()),
        ];
        for (i, change) in cases.iter().enumerate() {
            let mut req = request("svc", "sleep 30", dir.path());
            change(&mut req);
            let err = start(&paths, req).unwrap_err();
            assert!(err.is_refused_input(), "case {i}: {err}");
        }
        assert!(
            ServiceFiles::new(&paths, "svc")
                .unwrap()
                .read_runtime()
                .unwrap()
                .is_none()
        );
        assert!(parse_env(&["NOEQUALS".into()]).is_err());
        assert!(parse_env(&["1X=a".into()]).is_err());
    }
}
