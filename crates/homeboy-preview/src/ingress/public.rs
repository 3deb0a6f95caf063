//! Public requests: find the route of the `Host`, forward to its upstream origin or its preview client's
//! channel, stream the answer back, and explain every failure with a JSON diagnostic
//! (`{request_id, host, path, status, classification, message}`).
//!
//! Bodies stream in both directions (the request body is handed on as the socket delivers it, the response
//! body likewise); hop-by-hop headers are dropped both ways; `X-Forwarded-For/-Proto/-Host` are added; the
//! upstream's status and end-to-end headers (content type, cache headers, cookies) are kept. A request to
//! switch protocols (WebSocket) passes the same checks and then goes through [`super::upgrade`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, Uri};
use serde_json::json;

use super::access_log::RequestLine;
use super::upgrade::Upgrade;
use super::{Classification, Failure, InFlight, Ingress};
use crate::body::{self, ProxyBody};
use crate::channel::long_poll::ClientReportedError;
use crate::channel::wire::HEADER_CLIENT_ERROR;
use crate::clock;
use crate::headers;
use crate::pool::ForwardError;

/// What the log line of a request needs.
struct Exchange {
    ingress: Arc<Ingress>,
    request_id: String,
    method: Method,
    host: String,
    path: String,
    started: Instant,
    session_id: Option<String>,
    transport: Option<&'static str>,
}

pub async fn handle(
    ingress: &Arc<Ingress>,
    mut req: Request<Incoming>,
    host: String,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let in_flight = InFlight::enter(ingress);
    let mut ex = Exchange {
        ingress: ingress.clone(),
        request_id: ingress.next_request_id(),
        method: req.method().clone(),
        path: req.uri().path().to_string(),
        host,
        started: Instant::now(),
        session_id: None,
        transport: None,
    };
    if ingress.draining.load(std::sync::atomic::Ordering::Acquire) {
        let mut response = ex.diagnostic(
            Classification::IngressDraining,
            "the preview ingress is shutting down; retry shortly".into(),
            in_flight,
        );
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    let Some(entry) = ingress.routes.lookup(&ex.host) else {
        let message = format!("no preview session is routed for host {:?}", ex.host);
        return ex.diagnostic(Classification::MissingSession, message, in_flight);
    };
    let session_id = entry.record.session_id.clone();
    ex.session_id = Some(session_id.clone());
    let now = clock::now();
    if !entry.record.active {
        let message =
            format!("preview session {session_id:?} is disconnected (its route is inactive)");
        return ex.diagnostic(Classification::DisconnectedSession, message, in_flight);
    }
    if entry.expired(now) {
        let message = format!(
            "preview session {session_id:?} expired at {}",
            entry.record.expires_at.as_deref().unwrap_or("?")
        );
        return ex.diagnostic(Classification::ExpiredSession, message, in_flight);
    }
    let timeout = ingress.options.upstream_timeout;
    let trusted_peer = homeboy_config::net::is_loopback_host(&peer.ip().to_string());
    let upgrade = Upgrade::take(&mut req);

    if let Some(upstream) = &entry.upstream {
        ex.transport = Some("direct");
        let authority = upstream.origin().authority();
        let req = prepare(req, peer, trusted_peer, &ex.host, &authority);
        let sent = async {
            match upgrade {
                Some(upgrade) => upgrade.direct(upstream, req).await,
                None => upstream.send(req).await,
            }
        };
        let answer = match tokio::time::timeout(timeout, sent).await {
            Ok(answer) => answer,
            Err(_) => Err(ForwardError::Timeout(format!(
                "the upstream origin sent no response headers within {timeout:?}"
            ))),
        };
        return match answer {
            Ok(response) => ex.finish(response, in_flight),
            Err(e) => ex.forward_failed(e, in_flight),
        };
    }

    let session = ingress.await_session(&ex.host, &session_id).await;
    let Some(session) = session else {
        let message = format!("no preview client is connected for session {session_id:?}");
        return ex.diagnostic(Classification::DisconnectedSession, message, in_flight);
    };
    if session.lease_expired(now) {
        let message = format!("the lease of preview session {session_id:?} has expired");
        return ex.diagnostic(Classification::ExpiredSession, message, in_flight);
    }
    if !session.connected(ingress.options.client_grace) {
        let message = format!(
            "the preview client of session {session_id:?} has not been heard from for {:?}",
            session.silent_for()
        );
        return ex.diagnostic(Classification::DisconnectedSession, message, in_flight);
    }
    let host_value = ex.host.clone();
    let req = prepare(req, peer, trusted_peer, &ex.host, &host_value);
    let transport = session.transport();
    ex.transport = Some(transport.name());
    let answer = match upgrade {
        Some(upgrade) => {
            upgrade
                .channel(transport, &ex.request_id, req, timeout)
                .await
        }
        None => transport.forward(&ex.request_id, req, timeout).await,
    };
    match answer {
        Ok(response) => ex.finish(response, in_flight),
        // The client went away and did not come back within the grace period.
        Err(e) if !session.connected(ingress.options.client_grace) => {
            let message = format!(
                "the preview client of session {session_id:?} is disconnected: {}",
                e.message()
            );
            ex.diagnostic(Classification::DisconnectedSession, message, in_flight)
        }
        Err(e) => ex.forward_failed(e, in_flight),
    }
}

/// The request as the next hop gets it: origin-form URI, no hop-by-hop headers, forwarded headers added,
/// `Host` set to `host_header`.
fn prepare(
    req: Request<Incoming>,
    peer: SocketAddr,
    trusted_peer: bool,
    public_host: &str,
    host_header: &str,
) -> Request<ProxyBody> {
    let (mut parts, incoming) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    parts.uri = path
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    headers::strip_hop_by_hop(&mut parts.headers);
    headers::add_forwarded(&mut parts.headers, peer.ip(), trusted_peer, public_host);
    if let Ok(v) = HeaderValue::from_str(host_header) {
        parts.headers.insert(header::HOST, v);
    }
    parts.version = hyper::Version::HTTP_11;
    Request::from_parts(parts, body::boxed(incoming))
}

impl Exchange {
    /// Streams a response back, logging when its body is done.
    fn finish(self, response: Response<ProxyBody>, in_flight: InFlight) -> Response<ProxyBody> {
        let (mut parts, inner) = response.into_parts();
        headers::strip_hop_by_hop(&mut parts.headers);
        crate::splice::restore_upgrade_headers(&mut parts);
        // The browser's connection has its own version (an HTTP/1.0 upstream must not downgrade it).
        parts.version = hyper::Version::HTTP_11;
        let client_error = parts
            .extensions
            .remove::<ClientReportedError>()
            .map(|e| e.0.message)
            .or_else(|| {
                parts
                    .headers
                    .remove(HEADER_CLIENT_ERROR)
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            });
        let classification = client_error.as_ref().map(|_| Classification::UpstreamError);
        if let Some(message) = client_error {
            self.record(
                parts.status.as_u16(),
                Classification::UpstreamError,
                message,
            );
        }
        let status = parts.status.as_u16();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let body = body::Observed::new(inner, move |bytes, complete| {
            self.log(status, bytes, classification, complete);
            drop(in_flight);
        })
        .expecting(declared);
        Response::from_parts(parts, body::boxed(body))
    }

    fn forward_failed(self, error: ForwardError, in_flight: InFlight) -> Response<ProxyBody> {
        match error {
            ForwardError::Timeout(m) => {
                self.diagnostic(Classification::UpstreamTimeout, m, in_flight)
            }
            ForwardError::Failed(m) => self.diagnostic(Classification::UpstreamError, m, in_flight),
        }
    }

    /// The ingress's own answer: a JSON diagnostic.
    fn diagnostic(
        self,
        classification: Classification,
        message: String,
        in_flight: InFlight,
    ) -> Response<ProxyBody> {
        let status = classification.status();
        self.record(status, classification, message.clone());
        let mut doc = json!({
            "request_id": self.request_id,
            "host": self.host,
            "path": self.path,
            "status": status,
            "classification": classification.as_str(),
            "message": message,
        });
        if let Some(session_id) = &self.session_id {
            doc["session_id"] = json!(session_id);
        }
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        let mut response = homeboy_http::json_response(status, bytes).map(body::boxed);
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        self.finish_own(response, classification, in_flight)
    }

    fn finish_own(
        self,
        response: Response<ProxyBody>,
        classification: Classification,
        in_flight: InFlight,
    ) -> Response<ProxyBody> {
        let (parts, inner) = response.into_parts();
        let status = parts.status.as_u16();
        let body = body::Observed::new(inner, move |bytes, complete| {
            self.log(status, bytes, Some(classification), complete);
            drop(in_flight);
        });
        Response::from_parts(parts, body::boxed(body))
    }

    fn record(&self, status: u16, classification: Classification, message: String) {
        self.ingress.record_failure(Failure {
            at: clock::rfc3339(clock::now()),
            request_id: self.request_id.clone(),
            host: self.host.clone(),
            path: self.path.clone(),
            status,
            classification: classification.as_str().into(),
            message,
        });
    }

    fn log(&self, status: u16, bytes: u64, classification: Option<Classification>, complete: bool) {
        self.ingress
            .metrics
            .request(self.transport.unwrap_or("ingress"), status, bytes);
        self.ingress.log.write(&RequestLine {
            ts: clock::now_rfc3339(),
            request_id: &self.request_id,
            method: self.method.as_str(),
            host: &self.host,
            path: &self.path,
            status,
            bytes,
            duration_ms: (self.started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
            classification: classification.map(Classification::as_str),
            session_id: self.session_id.as_deref(),
            transport: self.transport,
            complete,
        });
    }
}
