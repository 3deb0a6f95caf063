//! `artifact-origin serve`: bind (loopback unless `--allow-public-bind`), then answer HTTP/1.1 with
//! keep-alive until the shutdown future resolves, letting in-flight responses finish for a bounded time.
//!
//! Threading: the shared edge's workers (`homeboy_http::workers`) — one single-threaded runtime per core, each
//! with its own `SO_REUSEPORT` socket and accept loop (`homeboy_http::serve`), so a request never hops
//! between threads (the nginx worker model). The calling thread only waits for the shutdown future and then
//! tells the workers to drain.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use homeboy_config::net::is_loopback_host;
use homeboy_http::ConnOptions;
use hyper::body::Incoming;
use tokio::sync::watch;
use tower::ServiceExt;

use super::OriginConfig;
use super::backend::RootedBackend;
use super::http::origin_service;
use crate::TunnelError;

/// How long a stopping origin lets in-flight responses finish.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// How to serve.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub bind: SocketAddr,
    /// The operator's explicit choice to listen beyond loopback (behind their TLS proxy).
    pub allow_public_bind: bool,
    /// Worker threads; `None` means one per available core.
    pub workers: Option<usize>,
}

/// A bound origin that has not started answering yet.
pub struct BoundOrigin {
    listeners: Vec<TcpListener>,
    addr: SocketAddr,
    root: PathBuf,
    backend: RootedBackend,
}

/// Checks the bind policy and the root, then binds one listening socket per worker.
pub fn bind(config: &OriginConfig, options: &ServeOptions) -> Result<BoundOrigin, TunnelError> {
    if !options.allow_public_bind && !is_loopback_host(&options.bind.ip().to_string()) {
        return Err(TunnelError::NonLoopbackBind { addr: options.bind });
    }
    let root = std::fs::canonicalize(&config.root).map_err(|_| {
        TunnelError::invalid(
            "artifact root",
            format!(
                "{} does not exist (create it, or set HOMEBOY_ARTIFACT_ROOT)",
                config.root.display()
            ),
        )
    })?;
    let backend = RootedBackend::new(&root)
        .map_err(|e| TunnelError::io("open the artifact root", &root, e))?;
    let workers = options
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let listeners =
        homeboy_http::workers::reuseport_listeners(options.bind, workers).map_err(|source| {
            TunnelError::Bind {
                addr: options.bind,
                source,
            }
        })?;
    let addr = listeners[0]
        .local_addr()
        .map_err(|source| TunnelError::Bind {
            addr: options.bind,
            source,
        })?;
    Ok(BoundOrigin {
        listeners,
        addr,
        root,
        backend,
    })
}

impl BoundOrigin {
    /// The address actually bound (port 0 resolved).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The canonical root being served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Answers requests on the worker threads until `shutdown` resolves (awaited on the calling thread),
    /// then drains them.
    pub fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), TunnelError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let count = self.listeners.len();
        let listeners: Vec<Mutex<Option<TcpListener>>> = self
            .listeners
            .into_iter()
            .map(|l| Mutex::new(Some(l)))
            .collect();
        let (root, backend) = (self.root, self.backend);
        let workers = std::thread::Builder::new()
            .name("origin-workers".into())
            .spawn(move || {
                homeboy_http::workers::run(count, move |i| {
                    let listener = listeners[i]
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .take();
                    let (root, backend, stop) = (root.clone(), backend.clone(), stop_rx.clone());
                    async move {
                        if let Some(listener) =
                            listener.and_then(|l| tokio::net::TcpListener::from_std(l).ok())
                        {
                            accept_loop(listener, root, backend, stop).await;
                        }
                    }
                })
            })
            .map_err(|source| TunnelError::Spawn {
                what: "the origin's worker threads".into(),
                source,
            })?;
        let waiter = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| TunnelError::Spawn {
                what: "the origin's signal runtime".into(),
                source,
            })?;
        waiter.block_on(shutdown);
        let _ = stop_tx.send(true);
        let _ = workers.join();
        Ok(())
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    root: PathBuf,
    backend: RootedBackend,
    mut stop: watch::Receiver<bool>,
) {
    let service = origin_service(root, backend);
    let options = ConnOptions {
        // Idle and half-sent connections are closed: sooner on a public bind, which faces clients directly.
        idle_timeout: listener
            .local_addr()
            .ok()
            .map(ConnOptions::idle_timeout_for),
        drain_timeout: DRAIN_TIMEOUT,
    };
    let answer = move |request: hyper::Request<Incoming>, _peer| {
        let service = service.clone();
        async move {
            match service.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    let stop = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    homeboy_http::serve(listener, options, answer, stop).await;
}
