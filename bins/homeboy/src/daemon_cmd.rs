//! `homeboy daemon serve|start|stop|status|broker-config`: wiring to `homeboy_daemon` and
//! `homeboy_client::lifecycle`, and [`local_client`], the local daemon for commands that need one (started
//! when none runs). An `--addr` with a port names a daemon kept apart for that address
//! (`daemon/<host>-<port>/`); without one, the default daemon.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use homeboy_api::preview::RouteStatusReport;
use homeboy_api::tunnel::ManagedServices;
use homeboy_build as build_info;
use homeboy_client::client::DaemonClient;
use homeboy_client::lifecycle::{
    self, DaemonStatus, RunState, StartOptions, StartOutcome, StopOutcome,
};
use homeboy_config::Paths;
use homeboy_daemon::DaemonError;
use homeboy_daemon::serve_args::{ServeFlags, StoreFlags, parse_duration};
use homeboy_daemon::server;
use homeboy_deploy::DeployError;
use homeboy_deploy::broker_config::{self, BrokerConfigOptions};
use homeboy_deploy::multi_broker::SharedStore;
use homeboy_preview::routes::RouteStore;
use homeboy_service::{ApiError, LocalViews};

use crate::output::{Format, print_json, usage_error};
use crate::progress::Progress;

#[derive(Subcommand)]
pub enum DaemonCommand {
    /// Start the daemon in the background; a healthy daemon of this build is left alone, one of another
    /// build is replaced
    Start {
        /// Loopback address to listen on. With a port, a daemon kept apart for that address
        /// (daemon/<host>-<port>/: several run side by side); without --addr (or with port 0) the default
        /// daemon on a free port
        #[arg(long, value_parser = server::parse_listen_addr)]
        addr: Option<SocketAddr>,
        /// Seconds to wait for the daemon to answer /health
        #[arg(long, default_value_t = 10)]
        wait_secs: u64,
        /// Stop after this long with no requests, no queued or running jobs and no managed services (e.g.
        /// 10m); commands that need the daemon start one with HOMEBOY_DAEMON_IDLE_TIMEOUT too
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, env = IDLE_TIMEOUT_ENV)]
        idle_timeout: Option<Duration>,
        /// Size at which the daemon rotates daemon.log (default 8 MiB; three old files are kept)
        #[arg(long, hide = true)]
        log_max_bytes: Option<u64>,
        /// Line format of daemon.log: text or json (one object per line); filter with HOMEBOY_LOG
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
        log_format: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Run the daemon in the foreground until SIGTERM or Ctrl-C
    Serve(ServeFlags),
    /// Stop the background daemon recorded in the state file (SIGTERM, then SIGKILL after 5 s)
    Stop {
        /// The daemon kept apart for this address (as given to `start --addr`); default: the default daemon
        #[arg(long, value_parser = server::parse_listen_addr)]
        addr: Option<SocketAddr>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show whether the daemon runs, its pid, address, build and log path
    Status {
        /// The daemon kept apart for this address (as given to `start --addr`); default: the default daemon
        #[arg(long, value_parser = server::parse_listen_addr, conflicts_with = "all")]
        addr: Option<SocketAddr>,
        /// Every daemon of this config dir: the default one and each one kept apart for its address
        #[arg(long)]
        all: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Render the deployment recipe of a reverse-runner broker on a VPS: a systemd unit, private tunnel
    /// examples, state paths, day-two commands, caveats, and nginx/Caddy sites when --domain is given.
    /// Prints JSON unless --format text asks for an operator checklist
    BrokerConfig(BrokerConfigArgs),
}

#[derive(Args)]
pub struct BrokerConfigArgs {
    /// The broker's stable loopback address (non-loopback addresses and port 0 are refused)
    #[arg(long, default_value = broker_config::DEFAULT_LISTEN_ADDR, value_parser = server::parse_listen_addr)]
    listen_addr: SocketAddr,
    /// Public DNS name: also render nginx and Caddy sites (public exposure relies on broker auth: paired
    /// runners' bearer tokens)
    #[arg(long)]
    domain: Option<String>,
    /// The homeboy binary on the VPS
    #[arg(long, default_value = broker_config::DEFAULT_BINARY_PATH)]
    binary_path: String,
    /// The service user
    #[arg(long, default_value = broker_config::DEFAULT_SERVICE_USER)]
    user: String,
    /// The service group
    #[arg(long, default_value = broker_config::DEFAULT_SERVICE_USER)]
    group: String,
    /// TLS certificate for the sites (default: Let's Encrypt's path for the domain; Caddy then uses
    /// automatic HTTPS)
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<String>,
    /// TLS private key for the sites (with --tls-cert)
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<String>,
    /// A PostgreSQL job store shared by several brokers (postgres://USER@HOST:PORT/DBNAME): also render the
    /// multi-broker shape (an environment file for the store, an nginx upstream, caveats). A password in
    /// it is never rendered
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// Another broker on this host for the nginx upstream (with --store; default: the next port); repeatable
    #[arg(long = "peer", value_name = "ADDR", value_parser = server::parse_listen_addr, requires = "store")]
    peers: Vec<SocketAddr>,
    /// json (the default) or text (an operator checklist)
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

/// The variable `start --idle-timeout` reads, and the idle timeout of a daemon a command starts by itself.
const IDLE_TIMEOUT_ENV: &str = "HOMEBOY_DAEMON_IDLE_TIMEOUT";

pub fn run(cmd: DaemonCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    match cmd {
        DaemonCommand::Serve(args) => serve(paths, args),
        DaemonCommand::Start {
            addr,
            wait_secs,
            idle_timeout,
            log_max_bytes,
            log_format,
            format,
        } => {
            let mut options = start_options(paths, addr)?;
            options.wait = Duration::from_secs(wait_secs);
            options.idle_timeout = idle_timeout;
            if let Some(bytes) = log_max_bytes {
                options.extra_serve_args = vec!["--log-max-bytes".into(), bytes.to_string().into()];
            }
            options
                .extra_serve_args
                .extend(["--log-format".into(), log_format.into()]);
            start(&options, format)
        }
        DaemonCommand::Stop { addr, format } => stop(&daemon_paths(paths, addr), format),
        DaemonCommand::Status { addr, all, format } => {
            status(&daemon_paths(paths, addr), all, format)
        }
        DaemonCommand::BrokerConfig(args) => broker_config(args),
    }
}

/// The paths of the daemon `--addr` names: one kept apart for an address with a port, else the default.
fn daemon_paths(paths: Paths, addr: Option<SocketAddr>) -> Paths {
    match addr {
        Some(addr) if addr.port() != 0 => paths.for_daemon_at(addr),
        _ => paths,
    }
}

/// How `start` (and a command that needs the daemon) starts one.
fn start_options(paths: Paths, addr: Option<SocketAddr>) -> anyhow::Result<StartOptions> {
    if let Some(addr) = addr
        && !server::is_loopback(&addr)
    {
        return Err(refusal(DaemonError::NonLoopbackAddress { addr }));
    }
    let exe = std::env::current_exe().context("locate the homeboy executable")?;
    let mut options = StartOptions::new(paths, exe);
    options.build_id = build_info::build_id_from_env();
    match addr {
        Some(addr) if addr.port() != 0 => options = options.apart_at(addr),
        Some(addr) => options.addr = addr,
        None => {}
    }
    Ok(options)
}

/// A client of the local default daemon for a command that needs one, started (in the background, with
/// `HOMEBOY_DAEMON_IDLE_TIMEOUT` as its idle timeout) when none answers.
pub fn local_client(paths: &Paths, format: Format) -> anyhow::Result<DaemonClient> {
    let mut options = start_options(paths.clone(), None)?;
    options.idle_timeout = match std::env::var(IDLE_TIMEOUT_ENV) {
        Ok(value) if !value.trim().is_empty() => Some(
            parse_duration(&value).map_err(|e| usage_error(format!("{IDLE_TIMEOUT_ENV}: {e}")))?,
        ),
        _ => None,
    };
    let progress = Progress::start(format, "checking the daemon");
    let (outcome, status) = runtime()?.block_on(lifecycle::ensure_running(
        &options,
        &mut |line| progress.line(line),
        &mut |waiting| progress.set(waiting),
    ))?;
    progress.finish();
    if outcome.is_some() {
        eprintln!(
            "homeboy: started the daemon at {} (pid {})",
            status.url.as_deref().unwrap_or("?"),
            status.pid.unwrap_or_default()
        );
    }
    let url = status.url.ok_or(homeboy_client::ClientError::NotRunning)?;
    Ok(DaemonClient::new(url)?)
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn serve(paths: Paths, flags: ServeFlags) -> anyhow::Result<()> {
    flags.init_logging();
    let mut options = flags
        .options(paths, SocketAddr::from(([127, 0, 0, 1], 0)))
        .map_err(|e| usage_error(e.to_string()))?;
    options.watchers = crate::daemon_watch::watchers(&options.paths);
    // A background daemon's stdout is its log file: there the banner would only repeat the log's own
    // "serving on" line (and break a JSON log's one object per line), so it is left to the log.
    let background = flags.log_path.is_some();
    options.local_views = Some(Arc::new(TunnelViews));
    runtime()?.block_on(async {
        let bound = server::bind(options).await.map_err(refusal)?;
        let state = bound.state();
        if !background {
            let _ = writeln!(
                std::io::stdout(),
                "homeboy daemon listening on http://{} (pid {}, build {})",
                state.addr,
                state.pid,
                state.build_id
            );
        }
        bound.run(server::shutdown_signal()).await?;
        if background {
            tracing::info!("homeboy daemon stopped");
        } else {
            // stdout may be a closed pipe by now; a daemon does not fail over a message.
            let _ = writeln!(std::io::stdout(), "homeboy daemon stopped");
        }
        Ok(())
    })
}

/// What `homeboy daemon` shows of this machine's managed services and preview sessions (`GET /tunnel/*`):
/// `homeboy-tunnel`'s and `homeboy-preview`'s own readers, handed to the daemon.
#[derive(Debug)]
struct TunnelViews;

impl LocalViews for TunnelViews {
    fn managed_services(&self, paths: &Paths) -> Result<ManagedServices, ApiError> {
        homeboy_tunnel::service::summaries(paths).map_err(|e| {
            ApiError::internal("reading the managed services failed")
                .with_internal_detail(e.to_string())
        })
    }

    fn preview_sessions(&self, paths: &Paths) -> Result<RouteStatusReport, ApiError> {
        RouteStore::new(paths).status().map_err(|e| {
            ApiError::internal("reading the preview route table failed")
                .with_internal_detail(e.to_string())
        })
    }
}

/// Turns a refused address into exit code 2 with one line; other errors pass through.
fn refusal(error: DaemonError) -> anyhow::Error {
    match error {
        DaemonError::NonLoopbackAddress { .. } | DaemonError::UnsafeOptions(_) => {
            usage_error(error.to_string())
        }
        other => other.into(),
    }
}

fn start(options: &StartOptions, format: Format) -> anyhow::Result<()> {
    let progress = Progress::start(format, "starting the daemon");
    let (outcome, status) = runtime()?.block_on(lifecycle::start_showing(
        options,
        &mut |line| progress.line(line),
        &mut |waiting| progress.set(waiting),
    ))?;
    progress.finish();
    match format {
        Format::Json => print_json(&serde_json::json!({"outcome": outcome, "status": status})),
        Format::Text => {
            let verb = match outcome {
                StartOutcome::AlreadyRunning => "already running",
                StartOutcome::Started => "started",
                StartOutcome::Restarted => "restarted",
            };
            println!(
                "daemon {verb} at {} (pid {}, build {})",
                status.url.as_deref().unwrap_or("?"),
                status.pid.unwrap_or_default(),
                status.build_id.as_deref().unwrap_or("?")
            );
            Ok(())
        }
    }
}

fn stop(paths: &Paths, format: Format) -> anyhow::Result<()> {
    let outcome = lifecycle::stop(paths)?;
    match format {
        Format::Json => print_json(&outcome),
        Format::Text => {
            match outcome {
                StopOutcome::NotRunning => println!("daemon not running"),
                StopOutcome::StaleCleaned { pid } => {
                    println!("daemon not running: removed stale state (pid {pid} was gone)")
                }
                StopOutcome::Stopped { pid, forced: false } => {
                    println!("daemon stopped (pid {pid})")
                }
                StopOutcome::Stopped { pid, forced: true } => {
                    println!("daemon killed (pid {pid} ignored SIGTERM for 5 s)")
                }
            }
            Ok(())
        }
    }
}

fn status(paths: &Paths, all: bool, format: Format) -> anyhow::Result<()> {
    let build = build_info::build_id_from_env();
    if all {
        let all = runtime()?.block_on(lifecycle::status_all(paths, &build))?;
        if format == Format::Json {
            return print_json(&all);
        }
        print_status_table(&all);
        return Ok(());
    }
    let status = runtime()?.block_on(lifecycle::status(paths, &build))?;
    if format == Format::Json {
        return print_json(&status);
    }
    println!("daemon: {}", status.state.label());
    if status.state != RunState::NotRunning {
        let none = || "-".to_string();
        println!("pid: {}", status.pid.map_or_else(none, |p| p.to_string()));
        println!("address: {}", status.url.clone().unwrap_or_else(none));
        println!(
            "build: {} (this binary: {})",
            status.build_id.clone().unwrap_or_else(none),
            status.current_build_id
        );
        println!("version: {}", status.version.clone().unwrap_or_else(none));
        println!(
            "started: {}",
            status.started_at.clone().unwrap_or_else(none)
        );
        println!(
            "log: {}",
            status
                .log_path
                .as_ref()
                .map_or_else(|| "- (foreground)".to_string(), |p| p.display().to_string())
        );
    }
    println!("state file: {}", status.state_path.display());
    if status.state == RunState::Stale {
        println!("hint: `homeboy daemon start` replaces it, `homeboy daemon stop` cleans it");
    }
    Ok(())
}

/// `status --all` for people: one row per daemon.
fn print_status_table(all: &[DaemonStatus]) {
    let dash = || "-".to_string();
    println!(
        "{:<24} {:<13} {:<8} {:<28} STATE FILE",
        "DAEMON", "STATE", "PID", "ADDRESS"
    );
    for status in all {
        println!(
            "{:<24} {:<13} {:<8} {:<28} {}",
            status.instance.as_deref().unwrap_or("default"),
            status.state.label(),
            status.pid.map_or_else(dash, |p| p.to_string()),
            status.url.clone().unwrap_or_else(dash),
            status.state_path.display()
        );
    }
}

fn broker_config(args: BrokerConfigArgs) -> anyhow::Result<()> {
    let mut options = BrokerConfigOptions::new(args.listen_addr);
    options.domain = args.domain;
    options.binary_path = args.binary_path;
    options.user = args.user;
    options.group = args.group;
    options.tls_certificate = args.tls_cert;
    options.tls_certificate_key = args.tls_key;
    if let Some(url) = args.store {
        let flags = StoreFlags {
            store: Some(url),
            ..StoreFlags::default()
        };
        let pg = flags
            .pg_options()
            .map_err(|e| usage_error(e.to_string()))?
            .ok_or_else(|| usage_error("--store must not be empty"))?;
        options.store = Some(SharedStore {
            url_shown: pg.dsn.to_string(),
            host: pg.dsn.host(),
            had_password: pg.dsn.has_password(),
        });
        options.peers = args.peers;
    }
    let config = broker_config::render(&options).map_err(|error| match error {
        DeployError::Refused(api) => usage_error(api.message),
        refused @ DeployError::NonLoopbackAddress { .. } => usage_error(refused.to_string()),
        other => other.into(),
    })?;
    match args.format {
        Format::Json => print_json(&config),
        Format::Text => {
            print!("{}", broker_config::render_checklist(&config));
            Ok(())
        }
    }
}
