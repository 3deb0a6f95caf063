//! The daemon crate's error type: what can go wrong binding, serving and stopping a daemon.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can go wrong serving a daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The operator asked for an address that is not loopback.
    #[error(
        "refusing to bind {addr}: the homeboy daemon only listens on loopback (127.0.0.1 or [::1])"
    )]
    NonLoopbackAddress { addr: SocketAddr },
    /// Another daemon already serves this config directory.
    #[error("another homeboy daemon already serves {config_dir} (pid {pid:?}, address {addr:?})")]
    AlreadyServing {
        config_dir: PathBuf,
        pid: Option<u32>,
        addr: Option<String>,
    },
    /// A combination of options that would expose the daemon.
    #[error("{0}")]
    UnsafeOptions(String),
    /// The job store could not be opened.
    #[error("cannot open the job store: {0}")]
    JobStore(homeboy_jobs::JobError),
    /// The observation store could not be opened.
    #[error("cannot open the observation store: {0}")]
    Observations(homeboy_observations::ObservationError),
    /// Binding the listening socket failed.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// Config files (state, locks) could not be read or written.
    #[error(transparent)]
    Config(#[from] homeboy_config::ConfigError),
    /// Another I/O failure.
    #[error("{action}: {source}")]
    Io {
        action: String,
        #[source]
        source: std::io::Error,
    },
}

impl DaemonError {
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        DaemonError::Io {
            action: action.into(),
            source,
        }
    }
}
