//! `homeboy daemon serve|start|stop|status|broker-config`: wiring to `homeboy_daemon`.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand};
use homeboy_build as build_info;
use homeboy_client::lifecycle::{self, RunState, StartOptions, StartOutcome, StopOutcome};
use homeboy_config::Paths;
use homeboy_daemon::DaemonError;
use homeboy_daemon::serve_args::ServeFlags;
use homeboy_daemon::server;
use homeboy_deploy::DeployError;
use homeboy_deploy::broker_config::{self, BrokerConfigOptions};

use crate::output::{Format, print_json, usage_error};

#[derive(Subcommand)]
pub enum DaemonCommand {
    /// Start the daemon in the background; a healthy daemon of this build is left alone, one of another
    /// build is replaced
    Start {
        /// Loopback address to listen on; port 0 picks a free port
        #[arg(long, default_value = "127.0.0.1:0", value_parser = server::parse_listen_addr)]
        addr: SocketAddr,
        /// Seconds to wait for the daemon to answer /health
        #[arg(long, default_value_t = 10)]
        wait_secs: u64,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Run the daemon in the foreground until SIGTERM or Ctrl-C
    Serve(ServeFlags),
    /// Stop the background daemon recorded in the state file (SIGTERM, then SIGKILL after 5 s)
    Stop {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show whether the daemon runs, its pid, address, build and log path
    Status {
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
    /// json (the default) or text (an operator checklist)
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
}

pub fn run(cmd: DaemonCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    match cmd {
        DaemonCommand::Serve(args) => serve(paths, args),
        DaemonCommand::Start {
            addr,
            wait_secs,
            format,
        } => start(paths, addr, Duration::from_secs(wait_secs), format),
        DaemonCommand::Stop { format } => stop(&paths, format),
        DaemonCommand::Status { format } => status(&paths, format),
        DaemonCommand::BrokerConfig(args) => broker_config(args),
    }
}

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn serve(paths: Paths, flags: ServeFlags) -> anyhow::Result<()> {
    flags.init_logging();
    let options = flags.options(paths, SocketAddr::from(([127, 0, 0, 1], 0)));
    runtime()?.block_on(async {
        let bound = server::bind(options).await.map_err(refusal)?;
        let state = bound.state();
        let _ = writeln!(
            std::io::stdout(),
            "homeboy daemon listening on http://{} (pid {}, build {})",
            state.addr,
            state.pid,
            state.build_id
        );
        bound.run(server::shutdown_signal()).await?;
        // stdout may be a closed pipe by now; a daemon does not fail over a message.
        let _ = writeln!(std::io::stdout(), "homeboy daemon stopped");
        Ok(())
    })
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

fn start(paths: Paths, addr: SocketAddr, wait: Duration, format: Format) -> anyhow::Result<()> {
    if !server::is_loopback(&addr) {
        return Err(refusal(DaemonError::NonLoopbackAddress { addr }));
    }
    let exe = std::env::current_exe().context("locate the homeboy executable")?;
    let mut options = StartOptions::new(paths, exe);
    options.addr = addr;
    options.build_id = build_info::build_id_from_env();
    options.wait = wait;
    let (outcome, status) =
        runtime()?.block_on(lifecycle::start(&options, &mut |line| eprintln!("{line}")))?;
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

fn status(paths: &Paths, format: Format) -> anyhow::Result<()> {
    let status = runtime()?.block_on(lifecycle::status(paths, &build_info::build_id_from_env()))?;
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

fn broker_config(args: BrokerConfigArgs) -> anyhow::Result<()> {
    let mut options = BrokerConfigOptions::new(args.listen_addr);
    options.domain = args.domain;
    options.binary_path = args.binary_path;
    options.user = args.user;
    options.group = args.group;
    options.tls_certificate = args.tls_cert;
    options.tls_certificate_key = args.tls_key;
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
