//! The homeboy HTTP contract, with no HTTP in it.
//!
//! **API boundary.** This crate is the only place that knows the wire format: the JSON envelope
//! (`{"success": true, "data": …}` / `{"success": false, "error": {code, message, details, hints}}`), the
//! error kinds and the one function that maps them to HTTP status codes, every error code ([`codes`]), and
//! the request and answer types of every route: jobs and the runner broker ([`jobs`]), runs, artifacts and
//! findings ([`runs`]), the tool allowlist ([`tools`]), components, rigs and stacks ([`components`]), the
//! server view ([`servers`]), the preview channel and the ingress's status ([`preview`]), managed services
//! ([`tunnel`]) and who is answering ([`identity`]). It depends on serde, serde_json and thiserror only —
//! nothing of ours, no I/O, no HTTP stack or runtime (a tidy test checks it) — so a downstream crate can
//! embed it to speak to a homeboy daemon, and every crate of the workspace that handles these types uses the
//! same definitions. With the `schema` feature (schemars), every type has a JSON Schema and `openapi` builds
//! the OpenAPI 3.1 document of every route from them (`docs/openapi.json`, `GET /openapi.json`).

pub mod auth;
pub mod codes;
pub mod components;
mod envelope;
mod error;
pub mod identity;
pub mod jobs;
#[cfg(feature = "schema")]
pub mod openapi;
pub mod paging;
pub mod patterns;
pub mod preview;
#[cfg(test)]
mod proptests;
pub mod runs;
#[cfg(feature = "schema")]
mod schema_rules;
pub mod servers;
pub mod tools;
pub mod tunnel;

pub use envelope::{decode_envelope, error_body, success_body, success_bytes};
pub use error::{ApiError, ErrorKind};
pub use identity::DaemonIdentity;
