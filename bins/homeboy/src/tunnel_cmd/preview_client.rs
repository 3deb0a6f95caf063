//! `homeboy tunnel preview-client start`: wiring to `homeboy_preview::client`. Reads the token from the
//! named environment variable (never from an argument, never printed) and prints the client's events.

use std::io::Write;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use homeboy_preview::PreviewError;
use homeboy_preview::client::{self, ClientEvent, ClientOptions, TransportChoice};

use super::preview_ingress::preview_error;
use crate::output::Format;
use crate::progress::Progress;

#[derive(Subcommand)]
pub enum PreviewClientCommand {
    /// Claim one public host on a homeboy preview ingress and forward its requests to a local origin,
    /// until SIGINT/SIGTERM (then finish in-flight requests and close the session)
    Start(Box<StartArgs>),
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    /// The multiplexed channel when the ingress offers it, else long-poll
    Auto,
    /// The JSON long-poll of the wire contract (for proxies that refuse upgrades)
    LongPoll,
    /// The multiplexed channel: HTTP/2 over one upgraded connection (`reverse-http`, the retired
    /// per-request connection pool, is an alias)
    #[value(alias = "reverse-http")]
    Mux,
}

#[derive(Args)]
pub struct StartArgs {
    /// The ingress base URL (https://preview-broker.example)
    #[arg(long)]
    ingress: String,
    /// The one public host to claim (wildcards are refused)
    #[arg(long)]
    public_host: String,
    /// The local HTTP(S) loopback origin requests go to (http://127.0.0.1:PORT)
    #[arg(long)]
    local_origin: String,
    /// Environment variable holding the client token (the token itself is never an argument)
    #[arg(long)]
    token_env: Option<String>,
    /// Client id the token must allow (default: this machine's host name)
    #[arg(long)]
    client_id: Option<String>,
    /// Session id to claim (default: the first label of the public host)
    #[arg(long)]
    session_id: Option<String>,
    /// Requested lease in seconds (capped by the policy's max_session_ttl_secs)
    #[arg(long)]
    ttl_secs: Option<u64>,
    /// Channel transport
    #[arg(long, value_enum, default_value = "auto")]
    transport: TransportArg,
    /// Long-polls kept parked (long-poll transport)
    #[arg(long, default_value_t = 8)]
    polls: usize,
    /// Retired with the reverse-http transport; accepted and ignored
    #[arg(long, hide = true)]
    spare_connections: Option<usize>,
    /// Retired with the reverse-http transport; accepted and ignored
    #[arg(long, hide = true)]
    max_connections: Option<usize>,
    /// Long-poll timeout in seconds (1-60)
    #[arg(long, default_value_t = 25)]
    poll_timeout_secs: u64,
    /// Seconds between keepalive pings on the multiplexed channel (and how long one may go unanswered
    /// before the channel counts as dead and the client reconnects)
    #[arg(long, default_value_t = 5.0)]
    keepalive_secs: f64,
    /// Events on stdout as text lines or JSON lines
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn run(cmd: PreviewClientCommand) -> anyhow::Result<()> {
    match cmd {
        PreviewClientCommand::Start(args) => start(*args),
    }
}

fn start(args: StartArgs) -> anyhow::Result<()> {
    let client_id = args.client_id.clone().unwrap_or_else(default_client_id);
    let mut options = ClientOptions::new(
        &args.ingress,
        &args.public_host,
        &args.local_origin,
        &client_id,
    );
    options.token = match &args.token_env {
        Some(var) => match std::env::var(var) {
            Ok(token) if !token.trim().is_empty() => Some(token.trim().to_string()),
            _ => {
                return Err(preview_error(PreviewError::MissingToken {
                    var: var.clone(),
                }));
            }
        },
        None => None,
    };
    options.session_id = args.session_id;
    options.ttl_secs = args.ttl_secs;
    options.transport = match args.transport {
        TransportArg::Auto => TransportChoice::Auto,
        TransportArg::LongPoll => TransportChoice::LongPoll,
        TransportArg::Mux => TransportChoice::Mux,
    };
    options.polls = args.polls;
    options.poll_timeout_secs = args.poll_timeout_secs;
    options.keepalive = keepalive(args.keepalive_secs)?;
    let format = args.format;
    // On a terminal, a spinner until the ingress registered the session (and again while reconnecting).
    let progress = Arc::new(Progress::start(
        format,
        format!("registering {} with {}", args.public_host, args.ingress),
    ));
    let shown = progress.clone();
    let events: client::EventSink = Arc::new(move |event| {
        match &event {
            ClientEvent::Registered { .. } | ClientEvent::Closed { .. } => shown.finish(),
            ClientEvent::Reconnecting { attempt, .. } => {
                shown.set(format!("reconnecting (attempt {attempt})"))
            }
            _ => {}
        }
        shown.suspend(|| print_event(&event, format));
    });
    // One event loop: the client's connections and the local origin's stay on one thread.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    runtime
        .block_on(client::run(
            options,
            events,
            homeboy_preview::signal::terminate(),
        ))
        .map_err(preview_error)?;
    progress.finish();
    Ok(())
}

fn print_event(event: &ClientEvent, format: Format) {
    let line = match format {
        Format::Json => serde_json::to_string(event).unwrap_or_default(),
        Format::Text => describe(event),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn describe(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Registered {
            public_host,
            public_url,
            session_id,
            transport,
            lease_ttl_secs,
            lease_expires_at,
            ..
        } => format!(
            "preview {} is live (session {session_id}, {transport}, lease {}s until {})",
            public_url.clone().unwrap_or_else(|| public_host.clone()),
            lease_ttl_secs.unwrap_or(0),
            lease_expires_at.as_deref().unwrap_or("?")
        ),
        ClientEvent::Renewed { lease_expires_at } => {
            format!(
                "lease renewed until {}",
                lease_expires_at.as_deref().unwrap_or("?")
            )
        }
        ClientEvent::ChannelLost { reason } => format!("channel lost: {reason}"),
        ClientEvent::Reconnecting {
            attempt,
            delay_ms,
            reason,
        } => format!("reconnecting in {delay_ms} ms (attempt {attempt}): {reason}"),
        ClientEvent::LocalOriginFailed { path, message } => {
            format!("local origin failed for {path}: {message}")
        }
        ClientEvent::Closed {
            public_host,
            closed,
        } => format!(
            "session for {public_host} {}",
            if *closed {
                "closed"
            } else {
                "ended (the ingress did not confirm the close)"
            }
        ),
    }
}

fn keepalive(secs: f64) -> anyhow::Result<std::time::Duration> {
    if secs.is_finite() && secs > 0.0 && secs <= 3600.0 {
        Ok(std::time::Duration::from_secs_f64(secs))
    } else {
        Err(preview_error(PreviewError::invalid(
            "--keepalive-secs",
            "must be a positive number of seconds (at most 3600)",
        )))
    }
}

/// This machine's host name as a client id, or `preview-client`.
fn default_client_id() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name: String = name
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if name.is_empty() || !name.as_bytes()[0].is_ascii_alphanumeric() {
        "preview-client".to_string()
    } else {
        name
    }
}
