//! The error type of the preview crate: what can go wrong in the route table, the ingress, the preview
//! client and the install plans. Messages never carry a token; refused input is told apart from failures so
//! the CLI can exit 2 for the former and 1 for the latter.

use std::net::SocketAddr;

use homeboy_config::ConfigError;

/// Everything that can go wrong in `homeboy-preview`.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// Reading or writing homeboy's files failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An argument or a request field is malformed.
    #[error("invalid {field}: {problem}")]
    InvalidArgument { field: String, problem: String },
    /// Another route record already serves this public host.
    #[error(
        "public host {host:?} is already routed by session {session_id:?}; unroute it first or pick another host"
    )]
    HostTaken { host: String, session_id: String },
    /// No route record with this session id.
    #[error("no preview route for session {session_id:?}")]
    RouteNotFound { session_id: String },
    /// A non-loopback bind without the explicit opt-in.
    #[error(
        "refusing to listen on {addr}: it is not a loopback address; the ingress belongs behind a TLS proxy on the same host (pass --allow-non-loopback-bind to listen publicly anyway)"
    )]
    NonLoopbackBind { addr: SocketAddr },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// A named service declaration cannot serve as a preview auth policy.
    #[error("service {service:?} {problem}")]
    Policy { service: String, problem: String },
    /// The environment variable that should hold the client token is unset or empty.
    #[error("environment variable {var} is not set (it must hold the preview client token)")]
    MissingToken { var: String },
    /// The ingress refused the preview client (auth, claim, ownership); retrying will not help.
    #[error("the ingress refused the registration: {message} ({code})")]
    Refused { code: String, message: String },
    /// Talking to the ingress failed (the client retries these).
    #[error("ingress unreachable: {message}")]
    Unreachable { message: String },
    /// An I/O failure outside the config store.
    #[error("{action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl PreviewError {
    /// `InvalidArgument` for `field`.
    pub fn invalid(field: impl Into<String>, problem: impl Into<String>) -> Self {
        PreviewError::InvalidArgument {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// Whether the error is refused input (exit code 2) rather than a failure (exit code 1).
    pub fn is_refused_input(&self) -> bool {
        matches!(
            self,
            PreviewError::InvalidArgument { .. }
                | PreviewError::HostTaken { .. }
                | PreviewError::NonLoopbackBind { .. }
                | PreviewError::Policy { .. }
                | PreviewError::MissingToken { .. }
                | PreviewError::Config(ConfigError::Invalid { .. })
                | PreviewError::Config(ConfigError::InvalidId { .. })
        )
    }
}
