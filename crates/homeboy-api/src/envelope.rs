//! The JSON envelope every daemon response carries, and its decoder for clients.

use serde_json::{Value, json};

use crate::{ApiError, ErrorKind};

/// `{"success": true, "data": data}`.
pub fn success_body(data: Value) -> Value {
    json!({"success": true, "data": data})
}

/// `{"success":true,"data":<data>}` around data that is already serialised.
pub fn success_bytes(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 26);
    out.extend_from_slice(br#"{"success":true,"data":"#);
    out.extend_from_slice(data);
    out.push(b'}');
    out
}

/// `{"success": false, "error": {...}}`.
pub fn error_body(error: &ApiError) -> Value {
    json!({"success": false, "error": error.to_json()})
}

/// Decodes a response body produced by a homeboy daemon: `Ok(data)` for a success envelope, the
/// [`ApiError`] it carries otherwise. A body that is not an envelope becomes an `internal` error that says so.
pub fn decode_envelope(status: u16, body: &[u8]) -> Result<Value, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            ErrorKind::from_status(status),
            "client.invalid_envelope",
            format!("HTTP {status} with a body that is not a homeboy envelope: {e}"),
        )
    })?;
    match value.get("success").and_then(Value::as_bool) {
        Some(true) => Ok(value.get("data").cloned().unwrap_or(Value::Null)),
        Some(false) => Err(error_from_json(status, value.get("error"))),
        None => Err(ApiError::new(
            ErrorKind::from_status(status),
            "client.invalid_envelope",
            format!("HTTP {status} with JSON that is not a homeboy envelope"),
        )),
    }
}

fn error_from_json(status: u16, error: Option<&Value>) -> ApiError {
    let error = error.cloned().unwrap_or(Value::Null);
    let text = |key: &str| error.get(key).and_then(Value::as_str).map(str::to_string);
    let mut decoded = ApiError::new(
        ErrorKind::from_status(status),
        text("code").unwrap_or_else(|| "internal".to_string()),
        text("message").unwrap_or_else(|| format!("HTTP {status}")),
    );
    if let Some(Value::Object(details)) = error.get("details") {
        decoded.details = details.clone();
    }
    if let Some(Value::Array(hints)) = error.get("hints") {
        decoded.hints = hints
            .iter()
            .filter_map(|h| h.get("message").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_through_the_envelope() {
        let original =
            ApiError::invalid_argument("addr", "must be loopback").with_hint("use 127.0.0.1");
        let body = serde_json::to_vec(&error_body(&original)).unwrap();
        let decoded = decode_envelope(original.status(), &body).unwrap_err();
        assert_eq!(decoded, original);
    }

    #[test]
    fn success_and_garbage() {
        let body = serde_json::to_vec(&success_body(json!({"x": 1}))).unwrap();
        assert_eq!(decode_envelope(200, &body).unwrap(), json!({"x": 1}));
        let err = decode_envelope(502, b"<html>bad gateway</html>").unwrap_err();
        assert_eq!(err.code, "client.invalid_envelope");
        assert!(err.message.contains("502"));
    }
}
