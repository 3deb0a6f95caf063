//! `GET /_homeboy/preview-ingress/status`: the running ingress's routes with their live state, preview
//! clients' connections, counters and the most recent failures (bounded), as an envelope.
//!
//! On the ingress's own hosts the whole table is shown; on a public preview host only that host's route,
//! so a browser can smoke-check DNS, TLS and the proxy without learning the other sessions. The server's
//! filesystem layout (`routes_dir`) is shown only to requests that name a loopback host (the operator on the
//! machine), never through the public control host.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use homeboy_config::net::is_loopback_host;
use hyper::Response;
use hyper::header::{self, HeaderValue};
use serde_json::{Value, json};

use super::Ingress;
use crate::body::{self, ProxyBody};
use crate::clock;
use crate::routes::{RouteState, RouteStatus};

/// The status route.
pub const STATUS_PATH: &str = "/_homeboy/preview-ingress/status";

pub fn respond(ingress: &Arc<Ingress>, host: &str) -> Response<ProxyBody> {
    let data = if ingress.is_control_host(host) {
        full_status(ingress, is_loopback_host(host))
    } else {
        host_status(ingress, host)
    };
    let mut response = homeboy_http::success_response(&data).map(body::boxed);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn full_status(ingress: &Arc<Ingress>, on_the_machine: bool) -> Value {
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
    let mut status = json!({
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
        },
        "routes": routes,
        "recent_failures": failures,
    });
    if on_the_machine {
        status["ingress"]["routes_dir"] = json!(ingress.routes.store().dir().display().to_string());
    }
    status
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingress::{AccessLog, IngressOptions, bind};
    use http_body_util::BodyExt;

    async fn status_text(ingress: &Arc<Ingress>, host: &str) -> String {
        let body = respond(ingress, host).into_body().collect().await.unwrap();
        String::from_utf8(body.to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_public_control_host_never_sees_server_paths() {
        let dir = tempfile::tempdir().unwrap();
        let paths = homeboy_config::Paths::at(dir.path().join("config"), dir.path().join("data"));
        let mut options = IngressOptions::new("preview.test", paths);
        options.bind = "127.0.0.1:0".parse().unwrap();
        let ingress = bind(options, AccessLog::stderr()).unwrap().ingress;
        let secret_path = dir.path().display().to_string();

        let public = status_text(&ingress, "preview.test").await;
        assert!(public.contains("\"routes\""), "{public}");
        assert!(!public.contains(&secret_path), "{public}");
        assert!(!public.contains("routes_dir"), "{public}");

        let local = status_text(&ingress, "127.0.0.1").await;
        assert!(
            local.contains("routes_dir") && local.contains(&secret_path),
            "{local}"
        );
    }
}
