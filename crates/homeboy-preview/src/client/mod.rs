//! The preview client (`homeboy tunnel preview-client start`): connects one local HTTP(S) loopback origin to
//! a homeboy preview ingress for exactly one public host, over an outbound authenticated reverse channel.
//!
//! It registers (the ingress checks native preview auth and grants a lease), then carries requests over the
//! best transport both sides speak — the multiplexed channel (HTTP/2 over one upgraded connection) when the
//! ingress offers it, else the JSON long-poll of the wire contract — renews the lease before it ends, and
//! when the channel is lost (the ingress restarted, the network broke, keepalive pings went unanswered)
//! registers again with capped exponential backoff and jitter, then reconnects.
//! SIGINT/SIGTERM (the `shutdown` future) lets requests in flight finish, closes the session and returns.
//! The token is sent only in the `Authorization` header; no event or error carries it.

mod api;
mod local;
mod long_poll;
mod mux;
mod upgrade;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

pub use api::CallError;
pub use homeboy_http::backoff::Backoff;

use crate::PreviewError;
use crate::auth::check_local_origin;
use crate::channel::wire::{self, RegisterRequest, RegisterResponse};
use crate::host::{Origin, is_wildcard, normalize_host};
use api::IngressApi;
use local::LocalOrigin;

/// Which channel transport to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransportChoice {
    /// The multiplexed channel when the ingress offers it, else long-poll.
    #[default]
    Auto,
    LongPoll,
    Mux,
}

/// How the client runs.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The ingress base URL (`https://preview-broker.example`).
    pub ingress: String,
    /// The one public host to claim.
    pub public_host: String,
    /// The HTTP(S) loopback origin requests go to.
    pub local_origin: String,
    /// The client token (from the environment variable the CLI names); never logged.
    pub token: Option<String>,
    pub client_id: String,
    pub session_id: Option<String>,
    pub ttl_secs: Option<u64>,
    pub transport: TransportChoice,
    /// Parked long-polls.
    pub polls: usize,
    pub poll_timeout_secs: u64,
    /// Keepalive ping interval (and pong timeout) on the multiplexed channel.
    pub keepalive: Duration,
    /// Waiting for the local origin's response headers.
    pub local_timeout: Duration,
    pub backoff: Backoff,
    /// How long shutdown waits for requests in flight before closing the session.
    pub shutdown_grace: Duration,
}

impl ClientOptions {
    /// Defaults: auto transport, 8 polls, 25 s polls, 5 s keepalive, 60 s local timeout, backoff 250 ms
    /// doubling to 10 s, 10 s shutdown grace.
    pub fn new(ingress: &str, public_host: &str, local_origin: &str, client_id: &str) -> Self {
        ClientOptions {
            ingress: ingress.to_string(),
            public_host: public_host.to_string(),
            local_origin: local_origin.to_string(),
            token: None,
            client_id: client_id.to_string(),
            session_id: None,
            ttl_secs: None,
            transport: TransportChoice::Auto,
            polls: 8,
            poll_timeout_secs: 25,
            keepalive: crate::channel::mux::DEFAULT_KEEPALIVE,
            local_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// Refuses what the ingress would refuse anyway, before any connection: a wildcard or malformed
    /// public host, a local origin that is not HTTP(S) loopback, an ingress that is not an HTTP(S) URL.
    pub fn validate(&mut self) -> Result<(), PreviewError> {
        if is_wildcard(&self.public_host) {
            return Err(PreviewError::invalid(
                "--public-host",
                format!(
                    "{:?} is a wildcard; a preview client claims exactly one host",
                    self.public_host
                ),
            ));
        }
        self.public_host = normalize_host(&self.public_host)
            .map_err(|p| PreviewError::invalid("--public-host", p))?;
        check_local_origin(&self.local_origin)
            .map_err(|d| PreviewError::invalid("--local-origin", d.problem))?;
        let ingress = self.ingress.trim_end_matches('/');
        Origin::parse(ingress).map_err(|p| {
            PreviewError::invalid("--ingress", format!("{p} (give the ingress's base URL)"))
        })?;
        self.ingress = ingress.to_string();
        homeboy_config::declarations::validate_id("client", &self.client_id)
            .map_err(|e| PreviewError::invalid("--client-id", e.to_string()))?;
        if let Some(session_id) = &self.session_id {
            homeboy_config::declarations::validate_id("session", session_id)
                .map_err(|e| PreviewError::invalid("--session-id", e.to_string()))?;
        }
        if !(1..=wire::MAX_POLL_SECS).contains(&self.poll_timeout_secs) {
            return Err(PreviewError::invalid(
                "--poll-timeout-secs",
                format!("must be between 1 and {}", wire::MAX_POLL_SECS),
            ));
        }
        if self.polls == 0 {
            return Err(PreviewError::invalid("--polls", "must be at least 1"));
        }
        if self.keepalive.is_zero() {
            return Err(PreviewError::invalid(
                "--keepalive-secs",
                "must be a positive number of seconds",
            ));
        }
        if self.ttl_secs == Some(0) {
            return Err(PreviewError::invalid("--ttl-secs", "must be at least 1"));
        }
        Ok(())
    }
}

/// What the client reports while it runs (the CLI prints these; none carries the token).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ClientEvent {
    Registered {
        public_host: String,
        public_url: Option<String>,
        session_id: String,
        channel_id: String,
        client_id: String,
        transport: &'static str,
        lease_ttl_secs: Option<u64>,
        lease_expires_at: Option<String>,
        lease_capped_by: Option<String>,
    },
    Renewed {
        lease_expires_at: Option<String>,
    },
    ChannelLost {
        reason: String,
    },
    Reconnecting {
        attempt: u32,
        delay_ms: u64,
        reason: String,
    },
    LocalOriginFailed {
        path: String,
        message: String,
    },
    Closed {
        public_host: String,
        closed: bool,
    },
}

/// Receives events.
pub type EventSink = Arc<dyn Fn(ClientEvent) + Send + Sync>;

/// Everything the transports of one registration share.
pub(crate) struct Session {
    api: IngressApi,
    local: Arc<LocalOrigin>,
    channel_id: String,
    poll_timeout_secs: u64,
    local_timeout: Duration,
    keepalive: Duration,
    /// Something between the client and the ingress answered the channel's upgrade without switching.
    upgrade_refused: AtomicBool,
    in_flight: Tracker,
    events: EventSink,
}

impl Session {
    fn emit(&self, event: ClientEvent) {
        (self.events)(event);
    }
}

/// Counts spawned request tasks so shutdown can wait for them.
#[derive(Clone, Default)]
pub(crate) struct Tracker {
    count: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Tracker {
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.count.fetch_add(1, Ordering::AcqRel);
        let (count, idle) = (self.count.clone(), self.idle.clone());
        tokio::spawn(async move {
            task.await;
            if count.fetch_sub(1, Ordering::AcqRel) == 1 {
                idle.notify_waiters();
            }
        });
    }

    async fn wait(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

enum SessionEnd {
    Shutdown,
    Lost(String),
    Replaced(RegisterResponse),
    Refused(PreviewError),
}

/// Runs the client until `shutdown` resolves (then closes the session and returns `Ok`) or the ingress
/// refuses it (auth, claim, ownership: `Err(Refused)`).
pub async fn run(
    mut options: ClientOptions,
    events: EventSink,
    shutdown: impl Future<Output = ()>,
) -> Result<(), PreviewError> {
    options.validate()?;
    let http =
        api::http_client(&options.ingress).map_err(|m| PreviewError::Unreachable { message: m })?;
    // Registrations, renewals and the channel's connection keep no idle connection behind: an idle
    // multiplexed client holds exactly one connection to the ingress.
    let once = api::http_client_without_pool(&options.ingress)
        .map_err(|m| PreviewError::Unreachable { message: m })?;
    let api = IngressApi::new(
        &options.ingress,
        once,
        options.token.clone(),
        options.public_host.clone(),
    );
    let polling_api = IngressApi::new(
        &options.ingress,
        http.clone(),
        options.token.clone(),
        options.public_host.clone(),
    );
    let origin = Origin::parse(&options.local_origin)
        .map_err(|p| PreviewError::invalid("--local-origin", p))?;
    let local = Arc::new(LocalOrigin::new(origin, http));
    let mut request = RegisterRequest {
        public_host: options.public_host.clone(),
        local_origin: options.local_origin.clone(),
        session_id: options.session_id.clone(),
        client_id: Some(options.client_id.clone()),
        ttl_secs: options.ttl_secs,
        transport: Some(
            match options.transport {
                TransportChoice::LongPoll => wire::TRANSPORT_LONG_POLL,
                TransportChoice::Auto | TransportChoice::Mux => wire::TRANSPORT_MUX,
            }
            .to_string(),
        ),
    };
    tokio::pin!(shutdown);
    let mut failures: u32 = 0;
    let mut pending: Option<RegisterResponse> = None;
    loop {
        let registration = match pending.take() {
            Some(reg) => Ok(reg),
            None => tokio::select! {
                answer = register(&api, &request) => answer,
                () = &mut shutdown => return Ok(()),
            },
        };
        let reason = match registration {
            Ok(reg) => {
                failures = 0;
                let transport = choose_transport(options.transport, &reg);
                events(ClientEvent::Registered {
                    public_host: reg.public_host.clone(),
                    public_url: reg.public_url.clone(),
                    session_id: reg.session_id.clone(),
                    channel_id: reg.channel_id.clone(),
                    client_id: reg.client_id.clone(),
                    transport,
                    lease_ttl_secs: reg.lease.as_ref().map(|l| l.ttl_secs),
                    lease_expires_at: reg.lease.as_ref().map(|l| l.expires_at.clone()),
                    lease_capped_by: reg.lease.as_ref().and_then(|l| l.capped_by.clone()),
                });
                let session = Arc::new(Session {
                    api: if transport == wire::TRANSPORT_LONG_POLL {
                        polling_api.clone()
                    } else {
                        api.clone()
                    },
                    local: local.clone(),
                    channel_id: reg.channel_id.clone(),
                    poll_timeout_secs: options.poll_timeout_secs,
                    local_timeout: options.local_timeout,
                    keepalive: options.keepalive,
                    upgrade_refused: AtomicBool::new(false),
                    in_flight: Tracker::default(),
                    events: events.clone(),
                });
                let refused = session.clone();
                match run_session(&options, &request, session, transport, &reg, &mut shutdown).await
                {
                    SessionEnd::Shutdown => {
                        let closed = close(&api).await;
                        events(ClientEvent::Closed {
                            public_host: options.public_host.clone(),
                            closed,
                        });
                        return Ok(());
                    }
                    SessionEnd::Refused(e) => return Err(e),
                    SessionEnd::Replaced(reg) => {
                        pending = Some(reg);
                        continue;
                    }
                    SessionEnd::Lost(mut reason) => {
                        // A proxy that will not pass the upgrade: fall back to long-poll (auto only).
                        if options.transport == TransportChoice::Auto
                            && refused.upgrade_refused.load(Ordering::Acquire)
                        {
                            request.transport = Some(wire::TRANSPORT_LONG_POLL.to_string());
                            reason.push_str("; falling back to the long-poll transport");
                        }
                        events(ClientEvent::ChannelLost {
                            reason: reason.clone(),
                        });
                        reason
                    }
                }
            }
            Err(CallError::Refused { code, message, .. }) => {
                return Err(PreviewError::Refused { code, message });
            }
            Err(CallError::Unreachable(message)) => message,
        };
        let delay = options.backoff.delay(failures);
        failures = failures.saturating_add(1);
        events(ClientEvent::Reconnecting {
            attempt: failures,
            delay_ms: delay.as_millis() as u64,
            reason,
        });
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => return Ok(()),
        }
    }
}

async fn register(
    api: &IngressApi,
    request: &RegisterRequest,
) -> Result<RegisterResponse, CallError> {
    api.post(wire::REGISTER, request, Duration::from_secs(30))
        .await
}

async fn close(api: &IngressApi) -> bool {
    let body = wire::CloseRequest {
        public_host: api.public_host().to_string(),
    };
    api.post::<serde_json::Value>(wire::CLOSE, &body, Duration::from_secs(5))
        .await
        .is_ok()
}

fn choose_transport(choice: TransportChoice, reg: &RegisterResponse) -> &'static str {
    // An ingress that knows the `transport` field says which one it expects.
    match reg.transport.as_deref() {
        Some(wire::TRANSPORT_MUX) => return wire::TRANSPORT_MUX,
        Some(_) => return wire::TRANSPORT_LONG_POLL,
        None => {}
    }
    let offered = reg.transports.iter().any(|t| t == wire::TRANSPORT_MUX);
    match choice {
        TransportChoice::LongPoll => wire::TRANSPORT_LONG_POLL,
        TransportChoice::Mux => wire::TRANSPORT_MUX,
        TransportChoice::Auto if offered => wire::TRANSPORT_MUX,
        TransportChoice::Auto => wire::TRANSPORT_LONG_POLL,
    }
}

/// Carries requests for one registration until shutdown, loss, or a renewal that changed the channel.
async fn run_session(
    options: &ClientOptions,
    request: &RegisterRequest,
    session: Arc<Session>,
    transport: &'static str,
    reg: &RegisterResponse,
    shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
) -> SessionEnd {
    let (lost_tx, mut lost_rx) = mpsc::channel::<String>(8);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut workers = JoinSet::new();
    if transport == wire::TRANSPORT_MUX {
        workers.spawn(mux::channel(session.clone(), lost_tx.clone(), stop_rx));
    } else {
        for _ in 0..options.polls {
            workers.spawn(long_poll::poller(session.clone(), lost_tx.clone()));
        }
    }
    let mut renew_at = renewal_instant(reg);
    let end = loop {
        tokio::select! {
            () = shutdown.as_mut() => break SessionEnd::Shutdown,
            Some(reason) = lost_rx.recv() => break SessionEnd::Lost(reason),
            () = tokio::time::sleep_until(renew_at) => {
                match register(&session.api, request).await {
                    Ok(renewed) if renewed.channel_id == session.channel_id => {
                        session.emit(ClientEvent::Renewed {
                            lease_expires_at: renewed.lease.as_ref().map(|l| l.expires_at.clone()),
                        });
                        renew_at = renewal_instant(&renewed);
                    }
                    Ok(renewed) => break SessionEnd::Replaced(renewed),
                    Err(CallError::Refused { code, message, .. }) => {
                        break SessionEnd::Refused(PreviewError::Refused { code, message });
                    }
                    Err(CallError::Unreachable(_)) => {
                        renew_at = tokio::time::Instant::now() + Duration::from_secs(2);
                    }
                }
            }
        }
    };
    // Stop taking new requests; let the ones in flight finish (connections finish their current request).
    let _ = stop_tx.send(true);
    if transport == wire::TRANSPORT_LONG_POLL || !matches!(end, SessionEnd::Shutdown) {
        workers.abort_all();
    }
    if matches!(end, SessionEnd::Shutdown) {
        let drain = async {
            while workers.join_next().await.is_some() {}
            session.in_flight.wait(options.shutdown_grace).await;
        };
        let _ = tokio::time::timeout(options.shutdown_grace, drain).await;
    }
    workers.abort_all();
    end
}

/// Renewals happen at least this often, whatever lease the ingress claims to grant.
const LONGEST_RENEWAL_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Two thirds into the lease (at least one second from now, at most a day).
fn renewal_instant(reg: &RegisterResponse) -> tokio::time::Instant {
    let ttl = reg.lease.as_ref().map_or(900, |l| l.ttl_secs);
    let after = Duration::from_millis((ttl.saturating_mul(1000) / 3).saturating_mul(2).max(1000));
    tokio::time::Instant::now() + after.min(LONGEST_RENEWAL_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renewal_survives_any_lease_the_ingress_announces() {
        let registered = |ttl_secs: u64| RegisterResponse {
            registered: true,
            channel_id: "c".into(),
            session_id: "s".into(),
            public_host: "run.preview.test".into(),
            client_id: "lab".into(),
            public_url: None,
            lease: Some(wire::Lease {
                ttl_secs,
                expires_at: String::new(),
                requested_ttl_secs: None,
                capped_by: None,
            }),
            transports: Vec::new(),
            transport: None,
        };
        let now = tokio::time::Instant::now();
        for ttl in [0, 1, 900, u64::MAX / 1000, u64::MAX] {
            let at = renewal_instant(&registered(ttl));
            assert!(at >= now + Duration::from_secs(1), "{ttl}");
            assert!(
                at <= now + LONGEST_RENEWAL_INTERVAL + Duration::from_secs(5),
                "{ttl}"
            );
        }
        let at = renewal_instant(&registered(900));
        assert!(at >= now + Duration::from_secs(600) && at <= now + Duration::from_secs(605));
    }

    #[test]
    fn options_refuse_wildcards_and_remote_origins() {
        let ok = || {
            ClientOptions::new(
                "http://127.0.0.1:7350/",
                "Run-1.Preview.Test",
                "http://127.0.0.1:8080",
                "lab",
            )
        };
        let mut o = ok();
        o.validate().unwrap();
        assert_eq!(o.public_host, "run-1.preview.test");
        assert_eq!(o.ingress, "http://127.0.0.1:7350");
        let mut o = ok();
        o.public_host = "*.preview.test".into();
        assert!(o.validate().unwrap_err().to_string().contains("wildcard"));
        let mut o = ok();
        o.local_origin = "http://192.0.2.1:80".into();
        assert!(o.validate().unwrap_err().is_refused_input());
        let mut o = ok();
        o.ingress = "preview.example".into();
        assert!(o.validate().is_err());
        let mut o = ok();
        o.poll_timeout_secs = 61;
        assert!(o.validate().is_err());
    }
}
