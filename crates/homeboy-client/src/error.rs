//! The client crate's error type: what can go wrong starting, stopping or asking a daemon or broker.

use std::path::PathBuf;

/// Everything a client operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
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
    /// The observation store could not be opened or read.
    #[error("cannot open the observation store: {0}")]
    Observations(homeboy_observations::ObservationError),
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

impl ClientError {
    pub(crate) fn io(action: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            action: action.into(),
            source,
        }
    }
}
