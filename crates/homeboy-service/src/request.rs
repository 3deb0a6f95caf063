//! The transport-free request and response: what any transport hands the handler and gets back.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::Value;

use homeboy_api::{ApiError, ErrorKind};

/// An HTTP method, as far as the contract cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other(String),
}

impl Method {
    /// Parses a method name (case-sensitive, as HTTP methods are).
    pub fn parse(name: &str) -> Method {
        match name {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => Method::Other(other.to_string()),
        }
    }

    /// The method name.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Other(name) => name,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request: method, raw (still percent-encoded) path, decoded query pairs, optional body bytes, and the
/// headers the contract looks at (lower-case names; today only credentials).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    pub headers: Vec<(String, String)>,
}

impl ApiRequest {
    /// A request for `path_and_query` (`/runs?limit=5`), splitting and decoding the query string.
    pub fn new(method: Method, path_and_query: &str, body: Option<Vec<u8>>) -> Self {
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, query),
            None => (path_and_query, ""),
        };
        ApiRequest {
            method,
            path: path.to_string(),
            query: parse_query(query),
            body,
            headers: Vec::new(),
        }
    }

    /// Adds a header (the name is lower-cased).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `Last-Event-ID` header as an event sequence (`None` when absent or empty); anything but digits
    /// is refused, on a followed stream and a plain page alike. Digits beyond the largest sequence name a
    /// point after every event there can be (`u64::MAX`): the stream resumes with nothing to replay.
    pub fn last_event_id(&self) -> Result<Option<u64>, ApiError> {
        match self.header("last-event-id").map(str::trim) {
            None | Some("") => Ok(None),
            Some(value) if value.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(value.parse::<u64>().unwrap_or(u64::MAX)))
            }
            Some(_) => Err(ApiError::invalid_argument(
                "Last-Event-ID",
                "must be the id of an event (a non-negative integer)",
            )),
        }
    }

    /// The bearer token: `Authorization: Bearer <token>`, else `x-homeboy-broker-token`.
    pub fn bearer_token(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(homeboy_api::auth::bearer_token)
            .or_else(|| {
                self.header(homeboy_api::auth::BROKER_TOKEN_HEADER)
                    .map(str::trim)
            })
    }

    /// Query parameter `name` as a number, with a clear error when it is not one.
    pub fn query_u64(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.query(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::invalid_argument(
                        name,
                        format!("must be a non-negative integer, got {v:?}"),
                    )
                })
            })
            .transpose()
    }

    /// `GET path_and_query`.
    pub fn get(path_and_query: &str) -> Self {
        Self::new(Method::Get, path_and_query, None)
    }

    /// `POST path_and_query` with a JSON body.
    pub fn post_json(path_and_query: &str, body: &Value) -> Self {
        Self::new(
            Method::Post,
            path_and_query,
            Some(serde_json::to_vec(body).unwrap_or_default()),
        )
    }

    /// The last value of query parameter `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as `T`. An empty or absent body parses as `{}`, so routes whose fields are all
    /// optional accept a bare POST. Syntax errors are `validation.invalid_json`; a wrong or unknown field is
    /// `validation.invalid_argument` / `validation.unknown_field` naming the field.
    pub fn json_body<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let bytes = match self.body.as_deref() {
            Some(b) if !b.iter().all(u8::is_ascii_whitespace) => b,
            _ => b"{}",
        };
        parse_json(bytes)
    }
}

/// Parses `bytes` as `T` with errors in the contract's terms (see [`ApiRequest::json_body`]). A number
/// with a zero fraction (`54.0`) is read as the integer it is, as JSON Schema reads it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // First make sure it is JSON at all, so syntax errors and shape errors are told apart.
    let mut value: Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::invalid_json(e.to_string()))?;
    integral_numbers(&mut value);
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let problem = inner.to_string();
        if let Some(rest) = problem.strip_prefix("unknown field `") {
            // The path already ends at the unknown field.
            let name = rest.split('`').next().unwrap_or_default();
            let field = if path == "." || path.is_empty() {
                name.to_string()
            } else {
                path
            };
            ApiError::unknown_field(field, problem)
        } else if let Some(rest) = problem.strip_prefix("missing field `") {
            let name = rest.split('`').next().unwrap_or_default();
            let field = if path == "." || path.is_empty() {
                name.to_string()
            } else {
                format!("{path}.{name}")
            };
            ApiError::invalid_argument(field, "is required")
        } else {
            let field = if path == "." {
                "body".to_string()
            } else {
                path
            };
            ApiError::invalid_argument(field, problem)
        }
    })
}

/// Rewrites every number with a zero fraction that an integer type can hold (`54.0`, `-7.0`) as that
/// integer: JSON does not tell `1.0` from `1`, and neither does the contract's schema (`type: integer`).
fn integral_numbers(value: &mut Value) {
    match value {
        Value::Number(number) if number.is_f64() => {
            let Some(float) = number.as_f64() else { return };
            if float.fract() != 0.0 || !float.is_finite() {
                return;
            }
            // Exactly representable in the integer types (2^64 and -2^63 are powers of two).
            if (0.0..18_446_744_073_709_551_616.0).contains(&float) {
                *value = Value::from(float as u64);
            } else if (-9_223_372_036_854_775_808.0..0.0).contains(&float) {
                *value = Value::from(float as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers),
        Value::Object(map) => map.values_mut().for_each(integral_numbers),
        _ => {}
    }
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A serialised envelope: shared for answers that never change, owned otherwise.
#[derive(Debug, Clone)]
pub enum JsonBytes {
    Shared(std::sync::Arc<[u8]>),
    Owned(Vec<u8>),
}

impl AsRef<[u8]> for JsonBytes {
    fn as_ref(&self) -> &[u8] {
        match self {
            JsonBytes::Shared(bytes) => bytes,
            JsonBytes::Owned(bytes) => bytes,
        }
    }
}

/// The handler's answer: an HTTP status and the envelope as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    pub body: Value,
    /// For the server's log when something failed inside (never part of the body).
    pub internal_detail: Option<Box<str>>,
}

impl ApiResponse {
    /// 200 with a success envelope around `data`.
    pub fn ok(data: Value) -> Self {
        ApiResponse {
            status: 200,
            body: homeboy_api::success_body(data),
            internal_detail: None,
        }
    }

    /// The error's status with an error envelope. An internal error gets an error id (`details.error_id`)
    /// that the transport logs with its detail, so the client learns the id and never the detail.
    pub fn error(error: &ApiError) -> Self {
        let identified;
        let error = if error.kind == ErrorKind::Internal && error.error_id().is_none() {
            identified = error
                .clone()
                .with_error_id(homeboy_config::secrets::error_id());
            &identified
        } else {
            error
        };
        ApiResponse {
            status: error.status(),
            body: homeboy_api::error_body(error),
            internal_detail: error.internal_detail.clone().or_else(|| {
                (error.kind == ErrorKind::Internal).then(|| error.message.clone().into())
            }),
        }
    }

    /// The error id of a failed answer (`details.error_id`), for the transport's log line.
    pub fn error_id(&self) -> Option<&str> {
        self.body["error"]["details"]["error_id"].as_str()
    }

    /// The envelope serialised as JSON bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(256);
        if serde_json::to_writer(&mut bytes, &self.body).is_err() {
            bytes.clear();
            bytes.extend_from_slice(
                br#"{"success":false,"error":{"code":"internal","message":"response serialisation failed","details":{},"hints":[]}}"#,
            );
        }
        bytes
    }

    /// The envelope's `data` when successful, the error otherwise (for in-process callers).
    pub fn into_result(self) -> Result<Value, ApiError> {
        let bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        homeboy_api::decode_envelope(self.status, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        runner_id: String,
        #[serde(default)]
        lease_ms: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Body,
    }

    #[test]
    fn nested_field_paths() {
        let e = parse_json::<Outer>(br#"{"inner": {"runner_id": "a", "x": 1}}"#).unwrap_err();
        assert_eq!(e.code, "validation.unknown_field");
        assert_eq!(e.details["field"], "inner.x");
        let e = parse_json::<Outer>(br#"{"inner": {}}"#).unwrap_err();
        assert_eq!(e.details["field"], "inner.runner_id");
    }

    #[test]
    fn last_event_id_is_digits_and_saturates_past_every_sequence() {
        let id = |value: &str| {
            ApiRequest::get("/jobs/j/events")
                .with_header("last-event-id", value)
                .last_event_id()
        };
        assert_eq!(id("").unwrap(), None);
        assert_eq!(id(" 42 ").unwrap(), Some(42));
        assert_eq!(id("18446744073709551615").unwrap(), Some(u64::MAX));
        assert_eq!(id("19956350904033407602399030186").unwrap(), Some(u64::MAX));
        for bad in ["-1", "4x", "0x10", "1 2", "+3"] {
            let e = id(bad).unwrap_err();
            assert_eq!(e.details["field"], "Last-Event-ID", "{bad}");
        }
        assert_eq!(
            ApiRequest::get("/jobs/j/events").last_event_id().unwrap(),
            None
        );
    }

    #[test]
    fn query_is_decoded() {
        let r = ApiRequest::get("/runs?kind=bench&component=my%20app&limit=5&limit=7");
        assert_eq!(r.path, "/runs");
        assert_eq!(r.query("component"), Some("my app"));
        assert_eq!(r.query("limit"), Some("7"));
        assert_eq!(r.query("missing"), None);
    }

    #[test]
    fn body_errors_name_the_field() {
        let bad = |body: &str| {
            ApiRequest::new(Method::Post, "/x", Some(body.as_bytes().to_vec()))
                .json_body::<Body>()
                .unwrap_err()
        };
        let e = bad("{nope");
        assert_eq!(e.code, "validation.invalid_json");
        let e = bad(r#"{"runner_id": "a", "fix": true}"#);
        assert_eq!(e.code, "validation.unknown_field");
        assert_eq!(e.details["field"], "fix");
        let e = bad(r#"{}"#);
        assert_eq!(e.code, "validation.invalid_argument");
        assert_eq!(e.details["field"], "runner_id");
        let e = bad(r#"{"runner_id": "a", "lease_ms": "soon"}"#);
        assert_eq!(e.code, "validation.invalid_argument");
        assert_eq!(e.details["field"], "lease_ms");
        let ok = ApiRequest::new(Method::Post, "/x", Some(br#"{"runner_id":"a"}"#.to_vec()))
            .json_body::<Body>()
            .unwrap();
        assert_eq!(ok.runner_id, "a");
        // An integer written with a zero fraction is the integer; a real fraction is not.
        let ok = ApiRequest::new(
            Method::Post,
            "/x",
            Some(br#"{"runner_id":"a","lease_ms":54.0}"#.to_vec()),
        )
        .json_body::<Body>()
        .unwrap();
        assert_eq!(ok.lease_ms, Some(54));
        let e = bad(r#"{"runner_id": "a", "lease_ms": 54.5}"#);
        assert_eq!(e.details["field"], "lease_ms");
        let e = bad(r#"{"runner_id": "a", "lease_ms": -1.0}"#);
        assert_eq!(e.details["field"], "lease_ms");
    }
}
