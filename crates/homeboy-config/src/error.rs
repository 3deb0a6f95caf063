//! The error type of the config crate: what went wrong while locating or reading/writing config files.

use std::path::PathBuf;

/// Everything that can go wrong while finding or touching homeboy's files.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No directory could be derived: neither the explicit variable, the XDG variable nor `HOME` is set.
    #[error("cannot locate the {what} directory: set {explicit_var} or HOME")]
    NoHomeDirectory {
        what: &'static str,
        explicit_var: &'static str,
    },
    /// A directory variable was set to a relative path, which would depend on the working directory.
    #[error("{var} must be an absolute path, got {value:?}")]
    RelativeDirectory { var: &'static str, value: PathBuf },
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A declaration is malformed or fails validation.
    #[error("{path}: field `{field}` {problem}{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        field: String,
        problem: String,
        suggestion: Option<String>,
    },
    /// An id that cannot be a file name.
    #[error(
        "invalid {kind} id {id:?}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
    )]
    InvalidId { kind: &'static str, id: String },
    /// No declaration with this id.
    #[error("no {kind} named {id:?}")]
    NotFound { kind: &'static str, id: String },
    /// A file exists but does not hold the JSON we expect.
    #[error("{path}: invalid JSON: {source}")]
    InvalidJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// A credential store backed by a database cannot reach it right now (nothing was changed; retrying
    /// later is safe). The text never carries a password.
    #[error("the credential store is unavailable: {0}")]
    Unavailable(String),
    /// A credential store backed by a database failed otherwise (the operation did not happen).
    #[error("the credential store failed: {0}")]
    Backend(String),
}

impl ConfigError {
    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        ConfigError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Why a `runner.secret_env` reference could not be resolved. The message names the variable and the
/// reference (an environment variable name or a file path), never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The referenced environment variable is not set (or empty) in this process.
    #[error(
        "secret {name}: environment variable {env} (from {{\"env\": \"{env}\"}}) is not set or empty"
    )]
    MissingEnv { name: String, env: String },
    /// The referenced environment variable holds bytes that are not UTF-8.
    #[error("secret {name}: environment variable {env} is not valid UTF-8")]
    NotUnicodeEnv { name: String, env: String },
    /// The secret file does not exist or cannot be read.
    #[error("secret {name}: cannot read {{\"file\": \"{file}\"}} ({path}): {source}")]
    UnreadableFile {
        name: String,
        file: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The secret file may be read by other users: refused so a leak is fixed rather than used.
    #[error(
        "secret {name}: {path} (from {{\"file\": \"{file}\"}}) is readable by group or others (mode {mode:04o}); run `chmod 600 {path}`"
    )]
    PermissiveFile {
        name: String,
        file: String,
        path: PathBuf,
        mode: u32,
    },
    /// The secret file is not a regular file, is too large, is not UTF-8 text, or is empty after trimming.
    #[error("secret {name}: {path} (from {{\"file\": \"{file}\"}}) {problem}")]
    BadFile {
        name: String,
        file: String,
        path: PathBuf,
        problem: &'static str,
    },
    /// `~` cannot be expanded because HOME is not set.
    #[error("secret {name}: cannot expand `~` in {{\"file\": \"{file}\"}}: HOME is not set")]
    NoHome { name: String, file: String },
}

/// Why [`crate::beneath::RootDir::open_beneath`] opened nothing. `path` is the root-relative path asked
/// for, never the root's own location.
#[derive(Debug, thiserror::Error)]
pub enum BeneathError {
    /// The path resolves (through `..`, an absolute path or a symlink) to somewhere outside the root.
    #[error("{} leads out of its root directory", path.display())]
    Escapes { path: PathBuf },
    /// Nothing is there (or a component is not a directory, the name is too long, symlinks loop).
    #[error("{} does not exist", path.display())]
    Missing { path: PathBuf },
    /// A regular file was asked for and the path is a directory.
    #[error("{} is a directory", path.display())]
    Directory { path: PathBuf },
    /// A regular file was asked for and the path is a FIFO, socket or device.
    #[error("{} is not a regular file", path.display())]
    NotAFile { path: PathBuf },
    /// The file exists but this process may not open it.
    #[error("{} may not be read (permission denied)", path.display())]
    Denied { path: PathBuf },
    /// Any other failure of the open.
    #[error("open {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
