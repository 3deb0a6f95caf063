//! `GET /_homeboy/preview-ingress/status`: the running ingress's routes with their live state, preview
//! clients' connections, counters and the most recent failures (bounded), as an envelope around the
//! contract's `IngressStatus` (or `HostStatus` on a public preview host); and `GET /openapi.json`, the
//! OpenAPI document of the control API, on the ingress's own hosts.
//!
//! On the ingress's own hosts the whole table is shown; on a public preview host only that host's route,
//! so a browser can smoke-check DNS, TLS and the proxy without learning the other sessions. The server's
//! filesystem layout (`routes_dir`) is shown only to local requests (a loopback `Host` and no proxy header:
//! the operator on the machine), never through the public control host, and never to a request that came
//! through the proxy naming `Host: 127.0.0.1` — that one sees the public view of host `127.0.0.1`.
//!
//! The route list is paginated (`?limit=` up to [`homeboy_api::paging::MAX_PAGE`], default
//! [`DEFAULT_PAGE`]; `?cursor=` the `next_cursor` of the previous page), in session id order, with
//! `routes_total`: the table is bounded by the session caps, but not small.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use homeboy_api::ApiError;
use homeboy_api::preview::{
    ChannelStatus, HostStatus, IngressFailure, IngressInfo, IngressRoute, IngressStatus,
};
use hyper::Response;
use hyper::header::{self, HeaderValue};
use serde_json::{Value, json};

use super::Ingress;
use crate::body::{self, ProxyBody};
use crate::clock;
use crate::routes::{RouteState, route_status};

/// The status route.
pub const STATUS_PATH: &str = "/_homeboy/preview-ingress/status";
/// The OpenAPI document of the ingress's control API (its own hosts only).
pub const OPENAPI_PATH: &str = "/openapi.json";

/// `GET /openapi.json`: the ingress's part of the contract (`homeboy_api::openapi`), built once.
pub fn openapi() -> Response<ProxyBody> {
    static DOCUMENT: std::sync::OnceLock<bytes::Bytes> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        let document = homeboy_api::openapi::document_for(homeboy_api::openapi::Server::Ingress);
        serde_json::to_vec(&document).unwrap_or_default().into()
    });
    homeboy_http::json_response(200, document.clone()).map(body::boxed)
}
/// Routes per status page unless `?limit=` says otherwise.
pub const DEFAULT_PAGE: usize = 100;

/// One page of the route list: at most `limit` routes whose session id sorts after `cursor`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Page {
    limit: usize,
    cursor: Option<String>,
}

impl Page {
    fn parse(query: Option<&str>) -> Result<Page, ApiError> {
        let mut page = Page {
            limit: DEFAULT_PAGE,
            cursor: None,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "limit" => {
                    page.limit = value
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=homeboy_api::paging::MAX_PAGE as usize).contains(n))
                        .ok_or_else(|| {
                            ApiError::invalid_argument(
                                "limit",
                                format!(
                                    "must be a number from 1 to {}",
                                    homeboy_api::paging::MAX_PAGE
                                ),
                            )
                        })?;
                }
                "cursor" => page.cursor = Some(value.to_string()),
                _ => {}
            }
        }
        Ok(page)
    }
}

/// The status as `host` sees it; `local` as [`super::is_local`] decided; `query` the page asked for.
pub fn respond(
    ingress: &Arc<Ingress>,
    host: &str,
    local: bool,
    query: Option<&str>,
) -> Response<ProxyBody> {
    let data = if ingress.serves_control(host, local) {
        match Page::parse(query) {
            Ok(page) => full_status(ingress, local, &page),
            Err(error) => return homeboy_http::error_response(&error).map(body::boxed),
        }
    } else {
        host_status(ingress, host)
    };
    let mut response = homeboy_http::success_response(&data).map(body::boxed);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn full_status(ingress: &Arc<Ingress>, on_the_machine: bool, page: &Page) -> Value {
    let table = ingress.routes.table();
    let mut records: Vec<&crate::routes::RouteRecord> = table.values().map(|e| &e.record).collect();
    records.sort_by(|a, b| a.session_id.cmp(&b.session_id));
    let total = records.len();
    let after = records.iter().filter(|r| {
        page.cursor
            .as_deref()
            .is_none_or(|c| r.session_id.as_str() > c)
    });
    let mut routes: Vec<IngressRoute> = Vec::new();
    let mut next_cursor = None;
    for record in after {
        if routes.len() == page.limit {
            next_cursor = routes.last().map(|r| r.route.session_id.clone());
            break;
        }
        routes.push(route_view(ingress, record));
    }
    let recent_failures: Vec<IngressFailure> = ingress
        .failures
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .rev()
        .cloned()
        .collect();
    let status = IngressStatus {
        ingress: IngressInfo {
            domain: ingress.options.domain.clone(),
            addr: ingress.addr.to_string(),
            public_host_patterns: ingress.patterns.clone(),
            control_hosts: ingress.control_hosts.clone(),
            started_at: ingress.started_at.clone(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            draining: ingress.draining.load(Ordering::Acquire),
            in_flight: ingress.in_flight.load(Ordering::Acquire),
            requests: ingress.requests.load(Ordering::Relaxed),
            failures: ingress.failed.load(Ordering::Relaxed),
            routes_dir: on_the_machine.then(|| ingress.routes.store().dir().display().to_string()),
        },
        routes,
        routes_total: total,
        next_cursor,
        recent_failures,
    };
    json!(status)
}

fn host_status(ingress: &Arc<Ingress>, host: &str) -> Value {
    let route = ingress
        .routes
        .lookup(host)
        .map(|e| route_view(ingress, &e.record));
    let state = route
        .as_ref()
        .map_or("missing", |r| r.route.state.as_str())
        .to_string();
    json!(HostStatus {
        host: host.to_string(),
        state,
        route,
    })
}

/// A route with its live state: a reverse-channel route whose client is gone counts as disconnected.
fn route_view(ingress: &Arc<Ingress>, record: &crate::routes::RouteRecord) -> IngressRoute {
    let mut state = record.state_at(clock::now());
    let session = ingress
        .session(&record.public_host)
        .filter(|s| s.session_id == record.session_id && !s.is_closed());
    let mut view = IngressRoute {
        route: route_status(record, state),
        connected: None,
        channel: None,
    };
    if record.channel.is_some() {
        let connected = session
            .as_ref()
            .is_some_and(|s| s.connected(ingress.options.client_grace));
        if state == RouteState::Active && !connected {
            state = RouteState::Disconnected;
        }
        view.route.state = state;
        view.connected = Some(connected);
        if let Some(session) = session {
            let transport = session.transport();
            view.channel = Some(ChannelStatus {
                transport: transport.name().to_string(),
                stats: match transport.stats() {
                    Value::Object(stats) => stats,
                    _ => Default::default(),
                },
                local_origin: session.local_origin().to_string(),
                silent_for_ms: session.silent_for().as_millis() as u64,
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

    /// An ingress for `preview.test` with its state under `dir`, bound but not serving.
    fn test_ingress(dir: &std::path::Path) -> Arc<Ingress> {
        let paths = homeboy_config::Paths::at(dir.join("config"), dir.join("data"));
        let mut options = IngressOptions::new("preview.test", paths);
        options.bind = "127.0.0.1:0".parse().unwrap();
        bind(options, AccessLog::stderr()).unwrap().ingress
    }

    async fn status_text(ingress: &Arc<Ingress>, host: &str) -> String {
        status_with(ingress, host, &hyper::HeaderMap::new()).await
    }

    async fn status_with(ingress: &Arc<Ingress>, host: &str, headers: &hyper::HeaderMap) -> String {
        let local = crate::ingress::is_local(headers, host);
        let body = respond(ingress, host, local, None)
            .into_body()
            .collect()
            .await
            .unwrap();
        String::from_utf8(body.to_bytes().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_public_control_host_never_sees_server_paths() {
        let dir = tempfile::tempdir().unwrap();
        let ingress = test_ingress(dir.path());
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

    #[tokio::test]
    async fn the_route_list_is_paginated() {
        let dir = tempfile::tempdir().unwrap();
        let ingress = test_ingress(dir.path());
        let store = ingress.routes.store();
        for i in 0..5 {
            store
                .put(&crate::routes::RouteRecord {
                    session_id: format!("s{i}"),
                    public_host: format!("s{i}.preview.test"),
                    upstream_origin: "http://127.0.0.1:9".into(),
                    expires_at: None,
                    active: true,
                    created_at: None,
                    updated_at: None,
                    channel: None,
                })
                .unwrap();
        }
        ingress.routes.invalidate();
        let page = |query: &str| {
            let (ingress, query) = (ingress.clone(), query.to_string());
            async move {
                let body = respond(&ingress, "127.0.0.1", true, Some(&query))
                    .into_body()
                    .collect()
                    .await
                    .unwrap();
                serde_json::from_slice::<Value>(&body.to_bytes()).unwrap()
            }
        };
        let mut seen = Vec::new();
        let mut query = "limit=2".to_string();
        loop {
            let answer = page(&query).await;
            assert_eq!(answer["data"]["routes_total"], 5);
            let routes = answer["data"]["routes"].as_array().unwrap().clone();
            assert!(routes.len() <= 2);
            seen.extend(
                routes
                    .iter()
                    .map(|r| r["session_id"].as_str().unwrap().to_string()),
            );
            match answer["data"]["next_cursor"].as_str() {
                Some(next) => query = format!("limit=2&cursor={next}"),
                None => break,
            }
        }
        assert_eq!(seen, ["s0", "s1", "s2", "s3", "s4"]);
        for bad in ["limit=0", "limit=x", "limit=100000"] {
            let answer = page(bad).await;
            assert_eq!(answer["error"]["details"]["field"], "limit", "{bad}");
        }
    }

    #[tokio::test]
    async fn a_proxied_request_is_never_local_whatever_its_host() {
        let dir = tempfile::tempdir().unwrap();
        let ingress = test_ingress(dir.path());
        for (name, value) in [
            ("forwarded", "for=203.0.113.9"),
            ("x-forwarded-for", "203.0.113.9"),
            ("x-real-ip", "203.0.113.9"),
            ("x-forwarded-host", "127.0.0.1"),
            ("x-forwarded-proto", "https"),
        ] {
            let mut headers = hyper::HeaderMap::new();
            headers.insert(name, value.parse().unwrap());
            for host in ["127.0.0.1", "localhost", "::1"] {
                assert!(!crate::ingress::is_local(&headers, host), "{name} {host}");
                let seen = status_with(&ingress, host, &headers).await;
                assert!(
                    !seen.contains("routes_dir") && !seen.contains("\"routes\""),
                    "{name} {host}: {seen}"
                );
                assert!(seen.contains("\"state\":\"missing\""), "{seen}");
            }
        }
        assert!(crate::ingress::is_local(
            &hyper::HeaderMap::new(),
            "127.0.0.1"
        ));
        assert!(!crate::ingress::is_local(
            &hyper::HeaderMap::new(),
            "preview.test"
        ));
    }
}
