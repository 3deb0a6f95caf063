//! The accept loop every homeboy server runs: HTTP/1.1 with keep-alive and upgrades, `TCP_NODELAY`, an
//! optional header-read timeout, and a bounded graceful drain when told to stop. The daemon runs it on its
//! runtime; the ingress and the artifact origin run one per worker ([`crate::workers`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{mpsc, watch};

/// How connections are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnOptions {
    /// Close a connection whose request headers take longer than this to arrive (slow-client protection).
    /// `None`: the server is behind a proxy that owns slow-client protection, or on loopback only.
    pub header_read_timeout: Option<Duration>,
    /// How long a stopping server lets in-flight requests finish.
    pub drain_timeout: Duration,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            header_read_timeout: None,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Accepts connections on `listener` and answers each request with `service(request, peer)` until `stop`
/// resolves; then stops accepting and lets open connections finish, for at most `drain_timeout`.
pub async fn serve<S, F, B>(
    listener: tokio::net::TcpListener,
    options: ConnOptions,
    service: S,
    stop: impl Future<Output = ()>,
) where
    S: Fn(Request<Incoming>, SocketAddr) -> F + Clone + Send + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    // Every connection task holds a sender; the drain waits until they are all gone.
    let (alive, mut all_gone) = mpsc::channel::<()>(1);
    let (stopping, stop_signal) = watch::channel(false);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(stop);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors or a connection reset before accept: back off briefly.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        let hyper_service = service_fn(move |request: Request<Incoming>| {
            let answer = service(request, peer);
            async move { Ok::<_, Infallible>(answer.await) }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), hyper_service)
            .with_upgrades();
        let (alive, mut stop_signal) = (alive.clone(), stop_signal.clone());
        tokio::spawn(async move {
            let _alive = alive;
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = async { let _ = stop_signal.wait_for(|stop| *stop).await; } => {
                    // Finish the request in flight, then close; idle keep-alive connections close now.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    drop(alive);
    let _ = tokio::time::timeout(options.drain_timeout, all_gone.recv()).await;
}
