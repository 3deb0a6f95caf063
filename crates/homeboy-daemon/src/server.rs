//! `homeboy daemon serve`: bind loopback, record the state file, answer until told to stop (or, with an
//! idle timeout, until nothing happened for that long), clean up.
//!
//! One daemon serves a config dir's default state (`daemon/`); a daemon started with `per_address` keeps
//! its state file, locks, job store and log under `daemon/<host>-<port>/` instead, so several run side by
//! side. Either way `serve.lock` in that directory makes it one daemon per directory.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use homeboy_config::Paths;
use homeboy_config::broker_auth::CredentialStore;
use homeboy_jobs::{JobStore, PrunePolicy, RedbJobStore, StoreOptions};
use homeboy_jobs_pg::{PgJobStore, PgOptions};
use homeboy_observations::ObservationStore;
use homeboy_service::{Api, DaemonIdentity, LocalViews, RunnerAuth};

use homeboy_config::daemon_state::{self as state, DaemonState};
use homeboy_config::lock::FileLock;
use homeboy_http::ConnOptions;
use tokio::sync::watch;

use crate::DaemonError;
use crate::executor::{self, Executor, ExecutorParts};
use crate::http::{App, HttpOptions};
use crate::jobs_runtime::JobsRuntime;
use crate::liveness::{self, Activity, Watchers};

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
    /// Where jobs (and, on PostgreSQL, runner credentials and sessions) live.
    pub store: StoreChoice,
    /// What is kept of finished jobs.
    pub prune: PrunePolicy,
    /// Analysis jobs run at once.
    pub analysis_concurrency: usize,
    /// Keep state, locks, job store and log under `daemon/<host>-<port>/` (needs a port).
    pub per_address: bool,
    /// Exit cleanly after this long with no requests, no queued or running jobs and no busy watched work.
    pub idle_timeout: Option<Duration>,
    /// Work the daemon watches over (cleaned at start, reaped, asked before idling out).
    pub watchers: Watchers,
    /// Managed services and preview sessions (`GET /tunnel/*`), when the binary reads them.
    pub local_views: Option<Arc<dyn LocalViews>>,
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
            store: StoreChoice::Redb,
            prune: PrunePolicy::default(),
            analysis_concurrency: executor::DEFAULT_CONCURRENCY,
            per_address: false,
            idle_timeout: None,
            watchers: Watchers::default(),
            local_views: None,
        }
    }
}

/// Where the daemon keeps its jobs.
#[derive(Debug, Clone)]
pub enum StoreChoice {
    /// The embedded redb store in the data dir (the default); credentials in `<config>/broker_auth.json`.
    Redb,
    /// A PostgreSQL database several brokers may share; runner credentials and sessions live there too.
    /// `PgOptions::store` is replaced by [`ServeOptions::jobs`].
    Postgres(Box<PgOptions>),
}

impl StoreChoice {
    /// How the store is shown in a status line or log (never with a password).
    pub fn describe(&self, paths: &Paths) -> String {
        match self {
            StoreChoice::Redb => paths.daemon_jobs().display().to_string(),
            StoreChoice::Postgres(options) => options.dsn.to_string(),
        }
    }
}

/// The opened job store, and the credential store when it is the same database.
struct OpenedStore {
    jobs: Arc<dyn JobStore>,
    credentials: Option<Arc<dyn CredentialStore>>,
    /// Run on a blocking thread when the daemon stops (redb flushes and stops its writer; a database
    /// has committed everything already).
    close: Closer,
}

type Closer = Box<dyn FnOnce() + Send>;

/// Opens the chosen job store on a blocking thread and logs what recovery did.
async fn open_store(
    choice: StoreChoice,
    paths: &Paths,
    job_options: StoreOptions,
) -> Result<OpenedStore, DaemonError> {
    let jobs_path = paths.daemon_jobs();
    let opened = tokio::task::spawn_blocking(move || match choice {
        StoreChoice::Redb => {
            RedbJobStore::open(&jobs_path, job_options).map(|(store, recovery)| {
                let store = Arc::new(store);
                let closing = store.clone();
                (
                    OpenedStore {
                        jobs: store,
                        credentials: None,
                        close: Box::new(move || closing.close()),
                    },
                    recovery,
                )
            })
        }
        StoreChoice::Postgres(mut options) => {
            options.store = job_options;
            PgJobStore::open(*options).map(|(store, recovery)| {
                let store = Arc::new(store);
                (
                    OpenedStore {
                        jobs: store.clone(),
                        credentials: Some(store),
                        close: Box::new(|| {}),
                    },
                    recovery,
                )
            })
        }
    })
    .await
    .map_err(|e| DaemonError::io("open the job store", std::io::Error::other(e)))?
    .map_err(DaemonError::JobStore)?;
    let (store, recovery) = opened;
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
    Ok(store)
}

/// A bound, recorded daemon that has not started answering yet.
pub struct BoundDaemon {
    listener: tokio::net::TcpListener,
    state: DaemonState,
    app: App,
    idle_timeout: Option<Duration>,
    paths: Paths,
    close_store: Closer,
    executor: Executor,
    stopping: watch::Sender<bool>,
    activity: Arc<Activity>,
    /// `--idle-timeout`: stop after this long with nothing to do (`idle_timeout` is per connection).
    idle_shutdown: Option<Duration>,
    jobs: Arc<dyn JobStore>,
    watchers: Watchers,
    _serve_lock: FileLock,
}

impl BoundDaemon {
    /// What the state file says about this daemon.
    pub fn state(&self) -> &DaemonState {
        &self.state
    }

    /// Answers requests until `shutdown` resolves (or the idle timeout passes), lets in-flight requests
    /// finish (up to [`DRAIN_TIMEOUT`]), then removes the state file.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), DaemonError> {
        let stopping = self.stopping;
        self.watchers.spawn_reaper(stopping.subscribe());
        let idle = self.idle_shutdown.map(|timeout| {
            let jobs = self.jobs.clone();
            let expired =
                liveness::idle_expired(timeout, self.activity.clone(), jobs, self.watchers.clone());
            (timeout, expired)
        });
        let shutdown = async move {
            match idle {
                Some((timeout, expired)) => tokio::select! {
                    () = shutdown => {}
                    () = expired => tracing::info!(
                        "idle for {}: no requests, no queued or running jobs, no managed services; stopping",
                        humantime::format_duration(timeout)
                    ),
                },
                None => shutdown.await,
            }
            // End event streams and long polls so the drain does not wait for them.
            let _ = stopping.send(true);
        };
        serve_http(self.listener, self.app, self.idle_timeout, shutdown).await;
        // The shutdown signal also stopped the executor from taking jobs; let running ones wind down.
        self.executor.stopped().await;
        let _ = tokio::task::spawn_blocking(self.close_store).await;
        Ok(state::remove_if_owned(&self.paths, self.state.pid)?)
    }
}

/// How long a stopping daemon waits for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The daemon's connections on the shared edge: HTTP/1.1 with keep-alive, the edge's idle timeout (a
/// connection with no request in progress — idle, or with its headers unfinished — is closed after
/// `idle_timeout` to twice that; `None` never) and a graceful drain.
pub async fn serve_http(
    listener: tokio::net::TcpListener,
    app: App,
    idle_timeout: Option<Duration>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let options = ConnOptions {
        idle_timeout,
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
    let paths = if options.per_address {
        if options.addr.port() == 0 {
            return Err(DaemonError::UnsafeOptions(
                "a daemon kept apart per address needs --addr with a port (not 0)".into(),
            ));
        }
        options.paths.for_daemon_at(options.addr)
    } else {
        options.paths
    };
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
    let store_shown = options.store.describe(&paths);
    let opened = open_store(options.store, &paths, options.jobs).await?;
    let store = opened.jobs;
    // Records a reboot left behind would name processes that are not ours any more.
    let watchers = options.watchers;
    let cleaner = watchers.clone();
    let _ = tokio::task::spawn_blocking(move || cleaner.clean_stale()).await;
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
        process_started: homeboy_process::start_time(identity.pid),
    };
    let (stopping, stop_signal) = watch::channel(false);
    let jobs = JobsRuntime::attach(store.clone(), stop_signal);
    jobs.spawn_maintenance(options.prune);
    let executor = Executor::spawn(ExecutorParts {
        jobs: store.clone(),
        observations: observations.clone(),
        paths: paths.clone(),
        concurrency: options.analysis_concurrency,
        wake: jobs.queue_signal(),
        shutdown: stopping.subscribe(),
    });
    let mut api = Api::new(identity, paths.clone())
        .with_jobs(store.clone())
        .with_observations(observations)
        .with_runner_auth(options.runner_auth);
    if let Some(views) = options.local_views {
        api = api.with_local_views(views);
    }
    if let Some(credentials) = opened.credentials {
        api = api.with_credentials(credentials);
    }
    let app = App::new(Arc::new(api), local.port(), &options.http, Some(jobs));
    let activity = app.activity();
    state::write(&paths, &state)?;
    tracing::info!(
        "homeboy daemon: serving on {} (pid {}, build {}, job store {store_shown})",
        state.addr,
        state.pid,
        state.build_id
    );
    Ok(BoundDaemon {
        listener,
        state,
        app,
        idle_timeout: options.http.idle_timeout,
        paths,
        close_store: opened.close,
        executor,
        stopping,
        activity,
        idle_shutdown: options.idle_timeout,
        jobs: store.clone(),
        watchers,
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
