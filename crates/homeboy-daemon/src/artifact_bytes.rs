//! `GET|HEAD /runs/:id/artifacts/:artifact_id/content` over HTTP: the artifact's bytes streamed as the file
//! itself (not wrapped in the envelope), with its content type, length, a strong `ETag` (its SHA-256) and
//! single-range `Range` requests (206 with `Content-Range`, 416 when unsatisfiable; multi-range requests get
//! the whole file). The file is found and opened by `Api::open_artifact` — the same lookup and path safety
//! checks as the transport-free content route — so refusals are the same envelope errors.

use std::convert::Infallible;
use std::io::SeekFrom;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use homeboy_service::{Api, ApiError};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::http::error_response;

/// Bytes read per chunk while streaming.
const CHUNK: usize = 64 * 1024;

/// A parsed `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No usable range: send everything.
    Whole,
    /// Bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// A range that selects nothing of a file this size.
    Unsatisfiable,
}

/// Interprets a `Range` header for a file of `size` bytes. Only one `bytes=` range is honoured.
pub fn parse_range(value: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        (true, true) => return ByteRange::Whole,
        // The last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return ByteRange::Unsatisfiable,
            Ok(n) => (size.saturating_sub(n), size.saturating_sub(1)),
            Err(_) => return ByteRange::Whole,
        },
        (false, _) => {
            let Ok(start) = first.parse::<u64>() else {
                return ByteRange::Whole;
            };
            let end = if last.is_empty() {
                size.saturating_sub(1)
            } else {
                match last.parse::<u64>() {
                    Ok(end) if end >= start => end.min(size.saturating_sub(1)),
                    _ => return ByteRange::Whole,
                }
            };
            (start, end)
        }
    };
    let (start, end) = parsed;
    if size == 0 || start >= size {
        return ByteRange::Unsatisfiable;
    }
    ByteRange::Part { start, end }
}

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
        Err(error) => return error_response(&error),
    };
    let size = opened.size_bytes;
    let range = parse_range(
        headers.get(header::RANGE).and_then(|v| v.to_str().ok()),
        size,
    );
    let mut response = Response::new(Body::empty());
    let out = response.headers_mut();
    out.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&record.mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", record.sha256)) {
        out.insert(header::ETAG, etag);
    }
    let file_name: String = opened
        .file_name
        .chars()
        .filter(|c| (c.is_ascii_graphic() && *c != '"' && *c != '\\') || *c == ' ')
        .collect();
    if let Ok(disposition) = HeaderValue::from_str(&format!("inline; filename=\"{file_name}\"")) {
        out.insert(header::CONTENT_DISPOSITION, disposition);
    }
    let (status, start, length) = match range {
        ByteRange::Whole => (StatusCode::OK, 0, size),
        ByteRange::Part { start, end } => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
                out.insert(header::CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        ByteRange::Unsatisfiable => {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                out.insert(header::CONTENT_RANGE, value);
            }
            out.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            return response;
        }
    };
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    *response.status_mut() = status;
    if !head_only && length > 0 {
        *response.body_mut() = stream_file(opened.file, start, length);
    }
    response
}

/// `length` bytes of `file` from `start`, as a streaming body.
fn stream_file(file: std::fs::File, start: u64, length: u64) -> Body {
    let state = (tokio::fs::File::from_std(file), start, length, false);
    let stream =
        futures_util::stream::unfold(state, |(mut file, start, left, seeked)| async move {
            if left == 0 {
                return None;
            }
            if !seeked && start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
                return None;
            }
            let mut buf = vec![0u8; CHUNK.min(left as usize)];
            match file.read(&mut buf).await {
                Ok(0) | Err(_) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((
                        Ok::<_, Infallible>(Bytes::from(buf)),
                        (file, start, left - n as u64, true),
                    ))
                }
            }
        });
    Body::from_stream(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use ByteRange::*;
        assert_eq!(parse_range(None, 10), Whole);
        assert_eq!(
            parse_range(Some("bytes=0-4"), 10),
            Part { start: 0, end: 4 }
        );
        assert_eq!(parse_range(Some("bytes=5-"), 10), Part { start: 5, end: 9 });
        assert_eq!(parse_range(Some("bytes=-3"), 10), Part { start: 7, end: 9 });
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=8-100"), 10),
            Part { start: 8, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=4-2"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=0-1,4-5"), 10), Whole);
        assert_eq!(parse_range(Some("items=0-1"), 10), Whole);
        assert_eq!(parse_range(Some("bytes=x-1"), 10), Whole);
    }
}
