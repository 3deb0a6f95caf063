//! The homeboy daemon, server side: the contract of `homeboy-service` served over the shared HTTP edge
//! (`homeboy-http`) on loopback — what `homeboy daemon serve` and `homeboy-broker` run.
//!
//! - [`server`]: bind (loopback only, one daemon per config dir), open the stores, write the state file,
//!   answer until told to stop, drain, clean up.
//! - [`http`]: the daemon's application: its Host policy, body cap, and the hand-off of every request to
//!   the transport-free handler (off the event loop when a route may block).
//! - [`jobs_runtime`]: the job routes that need the transport (claim long poll, event stream) and the lease
//!   sweeper and pruning timers; [`executor`]: daemon-executed analysis jobs.
//! - [`artifact_bytes`]: the artifact byte route; [`dashboard`]: the page at `/` and its embedded files;
//!   [`serve_args`]: the flags `serve` and the broker share.
//! - [`liveness`]: requests in flight, the idle shutdown (`--idle-timeout`), and the reaper of work the
//!   binary asks the daemon to watch (managed services); [`metrics`]: `GET /metrics` (loopback only).
//!
//! The client side (HTTP client, start/stop/status, runner worker, text views) is `homeboy-client`.

pub mod artifact_bytes;
pub mod dashboard;
mod error;
pub mod executor;
pub mod http;
pub mod jobs_runtime;
pub mod liveness;
pub mod metrics;
pub mod serve_args;
pub mod server;

pub use error::DaemonError;
