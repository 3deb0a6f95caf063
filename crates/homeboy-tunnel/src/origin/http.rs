//! The origin's request handling, as a tower stack around tower-http's `ServeDir`:
//!
//! `CorsLayer` (`Access-Control-Allow-Origin: *`, preflight) → [`Guard`] (refuses traversal with a 400 and
//! symlink escapes with a 403, both as JSON envelopes; adds `X-Content-Type-Options: nosniff`; weakens the
//! `ETag` of a compressed body) → `CompressionLayer` (gzip or brotli, only for whole text responses of more
//! than 256 bytes that the client accepts) → `ServeDir` over the [`RootedBackend`].
//!
//! HTTP semantics (content types, `ETag`/`Last-Modified`, conditional requests, `Range`, `HEAD`,
//! `index.html` for directories) are tower-http's, not ours.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use homeboy_api::{ApiError, ErrorKind, error_body};
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tower::{Layer, Service, ServiceExt};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;

use super::backend::RootedBackend;
use super::path_guard;

/// Errors of a response body (file reads).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body every origin response has.
pub type OriginBody = UnsyncBoxBody<Bytes, BoxError>;

/// Bytes read from a file per body chunk: big enough that streaming a large file costs few syscalls and
/// frames, small enough to stay far from the origin's memory budget.
pub const READ_CHUNK: usize = 64 * 1024;

/// The complete origin service for a canonical root.
pub fn origin_service(
    canonical_root: PathBuf,
    backend: RootedBackend,
) -> impl Service<
    Request<hyper::body::Incoming>,
    Response = Response<OriginBody>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    let files = ServeDir::with_backend(&canonical_root, backend).with_buf_chunk_size(READ_CHUNK);
    let compression = CompressionLayer::new()
        .quality(CompressionLevel::Precise(5))
        .compress_when(SizeAbove::new(256).and(WholeTextResponse));
    let guarded = Guard {
        inner: compression.layer(files),
        root: Arc::new(canonical_root),
    };
    cors().layer(guarded)
}

fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::any())
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers(tower_http::cors::Any)
        .expose_headers([
            header::ACCEPT_RANGES,
            header::CONTENT_ENCODING,
            header::CONTENT_LENGTH,
            header::CONTENT_RANGE,
            header::CONTENT_TYPE,
            header::ETAG,
            header::LAST_MODIFIED,
        ])
        .max_age(Duration::from_secs(600))
}

/// Compress only complete (200) responses whose type is text.
#[derive(Debug, Clone, Copy)]
struct WholeTextResponse;

impl Predicate for WholeTextResponse {
    fn should_compress<B>(&self, response: &Response<B>) -> bool
    where
        B: http_body::Body,
    {
        response.status() == StatusCode::OK
            && response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(is_text_type)
    }
}

fn is_text_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.starts_with("text/")
        || essence.ends_with("json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/javascript" | "application/xml" | "image/svg+xml" | "application/wasm"
        )
}

/// Refuses paths that try to leave the root before anything touches the filesystem (see module docs).
#[derive(Clone)]
struct Guard<S> {
    inner: S,
    root: Arc<PathBuf>,
}

type GuardFuture = Pin<Box<dyn Future<Output = Result<Response<OriginBody>, Infallible>> + Send>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Guard<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
    ReqBody: Send + 'static,
    ResBody: http_body::Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<OriginBody>;
    type Error = Infallible;
    type Future = GuardFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let relative = match path_guard::url_path(request.uri().path()) {
            Ok(relative) => relative,
            Err(refused) => {
                let error =
                    ApiError::invalid_argument("path", format!("the request path {}", refused.0));
                return Box::pin(std::future::ready(Ok(refusal(&error))));
            }
        };
        let inner = self.inner.clone();
        let root = Arc::clone(&self.root);
        Box::pin(async move {
            let response = inner.oneshot(request).await?;
            if response.status() == StatusCode::NOT_FOUND
                && path_guard::escapes_root(&root, &relative)
            {
                let error = ApiError::new(
                    ErrorKind::Forbidden,
                    "forbidden.outside_root",
                    "the request path leads out of the artifact root through a symlink",
                );
                return Ok(refusal(&error));
            }
            Ok(finish(response))
        })
    }
}

/// Adds `nosniff`, weakens a compressed body's `ETag`, boxes the body.
fn finish<B>(response: Response<B>) -> Response<OriginBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = response.into_parts();
    parts.headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if parts.headers.contains_key(header::CONTENT_ENCODING)
        && let Some(etag) = parts.headers.get(header::ETAG)
        && !etag.as_bytes().starts_with(b"W/")
    {
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(etag.as_bytes());
        if let Ok(weak) = HeaderValue::from_bytes(&weak) {
            parts.headers.insert(header::ETAG, weak);
        }
    }
    Response::from_parts(parts, body.map_err(Into::into).boxed_unsync())
}

/// A JSON envelope error response; its status comes from the error kind.
fn refusal(error: &ApiError) -> Response<OriginBody> {
    let body = serde_json::to_vec(&error_body(error)).unwrap_or_default();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() =
        StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types() {
        for t in [
            "text/html",
            "text/css; charset=utf-8",
            "application/json",
            "application/javascript",
            "image/svg+xml",
            "application/ld+json",
        ] {
            assert!(is_text_type(t), "{t}");
        }
        for t in [
            "image/png",
            "application/octet-stream",
            "video/mp4",
            "application/zip",
        ] {
            assert!(!is_text_type(t), "{t}");
        }
    }
}
