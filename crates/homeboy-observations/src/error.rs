//! The error type of the observation crate: storage failures, missing records, unreadable findings files and
//! refused artifact paths.

use std::path::PathBuf;

/// Why an artifact's bytes cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactAccess {
    /// The recorded path is not a plain relative path (absolute, `..`, NUL, backslash, empty segment).
    #[error("the artifact path {path:?} {problem}")]
    InvalidPath { path: String, problem: &'static str },
    /// The path resolves (through a symlink) to somewhere outside the artifact root.
    #[error("the artifact path {path:?} leads outside the artifact root")]
    Escapes { path: String },
    /// The record is metadata only: homeboy never held the bytes.
    #[error("artifact {artifact_id} is a metadata-only record; its bytes were not kept")]
    MetadataOnly { artifact_id: String },
    /// The bytes were held but the file is gone.
    #[error("the bytes of artifact {artifact_id} are no longer in the artifact root")]
    Missing { artifact_id: String },
    /// Not a regular file (a directory, a device).
    #[error("the artifact path {path:?} is not a regular file")]
    NotAFile { path: String },
}

/// Everything that can go wrong in the observation store and its parsers.
#[derive(Debug, thiserror::Error)]
pub enum ObservationError {
    /// The redb file could not be opened, read or written.
    #[error("the observation store failed: {0}")]
    Storage(String),
    /// No record with this id.
    #[error("no {kind} {id}")]
    NotFound { kind: &'static str, id: String },
    /// A caller passed something unusable (a filter value, a duplicate id).
    #[error("invalid `{field}`: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    /// A findings file does not parse as its declared format.
    #[error("{path}: not a valid {format} report: {problem}")]
    Findings {
        format: &'static str,
        path: PathBuf,
        problem: String,
    },
    /// Reading or writing an artifact file failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An artifact's bytes cannot be served.
    #[error(transparent)]
    Artifact(#[from] ArtifactAccess),
}

impl ObservationError {
    pub(crate) fn storage(error: impl std::fmt::Display) -> Self {
        ObservationError::Storage(error.to_string())
    }

    pub(crate) fn io(action: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        ObservationError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}
