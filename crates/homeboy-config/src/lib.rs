//! Where homeboy keeps its files and how it writes them.
//!
//! This crate owns the config and data directory layout ([`Paths`]) and the one way homeboy writes a small
//! file ([`write_json_atomic`]): temp file, fsync, rename, fsync of the directory. It knows nothing about
//! HTTP, jobs or processes; every later store of small JSON files builds on it.

mod atomic;
mod error;
mod paths;

pub use atomic::{
    read_json, read_json_opt, remove_file_durable, write_bytes_atomic, write_json_atomic,
};
pub use error::ConfigError;
pub use paths::Paths;
