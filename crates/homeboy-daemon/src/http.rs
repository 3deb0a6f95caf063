//! The daemon's application on the shared HTTP edge, in front of [`homeboy_service::Api`].
//!
//! It does only what the transport-free handler cannot: state the daemon's Host policy (the edge's
//! [`LoopbackPolicy`]: refuse requests whose `Host` or `Origin` is not this loopback daemon — the
//! DNS-rebinding and cross-site guard), cap the request body, run disk-bound routes off the event loop, and
//! write the handler's envelope as the HTTP response (through the edge). Everything else is the handler's.
//!
//! Three routes need the transport itself and are handed to their own modules: the claim long poll and the
//! job event stream ([`crate::jobs_runtime`]), and the artifact byte route ([`crate::artifact_bytes`]), which
//! streams the file that `Api::open_artifact` opened instead of the handler's inline base64 answer.

use std::sync::Arc;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, Uri, header};
use axum::response::Response;
use homeboy_http::host::{LoopbackPolicy, request_host};
use homeboy_service::router::Cost;
use homeboy_service::{Api, ApiError, ApiRequest, ApiResponse, ErrorKind, JsonBytes, Method};

pub use homeboy_http::DEFAULT_MAX_BODY_BYTES;

use crate::jobs_runtime::{JobsRuntime, run_blocking, run_blocking_json};

/// Settings of the HTTP adapter.
#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub max_body_bytes: usize,
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allowed_hosts: Vec::new(),
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
        App {
            api,
            max_body_bytes: options.max_body_bytes,
            hosts: Arc::new(LoopbackPolicy::new(port, &options.allowed_hosts)),
            jobs,
        }
    }

    /// Answers one request: foreign `Host`/`Origin` are refused before any route sees the request.
    pub async fn handle<B>(&self, req: axum::http::Request<B>) -> Response
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<axum::BoxError>,
    {
        if let Some(refusal) = refuse_foreign(&self.hosts, req.headers(), req.uri()) {
            return error_response(&refusal);
        }
        self.dispatch(req).await
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
            if let Some(value) = parts.headers.get(name).and_then(|v| v.to_str().ok()) {
                api_req = api_req.with_header(name.as_str(), value);
            }
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
                return answer_response(&ApiResponse::ok(jobs.runtime_view()));
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
        if let Some((status, json)) = self.api.handle_inline_json(&api_req) {
            if status == 405 {
                // Rare: answered again as a value so the response can carry `Allow` (no handler runs).
                return answer_response(&self.api.handle(&api_req));
            }
            return bytes_response(status, json);
        }
        let (method, path) = (api_req.method.clone(), api_req.path.clone());
        let answer = match self.api.route_cost(&api_req) {
            // A short store read costs less than a hand-off to the blocking pool and back.
            Some(Cost::Read) => self.api.handle_json(&api_req),
            _ => run_blocking_json(self.api.clone(), api_req).await,
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
    async fn follow(&self, jobs: &JobsRuntime, job_id: String, req: &ApiRequest) -> Response {
        let after = match req.query_u64("after") {
            Ok(after) => after,
            Err(error) => return error_response(&error),
        };
        let after = after
            .or_else(|| {
                req.header("last-event-id")
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0);
        // The plain listing route validates the job id (404 for an unknown job) before streaming starts.
        let probe = ApiRequest::get(&format!("{}?after={after}&limit=1", req.path));
        let answer = run_blocking(self.api.clone(), probe).await;
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

/// The job id of `GET /jobs/:id/events?follow=true`.
fn follow_target(req: &ApiRequest) -> Option<String> {
    if req.method != Method::Get || !matches!(req.query("follow"), Some("true" | "1")) {
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

/// The DNS-rebinding and cross-site check: a request must name this daemon in `Host` and, when a browser
/// says where it comes from, come from this daemon's own origin.
fn refuse_foreign(hosts: &LoopbackPolicy, headers: &HeaderMap, uri: &Uri) -> Option<ApiError> {
    let named = match request_host(headers, uri) {
        Ok(named) => named,
        Err(refusal) => return Some(refusal),
    };
    if let Some(host) = named
        && !(hosts.is_own_loopback(&host) || hosts.is_allowed_name(&host))
    {
        let shown = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(&host.host);
        return Some(
            ApiError::new(
                ErrorKind::Forbidden,
                "forbidden.host",
                "the Host header does not name this loopback daemon",
            )
            .with_detail("host", shown)
            .with_hint("connect to http://127.0.0.1:<port> as written in `homeboy daemon status`"),
        );
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !hosts.allows_origin(origin) {
            return Some(
                ApiError::new(
                    ErrorKind::Forbidden,
                    "forbidden.origin",
                    "cross-origin requests may not drive the homeboy daemon",
                )
                .with_detail("origin", origin),
            );
        }
    }
    None
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
            allowed_hosts: Vec::new(),
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
