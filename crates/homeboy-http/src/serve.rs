//! The accept loop every homeboy server runs: HTTP/1.1 with keep-alive and upgrades, `TCP_NODELAY`, an idle
//! timeout that also bounds how long request headers may take, and a bounded graceful drain when told to
//! stop. The daemon runs it on its runtime; the ingress and the artifact origin run one per worker
//! ([`crate::workers`]).
//!
//! The idle timeout is ours, not hyper's `header_read_timeout`: hyper arms (and allocates) a timer for every
//! request head it reads, which cost about 7% of keep-alive throughput on the daemon's `/health`. Here each
//! connection counts the requests it has started and the answers still open (two uncontended atomic
//! operations per request, on a counter only its own task touches) and one timer per connection wakes once
//! per period to look at the count. See `docs/decisions/0010-idle-timeout.md`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use http_body::{Frame, SizeHint};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, watch};

/// The idle timeout of a server that faces clients directly (a non-loopback bind).
pub const PUBLIC_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The idle timeout of a loopback server: longer than the idle keep-alive of the reverse proxies that may sit
/// in front of it (nginx 60 s, Caddy 2 min), so the proxy, not this server, ends a quiet pooled connection
/// and never sends a request on one this server is closing. Clients' pools (reqwest: 90 s) stay under it too.
pub const LOOPBACK_IDLE_TIMEOUT: Duration = Duration::from_secs(150);

/// How connections are served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnOptions {
    /// Close a connection that has had no request in progress for this long — an idle keep-alive connection,
    /// or one whose request headers have not all arrived (a slow or stalled client) — after between one and
    /// two times this duration. A request being answered (a long poll, an event stream, a body still being
    /// read) is never cut. `None`: connections may stay open and idle for ever.
    pub idle_timeout: Option<Duration>,
    /// How long a stopping server lets in-flight requests finish.
    pub drain_timeout: Duration,
}

impl ConnOptions {
    /// The idle timeout for a server bound to `addr`: [`LOOPBACK_IDLE_TIMEOUT`] on loopback, else
    /// [`PUBLIC_IDLE_TIMEOUT`].
    pub fn idle_timeout_for(addr: SocketAddr) -> Duration {
        if addr.ip().is_loopback() {
            LOOPBACK_IDLE_TIMEOUT
        } else {
            PUBLIC_IDLE_TIMEOUT
        }
    }
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            idle_timeout: Some(LOOPBACK_IDLE_TIMEOUT),
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// What one connection is doing: requests started (high 32 bits, wrapping) and answers open (low 32 bits).
/// Only the connection's own task touches it, so the atomic operations are uncontended.
#[derive(Default)]
struct Activity(AtomicU64);

const STARTED: u64 = 1 << 32;

impl Activity {
    /// A request head was read: counts it and holds it open until the returned guard is dropped (with the
    /// response body, or with the handler's future when the client goes away first).
    fn begin(self: &Arc<Self>) -> Open {
        self.0.fetch_add(STARTED + 1, Ordering::Relaxed);
        Open(self.clone())
    }

    fn snapshot(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// An open answer; dropping it closes it.
struct Open(Arc<Activity>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its answer open until hyper drops it, after the last byte is written.
    /// Everything else — frames, the end, the size hint hyper writes `Content-Length` from — is the inner
    /// body's.
    struct Counted<B> {
        #[pin]
        inner: B,
        open: Open,
    }
}

impl<B: Body> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves once the connection has been idle (no answer open, no request started) for one whole `period`:
/// checked once per period, so an idle connection is noticed between one and two periods after it went
/// quiet.
async fn idle_for(activity: &Activity, period: Duration) {
    let mut last = activity.snapshot();
    let tick = tokio::time::sleep(period);
    tokio::pin!(tick);
    loop {
        tick.as_mut().await;
        let now = activity.snapshot();
        // Equal snapshots with nothing open: nothing started or ended during the whole period.
        if now == last && now as u32 == 0 {
            return;
        }
        last = now;
        tick.as_mut().reset(tokio::time::Instant::now() + period);
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
    // hyper's own header timer stays off (see the module doc); the idle watch below bounds header reads.
    builder.header_read_timeout(None).keep_alive(true);
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
        let activity = Arc::new(Activity::default());
        let counted = activity.clone();
        let hyper_service = service_fn(move |request: Request<Incoming>| {
            let open = counted.begin();
            let answer = service(request, peer);
            async move {
                let response = answer.await;
                Ok::<_, Infallible>(response.map(|inner| Counted { inner, open }))
            }
        });
        let connection = builder
            .serve_connection(TokioIo::new(stream), hyper_service)
            .with_upgrades();
        let (alive, mut stop_signal) = (alive.clone(), stop_signal.clone());
        let idle_timeout = options.idle_timeout;
        tokio::spawn(async move {
            let _alive = alive;
            tokio::pin!(connection);
            let idle = async {
                match idle_timeout {
                    Some(period) => idle_for(&activity, period).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = connection.as_mut() => {}
                // Idle, or headers unfinished, for too long: dropping the connection closes the socket.
                () = idle => {}
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::time::Instant;

    const PERIOD: Duration = Duration::from_millis(500);
    /// Room for a loaded machine (CI shares two cores with builds): scheduling delays between the server
    /// noticing and the client reading.
    const SLACK: Duration = Duration::from_millis(1500);

    /// Whether `after` is within the promise: at least one period, at most two (plus slack).
    fn within_bound(after: Duration) -> bool {
        after + Duration::from_millis(100) >= PERIOD && after < 2 * PERIOD + SLACK
    }

    /// A server with a 500 ms idle timeout: `/slow` answers after two seconds (four periods).
    async fn server() -> (SocketAddr, watch::Sender<bool>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, mut stop_rx) = watch::channel(false);
        let options = ConnOptions {
            idle_timeout: Some(PERIOD),
            drain_timeout: Duration::from_secs(1),
        };
        let service = |request: Request<Incoming>, _peer| async move {
            if request.uri().path() == "/slow" {
                tokio::time::sleep(4 * PERIOD).await;
            }
            Response::new(Full::new(Bytes::from_static(b"ok")))
        };
        tokio::spawn(serve(listener, options, service, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        }));
        (addr, stop_tx)
    }

    /// Reads until the server closes the connection (bounded by 10 s); returns what came and when.
    async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Instant) {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let read = async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("the server never closed the connection");
        (got, Instant::now())
    }

    async fn one_request(stream: &mut TcpStream, path: &str) -> String {
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"\r\n\r\nok") {
            let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
                .await
                .expect("an answer in time")
                .unwrap();
            assert_ne!(n, 0, "closed before answering {path}");
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(got).unwrap();
        // The body's size reaches hyper through the edge's wrapper: a length, never chunked framing.
        assert!(text.contains("content-length: 2\r\n"), "{text}");
        text
    }

    #[tokio::test]
    async fn silent_half_sent_and_trickling_clients_are_closed_within_two_periods() {
        let (addr, _stop) = server().await;
        // Silent from the start.
        let began = Instant::now();
        let mut silent = TcpStream::connect(addr).await.unwrap();
        let (got, closed) = until_closed(&mut silent).await;
        assert!(got.is_empty());
        let after = closed - began;
        assert!(within_bound(after), "{after:?}");

        // Headers half sent, then nothing.
        let began = Instant::now();
        let mut half = TcpStream::connect(addr).await.unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let (got, closed) = until_closed(&mut half).await;
        assert!(got.is_empty(), "{got:?}");
        assert!(within_bound(closed - began), "{:?}", closed - began);

        // A byte every 50 ms never completes the head: still closed in time.
        let began = Instant::now();
        let mut trickle = TcpStream::connect(addr).await.unwrap();
        let closed = loop {
            if trickle.write_all(b"X").await.is_err() {
                break Instant::now();
            }
            let mut buf = [0u8; 16];
            match tokio::time::timeout(Duration::from_millis(50), trickle.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => break Instant::now(),
                Ok(Ok(_)) => panic!("an answer to half a request head"),
                Err(_) => {}
            }
            assert!(began.elapsed() < Duration::from_secs(10), "never closed");
        };
        assert!(within_bound(closed - began), "{:?}", closed - began);
    }

    #[tokio::test]
    async fn keep_alive_requests_and_slow_answers_are_never_cut() {
        let (addr, _stop) = server().await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        // Busy for more than three periods with a request every 100 ms: one connection throughout.
        let began = Instant::now();
        while began.elapsed() < 4 * PERIOD {
            assert!(
                one_request(&mut stream, "/")
                    .await
                    .starts_with("HTTP/1.1 200")
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // An answer that takes four periods arrives.
        assert!(
            one_request(&mut stream, "/slow")
                .await
                .starts_with("HTTP/1.1 200")
        );
        // Then idle: closed within two periods.
        let quiet = Instant::now();
        let (got, closed) = until_closed(&mut stream).await;
        assert!(got.is_empty());
        let after = closed - quiet;
        assert!(within_bound(after), "{after:?}");
    }
}
