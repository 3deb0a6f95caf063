//! The error model of the contract: an error kind that decides the HTTP status, a stable dotted code, a
//! human message, machine-readable details and hints for the person reading it.

use std::borrow::Cow;

use serde::Serialize;
use serde_json::{Map, Value, json};

/// The class of an error. Exactly one function, [`ErrorKind::status`], turns it into an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request is malformed or names something invalid (400).
    Validation,
    /// Credentials are missing or wrong (401).
    Unauthorized,
    /// The caller may not do this at all (403).
    Forbidden,
    /// The route or the resource does not exist (404).
    NotFound,
    /// The route exists but not with this method (405).
    MethodNotAllowed,
    /// The request conflicts with the current state (409).
    Conflict,
    /// The resource existed but is gone for good (410).
    Gone,
    /// The body is larger than the configured limit (413).
    PayloadTooLarge,
    /// Something broke on our side (500).
    Internal,
    /// A dependency is temporarily unavailable (503).
    Unavailable,
}

impl ErrorKind {
    /// Every kind, in the order of their statuses.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Validation,
        ErrorKind::Unauthorized,
        ErrorKind::Forbidden,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Conflict,
        ErrorKind::Gone,
        ErrorKind::PayloadTooLarge,
        ErrorKind::Internal,
        ErrorKind::Unavailable,
    ];

    /// The HTTP status for this kind: the single mapping every transport uses.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Validation => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::Conflict => 409,
            ErrorKind::Gone => 410,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }

    /// The inverse of [`ErrorKind::status`] for clients decoding a response; unknown codes map by class.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            401 => ErrorKind::Unauthorized,
            403 => ErrorKind::Forbidden,
            404 => ErrorKind::NotFound,
            405 => ErrorKind::MethodNotAllowed,
            409 => ErrorKind::Conflict,
            410 => ErrorKind::Gone,
            413 => ErrorKind::PayloadTooLarge,
            503 => ErrorKind::Unavailable,
            400..=499 => ErrorKind::Validation,
            _ => ErrorKind::Internal,
        }
    }
}

/// An error as the contract shows it to a client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} ({code})")]
pub struct ApiError {
    pub kind: ErrorKind,
    /// Stable dotted code such as `validation.invalid_argument`.
    pub code: Cow<'static, str>,
    pub message: String,
    pub details: Map<String, Value>,
    pub hints: Vec<String>,
    /// What went wrong inside, for the server's log only; never serialised to clients.
    pub internal_detail: Option<Box<str>>,
}

impl ApiError {
    /// An error of `kind` with a stable `code` and a message.
    pub fn new(
        kind: ErrorKind,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            kind,
            code: code.into(),
            message: message.into(),
            details: Map::new(),
            hints: Vec::new(),
            internal_detail: None,
        }
    }

    /// Adds one `details` entry.
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// Adds a hint for the reader.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// `validation.invalid_argument` for `field`, with `details: {field, problem}`.
    pub fn invalid_argument(field: impl Into<String>, problem: impl Into<String>) -> Self {
        let field = field.into();
        let problem = problem.into();
        ApiError::new(
            ErrorKind::Validation,
            "validation.invalid_argument",
            format!("invalid `{field}`: {problem}"),
        )
        .with_detail("field", field)
        .with_detail("problem", problem)
    }

    /// `validation.unknown_field` for a field the request may not carry.
    pub fn unknown_field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        let field = field.into();
        let problem = problem.into();
        ApiError::new(
            ErrorKind::Validation,
            "validation.unknown_field",
            format!("unknown field `{field}`: {problem}"),
        )
        .with_detail("field", field)
        .with_detail("problem", problem)
    }

    /// `validation.invalid_json`: the body is not JSON at all.
    pub fn invalid_json(problem: impl Into<String>) -> Self {
        let problem = problem.into();
        ApiError::new(
            ErrorKind::Validation,
            "validation.invalid_json",
            format!("request body is not valid JSON: {problem}"),
        )
        .with_detail("field", "body")
        .with_detail("problem", problem)
    }

    /// `not_found.route`: no route has this path.
    pub fn route_not_found(method: &str, path: &str) -> Self {
        ApiError::new(
            ErrorKind::NotFound,
            "not_found.route",
            format!("no route for {method} {path}"),
        )
        .with_detail("method", method)
        .with_detail("path", path)
        .with_hint(
            "GET /health answers on every homeboy daemon; see docs/http-contract.md for the routes",
        )
    }

    /// `method_not_allowed`: the path exists with other methods.
    pub fn method_not_allowed(method: &str, path: &str, allowed: &[&str]) -> Self {
        ApiError::new(
            ErrorKind::MethodNotAllowed,
            "method_not_allowed",
            format!(
                "{method} is not allowed on {path}; use {}",
                allowed.join(" or ")
            ),
        )
        .with_detail("method", method)
        .with_detail("allowed", json!(allowed))
    }

    /// `payload.too_large`: the body exceeds `limit` bytes.
    pub fn payload_too_large(limit: usize) -> Self {
        ApiError::new(
            ErrorKind::PayloadTooLarge,
            "payload.too_large",
            format!("request body is larger than the limit of {limit} bytes"),
        )
        .with_detail("limit_bytes", limit)
    }

    /// `internal`: something failed on our side. The message must not leak secrets or server paths.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::Internal, "internal", message)
    }

    /// The id under which the server logged this error's detail (`details.error_id`), if any.
    pub fn error_id(&self) -> Option<&str> {
        self.details.get("error_id").and_then(Value::as_str)
    }

    /// Names the log entry that holds this error's detail: `details.error_id`. A client reports the id; the
    /// operator finds the detail in the server's log under it.
    pub fn with_error_id(self, id: impl Into<String>) -> Self {
        self.with_detail("error_id", id.into())
    }

    /// Keeps `detail` for the server's log (it is never sent to the client).
    pub fn with_internal_detail(mut self, detail: impl Into<String>) -> Self {
        self.internal_detail = Some(detail.into().into_boxed_str());
        self
    }

    /// Serialises as the `error` member of the envelope.
    pub fn to_json(&self) -> Value {
        let hints: Vec<Value> = self.hints.iter().map(|h| json!({"message": h})).collect();
        json!({
            "code": self.code,
            "message": self.message,
            "details": self.details,
            "hints": hints,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_is_total_and_round_trips() {
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_status(kind.status()), kind);
        }
    }

    #[test]
    fn validation_errors_carry_field_and_problem() {
        let e = ApiError::invalid_argument("limit", "must be a positive integer");
        assert_eq!(e.status(), 400);
        let j = e.to_json();
        assert_eq!(j["code"], "validation.invalid_argument");
        assert_eq!(j["details"]["field"], "limit");
        assert_eq!(j["details"]["problem"], "must be a positive integer");
        assert!(j["hints"].as_array().unwrap().is_empty());
    }
}
