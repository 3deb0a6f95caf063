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
use std::path::{Path, PathBuf};
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
        compressing: compression.layer(files.clone()),
        plain: files,
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
        // Every origin gets the same answer (`*`), so responses do not vary by request headers.
        .vary([])
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

/// Refuses paths that try to leave the root before anything touches the filesystem (see module docs), and
/// sends only requests that accept a content coding through the compression layer, so the common case of a
/// browser sub-resource or a tool fetching bytes pays nothing for it.
#[derive(Clone)]
struct Guard<P, C> {
    plain: P,
    compressing: C,
    root: Arc<PathBuf>,
}

type GuardFuture = Pin<Box<dyn Future<Output = Result<Response<OriginBody>, Infallible>> + Send>>;

impl<P, C, ReqBody, PlainBody, CompressedBody> Service<Request<ReqBody>> for Guard<P, C>
where
    P: Service<Request<ReqBody>, Response = Response<PlainBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    P::Future: Send,
    C: Service<Request<ReqBody>, Response = Response<CompressedBody>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    C::Future: Send,
    ReqBody: Send + 'static,
    PlainBody: http_body::Body<Data = Bytes> + Send + 'static,
    PlainBody::Error: Into<BoxError>,
    CompressedBody: http_body::Body<Data = Bytes> + Send + 'static,
    CompressedBody::Error: Into<BoxError>,
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
        let root = Arc::clone(&self.root);
        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            let inner = self.compressing.clone();
            Box::pin(async move { Ok(checked(inner.oneshot(request).await?, &root, &relative)) })
        } else {
            let inner = self.plain.clone();
            Box::pin(async move { Ok(checked(inner.oneshot(request).await?, &root, &relative)) })
        }
    }
}

/// A 404 for a path that exists but leads out of the root becomes a 403 that says so.
fn checked<B>(response: Response<B>, root: &Path, relative: &str) -> Response<OriginBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    if response.status() == StatusCode::NOT_FOUND && path_guard::escapes_root(root, relative) {
        let error = ApiError::new(
            ErrorKind::Forbidden,
            "forbidden.outside_root",
            "the request path leads out of the artifact root through a symlink",
        );
        return refusal(&error);
    }
    finish(response)
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
