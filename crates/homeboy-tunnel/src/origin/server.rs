//! `artifact-origin serve`: bind (loopback unless `--allow-public-bind`), then answer HTTP/1.1 with
//! keep-alive until the shutdown future resolves, letting in-flight responses finish for a bounded time.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use homeboy_config::net::is_loopback_host;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
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
}

/// A bound origin that has not started answering yet.
pub struct BoundOrigin {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
    root: PathBuf,
    backend: RootedBackend,
}

/// Checks the bind policy and the root, then binds.
pub async fn bind(
    config: &OriginConfig,
    options: &ServeOptions,
) -> Result<BoundOrigin, TunnelError> {
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
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|source| TunnelError::Bind {
            addr: options.bind,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| TunnelError::io("read the bound address of", &root, e))?;
    Ok(BoundOrigin {
        listener,
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
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// Answers requests until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let service = origin_service(self.root, self.backend);
        let graceful = GracefulShutdown::new();
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder.keep_alive(true);
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => stream,
                    Err(_) => {
                        // Out of descriptors or a reset before accept: back off briefly.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
                () = &mut shutdown => break,
            };
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            let hyper_service = service_fn(move |request: hyper::Request<Incoming>| {
                service.clone().oneshot(request)
            });
            let connection =
                graceful.watch(builder.serve_connection(TokioIo::new(stream), hyper_service));
            tokio::spawn(async move {
                let _ = connection.await;
            });
        }
        drop(self.listener);
        tokio::select! {
            () = graceful.shutdown() => {}
            () = tokio::time::sleep(DRAIN_TIMEOUT) => {}
        }
    }
}
