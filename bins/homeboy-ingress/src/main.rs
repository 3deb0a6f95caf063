//! `homeboy-ingress`: the VPS side of native public preview, for a systemd unit. Argument parsing, wiring
//! and exit codes only (0 ok, 1 failure, 2 refused input); the ingress, the route table and their rules
//! live in `homeboy-preview`. The same commands exist as `homeboy tunnel preview-ingress ...`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use homeboy_config::Paths;
use homeboy_preview::PreviewError;
use homeboy_preview::ingress::{self, DEFAULT_BIND, IngressOptions};
use homeboy_preview::routes::{RouteSpec, RouteStore};

/// mimalloc: the ingress allocates small, short-lived buffers per proxied request.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "homeboy-ingress",
    version,
    about = "Route public preview hosts to homeboy preview sessions (the VPS-side preview ingress)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the ingress in the foreground until SIGTERM or Ctrl-C (then drain in-flight requests)
    Serve(ServeArgs),
    /// Register or replace the direct route of a preview session
    Route {
        session_id: String,
        /// The one public host of the session (no wildcard)
        #[arg(long)]
        public_host: String,
        /// Where requests go: http://host:port
        #[arg(long)]
        upstream_origin: String,
        /// RFC 3339 expiry; after it the ingress answers 410 expired_session
        #[arg(long)]
        expires_at: Option<String>,
        /// Keep the record but answer 410 disconnected_session
        #[arg(long)]
        inactive: bool,
    },
    /// Remove a preview route
    Unroute { session_id: String },
    /// List the route records (JSON)
    List,
    /// Each route's lifecycle state (JSON)
    Status,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// The preview domain (preview.example.net); also a host the ingress answers its own API on
    #[arg(long)]
    domain: String,
    /// Listen address; loopback unless --allow-non-loopback-bind
    #[arg(long, default_value = DEFAULT_BIND)]
    bind: SocketAddr,
    /// Hosts preview clients may claim (repeatable; default '*.<domain>')
    #[arg(long = "public-host-pattern")]
    public_host_patterns: Vec<String>,
    /// Another name the ingress answers its own API on (repeatable)
    #[arg(long = "control-host")]
    control_hosts: Vec<String>,
    /// Enforce the native preview auth of this tunnel service declaration (repeatable; default: all)
    #[arg(long = "service")]
    services: Vec<String>,
    /// Listen on a non-loopback address
    #[arg(long)]
    allow_non_loopback_bind: bool,
    /// Seconds to wait for a TCP connection to a direct upstream
    #[arg(long, default_value_t = 5.0)]
    connect_timeout_secs: f64,
    /// Seconds to wait for response headers from an upstream or a preview client (then 504)
    #[arg(long, default_value_t = 30.0)]
    upstream_timeout_secs: f64,
    /// Seconds a preview client may be silent before its host counts as disconnected (410)
    #[arg(long, default_value_t = 10.0)]
    client_grace_secs: f64,
    /// Seconds shutdown waits for in-flight requests
    #[arg(long, default_value_t = 30.0)]
    drain_timeout_secs: f64,
    /// The scheme browsers use (that of the TLS proxy), for public URLs
    #[arg(long, default_value = "https")]
    public_scheme: String,
    /// Worker threads, each with its own event loop (default: the available cores)
    #[arg(long)]
    threads: Option<usize>,
    /// Print the listening line as JSON
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    format: String,
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("homeboy-ingress: {e}");
            ExitCode::from(if e.is_refused_input() { 2 } else { 1 })
        }
    }
}

fn run(command: Command) -> Result<(), PreviewError> {
    let paths = Paths::from_env()?;
    let store = RouteStore::new(&paths);
    match command {
        Command::Serve(args) => serve(paths, args),
        Command::Route {
            session_id,
            public_host,
            upstream_origin,
            expires_at,
            inactive,
        } => print(&store.route(&RouteSpec {
            session_id,
            public_host,
            upstream_origin,
            expires_at,
            inactive,
        })?),
        Command::Unroute { session_id } => print(&store.unroute(&session_id)?),
        Command::List => print(&store.records()?),
        Command::Status => print(&store.status()?),
    }
}

fn serve(paths: Paths, args: ServeArgs) -> Result<(), PreviewError> {
    let mut options = IngressOptions::new(args.domain, paths);
    options.bind = args.bind;
    options.allow_non_loopback_bind = args.allow_non_loopback_bind;
    options.public_host_patterns = args.public_host_patterns;
    options.control_hosts = args.control_hosts;
    options.services = args.services;
    options.connect_timeout = seconds("--connect-timeout-secs", args.connect_timeout_secs)?;
    options.upstream_timeout = seconds("--upstream-timeout-secs", args.upstream_timeout_secs)?;
    options.client_grace = seconds("--client-grace-secs", args.client_grace_secs)?;
    options.drain_timeout = seconds("--drain-timeout-secs", args.drain_timeout_secs)?;
    options.public_scheme = args.public_scheme;
    if let Some(threads) = args.threads {
        options.threads = threads.max(1);
    }
    let json = args.format == "json";
    ingress::serve(options, |addr, patterns| {
        if json {
            println!(
                "{}",
                serde_json::json!({"event": "listening", "addr": addr.to_string(),
                                   "url": format!("http://{addr}"), "public_host_patterns": patterns})
            );
        } else {
            println!(
                "preview ingress listening on http://{addr} for {}",
                patterns.join(", ")
            );
        }
    })
}

fn print(value: &impl serde::Serialize) -> Result<(), PreviewError> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
    Ok(())
}

fn seconds(flag: &str, value: f64) -> Result<Duration, PreviewError> {
    if value.is_finite() && value > 0.0 && value < 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(PreviewError::invalid(
            flag,
            "must be a positive number of seconds",
        ))
    }
}
