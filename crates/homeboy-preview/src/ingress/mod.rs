//! The preview ingress: the VPS-side HTTP daemon (`homeboy-ingress serve`, `homeboy tunnel preview-ingress
//! serve`) that routes public preview hosts to their sessions.
//!
//! A request whose `Host` names a route goes to that route's upstream origin ([`public`]), or over the
//! reverse channel of the preview client holding it; otherwise the ingress answers with a JSON diagnostic
//! (`missing_session`, `expired_session`, `disconnected_session`, `upstream_error`, `upstream_timeout`).
//! On the ingress's own hosts (loopback names, `--domain`, `--control-host`) it also serves the channel API
//! for preview clients ([`control`]), `GET /_homeboy/preview-ingress/status` and the OpenAPI document of
//! that API at `GET /openapi.json` ([`status`]), and `GET /metrics` ([`metrics`]). A request is *local* (the
//! operator on the machine: the loopback names as control hosts, server paths in the status) only when it
//! names a loopback host and carries no proxy header ([`is_local`]): behind the operator's proxy every
//! connection comes from loopback and `Host` is whatever the client sent. It listens on
//! loopback unless told otherwise, logs a JSON line per request on stderr, and on SIGTERM stops taking new
//! public requests, lets the ones in flight finish, then exits.

mod access_log;
mod control;
mod metrics;
mod public;
mod reconnect;
mod register;
mod route_cache;
mod session_caps;
mod status;
mod upgrade;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use homeboy_config::Paths;
use homeboy_config::net::is_loopback_host;
use homeboy_http::ConnOptions;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde::Serialize;
use tokio::sync::Notify;

pub use access_log::AccessLog;
pub use route_cache::{RouteCache, RouteEntry};
pub use status::STATUS_PATH;

use crate::body::ProxyBody;
use crate::channel::ChannelSession;
use crate::host::{normalize_host, normalize_pattern};
use crate::routes::RouteStore;
use crate::{PreviewError, clock};

/// The default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:7350";
/// How many recent failures the status keeps.
pub const RECENT_FAILURES: usize = 100;

/// How `serve` is configured.
#[derive(Debug, Clone)]
pub struct IngressOptions {
    /// The preview domain (`preview.example.net`); also one of the ingress's own hosts.
    pub domain: String,
    pub bind: SocketAddr,
    /// Listening on a non-loopback address is an explicit operator choice.
    pub allow_non_loopback_bind: bool,
    /// Hosts preview clients may claim (default `*.<domain>`).
    pub public_host_patterns: Vec<String>,
    /// Further names under which the ingress serves its own API (the host preview clients dial).
    pub control_hosts: Vec<String>,
    /// Service declarations whose `policy.native_preview_auth` is enforced; empty means every declaration
    /// that has one.
    pub services: Vec<String>,
    /// Connecting to a direct upstream.
    pub connect_timeout: Duration,
    /// Waiting for response headers from an upstream or a preview client.
    pub upstream_timeout: Duration,
    /// How long a preview client may be silent (no poll, no connection) before its host counts as
    /// disconnected.
    pub client_grace: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// Keepalive ping interval (and pong timeout) on preview clients' multiplexed channels.
    pub channel_keepalive: Duration,
    /// The scheme browsers use (the TLS proxy's), for `public_url` in registrations.
    pub public_scheme: String,
    /// Worker threads, each with its own single-threaded runtime (default: the available cores).
    pub threads: usize,
    pub paths: Paths,
}

impl IngressOptions {
    /// Defaults for `domain`: loopback `127.0.0.1:7350`, pattern `*.<domain>`, 5 s connect, 30 s upstream
    /// timeout, 10 s client grace, 30 s drain.
    pub fn new(domain: impl Into<String>, paths: Paths) -> Self {
        IngressOptions {
            domain: domain.into(),
            bind: DEFAULT_BIND.parse().expect("default bind"),
            allow_non_loopback_bind: false,
            public_host_patterns: Vec::new(),
            control_hosts: Vec::new(),
            services: Vec::new(),
            connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(30),
            client_grace: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            channel_keepalive: crate::channel::mux::DEFAULT_KEEPALIVE,
            public_scheme: "https".into(),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            paths,
        }
    }
}

/// Why the ingress answered a public request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    MissingSession,
    ExpiredSession,
    DisconnectedSession,
    UpstreamError,
    UpstreamTimeout,
    /// The ingress is shutting down (additive).
    IngressDraining,
}

impl Classification {
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::MissingSession => "missing_session",
            Classification::ExpiredSession => "expired_session",
            Classification::DisconnectedSession => "disconnected_session",
            Classification::UpstreamError => "upstream_error",
            Classification::UpstreamTimeout => "upstream_timeout",
            Classification::IngressDraining => "ingress_draining",
        }
    }

    pub fn status(self) -> u16 {
        match self {
            Classification::MissingSession => 404,
            Classification::ExpiredSession | Classification::DisconnectedSession => 410,
            Classification::UpstreamError => 502,
            Classification::UpstreamTimeout => 504,
            Classification::IngressDraining => 503,
        }
    }
}

/// One recent failure, as the status shows it: the contract's type.
pub use homeboy_api::preview::IngressFailure as Failure;

/// The shared state of a running ingress.
pub struct Ingress {
    options: IngressOptions,
    patterns: Vec<String>,
    control_hosts: Vec<String>,
    routes: RouteCache,
    sessions: RwLock<HashMap<String, Arc<ChannelSession>>>,
    register_lock: tokio::sync::Mutex<()>,
    log: AccessLog,
    metrics: metrics::IngressMetrics,
    failures: Mutex<VecDeque<Failure>>,
    requests: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicUsize,
    drained: Notify,
    draining: AtomicBool,
    id_prefix: String,
    id_counter: AtomicU64,
    started_at: String,
    started: tokio::time::Instant,
    registered: Notify,
    addr: SocketAddr,
}

/// Whether a request is the operator's own (a loopback name, no proxy header): the one definition, in the
/// shared edge.
pub use homeboy_http::host::is_local;

impl Ingress {
    /// Whether `host` (normalised) is one of the ingress's own names (no preview client may claim one).
    pub fn is_control_host(&self, host: &str) -> bool {
        is_loopback_host(host) || self.control_hosts.iter().any(|h| h == host)
    }

    /// Whether the ingress serves its own API to a request naming `host`: on `--domain` and each
    /// `--control-host`, and on loopback names only to a local request ([`is_local`]).
    fn serves_control(&self, host: &str, local: bool) -> bool {
        local || self.control_hosts.iter().any(|h| h == host)
    }

    fn next_request_id(&self) -> String {
        let n = self.id_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.id_prefix)
    }

    fn record_failure(&self, failure: Failure) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= RECENT_FAILURES {
            failures.pop_front();
        }
        failures.push_back(failure);
    }

    fn session(&self, host: &str) -> Option<Arc<ChannelSession>> {
        self.sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(host)
            .cloned()
    }

    /// Answers one request on the listening socket.
    async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
    ) -> Response<ProxyBody> {
        let host = match homeboy_http::host::request_host(req.headers(), req.uri()) {
            Ok(named) => named.host,
            Err(refusal) => return control::error_response(&refusal),
        };
        let path = req.uri().path();
        let local = is_local(req.headers(), &host);
        if path == status::STATUS_PATH {
            let response = status::respond(&self, &host, local, req.uri().query());
            self.metrics
                .request("status", response.status().as_u16(), 0);
            return response;
        }
        if path == homeboy_http::metrics::PATH && self.serves_control(&host, local) {
            return metrics::respond(&self);
        }
        if path == status::OPENAPI_PATH && self.serves_control(&host, local) {
            return status::openapi();
        }
        if path.starts_with("/preview/client/") && self.serves_control(&host, local) {
            let response = control::handle(&self, req).await;
            self.metrics
                .request("control", response.status().as_u16(), 0);
            return response;
        }
        public::handle(&self, req, host, peer).await
    }

    fn start_draining(&self) {
        self.draining.store(true, Ordering::Release);
        for session in self
            .sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
        {
            session.long_poll.start_draining();
        }
    }

    async fn drained(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.drained.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::Acquire) == 0 {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }
}

/// Counts a public request as in flight until dropped (with the response body).
struct InFlight(Arc<Ingress>);

impl InFlight {
    fn enter(ingress: &Arc<Ingress>) -> Self {
        ingress.in_flight.fetch_add(1, Ordering::AcqRel);
        ingress.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(ingress.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1
            && self.0.draining.load(Ordering::Acquire)
        {
            self.0.drained.notify_waiters();
        }
    }
}

/// A bound ingress that has not started answering yet: one listening socket per worker.
pub struct BoundIngress {
    listeners: Vec<std::net::TcpListener>,
    ingress: Arc<Ingress>,
}

/// Validates the options and binds the listening socket (loopback unless explicitly allowed).
pub fn bind(options: IngressOptions, log: AccessLog) -> Result<BoundIngress, PreviewError> {
    if !options.allow_non_loopback_bind && !is_loopback_host(&options.bind.ip().to_string()) {
        return Err(PreviewError::NonLoopbackBind { addr: options.bind });
    }
    let domain =
        normalize_host(&options.domain).map_err(|p| PreviewError::invalid("--domain", p))?;
    let mut patterns = Vec::new();
    for p in &options.public_host_patterns {
        patterns.push(
            normalize_pattern(p).map_err(|e| PreviewError::invalid("--public-host-pattern", e))?,
        );
    }
    if patterns.is_empty() {
        patterns.push(format!("*.{domain}"));
    }
    let mut control_hosts = vec![domain.clone()];
    for h in &options.control_hosts {
        control_hosts
            .push(normalize_host(h).map_err(|p| PreviewError::invalid("--control-host", p))?);
    }
    // The policy must be readable now; a named service that does not exist is refused input. A declaration
    // that does not parse is named in the log now (and at every registration it could have served).
    let policies = crate::auth::PolicySet::load(&options.paths, &options.services)?;
    for broken in policies.broken() {
        log.write(&serde_json::json!({
            "event": "policy_declaration_unreadable", "service": broken.service,
            "problem": broken.problem,
        }));
    }
    let store = RouteStore::new(&options.paths);
    homeboy_config::private_file::create_dir_all(store.dir()).map_err(|source| {
        PreviewError::Io {
            action: "create the routes directory",
            source,
        }
    })?;
    let listeners = homeboy_http::workers::reuseport_listeners(options.bind, options.threads)
        .map_err(|source| PreviewError::Bind {
            addr: options.bind,
            source,
        })?;
    let addr = listeners[0]
        .local_addr()
        .map_err(|source| PreviewError::Io {
            action: "read the bound address",
            source,
        })?;
    let id_prefix = homeboy_config::secrets::random_hex(4).unwrap_or_else(|_| "req".into());
    let routes = RouteCache::new(store, options.connect_timeout);
    let ingress = Arc::new(Ingress {
        options: IngressOptions { domain, ..options },
        patterns,
        control_hosts,
        routes,
        sessions: RwLock::new(HashMap::new()),
        register_lock: tokio::sync::Mutex::new(()),
        log,
        metrics: metrics::IngressMetrics::default(),
        failures: Mutex::new(VecDeque::new()),
        requests: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        drained: Notify::new(),
        draining: AtomicBool::new(false),
        id_prefix,
        id_counter: AtomicU64::new(1),
        started_at: clock::rfc3339(clock::now()),
        started: tokio::time::Instant::now(),
        registered: Notify::new(),
        addr,
    });
    Ok(BoundIngress { listeners, ingress })
}

impl BoundIngress {
    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.ingress.addr
    }

    /// The patterns preview clients may claim.
    pub fn public_host_patterns(&self) -> &[String] {
        &self.ingress.patterns
    }

    /// Answers requests on the configured number of workers until SIGTERM/SIGINT, then drains: new public
    /// requests get 503, preview clients may still answer the requests they hold, and the call returns once
    /// nothing is in flight (or the drain timeout passed).
    pub fn run(self) -> Result<(), PreviewError> {
        let threads = self.listeners.len();
        let ingress = self.ingress;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        let listeners: Arc<Vec<Mutex<Option<std::net::TcpListener>>>> = Arc::new(
            self.listeners
                .into_iter()
                .map(|l| Mutex::new(Some(l)))
                .collect(),
        );
        homeboy_http::workers::run(threads, move |i| {
            let (ingress, stop_tx, stop_rx) = (ingress.clone(), stop_tx.clone(), stop_rx.clone());
            let listener = listeners[i]
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            async move {
                let Some(listener) =
                    listener.and_then(|l| tokio::net::TcpListener::from_std(l).ok())
                else {
                    return;
                };
                let mut stopped = stop_rx.clone();
                let stop = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                let serving = tokio::spawn(serve_on(listener, ingress.clone(), stop));
                if i == 0 {
                    crate::signal::terminate().await;
                    ingress.start_draining();
                    ingress.log.write(&serde_json::json!({
                        "event": "draining",
                        "in_flight": ingress.in_flight.load(Ordering::Acquire),
                    }));
                    ingress.drained(ingress.options.drain_timeout).await;
                    let _ = stop_tx.send(true);
                    ingress.log.write(&serde_json::json!({"event": "stopped"}));
                    ingress.log.flush();
                }
                let _ = serving.await;
            }
        })
        .map_err(|source| PreviewError::Io {
            action: "start the worker threads",
            source,
        })
    }
}

/// `serve`: binds, reports the bound address to `on_listening`, answers until SIGTERM/SIGINT, drains.
pub fn serve(
    options: IngressOptions,
    on_listening: impl FnOnce(SocketAddr, &[String]),
) -> Result<(), PreviewError> {
    homeboy_http::workers::raise_open_file_limit();
    let bound = bind(options, AccessLog::stderr())?;
    on_listening(bound.local_addr(), bound.public_host_patterns());
    bound.run()
}

/// One worker's connections on the shared edge, until `stop` (after the ingress drained).
async fn serve_on(
    listener: tokio::net::TcpListener,
    ingress: Arc<Ingress>,
    stop: impl std::future::Future<Output = ()>,
) {
    let options = ConnOptions {
        // Idle and half-sent connections are closed: after 30 s on a public bind (no proxy in front), and
        // on loopback only after the proxy's own idle keep-alive would have ended them.
        idle_timeout: Some(ConnOptions::idle_timeout_for(ingress.addr)),
        // Requests in flight were already given the drain timeout; what is left is closed promptly.
        drain_timeout: Duration::from_millis(200),
    };
    let service = move |req: Request<Incoming>, peer: SocketAddr| {
        let ingress = ingress.clone();
        async move { ingress.handle(req, peer).await }
    };
    homeboy_http::serve(listener, options, service, stop).await;
}
