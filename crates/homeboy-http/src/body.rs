//! Request body caps: a body is read whole only up to a limit, and a larger one is refused as
//! `payload.too_large` (413) — from `Content-Length` before reading, or while reading a chunked body.

use bytes::Bytes;
use homeboy_api::{ApiError, ErrorKind};
use http::HeaderMap;
use http::header;
use http_body::Body;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Default cap on request bodies: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads the whole body, refusing more than `limit` bytes with `payload.too_large`. A body that breaks off
/// is `validation.body_unreadable`.
pub async fn read_capped<B>(body: B, headers: &HeaderMap, limit: usize) -> Result<Bytes, ApiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    if body.size_hint().exact() == Some(0) {
        return Ok(Bytes::new());
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::payload_too_large(limit)),
        Err(_) => Err(ApiError::new(
            ErrorKind::Validation,
            "validation.body_unreadable",
            "the request body could not be read",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    #[tokio::test]
    async fn caps_declared_and_actual_sizes() {
        let ok = read_capped(Full::new(Bytes::from("hello")), &HeaderMap::new(), 5).await;
        assert_eq!(ok.unwrap(), "hello");
        let big = read_capped(Full::new(Bytes::from("hello!")), &HeaderMap::new(), 5).await;
        assert_eq!(big.unwrap_err().code, "payload.too_large");
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "999".parse().unwrap());
        let declared = read_capped(Full::new(Bytes::new()), &headers, 5).await;
        assert_eq!(declared.unwrap_err().status(), 413);
    }
}
