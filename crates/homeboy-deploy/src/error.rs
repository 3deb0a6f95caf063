//! The deploy crate's error type: a recipe refused because of what the operator asked for.

use std::net::SocketAddr;

/// Why a recipe cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The operator asked for an address that is not loopback.
    #[error(
        "refusing to use {addr}: the broker listens on loopback only (127.0.0.1 or [::1]); publish it through a proxy"
    )]
    NonLoopbackAddress { addr: SocketAddr },
    /// The broker's directory layout could not be derived.
    #[error(transparent)]
    Config(#[from] homeboy_config::ConfigError),
    /// An input that cannot safely land in a unit file or proxy config (names the field, not the value).
    #[error(transparent)]
    Refused(#[from] homeboy_api::ApiError),
}
