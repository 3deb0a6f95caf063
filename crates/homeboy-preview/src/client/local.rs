//! The preview client's side of the last hop: sending a request to the local origin (pooled keep-alive
//! HTTP/1.1 for `http://`, reqwest for `https://`), with hop-by-hop headers dropped and `Host` set to the
//! origin (the public host stays in `X-Forwarded-Host`), and the 502 answer with `error.kind:
//! local_origin_request_failed` when the origin cannot be reached.

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use serde_json::json;

use super::api::describe;
use crate::body::{self, ProxyBody};
use crate::channel::wire::LOCAL_ORIGIN_FAILED;
use crate::headers;
use crate::host::Origin;
use crate::pool::{ForwardError, Upstream};

/// Where the client sends requests.
pub enum LocalOrigin {
    Http(Upstream),
    Https {
        http: reqwest::Client,
        origin: Origin,
    },
}

impl LocalOrigin {
    /// The forwarder for `origin`.
    pub fn new(origin: Origin, http: reqwest::Client) -> Self {
        if origin.https {
            LocalOrigin::Https { http, origin }
        } else {
            LocalOrigin::Http(Upstream::new(origin, Duration::from_secs(5)))
        }
    }

    pub(super) fn origin(&self) -> &Origin {
        match self {
            LocalOrigin::Http(upstream) => upstream.origin(),
            LocalOrigin::Https { origin, .. } => origin,
        }
    }

    /// Sends a request as it came from the ingress: the URI is the path and query, the headers are the
    /// public request's (with `X-Forwarded-*`). Waits at most `timeout` for the response headers.
    pub async fn send(
        &self,
        mut req: Request<ProxyBody>,
        timeout: Duration,
    ) -> Result<Response<ProxyBody>, ForwardError> {
        prepare(req.headers_mut(), &self.origin().authority());
        let sent = async {
            match self {
                LocalOrigin::Http(upstream) => upstream.send(req).await.map(|r| r.map(body::boxed)),
                LocalOrigin::Https { http, origin } => send_https(http, origin, req).await,
            }
        };
        let mut response = match tokio::time::timeout(timeout, sent).await {
            Ok(answer) => answer?,
            Err(_) => {
                return Err(ForwardError::Timeout(format!(
                    "the local origin sent no response headers within {timeout:?}"
                )));
            }
        };
        headers::strip_hop_by_hop(response.headers_mut());
        Ok(response)
    }
}

async fn send_https(
    http: &reqwest::Client,
    origin: &Origin,
    req: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, ForwardError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let url = format!("{}{path}", origin.url());
    let mut request = http
        .request(parts.method, url)
        .headers(parts.headers)
        .body(reqwest::Body::wrap(body))
        .build()
        .map_err(|e| ForwardError::Failed(describe(&e)))?;
    // reqwest derives Host from the URL.
    request.headers_mut().remove(header::HOST);
    let response = http
        .execute(request)
        .await
        .map_err(|e| ForwardError::Failed(format!("{} {}", origin.url(), describe(&e))))?;
    let response: Response<reqwest::Body> = response.into();
    Ok(response.map(body::boxed))
}

/// Headers for the local hop: no hop-by-hop headers, `Host` = the local origin.
pub(super) fn prepare(headers: &mut HeaderMap, authority: &str) {
    headers::strip_hop_by_hop(headers);
    if let Ok(v) = HeaderValue::from_str(authority) {
        headers.insert(header::HOST, v);
    }
}

/// A request from the ingress with its URI reduced to the path and query.
pub fn origin_form(mut req: Request<ProxyBody>) -> Request<ProxyBody> {
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_string();
    *req.uri_mut() = path
        .parse::<Uri>()
        .unwrap_or_else(|_| Uri::from_static("/"));
    *req.version_mut() = hyper::Version::HTTP_11;
    req
}

/// The 502 answer for a local-origin failure: the public diagnostic shape plus `error.kind`.
pub fn failure_response(
    request_id: Option<&str>,
    public_host: &str,
    path: &str,
    error: &ForwardError,
) -> (StatusCode, HeaderMap, Bytes) {
    let message = format!("the preview's local origin failed: {}", error.message());
    let doc = json!({
        "request_id": request_id,
        "host": public_host,
        "path": path,
        "status": 502,
        "classification": "upstream_error",
        "message": message,
        "error": {"kind": LOCAL_ORIGIN_FAILED, "message": error.message()},
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (
        StatusCode::BAD_GATEWAY,
        headers,
        Bytes::from(serde_json::to_vec(&doc).unwrap_or_default()),
    )
}
