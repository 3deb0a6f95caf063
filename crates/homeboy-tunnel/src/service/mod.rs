//! Managed services: `homeboy tunnel service start|status|stop`.
//!
//! `start` runs a declared service's command as its own session and process group under a tiny supervisor
//! that records the exit code ([`spawn`]), with stdout/stderr logs under the data dir, records the runtime
//! state atomically ([`state`]), waits (bounded) until the readiness gates pass ([`readiness`]), then starts
//! the optional provider-neutral backend command and writes the preview artifact when the declaration's
//! preview policy asks for one. `status` re-checks everything from the recorded state. `stop` terminates
//! the backend's group and then the service's (SIGTERM, grace, SIGKILL), removes the runtime state and keeps
//! the logs. [`reaper`] is the liveness side, for a daemon watching the services: it records `ended` (with
//! the exit code) once a service's process group is gone, and cleans records a reboot left behind.

mod probe;
pub mod readiness;
pub mod reaper;
pub mod spawn;
mod start;
pub mod state;
mod status;
mod stop;

pub use start::{StartOutcome, StartReport, StartRequest, parse_env, start, start_showing};
pub use status::{BackendStatus, ServiceState, ServiceStatus, status, summaries, summary};
pub use stop::{StopOutcome, StopReport, stop};

use std::time::Duration;

/// How long `stop` waits after SIGTERM before SIGKILL, unless told otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// How long `start` waits for readiness, unless told otherwise.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);
