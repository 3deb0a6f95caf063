//! Protocol switches on public hosts: a browser's WebSocket (or any HTTP/1.1 `Upgrade`) request, after the
//! same route, lease and session checks as every other request, goes to the route's upstream on a
//! connection of its own, or over the preview client's multiplexed channel as one stream. When the far side
//! answers `101`, the browser gets the `101` with the far side's headers and the bytes are spliced both
//! ways ([`crate::splice`]); any other answer is passed on as an ordinary response.

use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::upgrade::OnUpgrade;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::body::{self, ProxyBody};
use crate::channel::Transport;
use crate::pool::{ForwardError, Upstream};
use crate::splice::{self, Switch, Switched};

/// Chunks of the browser's bytes queued for the channel before reading from the browser pauses.
const QUEUED_CHUNKS: usize = 4;

/// A browser's request to switch protocols, with a hold on its connection for after the `101`.
pub struct Upgrade {
    protocol: HeaderValue,
    browser: OnUpgrade,
}

impl Upgrade {
    /// The switch `req` asks for, if it asks for one (see [`splice::requested_upgrade`]).
    pub fn take(req: &mut Request<Incoming>) -> Option<Upgrade> {
        let protocol = splice::requested_upgrade(req.headers())?;
        Some(Upgrade {
            protocol,
            browser: hyper::upgrade::on(req),
        })
    }

    /// Over a direct route: the prepared request (hop-by-hop headers already gone) asks the upstream for
    /// the same switch on a new connection.
    pub async fn direct(
        self,
        upstream: &Upstream,
        req: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let (mut head, io) =
            match splice::request_switch(upstream, req, self.protocol.clone()).await? {
                Switch::Answered(response) => return Ok(response.map(body::boxed)),
                Switch::Switched { head, io } => (head, io),
            };
        let protocol = head
            .headers
            .get(header::UPGRADE)
            .cloned()
            .unwrap_or(self.protocol);
        let browser = self.browser;
        tokio::spawn(async move {
            if let Ok(browser) = browser.await {
                splice::connections(TokioIo::new(browser), TokioIo::new(io)).await;
            }
        });
        head.extensions.insert(Switched(protocol));
        Ok(Response::from_parts(head, body::empty()))
    }

    /// Over a preview client's channel: one stream whose request body carries the browser's bytes and
    /// whose response body carries the origin's, once the origin switched.
    pub async fn channel(
        self,
        transport: &dyn Transport,
        request_id: &str,
        req: Request<ProxyBody>,
        wait: Duration,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        let (browser_bytes, tunnel) = body::channel(None, QUEUED_CHUNKS);
        let req = req.map(|_| tunnel);
        let response = transport
            .upgrade(request_id, req, self.protocol, wait)
            .await?;
        if response.status() != StatusCode::SWITCHING_PROTOCOLS {
            return Ok(response);
        }
        let (parts, origin_bytes) = response.into_parts();
        let browser = self.browser;
        tokio::spawn(async move {
            if let Ok(browser) = browser.await {
                splice::with_bodies(TokioIo::new(browser), origin_bytes, browser_bytes).await;
            }
        });
        Ok(Response::from_parts(parts, body::empty()))
    }
}
