//! The homeboy HTTP contract, with no HTTP in it.
//!
//! **API boundary.** This crate is the only place that knows the wire format: the JSON envelope
//! (`{"success": true, "data": …}` / `{"success": false, "error": {code, message, details, hints}}`), the
//! error kinds and the one function that maps them to HTTP status codes, and the request handler that turns an
//! [`ApiRequest`] into an [`ApiResponse`]. Transports (the axum daemon, in-process callers, tests) adapt to it;
//! it depends on no HTTP stack or async runtime, which a tidy test checks.

mod envelope;
mod error;
mod handler;
mod request;
pub mod router;
mod routes;

pub use envelope::{decode_envelope, error_body, success_body, success_bytes};
pub use error::{ApiError, ErrorKind};
pub use handler::{Api, DaemonIdentity, JsonAnswer, RunnerAuth};
pub use request::{ApiRequest, ApiResponse, JsonBytes, Method};
pub use routes::runner_claim::{ClaimBody, MAX_CLAIM_WAIT_MS};
pub use routes::{MAX_INLINE_BYTES, artifact_content_route};
