//! Where homeboy keeps its files, what they say, and how it writes them.
//!
//! This crate owns the config and data directory layout ([`Paths`]), the one way homeboy writes a small file
//! ([`write_json_atomic`]: temp file, fsync, rename, fsync of the directory), declarations kept one JSON file
//! per item with field-level validation errors ([`declarations`]), and token digests and redaction
//! ([`secrets`]), server declarations with their runner capability ([`servers`]) and the execution-time
//! resolution of `runner.secret_env` references ([`secret_env`]), and the component, rig and stack
//! declarations ([`components`], [`rigs`], [`stacks`]), the daemon's state file ([`daemon_state`]), advisory
//! file locks ([`lock`]), files that may hold job output or tokens, created `0600` ([`private_file`]), how
//! timestamps are written ([`clock`]) and the one path-safe opener ([`beneath`]: a
//! file opened beneath a root directory, never outside it). It knows nothing about HTTP, jobs or processes.

mod atomic;
pub mod beneath;
#[cfg(test)]
mod beneath_proptests;
pub mod broker_auth;
pub mod clock;
pub mod components;
pub mod daemon_state;
pub mod declarations;
pub mod dynamic_set;
mod error;
pub mod lock;
pub mod net;
mod paths;
pub mod private_file;
pub mod rigs;
pub mod secret_env;
pub mod secrets;
pub mod servers;
pub mod stacks;
pub mod tunnel_services;

pub use atomic::{
    read_json, read_json_opt, remove_file_durable, write_bytes_atomic, write_json_atomic,
};
pub use beneath::RootDir;
pub use declarations::{Declaration, DeclarationDir, FieldError};
pub use error::{BeneathError, ConfigError, SecretError};
pub use paths::Paths;
