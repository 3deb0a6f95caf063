//! `GET /_homeboy/preview-ingress/status`: the running ingress's routes with their live state, preview
//! clients' connections, counters and the most recent failures (bounded), as an envelope.
//!
//! On the ingress's own hosts the whole table is shown; on a public preview host only that host's route,
//! so a browser can smoke-check DNS, TLS and the proxy without learning the other sessions.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::Ingress;
use crate::body::{self, ProxyBody};
use crate::clock;
use crate::routes::{RouteState, RouteStatus};

/// The status route.
pub const STATUS_PATH: &str = "/_homeboy/preview-ingress/status";

pub fn respond(ingress: &Arc<Ingress>, host: &str) -> Response<ProxyBody> {
    let data = if ingress.is_control_host(host) {
        full_status(ingress)
    } else {
        host_status(ingress, host)
    };
    let bytes = serde_json::to_vec(&homeboy_api::success_body(data)).unwrap_or_default();
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn full_status(ingress: &Arc<Ingress>) -> Value {
    let table = ingress.routes.table();
    let mut routes: Vec<Value> = table
        .values()
        .map(|e| route_view(ingress, &e.record))
        .collect();
    routes.sort_by(|a, b| a["session_id"].as_str().cmp(&b["session_id"].as_str()));
    let failures: Vec<Value> = ingress
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .map(|f| json!(f))
        .collect();
    json!({
        "ingress": {
            "domain": ingress.options.domain,
            "addr": ingress.addr.to_string(),
            "public_host_patterns": ingress.patterns,
            "control_hosts": ingress.control_hosts,
            "started_at": ingress.started_at,
            "pid": std::process::id(),
            "version": env!("CARGO_PKG_VERSION"),
            "draining": ingress.draining.load(Ordering::Acquire),
            "in_flight": ingress.in_flight.load(Ordering::Acquire),
            "requests": ingress.requests.load(Ordering::Relaxed),
            "failures": ingress.failed.load(Ordering::Relaxed),
            "routes_dir": ingress.routes.store().dir().display().to_string(),
        },
        "routes": routes,
        "recent_failures": failures,
    })
}

fn host_status(ingress: &Arc<Ingress>, host: &str) -> Value {
    let route = ingress
        .routes
        .lookup(host)
        .map(|e| route_view(ingress, &e.record));
    let state = route
        .as_ref()
        .and_then(|r| r["state"].as_str().map(str::to_string))
        .unwrap_or_else(|| "missing".into());
    json!({"host": host, "state": state, "route": route})
}

/// A route with its live state: a reverse-channel route whose client is gone counts as disconnected.
fn route_view(ingress: &Arc<Ingress>, record: &crate::routes::RouteRecord) -> Value {
    let mut state = record.state_at(clock::now());
    let session = ingress
        .session(&record.public_host)
        .filter(|s| s.session_id == record.session_id && !s.is_closed());
    let mut view = json!(RouteStatus::of(record, state));
    if record.channel.is_some() {
        let connected = session
            .as_ref()
            .is_some_and(|s| s.connected(ingress.options.client_grace));
        if state == RouteState::Active && !connected {
            state = RouteState::Disconnected;
        }
        view["state"] = json!(state);
        view["connected"] = json!(connected);
        if let Some(session) = session {
            let transport = session.transport();
            view["channel"] = json!({
                "transport": transport.name(),
                "stats": transport.stats(),
                "local_origin": session.local_origin(),
                "silent_for_ms": session.silent_for().as_millis() as u64,
            });
        }
    }
    view
}
