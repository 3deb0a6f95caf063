//! The ingress's metrics, answered as `GET /metrics` where the ingress serves its own API (`--domain`,
//! `--control-host`, loopback names asked locally); on a preview host `/metrics` is the preview's own page
//! and is proxied like any path.
//!
//! - `homeboy_ingress_requests_total{route, status}`: requests by route kind — `direct` and the channel
//!   transports (`mux`, `long-poll`) for public requests sent on to an upstream (its failures
//!   included), `ingress` for public requests that had nowhere to go (missing, expired or disconnected
//!   session, draining), `control`, `status` and `metrics` for the ingress's own API — and response status;
//! - `homeboy_ingress_response_bytes_total{route}`: body bytes sent back to browsers;
//! - `homeboy_ingress_channel_clients`: preview clients connected right now (refreshed when scraped).
//!
//! The public request path counts in one place ([`IngressMetrics::request`], called where the access log
//! line is written), so a request is counted exactly once, when its body ended.

use std::sync::Arc;

use homeboy_http::metrics::prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use hyper::Response;

use super::Ingress;
use crate::body::{self, ProxyBody};

/// The ingress's metric families.
pub struct IngressMetrics {
    registry: Registry,
    requests: IntCounterVec,
    bytes: IntCounterVec,
    channel_clients: IntGauge,
}

impl Default for IngressMetrics {
    fn default() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "homeboy_ingress_requests_total",
                "Requests by route kind and response status",
            ),
            &["route", "status"],
        )
        .expect("valid counter");
        homeboy_http::metrics::register(&registry, requests.clone());
        let bytes = IntCounterVec::new(
            Opts::new(
                "homeboy_ingress_response_bytes_total",
                "Response body bytes sent, by route kind",
            ),
            &["route"],
        )
        .expect("valid counter");
        homeboy_http::metrics::register(&registry, bytes.clone());
        let channel_clients = IntGauge::new(
            "homeboy_ingress_channel_clients",
            "Preview clients connected over a reverse channel",
        )
        .expect("valid gauge");
        homeboy_http::metrics::register(&registry, channel_clients.clone());
        IngressMetrics {
            registry,
            requests,
            bytes,
            channel_clients,
        }
    }
}

impl IngressMetrics {
    /// Counts one finished request of route kind `route`.
    pub fn request(&self, route: &str, status: u16, bytes: u64) {
        self.requests
            .with_label_values(&[route, &status.to_string()])
            .inc();
        if bytes > 0 {
            self.bytes.with_label_values(&[route]).inc_by(bytes);
        }
    }
}

/// `GET /metrics` of `ingress` (the caller checked the host).
pub fn respond(ingress: &Arc<Ingress>) -> Response<ProxyBody> {
    let grace = ingress.options.client_grace;
    let connected = ingress
        .sessions
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter(|s| !s.is_closed() && s.connected(grace))
        .count();
    let metrics = &ingress.metrics;
    metrics
        .channel_clients
        .set(i64::try_from(connected).unwrap_or(i64::MAX));
    metrics.request("metrics", 200, 0);
    homeboy_http::metrics::response(&metrics.registry).map(body::boxed)
}
