//! The daemon's application on the shared HTTP edge, in front of [`homeboy_service::Api`].
//!
//! It does only what the transport-free handler cannot: state the daemon's Host policy (the edge's
//! [`LoopbackPolicy`]: refuse requests whose `Host` or `Origin` is not this loopback daemon — the
//! DNS-rebinding and cross-site guard), cap the request body, run disk-bound routes off the event loop, and
//! write the handler's envelope as the HTTP response (through the edge). Everything else is the handler's.
//!
//! Some routes need the transport itself and are handed to their own modules: the claim long poll and the
//! job event streams ([`crate::jobs_runtime`]), and the artifact byte route ([`crate::artifact_bytes`]), which
//! streams the file that `Api::open_artifact` opened instead of the handler's inline base64 answer. Two
//! answers are not envelopes at all: the OpenAPI document (`GET /openapi.json`) and the dashboard's files
//! ([`crate::dashboard`], for loopback Hosts only).

use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use homeboy_http::host::{LoopbackPolicy, request_host, request_origin};
use homeboy_service::router::Cost;
use homeboy_service::{Api, ApiError, ApiRequest, ApiResponse, ErrorKind, JsonBytes, Method};

pub use homeboy_http::DEFAULT_MAX_BODY_BYTES;

use crate::jobs_runtime::{JobsRuntime, run_blocking, run_blocking_json};
use crate::liveness::Activity;
use crate::metrics::DaemonMetrics;

/// Settings of the HTTP adapter.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub max_body_bytes: usize,
    pub allowed_hosts: Vec<String>,
    /// Close connections with no request in progress (idle, or headers unfinished) after this long (up to
    /// twice this); `None`: never.
    pub idle_timeout: Option<std::time::Duration>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allowed_hosts: Vec::new(),
            idle_timeout: Some(homeboy_http::serve::LOOPBACK_IDLE_TIMEOUT),
        }
    }
}

/// The daemon's HTTP application: the host guard, then the contract handler.
///
/// Contract routes go straight from hyper to [`Api`] (no router in between: the handler routes). The two
/// routes that need the transport itself — the claim long poll and the event stream — are served by
/// [`JobsRuntime`] around the same handler, which also answers `GET /runtime/jobs` (its parked waiters).
#[derive(Clone)]
pub struct App {
    api: Arc<Api>,
    max_body_bytes: usize,
    hosts: Arc<LoopbackPolicy>,
    jobs: Option<JobsRuntime>,
    activity: Arc<Activity>,
    metrics: Arc<DaemonMetrics>,
}

/// Request headers the contract reads (credentials and stream cursors); nothing else is passed on. (The
/// artifact byte route reads `Range` from the HTTP request itself.)
const CONTRACT_HEADERS: [header::HeaderName; 3] = [
    header::AUTHORIZATION,
    header::HeaderName::from_static("x-homeboy-broker-token"),
    header::HeaderName::from_static("last-event-id"),
];

impl App {
    /// The application of a daemon listening on `port`.
    pub fn new(api: Arc<Api>, port: u16, options: &HttpOptions, jobs: Option<JobsRuntime>) -> Self {
        let metrics = jobs
            .as_ref()
            .map_or_else(Default::default, JobsRuntime::metrics);
        App {
            api,
            max_body_bytes: options.max_body_bytes,
            hosts: Arc::new(LoopbackPolicy::new(port, &options.allowed_hosts)),
            jobs,
            activity: Arc::new(Activity::default()),
            metrics,
        }
    }

    /// Requests in flight and when the last one ended (the idle shutdown reads it).
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// Answers one request: foreign `Host`/`Origin` are refused before any route sees the request. Every
    /// request is counted (in flight, latency) and, at debug level, logged without its query.
    pub async fn handle<B>(&self, req: axum::http::Request<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let started = Instant::now();
        let _active = self.activity.enter();
        self.metrics.in_flight.inc();
        let logged = tracing::enabled!(tracing::Level::DEBUG)
            .then(|| (req.method().clone(), req.uri().path().to_string()));
        let response = self.answer(req).await;
        let elapsed = started.elapsed();
        self.metrics.in_flight.dec();
        self.metrics.request_seconds.observe(elapsed.as_secs_f64());
        if let Some((method, path)) = logged {
            tracing::debug!(
                %method,
                %path,
                status = response.status().as_u16(),
                ms = (elapsed.as_secs_f64() * 1e6).round() / 1e3,
                "request"
            );
        }
        response
    }

    async fn answer<B>(&self, req: axum::http::Request<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        if let Some(refusal) = refuse_foreign(&self.hosts, req.headers(), req.uri()) {
            return error_response(&refusal);
        }
        if req.uri().path() == homeboy_http::metrics::PATH {
            return self.serve_metrics(&req).await;
        }
        let path = req.uri().path();
        let reading = matches!(
            *req.method(),
            axum::http::Method::GET | axum::http::Method::HEAD
        );
        if !reading && is_transport_read(path) {
            let method = req.method().as_str();
            return error_response(&ApiError::method_not_allowed(method, path, &["GET"]));
        }
        if reading {
            if path == OPENAPI_PATH {
                return openapi_response();
            }
            if crate::dashboard::is_page_path(path) {
                // The page is for the person on this machine: never through an allowed public name.
                let on_loopback = request_host(req.headers(), req.uri())
                    .ok()
                    .is_some_and(|host| self.hosts.is_own_loopback(&host));
                return crate::dashboard::respond(path, on_loopback);
            }
        }
        self.dispatch(req).await
    }

    /// `GET /metrics`, for the machine's own operator only: the `Host` must name this loopback daemon and
    /// the request must not have come through a reverse proxy (`homeboy_http::host::came_through_proxy`:
    /// the broker recipe's proxy sends the broker's own loopback `Host`). Through the public proxy the
    /// route does not exist.
    async fn serve_metrics<B>(&self, req: &axum::http::Request<B>) -> Response {
        let own = matches!(
            request_host(req.headers(), req.uri()),
            Ok(host) if self.hosts.is_own_loopback(&host)
        ) && !homeboy_http::host::came_through_proxy(req.headers());
        if !own {
            return error_response(&ApiError::route_not_found(
                req.method().as_str(),
                req.uri().path(),
            ));
        }
        if req.method() != axum::http::Method::GET {
            return error_response(&ApiError::method_not_allowed(
                req.method().as_str(),
                req.uri().path(),
                &["GET"],
            ));
        }
        self.metrics
            .scrape(self.jobs.as_ref().map(JobsRuntime::store))
            .await
    }

    /// Hands a request to the transport-free handler, off the event loop when its route may block.
    async fn dispatch<B>(&self, req: axum::http::Request<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        let (parts, body) = req.into_parts();
        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let bytes = match homeboy_http::read_capped(body, &parts.headers, self.max_body_bytes).await
        {
            Ok(bytes) => bytes,
            Err(error) => return error_response(&error),
        };
        let mut api_req = ApiRequest::new(
            Method::parse(parts.method.as_str()),
            path_and_query,
            (!bytes.is_empty()).then(|| bytes.to_vec()),
        );
        for name in &CONTRACT_HEADERS {
            let Some(value) = parts.headers.get(name) else {
                continue;
            };
            // A credential or cursor that is not text is refused, not taken as absent (the value is never
            // quoted back).
            let Ok(value) = value.to_str() else {
                return error_response(&ApiError::invalid_argument(
                    name.as_str(),
                    "is not visible ASCII text",
                ));
            };
            api_req = api_req.with_header(name.as_str(), value);
        }
        if matches!(api_req.method, Method::Get | Method::Head)
            && let Some((run_id, artifact_id)) =
                homeboy_service::artifact_content_route(&api_req.path)
        {
            let head_only = api_req.method == Method::Head;
            return crate::artifact_bytes::respond(
                self.api.clone(),
                run_id,
                artifact_id,
                &parts.headers,
                head_only,
            )
            .await;
        }
        if let Some(jobs) = &self.jobs {
            if api_req.method == Method::Get && api_req.path == "/runtime/jobs" {
                let view = serde_json::to_value(jobs.runtime_view()).unwrap_or_default();
                return answer_response(&ApiResponse::ok(view));
            }
            if api_req.method == Method::Get
                && api_req.path == "/jobs/events"
                && is_follow(&api_req)
            {
                return jobs.job_changes();
            }
            if api_req.method == Method::Post && api_req.path == "/runner/jobs/claim" {
                return self.log(
                    &api_req,
                    jobs.claim_long_poll(self.api.clone(), api_req.clone())
                        .await,
                );
            }
            if let Some(job_id) = follow_target(&api_req) {
                return self.follow(jobs, job_id, &api_req).await;
            }
        }
        // Inline and short-read routes (and every routing error) are answered here on the event loop, in
        // one routing pass: a hand-off to the blocking pool and back costs more than a short store read.
        let (method, path) = (api_req.method.clone(), api_req.path.clone());
        let answer = match self.api.handle_json_up_to(&api_req, Cost::Read) {
            Some(answer) if answer.status == 405 => {
                // Rare: answered again as a value so the response can carry `Allow` (no handler runs).
                return answer_response(&self.api.handle(&api_req));
            }
            Some(answer) => answer,
            None => run_blocking_json(self.api.clone(), api_req).await,
        };
        if let Some(detail) = &answer.internal_detail {
            log_failure(
                method.as_str(),
                &path,
                answer.status,
                answer.error_id.as_deref(),
                detail,
            );
        }
        bytes_response(answer.status, answer.json)
    }

    /// `GET /jobs/:id/events?follow=true`: a Server-Sent Events stream after checking job and cursor.
    ///
    /// The cursor is `Last-Event-ID` when the request carries one, else `after`, else 0: a browser's
    /// `EventSource` reconnects to the URL it was opened with (its `after` included) and says in
    /// `Last-Event-ID` where it got to, so the header is the newer word. A cursor that is not a sequence
    /// number is refused, whichever way it came.
    async fn follow(&self, jobs: &JobsRuntime, job_id: String, req: &ApiRequest) -> Response {
        let after = match req.query_u64("after") {
            Ok(after) => after,
            Err(error) => return error_response(&error),
        };
        let resumed = match req.last_event_id() {
            Ok(resumed) => resumed,
            Err(error) => return error_response(&error),
        };
        let after = resumed.or(after).unwrap_or(0);
        // The plain listing route answers the same request first: it validates the job id (404 for an
        // unknown job) and every parameter (a stream refuses what a page refuses, `limit` included, though
        // a stream has no pages) before streaming starts.
        let answer = run_blocking(self.api.clone(), req.clone()).await;
        if answer.status != 200 {
            return answer_response(&answer);
        }
        jobs.event_stream(job_id, after)
    }

    /// Writes failures that carry an internal detail to the daemon log, then answers.
    fn log(&self, req: &ApiRequest, answer: ApiResponse) -> Response {
        if let Some(detail) = &answer.internal_detail {
            log_failure(
                req.method.as_str(),
                &req.path,
                answer.status,
                answer.error_id(),
                detail,
            );
        }
        answer_response(&answer)
    }
}

/// One log line for a request that failed inside: the detail stays here, under the error id the client got.
fn log_failure(method: &str, path: &str, status: u16, error_id: Option<&str>, detail: &str) {
    tracing::error!(
        error_id = error_id.unwrap_or("-"),
        %method,
        %path,
        status,
        "request failed: {detail}"
    );
}

/// Where the daemon serves its OpenAPI document.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// `GET /openapi.json`: the routes this server answers (`homeboy_api::openapi`), built once. Not wrapped in
/// the envelope: it is the document itself.
/// (hyper answers HEAD with the same headers and no body.)
fn openapi_response() -> Response {
    static DOCUMENT: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let document = DOCUMENT.get_or_init(|| {
        let document = homeboy_api::openapi::document_for(homeboy_api::openapi::Server::Daemon);
        serde_json::to_vec(&document).unwrap_or_default().into()
    });
    homeboy_http::json_response(200, document.clone()).map(Body::new)
}

/// Paths the daemon answers itself (not the handler's router), all `GET` (and `HEAD`) only.
fn is_transport_read(path: &str) -> bool {
    path == OPENAPI_PATH || path == "/runtime/jobs" || crate::dashboard::is_page_path(path)
}

/// Whether a request asks for a stream (`follow=true` or `follow=1`).
fn is_follow(req: &ApiRequest) -> bool {
    matches!(req.query("follow"), Some("true" | "1"))
}

/// The job id of `GET /jobs/:id/events?follow=true`.
fn follow_target(req: &ApiRequest) -> Option<String> {
    if req.method != Method::Get || !is_follow(req) {
        return None;
    }
    let rest = req.path.strip_prefix("/jobs/")?;
    let id = rest.strip_suffix("/events")?;
    (!id.is_empty() && !id.contains('/')).then(|| {
        percent_encoding::percent_decode_str(id)
            .decode_utf8_lossy()
            .into_owned()
    })
}

/// The DNS-rebinding and cross-site check: a request must name this daemon in its one `Host` (origin-form
/// target, no second `Host`, see [`request_host`]) and, when a browser says where it comes from (one
/// `Origin`), come from this daemon's own origin. A name the operator allowed with `--allowed-host` (a
/// broker behind a public proxy) reaches only what a runner needs: `/health` and `/runner/*`; everything
/// else answers only to the loopback `Host`.
fn refuse_foreign(hosts: &LoopbackPolicy, headers: &HeaderMap, uri: &Uri) -> Option<ApiError> {
    let host_refused = if hosts.is_usual_own_request(headers, uri) {
        None
    } else {
        refuse_foreign_host(hosts, headers, uri)
    };
    host_refused.or_else(|| refuse_foreign_origin(hosts, headers))
}

/// The `Host` half of [`refuse_foreign`], for a request that does not spell the loopback `Host` the usual
/// way.
fn refuse_foreign_host(hosts: &LoopbackPolicy, headers: &HeaderMap, uri: &Uri) -> Option<ApiError> {
    let host = match request_host(headers, uri) {
        Ok(host) => host,
        Err(refusal) => return Some(refusal),
    };
    let shown = || {
        headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&host.host)
            .to_string()
    };
    if !hosts.is_own_loopback(&host) {
        if !hosts.is_allowed_name(&host) {
            return Some(
                ApiError::new(
                    ErrorKind::Forbidden,
                    "forbidden.host",
                    "the Host header does not name this loopback daemon",
                )
                .with_detail("host", shown())
                .with_hint(
                    "connect to http://127.0.0.1:<port> as written in `homeboy daemon status`",
                ),
            );
        }
        if !is_public_route(uri.path()) {
            return Some(
                ApiError::new(
                    ErrorKind::Forbidden,
                    "forbidden.host_scope",
                    "an allowed public host reaches /health and /runner/* only",
                )
                .with_detail("host", shown())
                .with_hint("other routes answer only to the daemon's loopback address"),
            );
        }
    }
    None
}

/// The `Origin` half of [`refuse_foreign`]: a browser's request must come from this daemon's own origin.
fn refuse_foreign_origin(hosts: &LoopbackPolicy, headers: &HeaderMap) -> Option<ApiError> {
    let origin = match request_origin(headers) {
        Ok(origin) => origin,
        Err(refusal) => return Some(refusal),
    };
    if let Some(origin) = origin
        && !hosts.allows_origin(origin)
    {
        return Some(
            ApiError::new(
                ErrorKind::Forbidden,
                "forbidden.origin",
                "cross-origin requests may not drive the homeboy daemon",
            )
            .with_detail("origin", origin),
        );
    }
    None
}

/// The routes an `--allowed-host` name may reach: what a runner behind a public proxy needs.
fn is_public_route(path: &str) -> bool {
    path == "/health" || path.starts_with("/runner/")
}

/// A handler answer as an HTTP response (through the edge, so a 405 carries `Allow` and a 413 closes).
pub fn answer_response(answer: &ApiResponse) -> Response {
    if answer.status >= 400
        && let Err(error) = answer.clone().into_result()
    {
        return error_response(&error);
    }
    bytes_response(answer.status, JsonBytes::Owned(answer.to_json()))
}

/// Serialised JSON as an HTTP response.
fn bytes_response(status: u16, json: JsonBytes) -> Response {
    let bytes = match json {
        JsonBytes::Shared(shared) => Bytes::from_owner(shared),
        JsonBytes::Owned(owned) => Bytes::from(owned),
    };
    homeboy_http::json_response(status, bytes).map(Body::new)
}

/// An error envelope as an HTTP response.
pub fn error_response(error: &ApiError) -> Response {
    homeboy_http::error_response(error).map(Body::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn app() -> (tempfile::TempDir, App) {
        app_with(&[])
    }

    fn app_with(allowed_hosts: &[&str]) -> (tempfile::TempDir, App) {
        let dir = tempfile::tempdir().unwrap();
        let paths = homeboy_config::Paths::at(dir.path().join("c"), dir.path().join("d"));
        let identity = homeboy_service::DaemonIdentity {
            pid: 1,
            version: "0".into(),
            build_id: "test".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
        };
        let api = Arc::new(Api::new(identity, paths));
        let options = HttpOptions {
            max_body_bytes: 16,
            allowed_hosts: allowed_hosts.iter().map(|h| h.to_string()).collect(),
            ..HttpOptions::default()
        };
        (dir, App::new(api, 7421, &options, None))
    }

    async fn send(app: &App, method: &str, headers: &[(&str, &str)], body: &str) -> Response {
        let mut req = axum::http::Request::builder().method(method).uri("/health");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        app.handle(req.body(Body::from(body.to_string())).unwrap())
            .await
    }

    async fn envelope(response: Response) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn two_host_headers_are_refused_with_the_envelope() {
        let (_dir, app) = app();
        let r = send(
            &app,
            "GET",
            &[("host", "127.0.0.1:7421"), ("host", "evil.example")],
            "",
        )
        .await;
        assert_eq!(r.status(), 400);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let body = envelope(r).await;
        assert_eq!(body["error"]["code"], "validation.invalid_argument");
        assert_eq!(body["error"]["details"]["field"], "host");
        let r = send(&app, "GET", &[("host", "127.0.0.1")], "").await;
        assert_eq!(r.status(), 403, "a loopback Host without the daemon's port");
    }

    #[tokio::test]
    async fn no_host_an_absolute_target_and_two_origins_are_refused() {
        let (_dir, app) = app();
        let r = send(&app, "GET", &[], "").await;
        assert_eq!(r.status(), 400, "no Host");
        assert_eq!(envelope(r).await["error"]["details"]["field"], "host");
        let absolute = axum::http::Request::builder()
            .uri("http://evil.example/config/paths")
            .header("host", "127.0.0.1:7421")
            .body(Body::empty())
            .unwrap();
        let r = app.handle(absolute).await;
        assert_eq!(r.status(), 400, "absolute-form target");
        let r = send(
            &app,
            "GET",
            &[
                ("host", "127.0.0.1:7421"),
                ("origin", "http://127.0.0.1:7421"),
                ("origin", "https://evil.example"),
            ],
            "",
        )
        .await;
        assert_eq!(r.status(), 400, "two Origin headers");
        assert_eq!(envelope(r).await["error"]["details"]["field"], "origin");
    }

    #[tokio::test]
    async fn an_allowed_host_reaches_health_and_runner_routes_only() {
        let (_dir, app) = app_with(&["broker.example.com"]);
        let get = |path: &'static str, host: &'static str| {
            let app = app.clone();
            async move {
                let req = axum::http::Request::builder()
                    .uri(path)
                    .header("host", host)
                    .body(Body::empty())
                    .unwrap();
                app.handle(req).await.status()
            }
        };
        assert_eq!(get("/health", "broker.example.com").await, 200);
        // Reached the runner routes (`GET` is not one of their methods), not refused by the host guard.
        assert_eq!(get("/runner/jobs", "broker.example.com").await, 405);
        for path in [
            "/jobs",
            "/config/paths",
            "/components",
            "/runs",
            "/tools",
            "/version",
            "/runtime/jobs",
            "/runner",
            "/healthz",
        ] {
            assert_eq!(get(path, "broker.example.com").await, 403, "{path}");
            assert_ne!(get(path, "127.0.0.1:7421").await, 403, "{path} on loopback");
        }
    }

    #[tokio::test]
    async fn method_not_allowed_names_the_methods_and_too_large_closes() {
        let (_dir, app) = app();
        let r = send(&app, "DELETE", &[("host", "127.0.0.1:7421")], "").await;
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "GET");
        assert_eq!(envelope(r).await["error"]["code"], "method_not_allowed");
        let r = send(
            &app,
            "POST",
            &[("host", "127.0.0.1:7421")],
            "{\"a\": \"more than sixteen bytes\"}",
        )
        .await;
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        assert_eq!(envelope(r).await["error"]["code"], "payload.too_large");
    }
}
