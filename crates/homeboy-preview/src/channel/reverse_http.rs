//! The reverse-HTTP transport, ingress side: the preview client dials the ingress and upgrades each
//! connection (`GET /preview/client/connect`, `Upgrade: homeboy-preview-http1`); from then on the ingress is
//! the HTTP/1.1 *client* on that connection and the preview client the server. The ingress keeps the
//! upgraded connections in a [`Pool`] and sends each public request on an idle one, so bodies stream as
//! bytes in both directions with HTTP's own flow control, without JSON, base64 or a round trip per request.
//! The client keeps a few spare connections open and dials more as they get busy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use hyper::upgrade::Upgraded;
use hyper::{Request, Response};
use tokio::time::Instant;

use super::Transport;
use super::wire;
use crate::body::ProxyBody;
use crate::pool::{ForwardError, Pools, describe};

/// The upgraded connections of one session.
pub struct ReverseHttp {
    pools: Pools,
    connections: Arc<AtomicUsize>,
    used: AtomicBool,
    closed: AtomicBool,
}

impl Default for ReverseHttp {
    fn default() -> Self {
        Self::new()
    }
}

impl ReverseHttp {
    pub fn new() -> Self {
        ReverseHttp {
            pools: Pools::new(1024),
            connections: Arc::new(AtomicUsize::new(0)),
            used: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        }
    }

    /// Takes over an upgraded connection: the ingress speaks HTTP/1.1 as the client on it.
    pub async fn attach(&self, upgraded: Upgraded) {
        if self.closed.load(Ordering::Acquire) {
            return;
        }
        let Ok((sender, conn)) = hyper::client::conn::http1::handshake(upgraded).await else {
            return;
        };
        self.used.store(true, Ordering::Release);
        let connections = self.connections.clone();
        connections.fetch_add(1, Ordering::AcqRel);
        tokio::spawn(async move {
            let _ = conn.await;
            connections.fetch_sub(1, Ordering::AcqRel);
        });
        self.pools.local().put(sender);
    }

    /// Open connections (idle or busy).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    async fn forward_inner(
        &self,
        mut req: Request<ProxyBody>,
        wait: Duration,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let deadline = Instant::now() + wait;
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(ForwardError::Failed(
                    "the preview client closed the session".into(),
                ));
            }
            let Some((sender, pool)) = self.pools.checkout().await else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ForwardError::Timeout(format!(
                        "no connection of the preview client became free within {wait:?}"
                    )));
                }
                self.pools
                    .wait_for_put(left.min(Duration::from_millis(250)))
                    .await;
                continue;
            };
            match tokio::time::timeout_at(deadline, pool.send(sender, req)).await {
                Err(_) => {
                    return Err(ForwardError::Timeout(format!(
                        "the preview client did not answer within {wait:?}"
                    )));
                }
                Ok(Ok(response)) => return Ok(response),
                Ok(Err(mut e)) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(ForwardError::Failed(describe(e.error()))),
                },
            }
        }
    }
}

impl Transport for ReverseHttp {
    fn name(&self) -> &'static str {
        wire::TRANSPORT_REVERSE_HTTP
    }

    fn forward<'a>(
        &'a self,
        _request_id: &'a str,
        req: Request<ProxyBody>,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Response<ProxyBody>, ForwardError>> {
        Box::pin(self.forward_inner(req, wait))
    }

    fn attached(&self) -> bool {
        self.connections() > 0
    }

    fn in_use(&self) -> bool {
        self.used.load(Ordering::Acquire)
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.pools.clear();
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::json!({
            "connections": self.connections(),
            "idle_connections": self.pools.idle_count(),
        })
    }
}
