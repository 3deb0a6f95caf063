//! The homeboy HTTP contract, with no HTTP in it.
//!
//! **API boundary.** This crate is the only place that knows the wire format: the JSON envelope
//! (`{"success": true, "data": …}` / `{"success": false, "error": {code, message, details, hints}}`), the
//! error kinds and the one function that maps them to HTTP status codes, and the request and answer types of
//! every route: jobs and the runner broker ([`jobs`]), runs, artifacts and findings ([`runs`]), the tool
//! allowlist ([`tools`]), the server view ([`servers`]), the preview channel ([`preview`]) and who is
//! answering ([`identity`]). It depends on serde, serde_json and thiserror only — nothing of ours, no I/O, no
//! HTTP stack or runtime (a tidy test checks it) — so a downstream crate can embed it to speak to a homeboy
//! daemon, and every crate of the workspace that handles these types uses the same definitions.

pub mod auth;
mod envelope;
mod error;
pub mod identity;
pub mod jobs;
pub mod paging;
pub mod preview;
pub mod runs;
pub mod servers;
pub mod tools;

pub use envelope::{decode_envelope, error_body, success_body, success_bytes};
pub use error::{ApiError, ErrorKind};
pub use identity::DaemonIdentity;
