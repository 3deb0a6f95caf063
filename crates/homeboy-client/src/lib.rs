//! The client side of homeboy daemons and brokers — everything the CLI does to a daemon, nothing a server
//! needs:
//!
//! - [`client`]: the HTTP client (JSON in, envelope decoded into the contract's typed answers, errors in our
//!   terms) and [`lifecycle`]: `homeboy daemon start|stop|status`.
//! - [`runner_worker`]: `homeboy runner work` (session, claims, process groups, events, heartbeats) and
//!   [`secret_mask`]: the streaming masking of secret values in its jobs' output.
//! - [`local`]: reading observations in-process through the same handler the daemon serves, and running a
//!   tool here or as a daemon job.
//! - [`jobs_view`], [`runs_view`], [`components_view`] and [`text_table`]: what the CLI prints for people;
//!   [`sse`]: the bounded event-stream parser of `--follow`.

pub mod client;
pub mod components_view;
mod error;
pub mod jobs_view;
pub mod lifecycle;
pub mod local;
pub mod runner_worker;
pub mod runs_view;
pub mod secret_mask;
pub mod sse;
pub mod text_table;

pub use error::ClientError;
