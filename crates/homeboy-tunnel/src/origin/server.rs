//! `artifact-origin serve`: bind (loopback unless `--allow-public-bind`), then answer HTTP/1.1 with
//! keep-alive until the shutdown future resolves, letting in-flight responses finish for a bounded time.
//!
//! Threading: one worker thread per core, each with its own single-threaded tokio runtime and its own
//! `SO_REUSEPORT` listening socket on the same address, so the kernel spreads connections over the workers
//! and a request never hops between threads (the nginx worker model). The calling thread only waits for
//! the shutdown future and then tells the workers to drain.

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

use homeboy_config::net::is_loopback_host;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
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
    let bind_error =
        |addr: SocketAddr| move |e: std::io::Error| TunnelError::Bind { addr, source: e };
    // The first socket resolves port 0; the others join it on the same address.
    let first = reuseport_listener(options.bind).map_err(bind_error(options.bind))?;
    let addr = first.local_addr().map_err(bind_error(options.bind))?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(reuseport_listener(addr).map_err(bind_error(addr))?);
    }
    Ok(BoundOrigin {
        listeners,
        addr,
        root,
        backend,
    })
}

/// A non-blocking listening socket with `SO_REUSEPORT` (and `SO_REUSEADDR`, for quick restarts).
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let socket = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&socket, true)?;
    sockopt::set_socket_reuseport(&socket, true)?;
    rustix::net::bind(&socket, &addr)?;
    rustix::net::listen(&socket, 1024)?;
    Ok(TcpListener::from(socket))
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
        let mut workers = Vec::new();
        for (i, listener) in self.listeners.into_iter().enumerate() {
            let stop = stop_rx.clone();
            let root = self.root.clone();
            let backend = self.backend.clone();
            let worker = std::thread::Builder::new()
                .name(format!("origin-{i}"))
                .spawn(move || worker(listener, root, backend, stop))
                .map_err(|source| TunnelError::Spawn {
                    what: "an origin worker thread".into(),
                    source,
                })?;
            workers.push(worker);
        }
        let waiter = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| TunnelError::Spawn {
                what: "the origin's signal runtime".into(),
                source,
            })?;
        waiter.block_on(shutdown);
        let _ = stop_tx.send(true);
        for worker in workers {
            let _ = worker.join();
        }
        Ok(())
    }
}

/// One worker: a single-threaded runtime serving its own listener until told to stop.
fn worker(
    listener: TcpListener,
    root: PathBuf,
    backend: RootedBackend,
    stop: watch::Receiver<bool>,
) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async move {
        let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
            return;
        };
        accept_loop(listener, root, backend, stop).await;
    });
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    root: PathBuf,
    backend: RootedBackend,
    mut stop: watch::Receiver<bool>,
) {
    let service = origin_service(root, backend);
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(_) => {
                    // Out of descriptors or a reset before accept: back off briefly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = stop.wait_for(|stopped| *stopped) => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let hyper_service =
            service_fn(move |request: hyper::Request<Incoming>| service.clone().oneshot(request));
        let connection =
            graceful.watch(builder.serve_connection(TokioIo::new(stream), hyper_service));
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {}
    }
}
