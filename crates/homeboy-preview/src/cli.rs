//! The command-line flags of the ingress (`serve`, `route`), shared by `homeboy-ingress` and
//! `homeboy tunnel preview-ingress` so the two binaries stay wiring only and cannot drift apart.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, ValueEnum};
use homeboy_config::Paths;
use homeboy_config::net::parse_listen_addr;

use crate::PreviewError;
use crate::ingress::{DEFAULT_BIND, IngressOptions};
use crate::routes::RouteSpec;

/// How the "listening" line on stdout is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum LineFormat {
    #[default]
    Text,
    Json,
}

/// Flags of the ingress `serve`.
#[derive(Debug, Clone, Args)]
pub struct IngressServeFlags {
    /// The preview domain (preview.example.net); also a host the ingress answers its own API on
    #[arg(long)]
    pub domain: String,
    /// Listen address; loopback unless --allow-non-loopback-bind
    #[arg(long, default_value = DEFAULT_BIND, value_parser = parse_listen_addr)]
    pub bind: SocketAddr,
    /// Hosts preview clients may claim (repeatable; default '*.<domain>')
    #[arg(long = "public-host-pattern")]
    pub public_host_patterns: Vec<String>,
    /// Another name the ingress answers its own API on (the host preview clients dial; repeatable)
    #[arg(long = "control-host")]
    pub control_hosts: Vec<String>,
    /// Enforce the native preview auth of this tunnel service declaration (repeatable; default: every
    /// declaration that has policy.native_preview_auth)
    #[arg(long = "service")]
    pub services: Vec<String>,
    /// Listen on a non-loopback address (the ingress normally sits behind a TLS proxy on the same host)
    #[arg(long)]
    pub allow_non_loopback_bind: bool,
    /// Seconds to wait for a TCP connection to a direct upstream
    #[arg(long, default_value_t = 5.0)]
    pub connect_timeout_secs: f64,
    /// Seconds to wait for response headers from an upstream or a preview client (then 504)
    #[arg(long, default_value_t = 30.0)]
    pub upstream_timeout_secs: f64,
    /// Seconds a preview client may be silent before its host counts as disconnected (410)
    #[arg(long, default_value_t = 10.0)]
    pub client_grace_secs: f64,
    /// Seconds shutdown waits for in-flight requests
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout_secs: f64,
    /// Seconds between keepalive pings on preview clients' multiplexed channels (and how long a ping may
    /// go unanswered before the channel counts as dead)
    #[arg(long, default_value_t = 5.0)]
    pub channel_keepalive_secs: f64,
    /// The scheme browsers use (that of the TLS proxy), for public URLs
    #[arg(long, default_value = "https")]
    pub public_scheme: String,
    /// Worker threads, each with its own event loop (default: the available cores)
    #[arg(long)]
    pub threads: Option<usize>,
    /// How the listening line on stdout is printed
    #[arg(long, value_enum, default_value_t)]
    pub format: LineFormat,
    /// Log line format on stderr: text or json (filter with HOMEBOY_LOG, e.g. `debug`; the per-request
    /// access log is always JSON lines)
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub log_format: homeboy_http::logging::LogFormat,
}

impl IngressServeFlags {
    /// Installs the server log in the chosen format.
    pub fn init_logging(&self) {
        homeboy_http::logging::init(self.log_format);
    }

    /// The ingress options these flags describe (refused input names the flag).
    pub fn options(&self, paths: Paths) -> Result<IngressOptions, PreviewError> {
        let mut options = IngressOptions::new(self.domain.clone(), paths);
        options.bind = self.bind;
        options.allow_non_loopback_bind = self.allow_non_loopback_bind;
        options.public_host_patterns = self.public_host_patterns.clone();
        options.control_hosts = self.control_hosts.clone();
        options.services = self.services.clone();
        options.connect_timeout = seconds("--connect-timeout-secs", self.connect_timeout_secs)?;
        options.upstream_timeout = seconds("--upstream-timeout-secs", self.upstream_timeout_secs)?;
        options.client_grace = seconds("--client-grace-secs", self.client_grace_secs)?;
        options.drain_timeout = seconds("--drain-timeout-secs", self.drain_timeout_secs)?;
        options.channel_keepalive =
            seconds("--channel-keepalive-secs", self.channel_keepalive_secs)?;
        options.public_scheme = self.public_scheme.clone();
        if let Some(threads) = self.threads {
            options.threads = threads.max(1);
        }
        Ok(options)
    }
}

/// The line printed once the ingress listens.
pub fn listening_line(format: LineFormat, addr: SocketAddr, patterns: &[String]) -> String {
    match format {
        LineFormat::Json => serde_json::json!({
            "event": "listening",
            "addr": addr.to_string(),
            "url": format!("http://{addr}"),
            "public_host_patterns": patterns,
        })
        .to_string(),
        LineFormat::Text => format!(
            "preview ingress listening on http://{addr} for {}",
            patterns.join(", ")
        ),
    }
}

/// Flags of `route <session-id>`.
#[derive(Debug, Clone, Args)]
pub struct RouteFlags {
    pub session_id: String,
    /// The one public host of the session (no wildcard)
    #[arg(long)]
    pub public_host: String,
    /// Where requests go: http://host:port
    #[arg(long)]
    pub upstream_origin: String,
    /// RFC 3339 expiry; after it the ingress answers 410 expired_session
    #[arg(long)]
    pub expires_at: Option<String>,
    /// Keep the record but answer 410 disconnected_session
    #[arg(long)]
    pub inactive: bool,
}

impl RouteFlags {
    pub fn spec(self) -> RouteSpec {
        RouteSpec {
            session_id: self.session_id,
            public_host: self.public_host,
            upstream_origin: self.upstream_origin,
            expires_at: self.expires_at,
            inactive: self.inactive,
        }
    }
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
