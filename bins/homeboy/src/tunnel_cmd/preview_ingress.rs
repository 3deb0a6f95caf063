//! `homeboy tunnel preview-ingress serve|route|unroute|list|status|install|install-status`: wiring to
//! `homeboy_preview` (the ingress, the route table, the install plans).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use homeboy_config::Paths;
use homeboy_preview::PreviewError;
use homeboy_preview::ingress::{self, DEFAULT_BIND, IngressOptions};
use homeboy_preview::install::{self, InstallInputs, Proxy};
use homeboy_preview::routes::{RouteSpec, RouteStore};

use crate::output::{Format, print_json, usage_error};

#[derive(Subcommand)]
pub enum PreviewIngressCommand {
    /// Run the ingress daemon in the foreground until SIGTERM or Ctrl-C (then drain in-flight requests)
    Serve(Box<ServeArgs>),
    /// Register or replace the direct route of a preview session (a host proxied to an upstream origin)
    Route(Box<RouteArgs>),
    /// Remove a preview route
    Unroute {
        session_id: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the route records
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show each route's lifecycle state (active, expired, disconnected) from the records
    Status {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Render a plan-first VPS install (systemd unit, Nginx and Caddy snippets, smoke checks, rollback);
    /// writes nothing and contacts nothing
    Install(Box<InstallArgs>),
    /// Render the install status checks (systemctl, loopback, DNS, public status) without probing the VPS
    InstallStatus(Box<InstallArgs>),
}

#[derive(Args)]
pub struct ServeArgs {
    /// The preview domain (preview.example.net); also a host the ingress answers its own API on
    #[arg(long)]
    domain: String,
    /// Listen address; loopback unless --allow-non-loopback-bind
    #[arg(long, default_value = DEFAULT_BIND, value_parser = parse_addr)]
    bind: SocketAddr,
    /// Hosts preview clients may claim (repeatable; default '*.<domain>')
    #[arg(long = "public-host-pattern")]
    public_host_patterns: Vec<String>,
    /// Another name the ingress answers its own API on (the host preview clients dial; repeatable)
    #[arg(long = "control-host")]
    control_hosts: Vec<String>,
    /// Enforce the native preview auth of this tunnel service declaration (repeatable; default: every
    /// declaration that has policy.native_preview_auth)
    #[arg(long = "service")]
    services: Vec<String>,
    /// Listen on a non-loopback address (the ingress normally sits behind a TLS proxy on the same host)
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
    /// How the listening line on stdout is printed
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Args)]
pub struct RouteArgs {
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
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Clone, Copy, ValueEnum)]
enum ProxyArg {
    Nginx,
    Caddy,
}

#[derive(Args)]
pub struct InstallArgs {
    /// The configured homeboy server (servers/<id>.json) that is the VPS
    #[arg(long)]
    server: String,
    /// The preview domain
    #[arg(long)]
    domain: String,
    /// The wildcard preview host pattern ('*.preview.example.net', '*-tunnel.example.com')
    #[arg(long)]
    public_host_pattern: String,
    /// The systemd service name
    #[arg(long, default_value = "homeboy-preview-ingress")]
    service_name: String,
    /// Where the ingress listens on the VPS
    #[arg(long, default_value = DEFAULT_BIND, value_parser = parse_addr)]
    bind: SocketAddr,
    /// The ingress binary on the VPS (homeboy-ingress, or homeboy)
    #[arg(long, default_value = "/usr/local/bin/homeboy-ingress")]
    binary: String,
    /// The system user the service runs as
    #[arg(long, default_value = "homeboy")]
    user: String,
    /// The system group the service runs as
    #[arg(long, default_value = "homeboy")]
    group: String,
    /// The service's state directory (config/ and data/ below it)
    #[arg(long, default_value = "/var/lib/homeboy")]
    state_dir: String,
    /// The reverse proxy in front of the ingress
    #[arg(long, value_enum, default_value = "nginx")]
    proxy: ProxyArg,
    /// TLS certificate covering the pattern (default /etc/letsencrypt/live/<domain>/fullchain.pem)
    #[arg(long)]
    tls_certificate: Option<String>,
    /// Its key (default /etc/letsencrypt/live/<domain>/privkey.pem)
    #[arg(long)]
    tls_certificate_key: Option<String>,
    /// The host preview clients dial (default: the pattern with '*' = homeboy-ingress)
    #[arg(long)]
    control_host: Option<String>,
    /// Tunnel service declarations whose native preview auth the ingress enforces (repeatable)
    #[arg(long = "service")]
    services: Vec<String>,
    /// JSON (the default: the plan is for machines) or text
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
}

pub fn run(cmd: PreviewIngressCommand) -> anyhow::Result<()> {
    let paths = Paths::from_env()?;
    match cmd {
        PreviewIngressCommand::Serve(args) => serve(paths, *args),
        PreviewIngressCommand::Route(args) => route(&paths, *args),
        PreviewIngressCommand::Unroute { session_id, format } => {
            let removed = RouteStore::new(&paths)
                .unroute(&session_id)
                .map_err(preview_error)?;
            match format {
                Format::Json => print_json(&serde_json::json!({"removed": removed})),
                Format::Text => {
                    println!(
                        "removed preview route {} ({})",
                        removed.session_id, removed.public_host
                    );
                    Ok(())
                }
            }
        }
        PreviewIngressCommand::List { format } => {
            let records = RouteStore::new(&paths).records().map_err(preview_error)?;
            match format {
                Format::Json => print_json(&records),
                Format::Text => {
                    for r in &records {
                        println!(
                            "{}  {}  -> {}",
                            r.session_id, r.public_host, r.upstream_origin
                        );
                    }
                    Ok(())
                }
            }
        }
        PreviewIngressCommand::Status { format } => {
            let report = RouteStore::new(&paths).status().map_err(preview_error)?;
            match format {
                Format::Json => print_json(&report),
                Format::Text => {
                    print!("{}", report.to_text());
                    Ok(())
                }
            }
        }
        PreviewIngressCommand::Install(args) => {
            let format = args.format;
            let plan = install::plan(&install_inputs(*args), &paths).map_err(preview_error)?;
            print_plan(&plan, format)
        }
        PreviewIngressCommand::InstallStatus(args) => {
            let format = args.format;
            let status =
                install::install_status(&install_inputs(*args), &paths).map_err(preview_error)?;
            print_plan(&status, format)
        }
    }
}

fn serve(paths: Paths, args: ServeArgs) -> anyhow::Result<()> {
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
    let format = args.format;
    ingress::serve(options, |addr, patterns| {
        print_listening(addr, patterns, format)
    })
    .map_err(preview_error)
}

fn route(paths: &Paths, args: RouteArgs) -> anyhow::Result<()> {
    let record = RouteStore::new(paths)
        .route(&RouteSpec {
            session_id: args.session_id,
            public_host: args.public_host,
            upstream_origin: args.upstream_origin,
            expires_at: args.expires_at,
            inactive: args.inactive,
        })
        .map_err(preview_error)?;
    match args.format {
        Format::Json => print_json(&record),
        Format::Text => {
            println!(
                "routed {} -> {} (session {}, {})",
                record.public_host,
                record.upstream_origin,
                record.session_id,
                if record.active { "active" } else { "inactive" }
            );
            Ok(())
        }
    }
}

fn install_inputs(args: InstallArgs) -> InstallInputs {
    let mut inputs = InstallInputs::new(&args.server, &args.domain, &args.public_host_pattern);
    inputs.service_name = args.service_name;
    inputs.bind = args.bind;
    inputs.binary = args.binary;
    inputs.user = args.user;
    inputs.group = args.group;
    inputs.state_dir = args.state_dir;
    inputs.proxy = match args.proxy {
        ProxyArg::Nginx => Proxy::Nginx,
        ProxyArg::Caddy => Proxy::Caddy,
    };
    inputs.tls_certificate = args.tls_certificate;
    inputs.tls_certificate_key = args.tls_certificate_key;
    inputs.control_host = args.control_host;
    inputs.services = args.services;
    inputs
}

fn print_plan(plan: &serde_json::Value, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Json => print_json(plan),
        Format::Text => {
            for (key, label) in [("unit", "systemd unit"), ("snippet", "proxy snippet")] {
                let text = if key == "unit" {
                    plan["systemd"]["unit"].as_str()
                } else {
                    let selected = plan["proxy"]["selected"].as_str().unwrap_or("nginx");
                    plan["proxy"][selected]["snippet"].as_str()
                };
                if let Some(text) = text {
                    println!("## {label}\n{text}");
                }
            }
            for list in ["steps", "smoke_checks", "checks"] {
                if let Some(items) = plan[list].as_array() {
                    println!("## {list}");
                    for item in items {
                        println!(
                            "- [{}] {}",
                            item["run_on"].as_str().unwrap_or(""),
                            item["command"].as_str().unwrap_or("")
                        );
                    }
                }
            }
            if let Some(note) = plan["secrets_note"].as_str() {
                println!("## secrets\n{note}");
            }
            Ok(())
        }
    }
}

fn print_listening(addr: SocketAddr, patterns: &[String], format: Format) {
    use std::io::Write;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::json!({"event": "listening", "addr": addr.to_string(),
                               "url": format!("http://{addr}"), "public_host_patterns": patterns})
        ),
        Format::Text => println!(
            "preview ingress listening on http://{addr} for {}",
            patterns.join(", ")
        ),
    }
    let _ = std::io::stdout().flush();
}

fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    if value.is_finite() && value > 0.0 && value < 86_400.0 {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(usage_error(format!(
            "{flag} must be a positive number of seconds"
        )))
    }
}

fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    if let Some(port) = value.strip_prefix("localhost:") {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("invalid port in {value:?}"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    value
        .parse()
        .map_err(|_| format!("{value:?} is not an address like 127.0.0.1:7350"))
}

/// Refused input exits 2 with one line; anything else exits 1.
pub fn preview_error(e: PreviewError) -> anyhow::Error {
    if e.is_refused_input() {
        usage_error(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}
