//! Envelope → HTTP response, once for every server: the status comes from the error kind (through
//! `ErrorKind::status`), a 405 names the allowed methods in `Allow`, a 413 closes the connection (the rest of
//! the body was never read), and a status that is not a valid HTTP status becomes 500 — the one fallback.
//!
//! Responses are built with a `Full<Bytes>` body; each server maps it into its own body type
//! (`response.map(Body::new)` and the like).

use bytes::Bytes;
use homeboy_api::{ApiError, ErrorKind, error_body, success_bytes};
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use serde_json::Value;

/// The body of every response built here.
pub type JsonBody = Full<Bytes>;

/// `application/json`.
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Serialised JSON with `status` (500 when `status` is not a valid HTTP status).
pub fn json_response(status: u16, body: impl Into<Bytes>) -> Response<JsonBody> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status_or_500(status);
    response.headers_mut().insert(header::CONTENT_TYPE, JSON);
    response
}

/// A success envelope around `data`.
pub fn success_response(data: &Value) -> Response<JsonBody> {
    let data = serde_json::to_vec(data).unwrap_or_else(|_| b"null".to_vec());
    json_response(200, success_bytes(&data))
}

/// The error envelope of `error`, with the headers HTTP requires for its status. An internal error that has
/// no error id yet gets one, and its detail is logged under it: the client sees `internal` and the id only.
pub fn error_response(error: &ApiError) -> Response<JsonBody> {
    let identified;
    let error = if error.kind == ErrorKind::Internal && error.error_id().is_none() {
        let id = homeboy_config::secrets::error_id();
        tracing::error!(
            error_id = %id,
            code = %error.code,
            "internal error: {}",
            error.internal_detail.as_deref().unwrap_or(&error.message)
        );
        identified = error.clone().with_error_id(id);
        &identified
    } else {
        error
    };
    let body = serde_json::to_vec(&error_body(error)).unwrap_or_else(|_| {
        br#"{"success":false,"error":{"code":"internal","message":"response serialisation failed","details":{},"hints":[]}}"#.to_vec()
    });
    let mut response = json_response(error.status(), body);
    add_error_headers(&mut response, error);
    response
}

/// `Allow` on a 405 (from the error's `details.allowed`), `Connection: close` on a 413.
pub fn add_error_headers<B>(response: &mut Response<B>, error: &ApiError) {
    match error.status() {
        405 => {
            let allowed: Vec<&str> = error
                .details
                .get("allowed")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if let Ok(value) = HeaderValue::from_str(&allowed.join(", ")) {
                response.headers_mut().insert(header::ALLOW, value);
            }
        }
        413 => {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
}

/// `status` as an HTTP status, 500 when it is not one.
pub fn status_or_500(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response<JsonBody>) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn refusals_carry_allow_and_close_where_http_wants_them() {
        let r = error_response(&ApiError::method_not_allowed("GET", "/x", &["POST", "PUT"]));
        assert_eq!(r.status(), 405);
        assert_eq!(r.headers()[header::ALLOW], "POST, PUT");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(body_json(r).await["error"]["code"], "method_not_allowed");
        let r = error_response(&ApiError::payload_too_large(16));
        assert_eq!(r.status(), 413);
        assert_eq!(r.headers()[header::CONNECTION], "close");
        let r = success_response(&serde_json::json!({"a": 1}));
        assert_eq!(
            body_json(r).await,
            serde_json::json!({"success": true, "data": {"a": 1}})
        );
        assert_eq!(json_response(42, "{}").status(), 500, "the one fallback");
        let r = error_response(
            &ApiError::internal("writing failed").with_internal_detail("/srv/secret/path: EIO"),
        );
        assert_eq!(r.status(), 500);
        let body = body_json(r).await;
        assert!(
            body["error"]["details"]["error_id"]
                .as_str()
                .unwrap()
                .starts_with('e')
        );
        assert!(!body.to_string().contains("/srv/secret"));
    }
}
