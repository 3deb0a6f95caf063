//! The transport-free request handler: one [`Api`] value answers every route of the contract over the local
//! stores (jobs, observations, component declarations), whatever the transport.
//!
//! An [`ApiRequest`] (method, path, query, body, the few headers the contract reads) goes in and an
//! [`ApiResponse`] or a [`JsonAnswer`] (the envelope, serialised) comes out. The route table lives in
//! [`router`] and `routes/` (one module per area); `routes/domain_errors.rs` and `routes/jobs.rs::job_error`
//! are the one place each domain error becomes a contract error (kind, code, message). The wire types
//! themselves are the contract crate's (`homeboy_api`). No HTTP stack and no async runtime: the HTTP edge
//! (`homeboy-http`) and the servers adapt to this crate, and tests drive it without sockets.

mod handler;
mod read_cache;
mod request;
pub mod router;
mod routes;

pub use handler::{Api, JsonAnswer, RunnerAuth};
pub use homeboy_api::{ApiError, DaemonIdentity, ErrorKind};
pub use request::{ApiRequest, ApiResponse, JsonBytes, Method, parse_json};
pub use routes::{LocalViews, MAX_INLINE_BYTES, artifact_content_route, job_error};
