//! The ingress side of a preview client's reverse channel: one [`ChannelSession`] per granted public host,
//! and the transports that carry public requests to the client behind one small [`Transport`] trait.
//!
//! Routing and auth know only the session; the session forwards through whichever transport the client
//! uses: the JSON long-poll of the wire contract ([`long_poll`], the fallback for proxies that refuse
//! upgrades), or the multiplexed channel ([`mux`]: HTTP/2 over one upgraded connection), the default. The
//! per-request reverse-HTTP connection pool that preceded the multiplexed channel is retired. [`wire`] holds
//! the JSON both sides speak.

pub mod long_poll;
pub mod mux;
pub mod wire;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use homeboy_config::secrets::token_matches_digest;
use hyper::header::HeaderValue;
use hyper::{Request, Response};
use time::OffsetDateTime;

use crate::body::ProxyBody;
use crate::pool::ForwardError;

/// A way of carrying public requests to a connected preview client.
pub trait Transport: Send + Sync {
    /// The transport's name in status output (`long-poll`, `mux`).
    fn name(&self) -> &'static str;
    /// Forwards one prepared request (origin-form URI, final headers) and returns the client's response,
    /// or why there is none within `wait` (the upstream timeout).
    fn forward<'a>(
        &'a self,
        request_id: &'a str,
        req: Request<ProxyBody>,
        wait: Duration,
    ) -> BoxFuture<'a, Result<Response<ProxyBody>, ForwardError>>;
    /// Forwards a request that asks to switch to `protocol` (WebSocket, any HTTP/1.1 `Upgrade`). Its body
    /// is the browser's bytes after the switch. The answer is `101` marked with
    /// [`crate::splice::Switched`] when the local origin switched (its body is then the origin's bytes),
    /// or the origin's ordinary answer. Transports that cannot carry a switch say so.
    fn upgrade<'a>(
        &'a self,
        _request_id: &'a str,
        _req: Request<ProxyBody>,
        _protocol: HeaderValue,
        _wait: Duration,
    ) -> BoxFuture<'a, Result<Response<ProxyBody>, ForwardError>> {
        let name = self.name();
        Box::pin(async move {
            Err(ForwardError::Failed(format!(
                "the preview client uses the {name} transport, which cannot carry upgrades \
                 (WebSocket); the multiplexed channel (--transport mux) can"
            )))
        })
    }
    /// Whether the client is attached right now (a parked poll, an open connection).
    fn attached(&self) -> bool;
    /// Whether the client has used this transport during the session.
    fn in_use(&self) -> bool;
    /// Ends the transport: waiting requests fail, parked polls return.
    fn close(&self);
    /// Counters for status output.
    fn stats(&self) -> serde_json::Value;
}

/// Who holds a session: the policy service, the token entry and the client id that were granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub service_id: String,
    pub token_id: Option<String>,
    pub client_id: String,
}

/// What a new session is made of.
pub struct NewSession {
    pub public_host: String,
    pub session_id: String,
    pub channel_id: String,
    pub owner: Owner,
    /// The digest of the token that was granted (if any).
    pub token_sha256: Option<String>,
    pub local_origin: String,
    pub lease_expires_at: OffsetDateTime,
    /// The client declared the multiplexed transport.
    pub mux: bool,
    /// How long requests wait for a client that is reconnecting.
    pub client_grace: Duration,
}

/// One granted public host with a live (or recently live) preview client.
pub struct ChannelSession {
    pub public_host: String,
    pub session_id: String,
    pub channel_id: String,
    pub owner: Owner,
    token_sha256: Option<String>,
    local_origin: Mutex<String>,
    lease_expires_unix: AtomicI64,
    closed: AtomicBool,
    mux_declared: AtomicBool,
    epoch: Instant,
    last_seen_ms: AtomicU64,
    pub long_poll: long_poll::LongPoll,
    pub mux: mux::Mux,
}

impl ChannelSession {
    /// A new session.
    pub fn new(spec: NewSession) -> Arc<Self> {
        let session = Arc::new(ChannelSession {
            public_host: spec.public_host,
            session_id: spec.session_id,
            channel_id: spec.channel_id,
            owner: spec.owner,
            token_sha256: spec.token_sha256,
            local_origin: Mutex::new(spec.local_origin),
            lease_expires_unix: AtomicI64::new(spec.lease_expires_at.unix_timestamp()),
            closed: AtomicBool::new(false),
            mux_declared: AtomicBool::new(spec.mux),
            epoch: Instant::now(),
            last_seen_ms: AtomicU64::new(0),
            long_poll: long_poll::LongPoll::new(),
            mux: mux::Mux::new(spec.client_grace),
        });
        session.touch();
        session
    }

    /// Whether a presented bearer token is the one this session was granted with (constant time).
    pub fn token_ok(&self, presented: Option<&str>) -> bool {
        match (&self.token_sha256, presented) {
            (None, _) => true,
            (Some(digest), Some(token)) => token_matches_digest(token, digest),
            (Some(_), None) => false,
        }
    }

    /// Extends the lease (a renewal by the same owner).
    pub fn renew(&self, lease_expires_at: OffsetDateTime, local_origin: &str, mux: bool) {
        self.mux_declared.store(mux, Ordering::Release);
        self.lease_expires_unix
            .store(lease_expires_at.unix_timestamp(), Ordering::Release);
        *self.local_origin.lock().unwrap_or_else(|p| p.into_inner()) = local_origin.to_string();
        self.touch();
    }

    /// The client's local origin as it reported it.
    pub fn local_origin(&self) -> String {
        self.local_origin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the lease has ended at `now`.
    pub fn lease_expired(&self, now: OffsetDateTime) -> bool {
        self.lease_expires_unix.load(Ordering::Acquire) <= now.unix_timestamp()
    }

    /// Records client activity.
    pub fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_seen_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since the client was last heard from.
    pub fn silent_for(&self) -> Duration {
        let last = self.last_seen_ms.load(Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(last))
    }

    /// Whether the client counts as connected: attached now, or heard from (or its channel connection
    /// seen) within `grace`.
    pub fn connected(&self, grace: Duration) -> bool {
        !self.is_closed()
            && (self.long_poll.attached()
                || self.silent_for() <= grace
                || self.mux.silent_for() <= grace)
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Ends the session: parked polls return, waiting requests fail, connections close.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.long_poll.close();
        self.mux.close();
    }

    /// The transport carrying this session's requests: the multiplexed channel when the client declared
    /// it (requests wait for its connection) or opened one, else the long-poll queue.
    pub fn transport(&self) -> &dyn Transport {
        if self.mux_declared.load(Ordering::Acquire) || self.mux.in_use() {
            &self.mux
        } else {
            &self.long_poll
        }
    }
}
