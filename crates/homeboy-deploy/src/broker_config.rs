//! `homeboy daemon broker-config`: the deployment recipe of a reverse-runner broker on a VPS, rendered from
//! code so it cannot drift from what the daemon does.
//!
//! The recipe is a `homeboy-broker` systemd service running `homeboy daemon serve` on a stable loopback
//! address with `HOME=/var/lib/homeboy`, ways to reach it privately (SSH forward, Cloudflare Access, a
//! tailnet), and — only when the operator names a domain — nginx and Caddy sites that publish the broker's
//! runner routes, each spelling out that public exposure rests on broker auth (a paired runner's bearer
//! token). The proxies send the broker's loopback `Host` upstream and the unit also passes
//! `--allowed-host <domain>`, so either alone gets past the daemon's Host guard.
//!
//! Everything an operator types into the recipe is checked here, because it ends up inside a systemd unit and
//! proxy configs: a non-loopback listen address is refused, and names and paths are restricted to characters
//! that mean nothing special to systemd, nginx or Caddy.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::net::SocketAddr;

use homeboy_api::ApiError;
use homeboy_config::Paths;
use serde::Serialize;

use crate::DeployError;
use crate::multi_broker::{self, MultiBroker, SharedStore};

/// The service name and unit file.
pub const SERVICE_NAME: &str = "homeboy-broker";
/// Where the unit is installed.
pub const UNIT_PATH: &str = "/etc/systemd/system/homeboy-broker.service";
/// The service's HOME: all broker state lives below it.
pub const BROKER_HOME: &str = "/var/lib/homeboy";
/// The default broker address.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:7421";
/// Where the homeboy binary is installed unless `--binary-path` says otherwise.
pub const DEFAULT_BINARY_PATH: &str = "/usr/local/bin/homeboy";
/// The default service user and group.
pub const DEFAULT_SERVICE_USER: &str = "homeboy";

/// How long claims may be long-polled through a proxy (the broker holds a claim up to 30 s).
const PROXY_READ_TIMEOUT_SECS: u32 = 90;

/// What the operator asks for.
#[derive(Debug, Clone)]
pub struct BrokerConfigOptions {
    /// The broker's stable loopback address.
    pub listen_addr: SocketAddr,
    /// A public name for nginx/Caddy sites; `None` renders private access only.
    pub domain: Option<String>,
    /// The homeboy binary on the VPS.
    pub binary_path: String,
    pub user: String,
    pub group: String,
    /// TLS certificate and key for the nginx site (default: Let's Encrypt's paths for the domain); Caddy
    /// uses them too when given, and its automatic HTTPS otherwise.
    pub tls_certificate: Option<String>,
    pub tls_certificate_key: Option<String>,
    /// A PostgreSQL job store shared by several brokers (`--store`): renders the multi-broker shape.
    pub store: Option<SharedStore>,
    /// The other brokers on this host the proxy spreads runners over (default with a store: the next
    /// port).
    pub peers: Vec<SocketAddr>,
}

impl BrokerConfigOptions {
    /// The defaults: `127.0.0.1:7421`, no domain, `/usr/local/bin/homeboy`, user and group `homeboy`.
    pub fn new(listen_addr: SocketAddr) -> Self {
        BrokerConfigOptions {
            listen_addr,
            domain: None,
            binary_path: DEFAULT_BINARY_PATH.to_string(),
            user: DEFAULT_SERVICE_USER.to_string(),
            group: DEFAULT_SERVICE_USER.to_string(),
            tls_certificate: None,
            tls_certificate_key: None,
            store: None,
            peers: Vec::new(),
        }
    }
}

/// The rendered recipe (`--format json` prints it as is).
#[derive(Debug, Clone, Serialize)]
pub struct BrokerConfig {
    pub service_name: String,
    pub listen_addr: String,
    /// The broker's URL on the VPS itself.
    pub broker_url: String,
    pub binary_path: String,
    pub user: String,
    pub group: String,
    pub home: String,
    pub unit_path: String,
    pub systemd_unit: String,
    pub private_tunnel_examples: Vec<TunnelExample>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_exposure_warning: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nginx_site: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caddy_site: Option<String>,
    /// Several brokers sharing one PostgreSQL job store (with `--store`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub multi_broker: Option<MultiBroker>,
    pub daemon_state_path: String,
    pub daemon_jobs_path: String,
    pub install_steps: Vec<String>,
    pub status_commands: Vec<String>,
    pub log_commands: Vec<String>,
    pub caveats: Vec<String>,
}

/// One way to reach the broker privately.
#[derive(Debug, Clone, Serialize)]
pub struct TunnelExample {
    pub kind: String,
    pub description: String,
    pub commands: Vec<String>,
    /// The broker URL a runner uses with this tunnel.
    pub broker_url: String,
}

/// Renders the recipe. A non-loopback or port-0 listen address and names or paths that could break out of
/// the generated configs are refused.
pub fn render(options: &BrokerConfigOptions) -> Result<BrokerConfig, DeployError> {
    let listen = options.listen_addr;
    if !homeboy_config::net::is_loopback_host(&listen.ip().to_string()) {
        return Err(DeployError::NonLoopbackAddress { addr: listen });
    }
    if listen.port() == 0 {
        return Err(refused(
            "listen-addr",
            "needs a fixed port (runners and proxies must find the broker after every restart), e.g. 127.0.0.1:7421",
        ));
    }
    check_path("binary-path", &options.binary_path)?;
    check_account("user", &options.user)?;
    check_account("group", &options.group)?;
    if let Some(domain) = &options.domain {
        check_domain(domain)?;
    }
    let tls = tls_files(options)?;
    let multi = match &options.store {
        Some(store) => {
            let mut brokers = vec![listen];
            if options.peers.is_empty() {
                brokers.push(SocketAddr::new(
                    listen.ip(),
                    listen.port().wrapping_add(1).max(1),
                ));
            }
            for peer in &options.peers {
                if !homeboy_config::net::is_loopback_host(&peer.ip().to_string())
                    || peer.port() == 0
                {
                    return Err(refused(
                        "peer",
                        "must be another broker's fixed loopback address on this host, e.g. 127.0.0.1:7422",
                    ));
                }
                brokers.push(*peer);
            }
            brokers.dedup();
            Some(multi_broker::render(store, &brokers, SERVICE_NAME)?)
        }
        None => None,
    };

    let paths = Paths::resolve(|name| (name == "HOME").then(|| OsString::from(BROKER_HOME)))?;
    let listen_text = listen.to_string();
    let broker_url = format!("http://{listen_text}");
    let domain = options.domain.clone();
    let warning = domain.as_deref().map(public_exposure_warning);
    Ok(BrokerConfig {
        service_name: SERVICE_NAME.to_string(),
        listen_addr: listen_text.clone(),
        broker_url: broker_url.clone(),
        binary_path: options.binary_path.clone(),
        user: options.user.clone(),
        group: options.group.clone(),
        home: BROKER_HOME.to_string(),
        unit_path: UNIT_PATH.to_string(),
        systemd_unit: systemd_unit(options),
        private_tunnel_examples: tunnel_examples(listen),
        nginx_site: domain
            .as_deref()
            .map(|d| nginx_site(d, listen, &tls, multi.as_ref())),
        caddy_site: domain.as_deref().map(|d| caddy_site(d, listen, &tls)),
        public_exposure_warning: warning,
        domain: domain.clone(),
        daemon_state_path: paths.daemon_state().display().to_string(),
        daemon_jobs_path: match &options.store {
            Some(store) => store.url_shown.clone(),
            None => paths.daemon_jobs().display().to_string(),
        },
        install_steps: install_steps(options, &broker_url, multi.as_ref()),
        status_commands: status_commands(options, &broker_url),
        log_commands: vec![
            format!("journalctl -u {SERVICE_NAME} -f"),
            format!("journalctl -u {SERVICE_NAME} --since today --no-pager"),
        ],
        caveats: caveats(&paths, domain.as_deref(), multi.as_ref()),
        multi_broker: multi,
    })
}

pub(crate) fn refused(field: &str, problem: impl Into<String>) -> DeployError {
    DeployError::Refused(ApiError::invalid_argument(field, problem))
}

/// Absolute paths of plain characters: nothing systemd (`%`, `$`, quotes, `\`) or a proxy config (`;`,
/// `{`, whitespace) would interpret.
fn check_path(field: &str, path: &str) -> Result<(), DeployError> {
    let plain = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'+'));
    if !path.starts_with('/') || !plain || path.ends_with('/') {
        return Err(refused(
            field,
            format!("{path:?} must be an absolute file path of letters, digits and / . _ - + only"),
        ));
    }
    Ok(())
}

/// System account names: `[a-z_][a-z0-9_-]*`, at most 32 characters.
fn check_account(field: &str, name: &str) -> Result<(), DeployError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && (name.as_bytes()[0].is_ascii_lowercase() || name.as_bytes()[0] == b'_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(refused(
            field,
            format!("{name:?} is not a system account name ([a-z_][a-z0-9_-]*)"),
        ))
    }
}

/// A DNS name with at least two labels of letters, digits and inner hyphens.
fn check_domain(domain: &str) -> Result<(), DeployError> {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err(refused(
            "domain",
            format!("{domain:?} is not a DNS name such as broker.example.com"),
        ));
    }
    if domain.parse::<std::net::IpAddr>().is_ok() || homeboy_config::net::is_loopback_host(domain) {
        return Err(refused(
            "domain",
            format!("{domain:?} must be a DNS name, not an address"),
        ));
    }
    Ok(())
}

/// The certificate and key of the sites: given, or Let's Encrypt's for the domain.
struct TlsFiles {
    certificate: String,
    key: String,
    /// Whether the operator named them (Caddy then uses them instead of its automatic HTTPS).
    explicit: bool,
}

fn tls_files(options: &BrokerConfigOptions) -> Result<TlsFiles, DeployError> {
    let domain = options.domain.as_deref().unwrap_or("example.com");
    match (&options.tls_certificate, &options.tls_certificate_key) {
        (Some(certificate), Some(key)) => {
            check_path("tls-cert", certificate)?;
            check_path("tls-key", key)?;
            Ok(TlsFiles {
                certificate: certificate.clone(),
                key: key.clone(),
                explicit: true,
            })
        }
        (None, None) => Ok(TlsFiles {
            certificate: format!("/etc/letsencrypt/live/{domain}/fullchain.pem"),
            key: format!("/etc/letsencrypt/live/{domain}/privkey.pem"),
            explicit: false,
        }),
        _ => Err(refused(
            "tls-cert",
            "give both --tls-cert and --tls-key, or neither",
        )),
    }
}

fn systemd_unit(options: &BrokerConfigOptions) -> String {
    let mut exec = format!(
        "{} daemon serve --addr {}",
        options.binary_path, options.listen_addr
    );
    if options.store.is_some() {
        exec.push_str(&multi_broker::exec_flags());
    }
    if let Some(domain) = &options.domain {
        // The daemon's Host guard accepts the public name too (the proxies also send the loopback name).
        let _ = write!(exec, " --allowed-host {domain}");
    }
    let store_lines = if options.store.is_some() {
        multi_broker::unit_lines()
    } else {
        String::new()
    };
    let mut allowed = String::from("localhost");
    if let Some(address) = options
        .store
        .as_ref()
        .and_then(multi_broker::allowed_address)
    {
        allowed.push(' ');
        allowed.push_str(&address);
    }
    format!(
        "\
# {UNIT_PATH}
# Rendered by `homeboy daemon broker-config`: the homeboy reverse-runner broker on a stable loopback port.
# State lives under HOME={BROKER_HOME} (see daemon_state_path); logs go to the journal.
[Unit]
Description=homeboy reverse-runner broker (loopback HTTP daemon)
After=network-online.target
Wants=network-online.target
StartLimitIntervalSec=300
StartLimitBurst=10

[Service]
Type=simple
User={user}
Group={group}
Environment=HOME={BROKER_HOME}
WorkingDirectory={BROKER_HOME}
StateDirectory=homeboy
StateDirectoryMode=0700
UMask=0077
{store_lines}ExecStart={exec}
Restart=on-failure
RestartSec=2s
# The daemon drains in-flight requests for up to 10 s after SIGTERM.
KillSignal=SIGTERM
TimeoutStopSec=20s

# Hardening: no privileges, read-only system, private /tmp and devices, loopback networking only.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
IPAddressDeny=any
IPAddressAllow={allowed}

[Install]
WantedBy=multi-user.target
",
        user = options.user,
        group = options.group,
    )
}

fn public_exposure_warning(domain: &str) -> String {
    format!(
        "Publishing the broker at https://{domain} exposes it to the Internet: that is safe only because broker \
auth is enforced. Every /runner/ request must carry a paired runner's bearer token (`Authorization: Bearer \
<token>` or `x-homeboy-broker-token: <token>`, minted on the VPS with `homeboy runner broker pair --runner-id ID \
--scopes work|submit`); the broker answers 401 without a valid one. Never start a proxied broker with \
--allow-unauthenticated-loopback: behind a proxy every request arrives from loopback. Only /runner/ and \
/health are proxied; the rest of the daemon API stays private."
    )
}

/// The warning as comment lines for a config file.
fn comment_block(domain: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in public_exposure_warning(domain).split_whitespace() {
        if line.len() + word.len() + 1 > 100 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

fn nginx_site(
    domain: &str,
    listen: SocketAddr,
    tls: &TlsFiles,
    multi: Option<&MultiBroker>,
) -> String {
    let (target, host_comment, host) = match multi {
        None => (
            listen.to_string(),
            format!(
                "# Send the broker's loopback name (the unit's --allowed-host also accepts {domain}: either is enough)."
            ),
            listen.to_string(),
        ),
        Some(_) => (
            multi_broker::UPSTREAM_NAME.to_string(),
            format!(
                "# Several brokers: send the public name, which every broker's --allowed-host {domain} accepts."
            ),
            "$host".to_string(),
        ),
    };
    let upstream = [
        format!("proxy_pass http://{target};"),
        "proxy_http_version 1.1;".to_string(),
        host_comment,
        format!("proxy_set_header Host {host};"),
        "proxy_set_header Connection \"\";".to_string(),
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;".to_string(),
        "proxy_set_header X-Forwarded-Proto $scheme;".to_string(),
        "proxy_set_header X-Forwarded-Host $host;".to_string(),
    ]
    .map(|line| format!("        {line}"))
    .join("\n");
    format!(
        "\
# /etc/nginx/sites-available/{domain} (rendered by `homeboy daemon broker-config`)
#
# WARNING: PUBLIC EXPOSURE.
{warning}
{upstream_block}server {{
    listen 443 ssl http2;
    listen [::]:443 ssl http2;
    server_name {domain};

    ssl_certificate {certificate};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;

    # The broker refuses bodies over 1 MiB itself; refuse them here first.
    client_max_body_size 1m;

    # Runner routes: each request must carry a paired runner's bearer token (the broker checks it).
    location /runner/ {{
{upstream}
        # Claims long-poll and events stream: no buffering, generous read timeout.
        proxy_buffering off;
        proxy_read_timeout {PROXY_READ_TIMEOUT_SECS}s;
    }}

    location = /health {{
{upstream}
    }}

    # Everything else (jobs, config, components) is the local UI API: not published.
    location / {{
        return 404;
    }}
}}

server {{
    listen 80;
    listen [::]:80;
    server_name {domain};
    return 301 https://$host$request_uri;
}}
",
        warning = comment_block(domain),
        upstream_block = multi.map_or(String::new(), |m| format!("{}\n", m.nginx_upstream)),
        certificate = tls.certificate,
        key = tls.key,
    )
}

fn caddy_site(domain: &str, listen: SocketAddr, tls: &TlsFiles) -> String {
    let tls_line = if tls.explicit {
        format!("\ttls {} {}\n\n", tls.certificate, tls.key)
    } else {
        String::new()
    };
    format!(
        "\
# Caddyfile site for {domain} (rendered by `homeboy daemon broker-config`)
#
# WARNING: PUBLIC EXPOSURE.
{warning}
{domain} {{
{tls_line}\t# The broker refuses bodies over 1 MiB itself; refuse them here first.
\trequest_body {{
\t\tmax_size 1MB
\t}}

\t# Runner routes (each request must carry a paired runner's bearer token) and the health check.
\t@broker path /runner/* /health
\thandle @broker {{
\t\treverse_proxy {listen} {{
\t\t\t# Send the broker's loopback name (the unit's --allowed-host also accepts {domain}: either is enough).
\t\t\theader_up Host {listen}
\t\t\t# Claims long-poll and events stream.
\t\t\tflush_interval -1
\t\t\ttransport http {{
\t\t\t\tread_timeout {PROXY_READ_TIMEOUT_SECS}s
\t\t\t}}
\t\t}}
\t}}

\t# Everything else (jobs, config, components) is the local UI API: not published.
\thandle {{
\t\trespond 404
\t}}
}}
",
        warning = comment_block(domain),
    )
}

fn tunnel_examples(listen: SocketAddr) -> Vec<TunnelExample> {
    let port = listen.port();
    let local_url = format!("http://127.0.0.1:{port}");
    let listen_host = match listen {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    let access_host = "<access-hostname>";
    vec![
        TunnelExample {
            kind: "ssh".into(),
            description: "SSH local forward from the runner machine; the same port on both ends keeps the broker's \
Host check satisfied. Leave it running (or use autossh / a systemd user unit)."
                .to_string(),
            commands: vec![format!(
                "ssh -N -o ExitOnForwardFailure=yes -o ServerAliveInterval=30 -L 127.0.0.1:{port}:{listen_host}:{port} <user>@<vps>"
            )],
            broker_url: local_url.clone(),
        },
        TunnelExample {
            kind: "cloudflare_access".into(),
            description: format!(
                "Cloudflare Tunnel on the VPS with an Access policy on {access_host}; runners open a local TCP \
listener with cloudflared and authenticate to Access. Nothing listens publicly on the VPS."
            ),
            commands: vec![
                format!(
                    "# VPS, cloudflared config ingress rule: - hostname: {access_host}  service: tcp://{listen}"
                ),
                format!("cloudflared tunnel run <tunnel-name>   # on the VPS"),
                format!(
                    "cloudflared access tcp --hostname {access_host} --url 127.0.0.1:{port}   # on the runner"
                ),
            ],
            broker_url: local_url.clone(),
        },
        TunnelExample {
            kind: "tailnet".into(),
            description: "Tailnet-only: the VPS forwards a tailnet TCP port to the loopback broker; only tailnet \
members can connect. Add `--allowed-host <vps>.<tailnet>.ts.net` to ExecStart so the Host check accepts the tailnet \
name."
                .to_string(),
            commands: vec![format!(
                "tailscale serve --bg --tcp {port} tcp://{listen}   # on the VPS"
            )],
            broker_url: format!("http://<vps>.<tailnet>.ts.net:{port}"),
        },
    ]
}

fn install_steps(
    options: &BrokerConfigOptions,
    broker_url: &str,
    multi: Option<&MultiBroker>,
) -> Vec<String> {
    let mut steps = vec![
        format!("Install homeboy on the VPS at {}.", options.binary_path),
        format!(
            "Create the service account: groupadd --system {group} 2>/dev/null; useradd --system --gid {group} --home-dir {BROKER_HOME} --no-create-home --shell /usr/sbin/nologin {user}",
            user = options.user,
            group = options.group
        ),
        format!("Write systemd_unit to {UNIT_PATH}."),
        format!("systemctl daemon-reload && systemctl enable --now {SERVICE_NAME}"),
        format!(
            "Verify: systemctl status {SERVICE_NAME}; curl -fsS {broker_url}/health"
        ),
        "Pair each runner on the VPS: homeboy runner broker pair --runner-id <id> --scopes work (the token is printed once)."
            .to_string(),
        "Reach the broker from runner machines through one of private_tunnel_examples.".to_string(),
    ];
    if let Some(multi) = multi {
        // The database comes before the unit starts, and pairing goes to the database.
        steps.splice(
            2..2,
            multi
                .install_steps
                .iter()
                .take(multi.install_steps.len() - 1)
                .cloned(),
        );
        if let Some(pair) = steps.iter_mut().find(|s| s.starts_with("Pair each runner")) {
            pair.clone_from(multi.install_steps.last().expect("a pairing step"));
        }
    }
    if let Some(domain) = &options.domain {
        steps.push(format!(
            "Only with broker auth in use: install nginx_site (or caddy_site) for {domain}, obtain its certificate, \
run `nginx -t` (or `caddy validate`), reload the proxy, then check https://{domain}/health."
        ));
    }
    steps
}

fn status_commands(options: &BrokerConfigOptions, broker_url: &str) -> Vec<String> {
    vec![
        format!("systemctl status {SERVICE_NAME}"),
        format!(
            "sudo -u {user} HOME={BROKER_HOME} {bin} daemon status",
            user = options.user,
            bin = options.binary_path
        ),
        format!("curl -fsS {broker_url}/health"),
    ]
}

fn caveats(paths: &Paths, domain: Option<&str>, multi: Option<&MultiBroker>) -> Vec<String> {
    let mut caveats = vec![
        format!(
            "State: the unit sets HOME={BROKER_HOME}, so daemon state lives under {} (state.json, jobs.redb), not in \
the service user's login home.",
            paths.daemon_dir().display()
        ),
        "Restart: Restart=on-failure brings the broker back after 2 s. Queued jobs survive a restart; broker-owned \
running jobs are marked failed as stale when the durable store is reopened."
            .to_string(),
        "Claims: runner claims are lease-scoped. After a restart or a lost runner, the lease must expire before the \
job is offered again; runners keep retrying their claims, and a finish carrying an expired claim is refused (409)."
            .to_string(),
        "Retention: per-job event retention is bounded and the job store is not an audit archive; keep important \
evidence as homeboy artifacts."
            .to_string(),
        "Network: IPAddressDeny=any with IPAddressAllow=localhost confines the broker to loopback; private tunnels \
and proxies connect to it locally."
            .to_string(),
        "Never add --allow-unauthenticated-loopback to a broker that a proxy or tunnel serves: every forwarded \
request arrives from loopback."
            .to_string(),
    ];
    if let Some(multi) = multi {
        caveats.extend(multi.caveats.iter().cloned());
    }
    if let Some(domain) = domain {
        caveats.push(format!(
            "Public site {domain}: only /runner/ and /health are proxied; reach jobs and other daemon routes through \
a private tunnel."
        ));
    }
    caveats
}

/// The recipe as an operator checklist (`--format text`).
pub fn render_checklist(config: &BrokerConfig) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "homeboy broker deployment checklist ({} on {}, service {})\n",
        config.broker_url, config.home, config.service_name
    );
    for (i, step) in config.install_steps.iter().enumerate() {
        let _ = writeln!(out, "[ ] {}. {step}", i + 1);
    }
    let _ = writeln!(
        out,
        "\n--- {} ---\n{}",
        config.unit_path, config.systemd_unit
    );
    let _ = writeln!(out, "--- private access (pick one) ---");
    for example in &config.private_tunnel_examples {
        let _ = writeln!(out, "* {}: {}", example.kind, example.description);
        for command in &example.commands {
            let _ = writeln!(out, "    {command}");
        }
        let _ = writeln!(out, "    broker URL for runners: {}", example.broker_url);
    }
    if let Some(warning) = &config.public_exposure_warning {
        let _ = writeln!(out, "\n--- public exposure ---\nWARNING: {warning}");
    }
    if let Some(multi) = &config.multi_broker {
        let _ = writeln!(
            out,
            "\n--- {} ---\n{}",
            multi.environment_file_path, multi.environment_file
        );
        let _ = writeln!(
            out,
            "--- brokers behind the proxy ---\n{}",
            multi.upstream_brokers.join("\n")
        );
    }
    if let Some(site) = &config.nginx_site {
        let _ = writeln!(out, "\n--- nginx site ---\n{site}");
    }
    if let Some(site) = &config.caddy_site {
        let _ = writeln!(out, "--- caddy site ---\n{site}");
    }
    let _ = writeln!(out, "\n--- state ---");
    let _ = writeln!(out, "daemon state: {}", config.daemon_state_path);
    let _ = writeln!(out, "job store:    {}", config.daemon_jobs_path);
    let _ = writeln!(out, "\n--- day two ---");
    for command in config.status_commands.iter().chain(&config.log_commands) {
        let _ = writeln!(out, "    {command}");
    }
    let _ = writeln!(out, "\n--- caveats ---");
    for caveat in &config.caveats {
        let _ = writeln!(out, "- {caveat}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> BrokerConfigOptions {
        BrokerConfigOptions::new(DEFAULT_LISTEN_ADDR.parse().unwrap())
    }

    #[test]
    fn private_recipe() {
        let config = render(&options()).unwrap();
        assert_eq!(config.listen_addr, "127.0.0.1:7421");
        assert!(config.nginx_site.is_none() && config.caddy_site.is_none());
        assert!(config.public_exposure_warning.is_none());
        let unit = &config.systemd_unit;
        assert!(
            unit.contains("ExecStart=/usr/local/bin/homeboy daemon serve --addr 127.0.0.1:7421\n")
        );
        assert!(unit.contains("Environment=HOME=/var/lib/homeboy\n"));
        assert!(unit.contains("Restart=on-failure\n"));
        assert!(unit.contains("User=homeboy\nGroup=homeboy\n"));
        assert!(!unit.contains("--allowed-host"));
        assert!(!unit.contains("allow-unauthenticated"));
        assert_eq!(
            config.daemon_state_path,
            "/var/lib/homeboy/.config/homeboy/daemon/state.json"
        );
        assert_eq!(
            config.daemon_jobs_path,
            "/var/lib/homeboy/.config/homeboy/daemon/jobs.redb"
        );
        let kinds: Vec<&str> = config
            .private_tunnel_examples
            .iter()
            .map(|e| e.kind.as_str())
            .collect();
        assert_eq!(kinds, ["ssh", "cloudflare_access", "tailnet"]);
        assert!(config.private_tunnel_examples[1].commands[2].contains("cloudflared access tcp"));
        let json = serde_json::to_value(&config).unwrap();
        assert!(json.get("nginx_site").is_none());
        for key in ["status_commands", "log_commands", "caveats"] {
            assert!(!json[key].as_array().unwrap().is_empty(), "{key}");
        }
        let caveats = config.caveats.join(" ");
        for word in ["Restart", "retention", "claims"] {
            assert!(caveats.contains(word), "{word}");
        }
    }

    #[test]
    fn public_recipe_spells_out_auth() {
        let mut opts = options();
        opts.domain = Some("broker.example.com".into());
        opts.listen_addr = "[::1]:7500".parse().unwrap();
        let config = render(&opts).unwrap();
        assert!(config.systemd_unit.contains(
            "ExecStart=/usr/local/bin/homeboy daemon serve --addr [::1]:7500 --allowed-host broker.example.com\n"
        ));
        let nginx = config.nginx_site.as_deref().unwrap();
        let caddy = config.caddy_site.as_deref().unwrap();
        for site in [nginx, caddy] {
            assert!(site.contains("WARNING: PUBLIC EXPOSURE"), "{site}");
            assert!(site.contains("Authorization: Bearer"), "{site}");
            assert!(site.contains("401"), "{site}");
            assert!(site.contains("--allow-unauthenticated-loopback"), "{site}");
            assert!(site.contains("broker.example.com"), "{site}");
        }
        assert!(nginx.contains("proxy_set_header Host [::1]:7500;"));
        assert!(nginx.contains("proxy_pass http://[::1]:7500;"));
        assert!(nginx.contains("/etc/letsencrypt/live/broker.example.com/fullchain.pem"));
        assert!(caddy.contains("header_up Host [::1]:7500"));
        assert!(
            !caddy.contains("\ttls "),
            "automatic HTTPS unless files are given"
        );
        let text = render_checklist(&config);
        assert!(text.contains("[ ] 1. Install homeboy"));
        assert!(text.contains("--- nginx site ---"));
        assert!(text.contains("WARNING:"));
    }

    #[test]
    fn refusals() {
        let mut opts = options();
        opts.listen_addr = "0.0.0.0:7421".parse().unwrap();
        assert!(matches!(
            render(&opts),
            Err(DeployError::NonLoopbackAddress { .. })
        ));
        let mut opts = options();
        opts.listen_addr = "127.0.0.1:0".parse().unwrap();
        assert!(
            render(&opts)
                .unwrap_err()
                .to_string()
                .contains("fixed port")
        );
        type Mutation = fn(&mut BrokerConfigOptions);
        let bad: Vec<(Mutation, &str)> = vec![
            (
                |o| o.domain = Some("evil.com; include /etc/passwd".into()),
                "domain",
            ),
            (|o| o.domain = Some("localhost".into()), "domain"),
            (|o| o.domain = Some("10.0.0.1".into()), "domain"),
            (|o| o.domain = Some("-x.example.com".into()), "domain"),
            (|o| o.binary_path = "homeboy".into(), "binary-path"),
            (|o| o.binary_path = "/opt/my homeboy".into(), "binary-path"),
            (|o| o.binary_path = "/opt/%h/homeboy".into(), "binary-path"),
            (|o| o.user = "Root User".into(), "user"),
            (|o| o.group = "1abc".into(), "group"),
            (
                |o| o.tls_certificate = Some("/etc/c.pem".into()),
                "tls-cert",
            ),
        ];
        for (mutate, field) in bad {
            let mut opts = options();
            mutate(&mut opts);
            let err = render(&opts).unwrap_err();
            match &err {
                DeployError::Refused(api) => assert_eq!(api.details["field"], field, "{err}"),
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn explicit_tls_files_reach_both_sites() {
        let mut opts = options();
        opts.domain = Some("broker.example.com".into());
        opts.tls_certificate = Some("/srv/tls/cert.pem".into());
        opts.tls_certificate_key = Some("/srv/tls/key.pem".into());
        let config = render(&opts).unwrap();
        assert!(
            config
                .nginx_site
                .unwrap()
                .contains("ssl_certificate /srv/tls/cert.pem;")
        );
        assert!(
            config
                .caddy_site
                .unwrap()
                .contains("\ttls /srv/tls/cert.pem /srv/tls/key.pem\n")
        );
    }
}
