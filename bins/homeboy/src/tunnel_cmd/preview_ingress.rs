//! `homeboy tunnel preview-ingress serve|route|unroute|list|status|install|install-status`: wiring to
//! `homeboy_preview` (the ingress, the route table, the install plans).

use std::net::SocketAddr;

use clap::{Args, Subcommand, ValueEnum};
use homeboy_config::Paths;
use homeboy_config::net::parse_listen_addr;
use homeboy_preview::PreviewError;
use homeboy_preview::cli::{IngressServeFlags, RouteFlags, listening_line};
use homeboy_preview::ingress::{self, DEFAULT_BIND};
use homeboy_preview::install::{self, InstallInputs, Proxy};
use homeboy_preview::routes::RouteStore;

use crate::output::{Format, print_json, usage_error};

#[derive(Subcommand)]
pub enum PreviewIngressCommand {
    /// Run the ingress daemon in the foreground until SIGTERM or Ctrl-C (then drain in-flight requests)
    Serve(Box<IngressServeFlags>),
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
pub struct RouteArgs {
    #[command(flatten)]
    route: RouteFlags,
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
    #[arg(long, default_value = DEFAULT_BIND, value_parser = parse_listen_addr)]
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

fn serve(paths: Paths, flags: IngressServeFlags) -> anyhow::Result<()> {
    flags.init_logging();
    let options = flags.options(paths).map_err(preview_error)?;
    let format = flags.format;
    ingress::serve(options, |addr, patterns| {
        use std::io::Write;
        println!("{}", listening_line(format, addr, patterns));
        let _ = std::io::stdout().flush();
    })
    .map_err(preview_error)
}

fn route(paths: &Paths, args: RouteArgs) -> anyhow::Result<()> {
    let record = RouteStore::new(paths)
        .route(&args.route.spec())
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

/// Refused input exits 2 with one line; anything else exits 1.
pub fn preview_error(e: PreviewError) -> anyhow::Error {
    if e.is_refused_input() {
        usage_error(e.to_string())
    } else {
        anyhow::Error::new(e)
    }
}
