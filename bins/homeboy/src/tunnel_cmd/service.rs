//! `homeboy tunnel service expose|list|show|set|remove|url|start|status|stop`: clap arguments and wiring to
//! `homeboy_tunnel::declarations` and `homeboy_tunnel::service`.

use std::path::PathBuf;
use std::time::Duration;

use crate::set_args::SetArgs;
use clap::{Args, Subcommand, ValueEnum};
use homeboy_config::Paths;
use homeboy_config::tunnel_services::{AuthMode, PreviewMode, TunnelService};
use homeboy_tunnel::declarations::{self, ExposeRequest};
use homeboy_tunnel::service::readiness::{ArtifactGate, ReadinessKind, ReadinessSpec};
use homeboy_tunnel::service::state::{BackendKind, SourceIds};
use homeboy_tunnel::service::{self, ServiceState, ServiceStatus, StartOutcome, StartRequest};

use super::errors::exit;
use crate::output::{Format, print_json};
use crate::progress::Progress;

#[derive(Subcommand)]
pub enum ServiceCommand {
    /// Create or replace a private service tunnel declaration (loopback only; names the token's
    /// environment variable, never the token)
    Expose(ExposeArgs),
    /// List declarations
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show one declaration
    Show {
        /// The service id
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Update a declaration with the dynamic set contract; nothing is written unless the result is valid
    Set(SetArgs),
    /// Delete a declaration (a running service keeps running; stop it first)
    Remove {
        /// The service id
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Print the declared loopback URL
    Url {
        /// The service id
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Start a declared service's command under supervision, wait until it is ready, then start the
    /// optional public tunnel backend
    Start(Box<StartArgs>),
    /// Report process, exit code, readiness (health included), backend, logs and the preview artifact
    Status {
        /// The service id
        id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Terminate the backend's and the service's process groups (SIGTERM, grace, SIGKILL) and remove the
    /// runtime state; logs are kept
    Stop {
        /// The service id
        id: String,
        /// Seconds between SIGTERM and SIGKILL
        #[arg(long, default_value_t = 5)]
        grace_secs: u64,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

#[derive(Args)]
pub struct ExposeArgs {
    /// The service id (a file name: letters, digits, '.', '_', '-')
    id: String,
    /// The configured server the service runs on (default: this machine)
    #[arg(long)]
    server: Option<String>,
    /// Loopback host of the service
    #[arg(long, default_value = "127.0.0.1")]
    remote_host: String,
    #[arg(long)]
    remote_port: u16,
    /// How clients authenticate (required: there is no implicit default)
    #[arg(long, value_enum)]
    auth_mode: AuthModeArg,
    /// The environment variable holding the token (bearer-env, header-env)
    #[arg(long, value_name = "VAR")]
    auth_env: Option<String>,
    /// The header carrying the token (required for header-env)
    #[arg(long, value_name = "HEADER")]
    auth_header: Option<String>,
    /// A client id allowed to use the service; repeatable
    #[arg(long = "allow-client", value_name = "CLIENT")]
    allow_clients: Vec<String>,
    /// When runs of this service publish preview artifacts
    #[arg(long, value_enum, default_value_t = PreviewPolicyArg::None)]
    preview_policy: PreviewPolicyArg,
    /// RFC 3339 end of the preview (required with --preview-policy keep-alive-until)
    #[arg(long, value_name = "TIME")]
    keep_alive_until: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthModeArg {
    /// `Authorization: Bearer <value of --auth-env>`
    BearerEnv,
    /// `<--auth-header>: <value of --auth-env>`
    HeaderEnv,
    /// No credentials (the service stays private on loopback)
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum PreviewPolicyArg {
    None,
    Always,
    OnFailure,
    ManualApproval,
    KeepAliveUntil,
}

#[derive(Args)]
pub struct StartArgs {
    /// The declared service to start
    id: String,
    /// The command line, run as `sh -c <COMMAND>` (it is your own declared command) in a new session and
    /// process group under a small `sh` supervisor that records its exit code
    #[arg(long)]
    command: String,
    /// Working directory (default: the current directory)
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Loopback host the service listens on (default: the declaration's remote host)
    #[arg(long)]
    host: Option<String>,
    /// Port the service listens on (default: the declaration's remote port)
    #[arg(long)]
    port: Option<u16>,
    /// Path that must answer 2xx/3xx before the service counts as ready (e.g. /)
    #[arg(long)]
    health_path: Option<String>,
    /// KEY=VALUE for the command's environment; repeatable. Only names are recorded, never values
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Public tunnel backend: none, or a command started after the service is ready and stopped with it
    #[arg(long, value_enum, default_value_t = BackendArg::None)]
    public_tunnel_backend: BackendArg,
    /// Backend command (`sh -c`), given HOMEBOY_SERVICE_ID, HOMEBOY_SERVICE_LOCAL_URL and
    /// HOMEBOY_TUNNEL_PUBLIC_URL
    #[arg(long, value_name = "COMMAND")]
    public_tunnel_command: Option<String>,
    /// The public URL the backend exposes (recorded; used by preview-consumer --service-id)
    #[arg(long, value_name = "URL")]
    public_tunnel_public_url: Option<String>,
    /// The run that owns this start (the preview artifact goes to <artifact root>/runs/<id>/)
    #[arg(long, value_name = "ID")]
    source_run_id: Option<String>,
    /// The workflow that owns this start
    #[arg(long, value_name = "ID")]
    source_workflow_id: Option<String>,
    /// generic: process + health + any gate given; proof: also demands an artifact or stdout gate
    #[arg(long, value_enum, default_value_t = KindArg::Generic)]
    readiness_kind: KindArg,
    /// Also require the port to accept TCP connections
    #[arg(long)]
    require_listener: bool,
    /// A file that must exist (relative to --cwd) before the service is ready; one that already exists at
    /// start counts only once the service rewrites it
    #[arg(long, value_name = "PATH")]
    readiness_artifact: Option<PathBuf>,
    /// JSON pointer into --readiness-artifact whose value must exist (or equal the next flag)
    #[arg(long, value_name = "POINTER", requires = "readiness_artifact")]
    readiness_artifact_json_pointer: Option<String>,
    /// The value the pointer must hold (a string compares as text, anything else as JSON)
    #[arg(
        long,
        value_name = "VALUE",
        requires = "readiness_artifact_json_pointer"
    )]
    readiness_artifact_json_equals: Option<String>,
    /// A regex one line of the service's stdout must match
    #[arg(long, value_name = "REGEX")]
    readiness_stdout_regex: Option<String>,
    /// Seconds to wait for readiness; a service not ready by then is stopped (0: do not wait)
    #[arg(long, default_value_t = 30)]
    wait_secs: u64,
    /// Seconds between SIGTERM and SIGKILL when a service that never became ready is stopped
    #[arg(long, default_value_t = 5)]
    grace_secs: u64,
    /// If the service is already running, report it and exit 0 instead of refusing
    #[arg(long)]
    if_not_running: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendArg {
    None,
    Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Generic,
    Proof,
}

pub fn run(cmd: ServiceCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    match cmd {
        ServiceCommand::Expose(args) => expose(&paths, args),
        ServiceCommand::List { format } => list(&paths, format),
        ServiceCommand::Show { id, format } => {
            let service = declarations::show(&paths, &id).map_err(exit)?;
            print_declaration(&service, format)
        }
        ServiceCommand::Set(args) => set(&paths, &args),
        ServiceCommand::Remove { id, format } => {
            let removed = declarations::remove(&paths, &id).map_err(exit)?;
            if !removed {
                return Err(super::errors::failure(format!(
                    "no tunnel service named {id:?}"
                )));
            }
            match format {
                Format::Json => print_json(&serde_json::json!({"removed": id})),
                Format::Text => {
                    println!("removed tunnel service {id}");
                    Ok(())
                }
            }
        }
        ServiceCommand::Url { id, format } => {
            let url = declarations::url(&declarations::show(&paths, &id).map_err(exit)?);
            match format {
                Format::Json => print_json(&serde_json::json!({"service_id": id, "url": url})),
                Format::Text => {
                    println!("{url}");
                    Ok(())
                }
            }
        }
        ServiceCommand::Start(args) => start(&paths, *args),
        ServiceCommand::Status { id, format } => {
            let status = service::status(&paths, &id).map_err(exit)?;
            match format {
                Format::Json => print_json(&status),
                Format::Text => {
                    print_status(&status);
                    Ok(())
                }
            }
        }
        ServiceCommand::Stop {
            id,
            grace_secs,
            format,
        } => stop(&paths, &id, grace_secs, format),
    }
}

fn expose(paths: &Paths, args: ExposeArgs) -> anyhow::Result<()> {
    let request = ExposeRequest {
        id: args.id,
        server: args.server,
        remote_host: args.remote_host,
        remote_port: args.remote_port,
        auth_mode: match args.auth_mode {
            AuthModeArg::BearerEnv => AuthMode::BearerEnv,
            AuthModeArg::HeaderEnv => AuthMode::HeaderEnv,
            AuthModeArg::None => AuthMode::None,
        },
        auth_env: args.auth_env,
        auth_header: args.auth_header,
        allowed_clients: args.allow_clients,
        preview_mode: match args.preview_policy {
            PreviewPolicyArg::None => PreviewMode::None,
            PreviewPolicyArg::Always => PreviewMode::Always,
            PreviewPolicyArg::OnFailure => PreviewMode::OnFailure,
            PreviewPolicyArg::ManualApproval => PreviewMode::ManualApproval,
            PreviewPolicyArg::KeepAliveUntil => PreviewMode::KeepAliveUntil,
        },
        keep_alive_until: args.keep_alive_until,
    };
    let (outcome, service) = declarations::expose(paths, request).map_err(exit)?;
    match args.format {
        Format::Json => print_json(&serde_json::json!({"outcome": outcome, "service": service})),
        Format::Text => {
            let verb = match outcome {
                declarations::ExposeOutcome::Created => "declared",
                declarations::ExposeOutcome::Replaced => "replaced",
            };
            println!(
                "{verb} tunnel service {} at {} (private loopback, auth {})",
                service.id,
                declarations::url(&service),
                auth_label(&service)
            );
            Ok(())
        }
    }
}

fn list(paths: &Paths, format: Format) -> anyhow::Result<()> {
    let listed = declarations::list(paths).map_err(exit)?;
    if format == Format::Json {
        let items: Vec<serde_json::Value> = listed
            .iter()
            .map(|l| match &l.item {
                Ok(service) => serde_json::json!({"id": l.id, "service": service}),
                Err(e) => serde_json::json!({"id": l.id, "error": e.to_string()}),
            })
            .collect();
        return print_json(&items);
    }
    if listed.is_empty() {
        println!("no tunnel services declared");
    }
    for l in &listed {
        match &l.item {
            Ok(s) => println!(
                "{}\t{}\t{}\tauth {}\tpreview {}",
                s.id,
                declarations::url(s),
                s.server.as_deref().unwrap_or("local"),
                auth_label(s),
                serde_json::to_value(s.preview.mode)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            ),
            Err(e) => println!("{}\tunreadable: {e}", l.id),
        }
    }
    Ok(())
}

fn set(paths: &Paths, args: &SetArgs) -> anyhow::Result<()> {
    let edits = args.edits()?;
    let service = declarations::set(paths, &args.id, &edits).map_err(exit)?;
    print_declaration(&service, args.format)
}

fn print_declaration(service: &TunnelService, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(service),
        Format::Text => {
            println!("{}", serde_json::to_string_pretty(service)?);
            Ok(())
        }
    }
}

fn auth_label(service: &TunnelService) -> String {
    match service.auth.mode {
        AuthMode::BearerEnv => format!("bearer ${}", service.auth.env.as_deref().unwrap_or("?")),
        AuthMode::HeaderEnv => format!(
            "{} ${}",
            service.auth.header.as_deref().unwrap_or("?"),
            service.auth.env.as_deref().unwrap_or("?")
        ),
        AuthMode::None => "none".into(),
    }
}

fn start(paths: &Paths, args: StartArgs) -> anyhow::Result<()> {
    let env = service::parse_env(&args.env).map_err(exit)?;
    let request = StartRequest {
        id: args.id,
        command: args.command,
        cwd: args.cwd,
        host: args.host,
        port: args.port,
        health_path: args.health_path,
        env,
        backend: match args.public_tunnel_backend {
            BackendArg::None => BackendKind::None,
            BackendArg::Command => BackendKind::Command,
        },
        backend_command: args.public_tunnel_command,
        public_url: args.public_tunnel_public_url,
        source: SourceIds {
            run_id: args.source_run_id,
            workflow_id: args.source_workflow_id,
        },
        readiness: ReadinessSpec {
            kind: match args.readiness_kind {
                KindArg::Generic => ReadinessKind::Generic,
                KindArg::Proof => ReadinessKind::Proof,
            },
            require_listener: args.require_listener,
            artifact: args.readiness_artifact.map(|path| ArtifactGate {
                path,
                json_pointer: args.readiness_artifact_json_pointer,
                json_equals: args.readiness_artifact_json_equals,
                stale: None,
            }),
            stdout_regex: args.readiness_stdout_regex,
        },
        wait: Duration::from_secs(args.wait_secs),
        grace: Duration::from_secs(args.grace_secs),
        if_not_running: args.if_not_running,
    };
    let progress = Progress::start(args.format, format!("starting {}", request.id));
    let report = service::start_showing(paths, request, &mut |readiness| {
        if !readiness.ready {
            progress.set(format!("waiting for {}", readiness.pending()));
        }
    });
    progress.finish();
    let report = report.map_err(exit)?;
    match args.format {
        Format::Json => print_json(&report),
        Format::Text => {
            if report.outcome == StartOutcome::AlreadyRunning {
                println!("already running; nothing started");
            }
            print_status(&report.status);
            Ok(())
        }
    }
}

fn stop(paths: &Paths, id: &str, grace_secs: u64, format: Format) -> anyhow::Result<()> {
    let report = service::stop(paths, id, Duration::from_secs(grace_secs)).map_err(exit)?;
    match format {
        Format::Json => print_json(&report),
        Format::Text => {
            let what = match report.outcome {
                service::StopOutcome::Stopped if report.forced => {
                    format!("killed (ignored SIGTERM for {grace_secs} s)")
                }
                service::StopOutcome::Stopped => "stopped".to_string(),
                service::StopOutcome::AlreadyExited => format!(
                    "had already exited (code {}); cleaned up",
                    report
                        .exit_code
                        .map_or_else(|| "unknown".into(), |c| c.to_string())
                ),
                service::StopOutcome::NotRunning => "was not running".to_string(),
            };
            println!("service {id} {what}");
            println!("logs kept: {}", report.logs.stdout.display());
            println!("           {}", report.logs.stderr.display());
            Ok(())
        }
    }
}

fn print_status(status: &ServiceStatus) {
    let state = match (status.state, status.exit_code) {
        (ServiceState::Exited, Some(code)) => format!("exited with code {code}"),
        (ServiceState::Exited, None) => "exited (exit code unknown)".to_string(),
        (state, _) => state.label().to_string(),
    };
    println!("service {}: {state}", status.service_id);
    if let (Some(pid), Some(pgid)) = (status.pid, status.pgid) {
        println!(
            "pid: {pid} (process group {pgid}, {} alive)",
            status.group_members.len()
        );
    }
    if let Some(started) = &status.started_at {
        println!("started: {started}");
    }
    println!("local url: {}", status.local_url);
    if let Some(url) = &status.public_url {
        println!("public url: {url}");
    }
    if let Some(health) = &status.health {
        println!(
            "health: {} ({})",
            if health.ok { "ok" } else { "failing" },
            health.detail
        );
    }
    if let Some(r) = &status.readiness {
        println!(
            "readiness: {} (process_running={}, preview_ready={}, proof_ready={})",
            if r.ready { "ready" } else { "not ready" },
            r.process_running,
            r.preview_ready,
            r.proof_ready
        );
        for check in &r.checks {
            println!(
                "  {} {}: {}",
                if check.ok { "ok  " } else { "WAIT" },
                check.name,
                check.detail
            );
        }
    }
    if status.backend.kind == BackendKind::Command {
        let backend_state = match (status.backend.state, status.backend.exit_code) {
            (Some(ServiceState::Exited), Some(code)) => format!("exited with code {code}"),
            (Some(state), _) => state.label().to_string(),
            (None, _) => "not started".to_string(),
        };
        println!(
            "backend: command, {backend_state}{}",
            status
                .backend
                .pid
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default()
        );
        if let Some(logs) = &status.backend.logs {
            println!(
                "backend logs: {} {}",
                logs.stdout.display(),
                logs.stderr.display()
            );
        }
    }
    if !status.env_names.is_empty() {
        println!("env: {}", status.env_names.join(", "));
    }
    println!(
        "logs: {} {}",
        status.logs.stdout.display(),
        status.logs.stderr.display()
    );
    if let Some(path) = &status.preview_artifact_path {
        println!("preview artifact: {}", path.display());
    }
}
