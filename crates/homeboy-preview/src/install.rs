//! Plan-first install of the preview ingress on a VPS (`preview-ingress install` and `install-status`):
//! the systemd unit, Nginx and Caddy reverse proxy snippets for the wildcard preview host, the ordered steps,
//! DNS / loopback / public smoke checks, status, restart and rollback commands, the operator inputs still
//! required, and a note on where secrets belong.
//!
//! Rendering writes nothing and contacts nothing: it reads at most the local `servers/<id>.json` to say
//! whether the server is configured. No secret appears in any rendered file or command.

use std::net::SocketAddr;

use homeboy_config::Paths;
use serde_json::{Value, json};

use crate::PreviewError;
use crate::host::{example_host, glob_matches, normalize_host, normalize_pattern};
use crate::ingress::DEFAULT_BIND;

/// The reverse proxy in front of the ingress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Proxy {
    #[default]
    Nginx,
    Caddy,
}

impl Proxy {
    pub fn as_str(self) -> &'static str {
        match self {
            Proxy::Nginx => "nginx",
            Proxy::Caddy => "caddy",
        }
    }
}

/// What the operator gave (or left to the defaults).
#[derive(Debug, Clone)]
pub struct InstallInputs {
    pub server: String,
    pub domain: String,
    pub public_host_pattern: String,
    pub service_name: String,
    pub bind: SocketAddr,
    /// The ingress binary on the VPS.
    pub binary: String,
    pub user: String,
    pub group: String,
    /// Holds `config/` (route records, service declarations) and `data/` for the service.
    pub state_dir: String,
    pub proxy: Proxy,
    pub tls_certificate: Option<String>,
    pub tls_certificate_key: Option<String>,
    /// The host preview clients dial (default: the pattern with `*` = `homeboy-ingress`).
    pub control_host: Option<String>,
    /// Service declarations whose native preview auth the ingress enforces (empty: all).
    pub services: Vec<String>,
}

impl InstallInputs {
    /// Defaults for everything but the server, domain and pattern.
    pub fn new(server: &str, domain: &str, public_host_pattern: &str) -> Self {
        InstallInputs {
            server: server.to_string(),
            domain: domain.to_string(),
            public_host_pattern: public_host_pattern.to_string(),
            service_name: "homeboy-preview-ingress".into(),
            bind: DEFAULT_BIND.parse().expect("default bind"),
            binary: "/usr/local/bin/homeboy-ingress".into(),
            user: "homeboy".into(),
            group: "homeboy".into(),
            state_dir: "/var/lib/homeboy".into(),
            proxy: Proxy::Nginx,
            tls_certificate: None,
            tls_certificate_key: None,
            control_host: None,
            services: Vec::new(),
        }
    }
}

/// Inputs after validation, with defaults resolved.
struct Resolved {
    inputs: InstallInputs,
    domain: String,
    pattern: String,
    control_host: String,
    smoke_host: String,
    unit_name: String,
    cert: String,
    key: String,
}

fn resolve(inputs: &InstallInputs) -> Result<Resolved, PreviewError> {
    homeboy_config::declarations::validate_id("server", &inputs.server)
        .map_err(|e| PreviewError::invalid("--server", e.to_string()))?;
    let domain =
        normalize_host(&inputs.domain).map_err(|p| PreviewError::invalid("--domain", p))?;
    let pattern = normalize_pattern(&inputs.public_host_pattern)
        .map_err(|p| PreviewError::invalid("--public-host-pattern", p))?;
    if !pattern.contains('*') {
        return Err(PreviewError::invalid(
            "--public-host-pattern",
            format!("{pattern:?} has no '*': the preview ingress serves a wildcard host pattern"),
        ));
    }
    let valid_name = !inputs.service_name.is_empty()
        && inputs
            .service_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@'));
    if !valid_name {
        return Err(PreviewError::invalid(
            "--service-name",
            "use letters, digits, '-', '_', '.' (a systemd unit name)",
        ));
    }
    for (flag, value) in [
        ("--binary", &inputs.binary),
        ("--state-dir", &inputs.state_dir),
    ] {
        if !value.starts_with('/') || value.contains(|c: char| c.is_whitespace() || c == '\'') {
            return Err(PreviewError::invalid(
                flag,
                "must be an absolute path without spaces or quotes",
            ));
        }
    }
    for (flag, value) in [("--user", &inputs.user), ("--group", &inputs.group)] {
        if value.is_empty()
            || !value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(PreviewError::invalid(
                flag,
                "is not a system user or group name",
            ));
        }
    }
    for id in &inputs.services {
        homeboy_config::declarations::validate_id("tunnel service", id)
            .map_err(|e| PreviewError::invalid("--service", e.to_string()))?;
    }
    let control_host = match &inputs.control_host {
        Some(h) => normalize_host(h).map_err(|p| PreviewError::invalid("--control-host", p))?,
        None => example_host(&pattern, "homeboy-ingress"),
    };
    let cert_dir = format!("/etc/letsencrypt/live/{domain}");
    Ok(Resolved {
        smoke_host: example_host(&pattern, "homeboy-smoke"),
        unit_name: format!("{}.service", inputs.service_name),
        cert: inputs
            .tls_certificate
            .clone()
            .unwrap_or_else(|| format!("{cert_dir}/fullchain.pem")),
        key: inputs
            .tls_certificate_key
            .clone()
            .unwrap_or_else(|| format!("{cert_dir}/privkey.pem")),
        inputs: inputs.clone(),
        domain,
        pattern,
        control_host,
    })
}

/// `preview-ingress install`: the install plan.
pub fn plan(inputs: &InstallInputs, paths: &Paths) -> Result<Value, PreviewError> {
    let r = resolve(inputs)?;
    let i = &r.inputs;
    let server = server_view(paths, &i.server);
    let unit_path = format!("/etc/systemd/system/{}", r.unit_name);
    let nginx_available = format!("/etc/nginx/sites-available/{}.conf", i.service_name);
    let nginx_enabled = format!("/etc/nginx/sites-enabled/{}.conf", i.service_name);
    let caddy_path = format!("/etc/caddy/conf.d/{}.caddy", i.service_name);
    let (proxy_path, proxy_enable, proxy_reload) = match i.proxy {
        Proxy::Nginx => (
            nginx_available.clone(),
            Some(format!("sudo ln -sf {nginx_available} {nginx_enabled}")),
            "sudo nginx -t && sudo systemctl reload nginx".to_string(),
        ),
        Proxy::Caddy => (
            caddy_path.clone(),
            None,
            "sudo caddy validate --config /etc/caddy/Caddyfile && sudo systemctl reload caddy"
                .to_string(),
        ),
    };
    let state = &i.state_dir;
    let mut steps = vec![
        step(
            "server",
            "install the ingress binary",
            format!("sudo install -m 0755 ./homeboy-ingress {}", i.binary),
        ),
        step(
            "server",
            "create the service user",
            format!(
                "id -u {user} >/dev/null 2>&1 || sudo useradd --system --home-dir {state} --shell /usr/sbin/nologin --user-group {user}",
                user = i.user
            ),
        ),
        step(
            "server",
            "create the state directories (route records, service declarations)",
            format!(
                "sudo install -d -o {u} -g {g} -m 0700 {state} {state}/config {state}/data",
                u = i.user,
                g = i.group
            ),
        ),
        step(
            "server",
            "write systemd.unit",
            format!("sudo tee {unit_path} < {}", r.unit_name),
        ),
        step(
            "server",
            &format!("write proxy.{}.snippet", i.proxy.as_str()),
            format!("sudo tee {proxy_path} < {}", file_name(&proxy_path)),
        ),
    ];
    if let Some(enable) = proxy_enable {
        steps.push(step("server", "enable the proxy site", enable));
    }
    steps.push(step("server", "check and reload the proxy", proxy_reload));
    steps.push(step(
        "server",
        "start the ingress now and at boot",
        format!(
            "sudo systemctl daemon-reload && sudo systemctl enable --now {}",
            r.unit_name
        ),
    ));
    let mut rollback = vec![
        format!("sudo systemctl disable --now {}", r.unit_name),
        format!("sudo rm -f {unit_path}"),
        "sudo systemctl daemon-reload".to_string(),
    ];
    match i.proxy {
        Proxy::Nginx => {
            rollback.push(format!("sudo rm -f {nginx_enabled} {nginx_available}"));
            rollback.push("sudo nginx -t && sudo systemctl reload nginx".into());
        }
        Proxy::Caddy => {
            rollback.push(format!("sudo rm -f {caddy_path}"));
            rollback.push("sudo systemctl reload caddy".into());
        }
    }
    Ok(json!({
        "schema": "homeboy/preview-ingress-install-plan/v1",
        "kind": "preview_ingress_install_plan",
        "plan_only": true,
        "writes_nothing": true,
        "contacts_nothing": true,
        "server": server,
        "domain": r.domain,
        "public_host_pattern": r.pattern,
        "control_host": r.control_host,
        "ingress_url": format!("https://{}", r.control_host),
        "service_name": i.service_name,
        "bind": i.bind.to_string(),
        "systemd": {
            "unit_name": r.unit_name,
            "path": unit_path,
            "unit": systemd_unit(&r),
        },
        "proxy": {
            "selected": i.proxy.as_str(),
            "nginx": {
                "path": nginx_available,
                "enable_path": nginx_enabled,
                "server_name": nginx_server_names(&r),
                "snippet": nginx_snippet(&r),
            },
            "caddy": {
                "path": caddy_path,
                "snippet": caddy_snippet(&r),
            },
        },
        "steps": steps,
        "smoke_checks": smoke_checks(&r),
        "commands": {
            "status": format!("systemctl status {} --no-pager", r.unit_name),
            "is_active": format!("systemctl is-active {}", r.unit_name),
            "restart": format!("sudo systemctl restart {}", r.unit_name),
            "logs": format!("journalctl -u {} -n 100 --no-pager", r.unit_name),
            "rollback": rollback,
        },
        "required_operator_inputs": required_inputs(&r, &server),
        "secrets_note": secrets_note(&r),
    }))
}

/// `preview-ingress install-status`: the checks an operator (or a future probe) runs, not run.
pub fn install_status(inputs: &InstallInputs, paths: &Paths) -> Result<Value, PreviewError> {
    let r = resolve(inputs)?;
    let mut checks = vec![
        check(
            "systemd_active",
            "server",
            format!("systemctl is-active {}", r.unit_name),
            "prints active",
        ),
        check(
            "systemd_status",
            "server",
            format!("systemctl status {} --no-pager", r.unit_name),
            "Active: active (running)",
        ),
    ];
    checks.extend(smoke_checks(&r));
    Ok(json!({
        "schema": "homeboy/preview-ingress-install-status/v1",
        "kind": "preview_ingress_install_status",
        "probed": false,
        "contacts_nothing": true,
        "server": server_view(paths, &r.inputs.server),
        "domain": r.domain,
        "public_host_pattern": r.pattern,
        "control_host": r.control_host,
        "service_name": r.inputs.service_name,
        "bind": r.inputs.bind.to_string(),
        "checks": checks,
    }))
}

fn systemd_unit(r: &Resolved) -> String {
    let i = &r.inputs;
    let binary_name = file_name(&i.binary);
    let subcommand = if binary_name == "homeboy" {
        "tunnel preview-ingress serve"
    } else {
        "serve"
    };
    let mut exec = format!(
        "{} {subcommand} --domain {} --bind {} --public-host-pattern '{}' --control-host {}",
        i.binary, r.domain, i.bind, r.pattern, r.control_host
    );
    for service in &i.services {
        exec.push_str(&format!(" --service {service}"));
    }
    format!(
        "# Generated by `homeboy tunnel preview-ingress install`: the homeboy preview ingress for {pattern}.
# It listens on {bind} behind the reverse proxy; it holds no secrets (token digests live in
# {state}/config/tunnel/services/*.json, route records in {state}/config/tunnel/preview-ingress/routes/).
[Unit]
Description=homeboy preview ingress for {pattern}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={group}
Environment=HOMEBOY_CONFIG_DIR={state}/config
Environment=HOMEBOY_DATA_DIR={state}/data
ExecStart={exec}
Restart=on-failure
RestartSec=2
KillSignal=SIGTERM
TimeoutStopSec=45
NoNewPrivileges=yes
PrivateTmp=yes
ProtectSystem=strict
ProtectHome=yes
ReadWritePaths={state}

[Install]
WantedBy=multi-user.target
",
        pattern = r.pattern,
        bind = i.bind,
        state = i.state_dir,
        user = i.user,
        group = i.group,
    )
}

/// nginx `server_name` values: a plain wildcard when the pattern is `*.<suffix>`, else a regex.
fn nginx_server_names(r: &Resolved) -> Vec<String> {
    let mut names = vec![nginx_name(&r.pattern)];
    if !glob_matches(&r.pattern, &r.control_host) {
        names.push(r.control_host.clone());
    }
    names
}

fn nginx_name(pattern: &str) -> String {
    match pattern.strip_prefix("*.") {
        Some(rest) if !rest.contains('*') => pattern.to_string(),
        _ => format!("\"~^{}$\"", host_regex(pattern)),
    }
}

/// A host glob as an anchored-body regex: `*` is one or more non-dot characters.
fn host_regex(pattern: &str) -> String {
    let mut regex = String::new();
    for c in pattern.chars() {
        match c {
            '*' => regex.push_str("[^.]+"),
            '.' => regex.push_str("\\."),
            other => regex.push(other),
        }
    }
    regex
}

fn nginx_snippet(r: &Resolved) -> String {
    let i = &r.inputs;
    let id = i.service_name.replace(['-', '.', '@'], "_");
    let names = nginx_server_names(r).join(" ");
    format!(
        "# Generated by `homeboy tunnel preview-ingress install`: TLS for {pattern}, proxied to the homeboy
# preview ingress on {bind}. Streams bodies both ways, passes upgrades (browsers' WebSockets and the
# preview clients' multiplexed channels), keeps connections to the ingress alive, and keeps long polls and
# quiet WebSockets open for an hour.
map $http_upgrade ${id}_connection {{
    default upgrade;
    ''      '';
}}

upstream {id} {{
    server {bind};
    keepalive 64;
}}

server {{
    listen 443 ssl;
    listen [::]:443 ssl;
    server_name {names};

    ssl_certificate     {cert};
    ssl_certificate_key {key};

    client_max_body_size 0;

    location / {{
        proxy_pass http://{id};
        proxy_http_version 1.1;
        proxy_set_header Host $host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection ${id}_connection;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $host;
        proxy_buffering off;
        proxy_request_buffering off;
        proxy_read_timeout 3600s;
        proxy_send_timeout 3600s;
    }}
}}

server {{
    listen 80;
    listen [::]:80;
    server_name {names};
    return 301 https://$host$request_uri;
}}

# Any other name on 443 (an address, a name not yours, a spoofed `Host: 127.0.0.1`) ends here, never at the
# ingress: without a default server, nginx would make the site above the default and pass such a Host
# through. (If another site already is the default server for 443, `nginx -t` says \"duplicate default
# server\": drop this block. The ingress itself never treats a request that carries the X-Forwarded-For and
# X-Real-IP set above as local, whatever its Host.)
server {{
    listen 443 ssl default_server;
    listen [::]:443 ssl default_server;
    server_name _;
    ssl_reject_handshake on;
    return 444;
}}
",
        pattern = r.pattern,
        bind = i.bind,
        cert = r.cert,
        key = r.key,
    )
}

fn caddy_snippet(r: &Resolved) -> String {
    let i = &r.inputs;
    let plain_wildcard = r
        .pattern
        .strip_prefix("*.")
        .is_some_and(|rest| !rest.contains('*'));
    let control_outside = !glob_matches(&r.pattern, &r.control_host);
    let mut sites = vec![if plain_wildcard {
        r.pattern.clone()
    } else {
        // Caddy site wildcards cover whole labels: serve the parent and match the pattern inside.
        format!(
            "*.{}",
            r.pattern.split_once('.').map_or("", |(_, rest)| rest)
        )
    }];
    if control_outside {
        sites.push(r.control_host.clone());
    }
    // Caddy's own format (`caddy fmt`): tabs.
    let proxy = |indent: &str| {
        format!(
            "{indent}reverse_proxy {bind} {{\n{indent}\tflush_interval -1\n{indent}\ttransport http {{\n{indent}\t\tread_timeout 3600s\n{indent}\t}}\n{indent}}}\n",
            bind = i.bind
        )
    };
    let body = if plain_wildcard && !control_outside {
        proxy("\t")
    } else {
        let mut hosts = vec![host_regex(&r.pattern)];
        if control_outside {
            hosts.push(r.control_host.replace('.', "\\."));
        }
        format!(
            "\t@homeboy_preview header_regexp host Host ^({})(:[0-9]+)?$\n\thandle @homeboy_preview {{\n{}\t}}\n\thandle {{\n\t\tabort\n\t}}\n",
            hosts.join("|"),
            proxy("\t\t")
        )
    };
    format!(
        "# Generated by `homeboy tunnel preview-ingress install`: TLS for {pattern}, proxied to the homeboy\n\
# preview ingress on {bind} (Caddy adds X-Forwarded-* and passes upgrades by itself; X-Real-IP is\n\
# set too: the ingress never treats a request that carries them as local, whatever its Host).\n\
{sites} {{\n\ttls {cert} {key}\n\trequest_header X-Real-IP {{remote_host}}\n{body}}}\n",
        pattern = r.pattern,
        bind = i.bind,
        sites = sites.join(", "),
        cert = r.cert,
        key = r.key,
    )
}

fn smoke_checks(r: &Resolved) -> Vec<Value> {
    let status_path = crate::ingress::STATUS_PATH;
    vec![
        check(
            "wildcard_dns",
            "operator",
            format!("getent ahosts {}", r.smoke_host),
            "resolves to the VPS public address",
        ),
        check(
            "loopback_status",
            "server",
            format!("curl -fsS http://{}{status_path}", r.inputs.bind),
            "an envelope with success: true and the route table",
        ),
        check(
            "public_status",
            "operator",
            format!("curl -fsS https://{}{status_path}", r.smoke_host),
            "an envelope with success: true for that host (state: missing until a session claims it)",
        ),
        check(
            "control_host_status",
            "operator",
            format!("curl -fsS https://{}{status_path}", r.control_host),
            "the ingress's status, reached through DNS, TLS and the proxy",
        ),
    ]
}

fn required_inputs(r: &Resolved, server: &Value) -> Vec<Value> {
    let i = &r.inputs;
    let provided = |given: bool| if given { "provided" } else { "default" };
    let server_status = if server["configured"] == true {
        "configured"
    } else {
        "missing"
    };
    vec![
        json!({"name": "server", "value": i.server, "status": server_status,
               "description": "a configured homeboy server (servers/<id>.json) with SSH access to the VPS"}),
        json!({"name": "wildcard_dns", "value": r.pattern, "status": "operator_must_confirm",
               "description": format!("wildcard DNS for {} (and {}) pointing at the VPS public address", r.pattern, r.control_host)}),
        json!({"name": "tls_certificate", "value": {"certificate": r.cert, "key": r.key},
               "status": provided(i.tls_certificate.is_some()),
               "description": format!("a TLS certificate covering {} (wildcard certificates need a DNS challenge)", r.pattern)}),
        json!({"name": "binary", "value": i.binary, "status": "operator_must_confirm",
               "description": "the homeboy-ingress (or homeboy) binary on the VPS"}),
        json!({"name": "service_user", "value": {"user": i.user, "group": i.group}, "status": "default_or_provided",
               "description": "the system user and group the ingress runs as"}),
        json!({"name": "reverse_proxy", "value": i.proxy.as_str(), "status": "provided_or_default",
               "description": "one reverse proxy: nginx or caddy"}),
        json!({"name": "native_preview_auth", "value": format!("{}/config/tunnel/services/<id>.json", i.state_dir),
               "status": "operator_must_configure",
               "description": "a tunnel service declaration with policy.native_preview_auth (token digests, host and session scopes) before any preview client can register"}),
    ]
}

fn secrets_note(r: &Resolved) -> String {
    format!(
        "This plan holds no secrets and none is rendered into the unit or the proxy snippets. Preview client \
tokens are pairing material: generate a high-entropy token outside normal logs, keep the token itself only in the \
preview client's environment (homeboy tunnel preview-client start --token-env VAR), and store only its SHA-256 \
digest in policy.native_preview_auth.tokens[].token_sha256 of a tunnel service declaration under \
{}/config/tunnel/services/ on the VPS, scoped to the smallest client, host pattern ({}) and session set, with a \
short expires_at. Revoke with revoked=true or by removing the entry.",
        r.inputs.state_dir, r.pattern
    )
}

fn server_view(paths: &Paths, id: &str) -> Value {
    let path = paths.servers_dir().join(format!("{id}.json"));
    let parsed: Option<Value> = std::fs::read(&path)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok());
    match parsed {
        Some(doc) => json!({
            "id": id,
            "configured": true,
            "host": doc.get("host").cloned().unwrap_or(Value::Null),
            "user": doc.get("user").cloned().unwrap_or(Value::Null),
        }),
        None => json!({"id": id, "configured": false}),
    }
}

fn step(run_on: &str, description: &str, command: String) -> Value {
    json!({"run_on": run_on, "description": description, "command": command})
}

fn check(name: &str, run_on: &str, command: String, expect: &str) -> Value {
    json!({"name": name, "run_on": run_on, "command": command, "expect": expect, "status": "planned"})
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths() -> (tempfile::TempDir, Paths) {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::at(dir.path().join("c"), dir.path().join("d"));
        (dir, paths)
    }

    #[test]
    fn plan_renders_every_part_without_writing() {
        let (dir, paths) = paths();
        let inputs = InstallInputs::new("example-server", "example.com", "*-tunnel.example.com");
        let plan = plan(&inputs, &paths).unwrap();
        assert_eq!(plan["plan_only"], true);
        assert_eq!(plan["server"]["configured"], false);
        assert_eq!(plan["control_host"], "homeboy-ingress-tunnel.example.com");
        let unit = plan["systemd"]["unit"].as_str().unwrap();
        assert!(unit.contains("ExecStart=/usr/local/bin/homeboy-ingress serve --domain example.com --bind 127.0.0.1:7350 --public-host-pattern '*-tunnel.example.com'"), "{unit}");
        let nginx = plan["proxy"]["nginx"]["snippet"].as_str().unwrap();
        assert!(
            nginx.contains(r#"server_name "~^[^.]+-tunnel\.example\.com$";"#),
            "{nginx}"
        );
        let caddy = plan["proxy"]["caddy"]["snippet"].as_str().unwrap();
        assert!(
            caddy.starts_with("# Generated") && caddy.contains("*.example.com {"),
            "{caddy}"
        );
        assert!(plan["commands"]["rollback"].as_array().unwrap().len() >= 3);
        assert_eq!(plan["smoke_checks"].as_array().unwrap().len(), 4);
        // Nothing was written anywhere.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn plain_wildcards_and_configured_servers() {
        let (_dir, paths) = paths();
        std::fs::create_dir_all(paths.servers_dir()).unwrap();
        std::fs::write(
            paths.servers_dir().join("vps.json"),
            br#"{"id":"vps","name":"VPS","host":"203.0.113.9","user":"ops"}"#,
        )
        .unwrap();
        let mut inputs = InstallInputs::new("vps", "preview.example.net", "*.preview.example.net");
        inputs.binary = "/usr/local/bin/homeboy".into();
        inputs.services = vec!["site-preview".into()];
        let plan = plan(&inputs, &paths).unwrap();
        assert_eq!(plan["server"]["host"], "203.0.113.9");
        assert_eq!(
            plan["proxy"]["nginx"]["server_name"],
            json!(["*.preview.example.net"])
        );
        let unit = plan["systemd"]["unit"].as_str().unwrap();
        assert!(
            unit.contains("homeboy tunnel preview-ingress serve")
                && unit.contains("--service site-preview")
        );
        let status = install_status(&inputs, &paths).unwrap();
        assert_eq!(status["probed"], false);
        let names: Vec<&str> = status["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "systemd_active",
                "systemd_status",
                "wildcard_dns",
                "loopback_status",
                "public_status",
                "control_host_status"
            ]
        );
    }

    #[test]
    fn both_sites_say_a_request_was_proxied_and_nginx_refuses_other_hosts() {
        let (_dir, paths) = paths();
        let inputs = InstallInputs::new("s", "preview.example.net", "*.preview.example.net");
        let plan = plan(&inputs, &paths).unwrap();
        let nginx = plan["proxy"]["nginx"]["snippet"].as_str().unwrap();
        for line in [
            "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
            "proxy_set_header X-Real-IP $remote_addr;",
            "listen 443 ssl default_server;",
            "ssl_reject_handshake on;",
            "return 444;",
        ] {
            assert!(nginx.contains(line), "{line}: {nginx}");
        }
        // The catch-all comes last, after the site and its redirect.
        assert!(
            nginx.rfind("server {") > nginx.find("listen 80;"),
            "{nginx}"
        );
        let caddy = plan["proxy"]["caddy"]["snippet"].as_str().unwrap();
        assert!(
            caddy.contains("\trequest_header X-Real-IP {remote_host}\n"),
            "{caddy}"
        );
    }

    #[test]
    fn refused_inputs() {
        let (_dir, paths) = paths();
        let mut bad = InstallInputs::new("s", "example.com", "tunnel.example.com");
        assert!(plan(&bad, &paths).unwrap_err().is_refused_input());
        bad.public_host_pattern = "*.example.com".into();
        bad.service_name = "bad name".into();
        assert!(plan(&bad, &paths).is_err());
        bad.service_name = "ok".into();
        bad.binary = "relative/bin".into();
        assert!(plan(&bad, &paths).is_err());
        let bad = InstallInputs::new("../s", "example.com", "*.example.com");
        assert!(plan(&bad, &paths).is_err());
    }
}
