//! The HTTP edge every homeboy server shares — the daemon and broker, the preview ingress and the artifact
//! origin — so that what a connection goes through before a route sees it is written once:
//!
//! - [`serve`]: the accept loop (HTTP/1.1, keep-alive, upgrades, header-read timeout, bounded drain), and
//!   [`workers`]: one single-threaded runtime per core on `SO_REUSEPORT` sockets.
//! - [`body`]: request body caps (`payload.too_large`); [`backoff`]: retry delays for clients.
//! - [`host`]: `Host`/`Origin` parsing and the loopback policy.
//! - [`response`]: the envelope as an HTTP response, with the one fallback status; [`logging`]: server logs
//!   (stderr, or a capped and rotated file); [`metrics`]: `GET /metrics` in the Prometheus text format.
//! - [`files`]: a file as an HTTP response (validators, conditional requests, ranges) per RFC 9110.
//! - [`client`] (feature `client`): the reqwest builder and error text without URLs.
//!
//! Which routes a server has, and which hosts may reach them, is the server's; how bytes become a request
//! and an envelope becomes a response is this crate's.

pub mod backoff;
pub mod body;
#[cfg(feature = "client")]
pub mod client;
pub mod files;
pub mod host;
pub mod logging;
pub mod metrics;
#[cfg(test)]
mod proptests;
pub mod response;
pub mod serve;
pub mod workers;

pub use body::{DEFAULT_MAX_BODY_BYTES, read_capped};
pub use response::{error_response, json_response, success_response};
pub use serve::{ConnOptions, serve};
