//! The multiplexed channel: one connection per preview client, dialled by the client and upgraded
//! (`GET /preview/client/connect`, `Upgrade: homeboy-preview-h2`), on which the ingress speaks HTTP/2 as the
//! client and the preview client answers as the server. Every public request is its own HTTP/2 stream, so
//! bodies stream both ways with per-stream flow control, a browser that goes away resets its stream (and
//! the client drops its local request), and an upgrade (WebSocket) is a stream whose request and response
//! bodies carry the two directions after the switch ([`wire::HEADER_UPGRADE_REQUEST`]). HTTP/2 is the
//! multiplexer (hyper and the `h2` crate); see `docs/decisions/0007-preview-mux-channel.md`.
//!
//! This module holds the settings both ends use ([`client_builder`], [`server_builder`]) and the ingress
//! side, [`Mux`]: the session's current connection, replaced when the client reconnects. A request that
//! arrives while the client is away waits for it up to the grace period, then fails (the ingress answers
//! `410 disconnected_session` or `502`). Keepalive pings on both ends find a dead connection in seconds.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use hyper::client::conn::http2::SendRequest;
use hyper::header::{self, HeaderValue};
use hyper::http::uri::{Authority, Scheme};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Transport;
use super::wire;
use crate::body::{self, ProxyBody};
use crate::pool::{ForwardError, describe};
use crate::splice::Switched;

/// Receive window of one stream. One stream moves at most a window per round trip: 8 MiB carries about
/// 160 MB/s at a 50 ms round trip (a default 64 KiB window would cap it near 1.3 MB/s).
pub const STREAM_WINDOW: u32 = 8 * 1024 * 1024;
/// Receive window of the whole connection, shared by its streams.
pub const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;
/// Largest DATA frame either end accepts: a bulk transfer costs a frame (and a wake-up of the task that
/// reads it) per 64 KiB rather than per 16 KiB, while a connection's read buffer stays that small.
pub const MAX_FRAME: u32 = 64 * 1024;
/// Streams one channel carries at once (requests beyond it wait for a free stream).
pub const MAX_STREAMS: u32 = 8192;
/// Bytes of one stream's body queued for sending before the body is read further.
pub const SEND_BUFFER: usize = 1024 * 1024;
/// Largest header block of one request or response (what a browser or an origin may send over HTTP/1.1).
pub const MAX_HEADERS: u32 = 256 * 1024;
/// Keepalive ping interval, and how long a ping may go unanswered, unless configured otherwise: a dead
/// channel is noticed within twice this.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(5);

/// The HTTP/2 client settings of the ingress's end.
pub fn client_builder(keepalive: Duration) -> hyper::client::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .initial_max_send_streams(MAX_STREAMS as usize)
        .max_send_buf_size(SEND_BUFFER)
        .max_header_list_size(MAX_HEADERS)
        .max_concurrent_reset_streams(MAX_STREAMS as usize)
        .keep_alive_interval(keepalive)
        .keep_alive_timeout(keepalive)
        .keep_alive_while_idle(true);
    b
}

/// The HTTP/2 server settings of the preview client's end.
pub fn server_builder(keepalive: Duration) -> hyper::server::conn::http2::Builder<TokioExecutor> {
    let mut b = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .max_concurrent_streams(MAX_STREAMS)
        .max_send_buf_size(SEND_BUFFER)
        .max_header_list_size(MAX_HEADERS)
        // Browsers that go away reset their streams; many at once is normal here, not an attack.
        .max_pending_accept_reset_streams(MAX_STREAMS as usize)
        .keep_alive_interval(keepalive)
        .keep_alive_timeout(keepalive)
        .auto_date_header(false);
    b
}

struct State {
    sender: Option<SendRequest<ProxyBody>>,
    generation: u64,
    /// When the last connection ended (or the session began, before the first one).
    detached_at: Instant,
}

struct Shared {
    grace: Duration,
    state: Mutex<State>,
    attached: Notify,
    used: AtomicBool,
    closed: AtomicBool,
    open_streams: AtomicUsize,
    streams: AtomicU64,
    attaches: AtomicU64,
}

/// The multiplexed channel of one session, ingress side.
pub struct Mux(Arc<Shared>);

impl Mux {
    /// A channel with no connection yet; requests wait for one up to `grace`.
    pub fn new(grace: Duration) -> Self {
        Mux(Arc::new(Shared {
            grace,
            state: Mutex::new(State {
                sender: None,
                generation: 0,
                detached_at: Instant::now(),
            }),
            attached: Notify::new(),
            used: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            open_streams: AtomicUsize::new(0),
            streams: AtomicU64::new(0),
            attaches: AtomicU64::new(0),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes over an upgraded connection as the session's channel (replacing an older one, whose streams
    /// in flight still finish), speaking HTTP/2 as the client on it.
    pub async fn attach(&self, upgraded: Upgraded, keepalive: Duration) {
        if self.0.closed.load(Ordering::Acquire) {
            return;
        }
        let Ok((sender, conn)) = client_builder(keepalive)
            .handshake::<_, ProxyBody>(upgraded)
            .await
        else {
            return;
        };
        let generation = {
            let mut state = self.state();
            if self.0.closed.load(Ordering::Acquire) {
                return;
            }
            state.generation += 1;
            state.sender = Some(sender);
            state.generation
        };
        self.0.used.store(true, Ordering::Release);
        self.0.attaches.fetch_add(1, Ordering::Relaxed);
        self.0.attached.notify_waiters();
        let shared = self.0.clone();
        tokio::spawn(async move {
            let _ = conn.await;
            Mux(shared).detach(generation);
        });
    }

    /// Forgets connection `generation` (it ended), unless a newer one replaced it.
    fn detach(&self, generation: u64) {
        let mut state = self.state();
        if state.generation == generation && state.sender.is_some() {
            state.sender = None;
            state.detached_at = Instant::now();
        }
    }

    /// Time since the channel had a connection (zero while it has one).
    pub fn silent_for(&self) -> Duration {
        let state = self.state();
        match &state.sender {
            Some(sender) if !sender.is_closed() => Duration::ZERO,
            _ => state.detached_at.elapsed(),
        }
    }

    async fn send(
        &self,
        mut req: Request<ProxyBody>,
        wait: Duration,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        absolute_uri(&mut req);
        let deadline = Instant::now() + wait;
        let shared = &self.0;
        loop {
            if shared.closed.load(Ordering::Acquire) {
                return Err(ForwardError::Failed(
                    "the preview client closed the session".into(),
                ));
            }
            let attached = shared.attached.notified();
            tokio::pin!(attached);
            attached.as_mut().enable();
            let (current, detached_at) = {
                let state = self.state();
                let current = state
                    .sender
                    .as_ref()
                    .filter(|s| !s.is_closed())
                    .map(|s| (s.clone(), state.generation));
                (current, state.detached_at)
            };
            let Some((mut sender, generation)) = current else {
                // The client is away: wait for it up to the grace period (and the response timeout).
                let back_by = detached_at + shared.grace;
                let now = Instant::now();
                if now >= deadline {
                    return Err(ForwardError::Timeout(format!(
                        "the preview client's channel connection did not open within {wait:?}"
                    )));
                }
                if now >= back_by {
                    return Err(ForwardError::Failed(format!(
                        "the preview client's channel is down and did not come back within {:?}",
                        shared.grace
                    )));
                }
                let _ = tokio::time::timeout_at(deadline.min(back_by), attached).await;
                continue;
            };
            let stream = OpenStream::enter(shared);
            match tokio::time::timeout_at(deadline, sender.try_send_request(req)).await {
                Err(_) => {
                    return Err(ForwardError::Timeout(format!(
                        "the preview client did not answer within {wait:?}"
                    )));
                }
                Ok(Ok(response)) => {
                    shared.streams.fetch_add(1, Ordering::Relaxed);
                    return Ok(response.map(|inner| {
                        body::boxed(body::Observed::new(body::boxed(inner), move |_, _| {
                            drop(stream)
                        }))
                    }));
                }
                Ok(Err(mut e)) => match e.take_message() {
                    Some(unsent) => {
                        // The connection is ending (closed, or going away after GOAWAY) and the request
                        // never left: take no more requests on it, wait for the client's next one.
                        req = unsent;
                        self.detach(generation);
                    }
                    None => return Err(ForwardError::Failed(describe(e.error()))),
                },
            }
        }
    }
}

/// Counts a stream as open until dropped (with its response body).
struct OpenStream(Arc<Shared>);

impl OpenStream {
    fn enter(shared: &Arc<Shared>) -> Self {
        shared.open_streams.fetch_add(1, Ordering::Relaxed);
        OpenStream(shared.clone())
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open_streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// HTTP/2 names the target in `:scheme` and `:authority`: the public host, from `Host`.
fn absolute_uri(req: &mut Request<ProxyBody>) {
    let authority = req
        .headers_mut()
        .remove(header::HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .unwrap_or_else(|| Authority::from_static("preview"));
    let mut parts = std::mem::take(req.uri_mut()).into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority);
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some("/".parse().expect("a path"));
    }
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("http://preview/"));
}

impl Transport for Mux {
    fn name(&self) -> &'static str {
        wire::TRANSPORT_MUX
    }

    fn forward<'a>(
        &'a self,
        _request_id: &'a str,
        mut req: Request<ProxyBody>,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Response<ProxyBody>, ForwardError>> {
        // Only the ingress marks a stream as an upgrade; a browser cannot.
        req.headers_mut().remove(wire::HEADER_UPGRADE_REQUEST);
        Box::pin(async move {
            let mut response = self.send(req, wait).await?;
            response.headers_mut().remove(wire::HEADER_UPGRADED);
            Ok(response)
        })
    }

    fn upgrade<'a>(
        &'a self,
        _request_id: &'a str,
        mut req: Request<ProxyBody>,
        protocol: HeaderValue,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Response<ProxyBody>, ForwardError>> {
        req.headers_mut()
            .insert(wire::HEADER_UPGRADE_REQUEST, protocol);
        Box::pin(async move {
            let mut response = self.send(req, wait).await?;
            if let Some(switched) = response.headers_mut().remove(wire::HEADER_UPGRADED) {
                *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                response.extensions_mut().insert(Switched(switched));
            }
            Ok(response)
        })
    }

    fn attached(&self) -> bool {
        self.silent_for().is_zero()
    }

    fn in_use(&self) -> bool {
        self.0.used.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.0.closed.store(true, Ordering::Release);
        self.state().sender = None;
        self.0.attached.notify_waiters();
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "connections": usize::from(self.attached()),
            "open_streams": self.0.open_streams.load(Ordering::Relaxed),
            "streams": self.0.streams.load(Ordering::Relaxed),
            "connects": self.0.attaches.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_name_the_public_host() {
        let mut req = Request::new(body::empty());
        *req.uri_mut() = Uri::from_static("/a/b?c=1");
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("run-1.preview.test"));
        absolute_uri(&mut req);
        assert_eq!(req.uri(), "http://run-1.preview.test/a/b?c=1");
        assert!(req.headers().get(header::HOST).is_none());
    }

    #[tokio::test]
    async fn requests_wait_for_a_connection_then_fail_after_the_grace() {
        let mux = Mux::new(Duration::from_millis(200));
        let began = Instant::now();
        let err = mux
            .forward("r", Request::new(body::empty()), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, ForwardError::Failed(_)), "{err:?}");
        assert!(began.elapsed() >= Duration::from_millis(150));
        assert!(began.elapsed() < Duration::from_secs(4));
        let err = mux
            .forward("r", Request::new(body::empty()), Duration::ZERO)
            .await
            .unwrap_err();
        assert!(matches!(err, ForwardError::Timeout(_)), "{err:?}");
        mux.close();
        assert!(mux.stats()["connections"] == 0);
    }
}
