//! A pool of idle HTTP/1.1 client connections to one peer, and the plain-HTTP upstream that dials into it.
//!
//! [`Pools`] keeps one idle list per worker thread ([`homeboy_http::workers`]): a request takes a connection of its
//! own worker when there is one (its connection task runs on the same thread), else one of another worker.
//!
//! The same pool serves the ingress's direct upstream routes, the preview client's connections to its
//! local origin, and the reverse-HTTP channel (whose connections are dialled by the client and handed to
//! the pool instead). A connection goes back to the pool as its response body reaches its end (no task per
//! request); a request that never reached a stale connection is retried on a fresh one.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::TrySendError;
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::Notify;

use crate::body::{BoxError, ProxyBody};
use crate::host::Origin;

/// How long a checked-out connection may take to become ready before another one is tried.
const READY_WAIT: Duration = Duration::from_millis(20);

/// A sender on one pooled connection.
pub type Sender = SendRequest<ProxyBody>;

/// Idle connections to one peer (of one worker).
pub struct Pool {
    idle: Mutex<Vec<Sender>>,
    returned: Arc<Notify>,
    max_idle: usize,
}

impl Pool {
    /// A pool keeping at most `max_idle` idle connections.
    pub fn new(max_idle: usize) -> Arc<Self> {
        Self::with_notify(max_idle, Arc::new(Notify::new()))
    }

    fn with_notify(max_idle: usize, returned: Arc<Notify>) -> Arc<Self> {
        Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            returned,
            max_idle,
        })
    }

    fn pop(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    /// An idle connection that is ready for a request, if there is one. Closed ones are dropped; one that is
    /// still finishing its last exchange (an upload the upstream answered early) is left to finish in the
    /// background and another is tried.
    pub async fn checkout(self: &Arc<Self>) -> Option<Sender> {
        while let Some(mut sender) = self.pop() {
            match sender.ready().now_or_never() {
                Some(Ok(())) => return Some(sender),
                Some(Err(_)) => continue,
                None => {}
            }
            match tokio::time::timeout(READY_WAIT, sender.ready()).await {
                Ok(Ok(())) => return Some(sender),
                Ok(Err(_)) => continue,
                Err(_) => {
                    let pool = self.clone();
                    tokio::spawn(async move {
                        if sender.ready().await.is_ok() {
                            pool.put(sender);
                        }
                    });
                }
            }
        }
        None
    }

    /// Hands a connection to the pool (a fresh one, or one that is ready again) and wakes one waiter.
    pub fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() >= self.max_idle {
                return; // Dropping the sender closes the connection.
            }
            idle.push(sender);
        }
        self.returned.notify_one();
    }

    /// Number of idle connections.
    pub fn idle_count(&self) -> usize {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Drops every idle connection (closing them).
    pub fn clear(&self) {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.returned.notify_waiters();
    }

    /// Waits until a connection is put back (or `limit` passes).
    pub async fn wait_for_put(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.returned.notified()).await;
    }

    /// Sends `req` on `sender`. The connection returns to this pool when the response body reaches its end
    /// (a body dropped early closes it instead).
    pub async fn send(
        self: &Arc<Self>,
        mut sender: Sender,
        req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, TrySendError<Request<ProxyBody>>> {
        let response = sender.try_send_request(req).await?;
        let pool = self.clone();
        Ok(response.map(|inner| {
            Returning {
                inner,
                sender: Some(sender),
                pool,
            }
            .boxed()
        }))
    }
}

/// One [`Pool`] per worker, sharing one wake-up for waiters.
pub struct Pools {
    pools: Box<[Arc<Pool>]>,
    returned: Arc<Notify>,
}

impl Pools {
    /// Pools for every worker, each keeping at most `max_idle` idle connections.
    pub fn new(max_idle: usize) -> Self {
        let returned = Arc::new(Notify::new());
        Pools {
            pools: (0..homeboy_http::workers::count())
                .map(|_| Pool::with_notify(max_idle, returned.clone()))
                .collect(),
            returned,
        }
    }

    /// The calling worker's pool.
    pub fn local(&self) -> &Arc<Pool> {
        &self.pools[homeboy_http::workers::current() % self.pools.len()]
    }

    /// A ready idle connection and the pool it belongs to: the calling worker's first, then the others'.
    pub async fn checkout(&self) -> Option<(Sender, Arc<Pool>)> {
        let own = homeboy_http::workers::current() % self.pools.len();
        for k in 0..self.pools.len() {
            let pool = &self.pools[(own + k) % self.pools.len()];
            if let Some(sender) = pool.checkout().await {
                return Some((sender, pool.clone()));
            }
        }
        None
    }

    /// Waits until a connection is put into any of the pools (or `limit` passes).
    pub async fn wait_for_put(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, self.returned.notified()).await;
    }

    /// Idle connections over all workers.
    pub fn idle_count(&self) -> usize {
        self.pools.iter().map(|p| p.idle_count()).sum()
    }

    /// Closes every idle connection.
    pub fn clear(&self) {
        for pool in self.pools.iter() {
            pool.clear();
        }
    }
}

/// A response body that hands its connection back to the pool when it ends.
struct Returning {
    inner: Incoming,
    sender: Option<Sender>,
    pool: Arc<Pool>,
}

impl Returning {
    fn give_back(&mut self) {
        if let Some(sender) = self.sender.take() {
            self.pool.put(sender);
        }
    }
}

impl Body for Returning {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.sender = None,
            _ => {}
        }
        polled.map(|frame| frame.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if self.inner.is_end_stream() {
            self.give_back();
        }
    }
}

/// Why a forwarded request got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardError {
    /// The peer did not answer in time (connect or response headers).
    Timeout(String),
    /// The peer refused, reset or broke the exchange before a response.
    Failed(String),
}

impl ForwardError {
    pub fn message(&self) -> &str {
        match self {
            ForwardError::Timeout(m) | ForwardError::Failed(m) => m,
        }
    }
}

/// A plain-HTTP origin reached over pooled keep-alive TCP connections.
pub struct Upstream {
    origin: Origin,
    pools: Pools,
    connect_timeout: Duration,
}

impl Upstream {
    /// An upstream for `origin` (must be `http://`).
    pub fn new(origin: Origin, connect_timeout: Duration) -> Self {
        Upstream {
            origin,
            pools: Pools::new(256),
            connect_timeout,
        }
    }

    /// The origin.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// Sends a prepared request (origin-form URI, final headers), retrying on a fresh connection when a
    /// pooled one turned out to be closed before the request was written.
    pub async fn send(
        &self,
        mut req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        for _ in 0..3 {
            let (sender, pool) = match self.pools.checkout().await {
                Some(found) => found,
                None => (self.dial().await?, self.pools.local().clone()),
            };
            match pool.send(sender, req).await {
                Ok(response) => return Ok(response),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(ForwardError::Failed(describe(e.error()))),
                },
            }
        }
        Err(ForwardError::Failed(
            "the upstream closed every connection before the request was sent".into(),
        ))
    }

    /// A new connection (not taken from the pool). A request on it may switch protocols (`Upgrade`); a
    /// connection that did is never pooled.
    pub async fn dial(&self) -> Result<Sender, ForwardError> {
        let target = (self.origin.host.as_str(), self.origin.port);
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(target),
        )
        .await
        {
            Err(_) => {
                return Err(ForwardError::Timeout(format!(
                    "connecting to {} timed out after {:?}",
                    self.origin.url(),
                    self.connect_timeout
                )));
            }
            Ok(Err(e)) => {
                return Err(ForwardError::Failed(format!(
                    "connecting to {} failed: {e}",
                    self.origin.url()
                )));
            }
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ForwardError::Failed(describe(&e)))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }
}

/// A hyper error with its causes, on one line.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
