//! The ssh crate's error type: what went wrong building, running or asking an ssh session.

use std::path::PathBuf;

/// Everything that can go wrong with an SSH session to a configured server.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// `connect`, `disconnect` or `--check` on a server without `auth.mode = key_plus_password_controlmaster`.
    #[error(
        "server {id} has no managed SSH session (set auth.mode to key_plus_password_controlmaster); `homeboy ssh {id}` connects directly"
    )]
    NoManagedSession { id: String },
    /// A runner command on a server without the runner capability.
    #[error("server {id} is not a runner; enable it with `homeboy runner enable {id}`")]
    NotRunner { id: String },
    /// An address that must be loopback is not.
    #[error(
        "refusing {what} address {addr}: it must be loopback (127.0.0.1, [::1] or localhost); the runner daemon is never exposed beyond loopback"
    )]
    NonLoopback { what: &'static str, addr: String },
    /// An address that does not parse.
    #[error("invalid {what} address {addr:?}: expected HOST:PORT such as 127.0.0.1:7421")]
    BadAddress { what: &'static str, addr: String },
    /// The ssh program could not be started.
    #[error("cannot run {program}: {source} (Debian: apt-get install openssh-client)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// ssh ran and failed.
    #[error("ssh {action} for server {id} failed ({status}){}", detail(stderr))]
    Failed {
        id: String,
        action: &'static str,
        status: String,
        stderr: String,
    },
    /// `ssh -G` printed no usable control path.
    #[error("ssh reports no control path for server {id} (got {got:?})")]
    NoControlPath { id: String, got: String },
    /// Creating the control socket's directory failed.
    #[error("create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A stale control socket could not be removed.
    #[error("remove the stale control socket {path}: {source}")]
    RemoveSocket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The OS keychain could not store, read or remove a passphrase (never carries the passphrase).
    #[error("keychain: {problem}")]
    Keychain { problem: String },
    /// A passphrase could not be read from the terminal.
    #[error("cannot read the passphrase: {0}")]
    Prompt(String),
    /// The server declaration could not be read.
    #[error(transparent)]
    Config(#[from] homeboy_config::ConfigError),
}

fn detail(stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {}", stderr.lines().collect::<Vec<_>>().join(" / "))
    }
}

impl SshError {
    /// Whether the error is refused input (exit code 2) rather than a failure (exit code 1).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            SshError::NoManagedSession { .. }
                | SshError::NonLoopback { .. }
                | SshError::BadAddress { .. }
        )
    }
}
