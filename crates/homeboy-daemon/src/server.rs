//! `homeboy daemon serve`: bind loopback, record the state file, answer until told to stop, clean up.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use homeboy_config::Paths;
use homeboy_jobs::{JobStore, PrunePolicy, RedbJobStore, StoreOptions};
use homeboy_observations::ObservationStore;
use homeboy_service::{Api, DaemonIdentity, RunnerAuth};

use homeboy_config::daemon_state::{self as state, DaemonState};
use homeboy_config::lock::FileLock;
use homeboy_http::ConnOptions;
use tokio::sync::watch;

use crate::DaemonError;
use crate::executor::{self, Executor, ExecutorParts};
use crate::http::{App, HttpOptions};
use crate::jobs_runtime::JobsRuntime;

/// Everything `serve` needs to know.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Where to listen; must be loopback. Port 0 picks a free port, recorded in the state file.
    pub addr: SocketAddr,
    pub paths: Paths,
    /// The build id to report (normally `homeboy_build::BUILD_ID`).
    pub build_id: String,
    pub http: HttpOptions,
    /// The log file a background daemon writes to, recorded in the state file.
    pub log_path: Option<PathBuf>,
    /// How `/runner/*` authenticate.
    pub runner_auth: RunnerAuth,
    /// Job store settings (event retention, attempts).
    pub jobs: StoreOptions,
    /// What is kept of finished jobs.
    pub prune: PrunePolicy,
    /// Analysis jobs run at once.
    pub analysis_concurrency: usize,
}

impl ServeOptions {
    /// Defaults for `paths`: `127.0.0.1:0`, this build, 1 MiB bodies, no extra host names.
    pub fn new(paths: Paths) -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            paths,
            build_id: homeboy_build::BUILD_ID.to_string(),
            http: HttpOptions::default(),
            log_path: None,
            runner_auth: RunnerAuth::Required,
            jobs: StoreOptions::default(),
            prune: PrunePolicy::default(),
            analysis_concurrency: executor::DEFAULT_CONCURRENCY,
        }
    }
}

/// A bound, recorded daemon that has not started answering yet.
pub struct BoundDaemon {
    listener: tokio::net::TcpListener,
    state: DaemonState,
    app: App,
    paths: Paths,
    store: Arc<RedbJobStore>,
    executor: Executor,
    stopping: watch::Sender<bool>,
    _serve_lock: FileLock,
}

impl BoundDaemon {
    /// What the state file says about this daemon.
    pub fn state(&self) -> &DaemonState {
        &self.state
    }

    /// Answers requests until `shutdown` resolves, lets in-flight requests finish (up to
    /// [`DRAIN_TIMEOUT`]), then removes the state file.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DaemonError> {
        let stopping = self.stopping;
        let shutdown = async move {
            shutdown.await;
            // End event streams and long polls so the drain does not wait for them.
            let _ = stopping.send(true);
        };
        serve_http(self.listener, self.app, shutdown).await;
        // The shutdown signal also stopped the executor from taking jobs; let running ones wind down.
        self.executor.stopped().await;
        let store = self.store;
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
        Ok(state::remove_if_owned(&self.paths, self.state.pid)?)
    }
}

/// How long a stopping daemon waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon's connections on the shared edge: HTTP/1.1 with keep-alive and a graceful drain.
///
/// There is deliberately no header-read timer: the daemon listens on loopback only (a broker on a VPS sits
/// behind the operator's proxy, which owns slow-client protection), and arming a timer for every request
/// costs about 7% of `/health` throughput.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    app: App,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let options = ConnOptions {
        header_read_timeout: None,
        drain_timeout: DRAIN_TIMEOUT,
    };
    let service = move |request, _peer| {
        let app = app.clone();
        async move { app.handle(request).await }
    };
    homeboy_http::serve(listener, options, service, shutdown).await;
}

/// Refuses non-loopback addresses, takes the one-daemon-per-config-dir lock, binds, and writes the state
/// file.
pub async fn bind(options: ServeOptions) -> Result<BoundDaemon, DaemonError> {
    if !is_loopback(&options.addr) {
        return Err(DaemonError::NonLoopbackAddress { addr: options.addr });
    }
    if !options.http.allowed_hosts.is_empty()
        && options.runner_auth == RunnerAuth::AllowUnauthenticatedLoopback
    {
        return Err(DaemonError::UnsafeOptions(
            "--allow-unauthenticated-loopback cannot be combined with --allowed-host: requests \
             through a public proxy arrive on loopback too"
                .into(),
        ));
    }
    let paths = options.paths;
    let serve_lock = match FileLock::try_exclusive(&paths.daemon_dir().join("serve.lock"))? {
        Some(lock) => lock,
        None => {
            let current = state::read(&paths).ok().flatten();
            return Err(DaemonError::AlreadyServing {
                config_dir: paths.config_dir().to_path_buf(),
                pid: current.as_ref().map(|s| s.pid),
                addr: current.map(|s| s.addr),
            });
        }
    };
    let jobs_path = paths.daemon_jobs();
    let job_options = options.jobs;
    let (store, recovery) =
        tokio::task::spawn_blocking(move || RedbJobStore::open(&jobs_path, job_options))
            .await
            .map_err(|e| DaemonError::io("open the job store", std::io::Error::other(e)))?
            .map_err(DaemonError::JobStore)?;
    if recovery.replayed_records > 0
        || !recovery.failed_stale.is_empty()
        || recovery.running_claims > 0
    {
        tracing::info!(
            "job store recovered ({} log records replayed, {} running daemon jobs failed as stale, {} runner claims kept; the log has wrapped {} times)",
            recovery.replayed_records,
            recovery.failed_stale.len(),
            recovery.running_claims,
            recovery.log_wraps
        );
    }
    let store = Arc::new(store);
    let observations_path = paths.observations_store();
    let observations =
        tokio::task::spawn_blocking(move || ObservationStore::open(&observations_path))
            .await
            .map_err(|e| DaemonError::io("open the observation store", std::io::Error::other(e)))?
            .map_err(DaemonError::Observations)?;
    let observations = Arc::new(observations);
    let listener = tokio::net::TcpListener::bind(options.addr)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: options.addr,
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| DaemonError::io("read the bound address", e))?;
    let identity = DaemonIdentity {
        pid: std::process::id(),
        version: homeboy_build::VERSION.to_string(),
        build_id: options.build_id.clone(),
        started_at: homeboy_config::clock::now_rfc3339(),
    };
    let state = DaemonState {
        pid: identity.pid,
        addr: local.to_string(),
        build_id: identity.build_id.clone(),
        version: identity.version.clone(),
        started_at: identity.started_at.clone(),
        log_path: options.log_path,
    };
    let (stopping, stop_signal) = watch::channel(false);
    let jobs = JobsRuntime::attach(store.clone() as Arc<dyn JobStore>, stop_signal);
    jobs.spawn_maintenance(options.prune);
    let executor = Executor::spawn(ExecutorParts {
        jobs: store.clone() as Arc<dyn JobStore>,
        observations: observations.clone(),
        paths: paths.clone(),
        concurrency: options.analysis_concurrency,
        wake: jobs.queue_signal(),
        shutdown: stopping.subscribe(),
    });
    let api = Api::new(identity, paths.clone())
        .with_jobs(store.clone())
        .with_observations(observations)
        .with_runner_auth(options.runner_auth);
    let app = App::new(Arc::new(api), local.port(), &options.http, Some(jobs));
    state::write(&paths, &state)?;
    tracing::info!(
        "homeboy daemon: serving on {} (pid {}, build {})",
        state.addr,
        state.pid,
        state.build_id
    );
    Ok(BoundDaemon {
        listener,
        state,
        app,
        paths,
        store,
        executor,
        stopping,
        _serve_lock: serve_lock,
    })
}

/// Whether `addr` is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped loopback).
pub fn is_loopback(addr: &SocketAddr) -> bool {
    homeboy_config::net::is_loopback_host(&addr.ip().to_string())
}

/// Resolves when the process receives SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    tokio::select! {
        _ = async { match term.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
        _ = async { match int.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending().await } } => {}
    }
}

pub use homeboy_config::net::parse_listen_addr;
