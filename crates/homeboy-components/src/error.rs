//! The error type of the components crate: missing declarations and checkouts, git failures, tools that a
//! component does not declare, and failures of the observation store underneath.

use std::path::PathBuf;

use homeboy_config::ConfigError;
use homeboy_observations::ObservationError;

/// Everything that can go wrong while inspecting or running a component.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// A declaration could not be read (malformed file, bad id, I/O).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// No declaration with this id.
    #[error("no {kind} named {id:?}")]
    NotFound { kind: &'static str, id: String },
    /// The component's `path` does not exist.
    #[error("component {component}: its path {} does not exist", path.display())]
    PathMissing { component: String, path: PathBuf },
    /// The component's `path` exists but is not inside a git checkout.
    #[error("component {component}: {} is not a git checkout ({detail})", path.display())]
    NotACheckout {
        component: String,
        path: PathBuf,
        detail: String,
    },
    /// The `git` program is not installed.
    #[error("the git program was not found; install git to inspect components")]
    GitMissing,
    /// git ran and failed.
    #[error("git {command} failed: {message}")]
    Git { command: String, message: String },
    /// A revision a stack names does not exist in the checkout.
    #[error("{rev:?} is not a revision of the checkout")]
    UnknownRevision { rev: String },
    /// The component has no command for this tool.
    #[error("component {component} declares no {tool} command (tools.{tool} in its declaration)")]
    NoTool { component: String, tool: String },
    /// A request names something unusable (a rig that does not list the component, a bad timeout).
    #[error("invalid `{field}`: {problem}")]
    Invalid { field: String, problem: String },
    /// A process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The observation store failed.
    #[error(transparent)]
    Observation(#[from] ObservationError),
}

impl ComponentError {
    /// A stable dotted code for clients (`components.path_missing`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            ComponentError::Config(ConfigError::NotFound { .. }) => "not_found.declaration",
            ComponentError::Config(ConfigError::InvalidId { .. }) => "validation.invalid_argument",
            ComponentError::Config(_) => "config.invalid_declaration",
            ComponentError::NotFound { kind, .. } => match *kind {
                "component" => "not_found.component",
                "rig" => "not_found.rig",
                "stack" => "not_found.stack",
                _ => "not_found.declaration",
            },
            ComponentError::PathMissing { .. } => "components.path_missing",
            ComponentError::NotACheckout { .. } => "components.not_a_git_checkout",
            ComponentError::GitMissing => "components.git_unavailable",
            ComponentError::Git { .. } => "components.git_failed",
            ComponentError::UnknownRevision { .. } => "stacks.unknown_revision",
            ComponentError::NoTool { .. } => "validation.invalid_argument",
            ComponentError::Invalid { .. } => "validation.invalid_argument",
            ComponentError::Spawn { .. } => "components.spawn_failed",
            ComponentError::Observation(_) => "internal",
        }
    }
}
