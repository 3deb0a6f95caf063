//! `GET|HEAD /runs/:id/artifacts/:artifact_id/content` over HTTP: the artifact's bytes streamed as the file
//! itself (not wrapped in the envelope), answered by `homeboy_http::files` — the same RFC 9110 responder as
//! the artifact origin: content type and length, a strong `ETag` (the artifact's SHA-256), `Last-Modified`,
//! `Content-Disposition`, `If-None-Match`/`If-Modified-Since` (304), `If-Match`/`If-Unmodified-Since`
//! (412), `If-Range`, single, suffix and multiple ranges (206, `multipart/byteranges`), 416 when nothing
//! is satisfiable. The file is found and opened by `Api::open_artifact` — the same lookup and path safety
//! checks as the transport-free content route — so refusals are the same envelope errors.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::Response;
use homeboy_http::files::FileEntity;
use homeboy_service::{Api, ApiError};

/// Answers the byte route for artifact `artifact_id` of run `run_id`.
pub async fn respond(
    api: Arc<Api>,
    run_id: String,
    artifact_id: String,
    headers: &HeaderMap,
    head_only: bool,
) -> Response {
    let opened = tokio::task::spawn_blocking(move || api.open_artifact(&run_id, &artifact_id))
        .await
        .unwrap_or_else(|_| Err(ApiError::internal("opening the artifact failed")));
    let (record, opened) = match opened {
        Ok(found) => found,
        Err(error) => return homeboy_http::error_response(&error).map(Body::new),
    };
    let content_type = HeaderValue::from_str(&record.mime)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut entity = FileEntity::new(
        opened.file,
        opened.size_bytes,
        opened.modified,
        content_type,
    )
    .with_strong_etag(&record.sha256);
    let file_name: String = opened
        .file_name
        .chars()
        .filter(|c| (c.is_ascii_graphic() && *c != '"' && *c != '\\') || *c == ' ')
        .collect();
    if let Ok(disposition) = HeaderValue::from_str(&format!("inline; filename=\"{file_name}\"")) {
        entity = entity.with_header(header::CONTENT_DISPOSITION, disposition);
    }
    let method = if head_only { Method::HEAD } else { Method::GET };
    homeboy_http::files::respond(&method, headers, entity).map(Body::new)
}
