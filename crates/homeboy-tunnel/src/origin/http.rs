//! The origin's request handling, as a tower stack:
//!
//! `CorsLayer` (`Access-Control-Allow-Origin: *`, preflight) → [`Guard`] (only `GET`/`HEAD`; a request path
//! over [`path_guard::MAX_URL_PATH_BYTES`] is 414, traversal is 400, a dotfile or an over-long segment is
//! 404, all as JSON envelopes; adds `X-Content-Type-Options: nosniff`; weakens the `ETag` of a compressed
//! body) → `CompressionLayer` (gzip or brotli, only for whole text responses of more than 256 bytes that
//! the client accepts) → [`Files`] (opens the file through the [`RootedBackend`] — a symlink escape is 403,
//! anything missing 404, a directory without its `/` a 307 to it — and answers with
//! `homeboy_http::files`: content type, `ETag`/`Last-Modified`, conditional requests, `Range`, `HEAD`).

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use homeboy_api::{ApiError, ErrorKind};
use homeboy_config::BeneathError;
use homeboy_http::files::{FileBody, FileEntity};
use homeboy_http::response::JsonBody;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either};
use tower::{Layer, Service, ServiceExt};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::backend::{Lookup, RootedBackend};
use super::{content_type, path_guard};

/// Errors of a response body (file reads).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body every origin response has.
pub type OriginBody = UnsyncBoxBody<Bytes, BoxError>;

/// The body of [`Files`]: a file or an envelope.
type FilesBody = Either<FileBody, JsonBody>;

/// The complete origin service for the root that `backend` has open (`_canonical_root` names the same
/// directory; the backend's handle is what files are opened through).
pub fn origin_service(
    _canonical_root: PathBuf,
    backend: RootedBackend,
) -> impl Service<
    Request<hyper::body::Incoming>,
    Response = Response<OriginBody>,
    Error = Infallible,
    Future: Send,
> + Clone
+ Send
+ 'static {
    stack(backend)
}

/// The stack of [`origin_service`] for any request body.
fn stack<ReqBody>(
    backend: RootedBackend,
) -> impl Service<Request<ReqBody>, Response = Response<OriginBody>, Error = Infallible, Future: Send>
+ Clone
+ Send
+ 'static
where
    ReqBody: Send + 'static,
{
    let files = Files { backend };
    let compression = CompressionLayer::new()
        .quality(CompressionLevel::Precise(5))
        .compress_when(SizeAbove::new(256).and(WholeTextResponse));
    let guarded = Guard {
        compressing: compression.layer(files.clone()),
        plain: files,
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

/// The root-relative path [`Guard`] checked, handed to [`Files`] with the request.
#[derive(Debug, Clone)]
struct Relative(String);

/// Refuses what must not reach the filesystem (see module docs), and sends only requests that accept a
/// content coding through the compression layer, so the common case of a browser sub-resource or a tool
/// fetching bytes pays nothing for it.
#[derive(Clone)]
struct Guard<P, C> {
    plain: P,
    compressing: C,
}

type GuardFuture = Pin<Box<dyn Future<Output = Result<Response<OriginBody>, Infallible>> + Send>>;

impl<P, C, ReqBody, CompressedBody> Service<Request<ReqBody>> for Guard<P, C>
where
    P: Service<Request<ReqBody>, Response = Response<FilesBody>, Error = Infallible>
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
    CompressedBody: http_body::Body<Data = Bytes> + Send + 'static,
    CompressedBody::Error: Into<BoxError>,
{
    type Response = Response<OriginBody>;
    type Error = Infallible;
    type Future = GuardFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let relative = match checked_path(&request) {
            Ok(relative) => relative,
            Err(refusal) => return Box::pin(ready(Ok(finish(*refusal)))),
        };
        request.extensions_mut().insert(Relative(relative));
        if request.headers().contains_key(header::ACCEPT_ENCODING) {
            let inner = self.compressing.clone();
            Box::pin(async move { Ok(finish(inner.oneshot(request).await?)) })
        } else {
            let inner = self.plain.clone();
            Box::pin(async move { Ok(finish(inner.oneshot(request).await?)) })
        }
    }
}

/// The method and the request path, checked before anything touches the filesystem.
fn checked_path<B>(request: &Request<B>) -> Result<String, Box<Response<JsonBody>>> {
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return Err(Box::new(homeboy_http::error_response(
            &ApiError::method_not_allowed(
                request.method().as_str(),
                "the artifact origin",
                &["GET", "HEAD"],
            ),
        )));
    }
    let raw = request.uri().path();
    if raw.len() > path_guard::MAX_URL_PATH_BYTES {
        let error = ApiError::new(
            ErrorKind::Validation,
            "validation.uri_too_long",
            format!(
                "the request path is longer than {} bytes",
                path_guard::MAX_URL_PATH_BYTES
            ),
        );
        let mut response = homeboy_http::error_response(&error);
        *response.status_mut() = StatusCode::URI_TOO_LONG;
        return Err(Box::new(response));
    }
    let relative = path_guard::url_path(raw).map_err(|refused| {
        Box::new(homeboy_http::error_response(&ApiError::invalid_argument(
            "path",
            format!("the request path {}", refused.0),
        )))
    })?;
    path_guard::served(&relative).map_err(|_| Box::new(not_found()))?;
    Ok(relative)
}

fn not_found() -> Response<JsonBody> {
    homeboy_http::error_response(&ApiError::new(
        ErrorKind::NotFound,
        "not_found",
        "no file at this path",
    ))
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

/// Opens the file a checked path names and answers with it (see module docs). Opening and the first read
/// are synchronous on the worker: see `homeboy_http::files` for why.
#[derive(Clone)]
struct Files {
    backend: RootedBackend,
}

impl<ReqBody> Service<Request<ReqBody>> for Files {
    type Response = Response<FilesBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<FilesBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let envelope = |response: Response<JsonBody>| response.map(Either::Right);
        let Some(Relative(relative)) = request.extensions().get::<Relative>().cloned() else {
            // Only reachable through the Guard, which always sets it.
            return ready(Ok(envelope(not_found())));
        };
        let response = match self.backend.lookup(&relative) {
            Lookup::File {
                file,
                metadata,
                served,
            } => {
                let content_type =
                    HeaderValue::from_str(&content_type(std::path::Path::new(&served)))
                        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
                let entity = FileEntity::from_metadata(file, &metadata, content_type);
                homeboy_http::files::respond(request.method(), request.headers(), entity)
                    .map(Either::Left)
            }
            Lookup::Directory => {
                let uri = request.uri();
                let location = match uri.query() {
                    Some(query) => format!("{}/?{query}", uri.path()),
                    None => format!("{}/", uri.path()),
                };
                let mut response = Response::new(Either::Left(FileBody::empty()));
                *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
                if let Ok(location) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                response
            }
            Lookup::Refused(BeneathError::Escapes { .. }) => {
                envelope(homeboy_http::error_response(&ApiError::new(
                    ErrorKind::Forbidden,
                    "forbidden.outside_root",
                    "the request path leads out of the artifact root through a symlink",
                )))
            }
            Lookup::Refused(BeneathError::Io { .. }) => envelope(homeboy_http::error_response(
                &ApiError::internal("the file could not be opened"),
            )),
            Lookup::Refused(_) => envelope(not_found()),
        };
        ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use homeboy_config::RootDir;
    use homeboy_config::beneath::Strategy;

    struct Answer {
        status: u16,
        headers: http::HeaderMap,
        body: Vec<u8>,
    }

    impl Answer {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.get(name).map(|v| v.to_str().unwrap())
        }
    }

    fn block_on<F: Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    fn ask(
        backend: &RootedBackend,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(target);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(http_body_util::Empty::<Bytes>::new()).unwrap();
        block_on(async {
            let response = stack(backend.clone()).oneshot(request).await.unwrap();
            let (parts, body) = response.into_parts();
            Answer {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body: body.collect().await.unwrap().to_bytes().to_vec(),
            }
        })
    }

    fn code(answer: &Answer) -> String {
        let value: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        value["error"]["code"].as_str().unwrap().to_string()
    }

    /// The origin's rules, through both strategies of the opener.
    #[test]
    fn paths_refusals_and_file_responses() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("bundle/.git")).unwrap();
        std::fs::write(root.join("bundle/report.html"), "<p>x</p>".repeat(100)).unwrap();
        std::fs::write(root.join("bundle/index.html"), "<p>index</p>").unwrap();
        std::fs::write(root.join("bundle/data.bin"), "0123456789").unwrap();
        std::fs::write(root.join("bundle/empty.txt"), "").unwrap();
        std::fs::write(root.join(".env"), "SECRET=1").unwrap();
        std::fs::write(root.join("bundle/.git/config"), "SECRET=1").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "SECRET=1").unwrap();
        std::os::unix::fs::symlink("../secret.txt", root.join("leak.txt")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        for backend in [
            RootedBackend::new(&root).unwrap(),
            RootedBackend::with_root(RootDir::open(&root).unwrap().with_strategy(Strategy::Walk)),
        ] {
            let get = |target: &str| ask(&backend, "GET", target, &[]);
            let a = get("/bundle/data.bin");
            assert_eq!((a.status, a.body.as_slice()), (200, &b"0123456789"[..]));
            assert_eq!(a.header("content-type"), Some("application/octet-stream"));
            assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
            assert_eq!(a.header("accept-ranges"), Some("bytes"));
            let a = get("/bundle/");
            assert_eq!((a.status, a.body.as_slice()), (200, &b"<p>index</p>"[..]));
            assert_eq!(a.header("content-type"), Some("text/html"));
            let a = ask(&backend, "GET", "/bundle?x=1", &[]);
            assert_eq!(
                (a.status, a.header("location")),
                (307, Some("/bundle/?x=1"))
            );

            // Refusals, each with its status and envelope code; nothing secret in any answer.
            let long_segment = format!("/bundle/{}", "n".repeat(256));
            let long_path = format!("/{}", "a/".repeat(4100));
            for (target, status, error) in [
                ("/../secret.txt", 400, "validation.invalid_argument"),
                ("/%2e%2e/secret.txt", 400, "validation.invalid_argument"),
                ("/leak.txt", 403, "forbidden.outside_root"),
                ("/.env", 404, "not_found"),
                ("/bundle/.git/config", 404, "not_found"),
                ("/%2eenv", 404, "not_found"),
                (long_segment.as_str(), 404, "not_found"),
                (long_path.as_str(), 414, "validation.uri_too_long"),
                ("/bundle/missing.html", 404, "not_found"),
                ("/bundle/data.bin/", 404, "not_found"),
            ] {
                let a = get(target);
                assert_eq!(a.status, status, "{target:.60}");
                assert_eq!(code(&a), error, "{target:.60}");
                assert!(!String::from_utf8_lossy(&a.body).contains("SECRET"));
            }
            let a = ask(&backend, "POST", "/bundle/data.bin", &[]);
            assert_eq!((a.status, a.header("allow")), (405, Some("GET, HEAD")));
            let a = ask(&backend, "HEAD", "/leak.txt", &[]);
            assert_eq!(a.status, 403);

            // RFC 9110 through the origin: ranges, If-Range, validators.
            let a = ask(
                &backend,
                "GET",
                "/bundle/data.bin",
                &[("range", "BYTES=2-3")],
            );
            assert_eq!((a.status, a.body.as_slice()), (206, &b"23"[..]));
            let a = ask(
                &backend,
                "GET",
                "/bundle/data.bin",
                &[("range", "items=2-3")],
            );
            assert_eq!(a.status, 200);
            let a = ask(
                &backend,
                "GET",
                "/bundle/empty.txt",
                &[("range", "bytes=0-0")],
            );
            assert_eq!(
                (a.status, a.header("content-range")),
                (416, Some("bytes */0"))
            );
            let a = ask(
                &backend,
                "GET",
                "/bundle/data.bin",
                &[("range", "bytes=0-0,8-")],
            );
            assert_eq!(a.status, 206);
            assert!(
                a.header("content-type")
                    .unwrap()
                    .starts_with("multipart/byteranges")
            );
            let etag = get("/bundle/data.bin").header("etag").unwrap().to_string();
            let a = ask(
                &backend,
                "GET",
                "/bundle/data.bin",
                &[("range", "bytes=0-0"), ("if-range", "\"stale\"")],
            );
            assert_eq!(a.status, 200);
            let a = ask(
                &backend,
                "GET",
                "/bundle/data.bin",
                &[("range", "bytes=0-0"), ("if-range", &etag)],
            );
            assert_eq!(a.status, 206);
            let a = ask(
                &backend,
                "GET",
                "/bundle/data.bin",
                &[("if-none-match", &etag)],
            );
            assert_eq!((a.status, a.body.len()), (304, 0));

            // Compression for text the client accepts; its ETag is weak and still revalidates.
            let a = ask(
                &backend,
                "GET",
                "/bundle/report.html",
                &[("accept-encoding", "gzip")],
            );
            assert_eq!(a.header("content-encoding"), Some("gzip"));
            let weak = a.header("etag").unwrap().to_string();
            assert!(weak.starts_with("W/"), "{weak}");
            let a = ask(
                &backend,
                "GET",
                "/bundle/report.html",
                &[("accept-encoding", "gzip"), ("if-none-match", &weak)],
            );
            assert_eq!(a.status, 304);
            let a = ask(
                &backend,
                "GET",
                "/bundle/report.html",
                &[("accept-encoding", "gzip"), ("range", "bytes=0-1")],
            );
            assert_eq!(
                (a.status, a.header("content-encoding")),
                (206, None),
                "ranges are not compressed"
            );
        }
    }

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
