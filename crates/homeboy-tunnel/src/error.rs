//! The error type of the tunnel crate: what can go wrong while declaring, starting, checking or stopping a
//! managed service, serving the artifact origin, or running a preview consumer.
//!
//! [`TunnelError::is_refused_input`] tells a caller which errors are the caller's input being refused (the
//! CLI exits 2 for those) rather than something failing. Messages are one line and never carry a token or
//! an environment variable's value.

use std::net::SocketAddr;
use std::path::PathBuf;

use homeboy_config::ConfigError;

/// Everything that can go wrong in `homeboy tunnel`.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// A declaration or config file could not be read, parsed or written.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The observation store refused or failed to record an artifact of a run.
    #[error(transparent)]
    Observations(#[from] homeboy_observations::ObservationError),
    /// A command-line or config value is refused (`field` names the flag or the dotted field).
    #[error("invalid {field}: {problem}")]
    InvalidInput { field: String, problem: String },
    /// `service start` on a service whose process group is still alive.
    #[error(
        "service {id:?} is already running (pid {pid}); stop it first or pass --if-not-running"
    )]
    AlreadyRunning { id: String, pid: u32 },
    /// The service process exited while `start` waited for it to become ready.
    #[error(
        "service {id:?} exited with code {} before it was ready; logs: {}",
        exit_code.map_or_else(|| "unknown".to_string(), |c| c.to_string()),
        stderr_log.display()
    )]
    ExitedBeforeReady {
        id: String,
        exit_code: Option<i32>,
        stderr_log: PathBuf,
    },
    /// Readiness gates still failed when the wait ran out; the service was stopped.
    #[error(
        "service {id:?} was not ready after {waited_secs} s (still waiting for: {pending}); stopped it, logs kept in {}",
        log_dir.display()
    )]
    NotReady {
        id: String,
        waited_secs: u64,
        pending: String,
        log_dir: PathBuf,
    },
    /// A service has no recorded public URL (preview consumer `--service-id`).
    #[error(
        "service {id:?} has no recorded public URL: start it with --public-tunnel-public-url, or pass --preview-public-url"
    )]
    NoPublicUrl { id: String },
    /// A child process could not be started.
    #[error("could not start {what}: {source}")]
    Spawn {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A file or directory operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `artifact-origin serve --bind` names a non-loopback address without `--allow-public-bind`.
    #[error(
        "refusing to bind {addr}: not a loopback address (pass --allow-public-bind to serve beyond this machine, behind your TLS proxy)"
    )]
    NonLoopbackBind { addr: SocketAddr },
    /// The listening socket could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// An artifact path tries to leave the artifact root.
    #[error("refused artifact path {path:?}: {problem}")]
    PathRefused { path: String, problem: String },
}

impl TunnelError {
    /// A refused value for `field`.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        TunnelError::InvalidInput {
            field: field.into(),
            problem: problem.into(),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        TunnelError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    /// Whether this error is the caller's input being refused (bad flag, bad config, a non-loopback bind,
    /// a traversal attempt) rather than an operation failing.
    pub fn is_refused_input(&self) -> bool {
        match self {
            TunnelError::InvalidInput { .. }
            | TunnelError::NonLoopbackBind { .. }
            | TunnelError::PathRefused { .. } => true,
            TunnelError::Config(e) => matches!(
                e,
                ConfigError::Invalid { .. } | ConfigError::InvalidId { .. }
            ),
            _ => false,
        }
    }
}
