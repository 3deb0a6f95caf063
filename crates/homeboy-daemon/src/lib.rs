//! The homeboy daemon: the contract of `homeboy-api` served over HTTP on loopback, and the lifecycle
//! around it (state file, background start with an advisory lock, stop, status).
//!
//! The HTTP layer ([`http`]) is a thin adapter: it guards the Host header, limits bodies and hands every
//! request to [`homeboy_api::Api`]. Process lifecycle ([`lifecycle`]) is what `homeboy daemon
//! start|stop|status` call; [`server`] is what `homeboy daemon serve` runs.

pub mod artifact_bytes;
pub mod backoff;
pub mod broker_config;
pub mod build_info;
pub mod client;
pub mod components_view;
mod error;
pub mod executor;
pub mod http;
pub mod jobs_runtime;
pub mod jobs_view;
pub mod lifecycle;
pub mod local;
mod lock;
pub mod runner_worker;
pub mod runs_view;
pub mod serve_args;
pub mod server;
pub mod state;
pub mod text_table;

pub use error::DaemonError;
