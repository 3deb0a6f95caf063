//! The daemon crate's error type.

use std::net::SocketAddr;
use std::path::PathBuf;

/// What can go wrong serving, starting, stopping or asking a daemon.
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
    /// The background daemon did not become healthy in time.
    #[error(
        "the daemon did not become healthy within {waited_ms} ms; last lines of {log}:\n{log_tail}"
    )]
    StartTimeout {
        waited_ms: u128,
        log: PathBuf,
        log_tail: String,
    },
    /// The background daemon exited during start-up.
    #[error("the daemon exited during start-up ({status}); last lines of {log}:\n{log_tail}")]
    StartFailed {
        status: String,
        log: PathBuf,
        log_tail: String,
    },
    /// The daemon is not running (for commands that need one).
    #[error("the homeboy daemon is not running; start it with `homeboy daemon start`")]
    NotRunning,
    /// A request to the daemon failed at the transport level.
    #[error("cannot reach the daemon at {url}: {message}")]
    Unreachable { url: String, message: String },
    /// The daemon answered with an error envelope.
    #[error(transparent)]
    Api(#[from] homeboy_api::ApiError),
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
