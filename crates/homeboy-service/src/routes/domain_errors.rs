//! The contract's view of component and observation errors: one mapping each, from the library error to an
//! error kind (and so an HTTP status), a stable code and a message.

use homeboy_components::ComponentError;
use homeboy_config::ConfigError;
use homeboy_observations::{ArtifactAccess, ObservationError};

use crate::{ApiError, ErrorKind};

/// A component, rig, stack or analysis error.
pub(crate) fn component_error(error: ComponentError) -> ApiError {
    let error = match error {
        ComponentError::Observation(inner) => return observation_error(inner),
        ComponentError::Invalid { field, problem } => {
            return ApiError::invalid_argument(field, problem);
        }
        ComponentError::Config(ConfigError::InvalidId { id, .. }) => {
            return ApiError::invalid_argument("id", format!("{id:?} is not a valid id"));
        }
        ComponentError::NoTool { component, tool } => {
            let message = ComponentError::NoTool {
                component: component.clone(),
                tool,
            }
            .to_string();
            return ApiError::invalid_argument("component", message)
                .with_detail("component_id", component);
        }
        other => other,
    };
    let code = error.code();
    let kind = match &error {
        ComponentError::Config(ConfigError::NotFound { .. }) | ComponentError::NotFound { .. } => {
            ErrorKind::NotFound
        }
        ComponentError::Config(ConfigError::Invalid { .. } | ConfigError::InvalidJson { .. }) => {
            ErrorKind::Conflict
        }
        ComponentError::PathMissing { .. }
        | ComponentError::NotACheckout { .. }
        | ComponentError::UnknownRevision { .. } => ErrorKind::Conflict,
        ComponentError::GitMissing => ErrorKind::Unavailable,
        _ => ErrorKind::Internal,
    };
    let mut api = ApiError::new(kind, code, error.to_string());
    match &error {
        ComponentError::NotFound { id, .. } => api = api.with_detail("id", id.clone()),
        ComponentError::PathMissing { component, .. }
        | ComponentError::NotACheckout { component, .. } => {
            api = api
                .with_detail("component_id", component.clone())
                .with_hint(
                    "fix the component's `path` with `homeboy component set <id> --field path=...`",
                );
        }
        ComponentError::GitMissing => api = api.with_hint("install git (apt-get install git)"),
        _ => {}
    }
    api
}

/// An observation store error.
pub(crate) fn observation_error(error: ObservationError) -> ApiError {
    match error {
        ObservationError::NotFound { kind, id } => ApiError::new(
            ErrorKind::NotFound,
            format!("not_found.{kind}"),
            format!("no {kind} {id}"),
        )
        .with_detail("id", id),
        ObservationError::Invalid { field, problem } => ApiError::invalid_argument(field, problem),
        ObservationError::Artifact(access) => artifact_error(access),
        other => ApiError::internal("the observation store failed; see the daemon log")
            .with_internal_detail(other.to_string()),
    }
}

/// Why an artifact's bytes cannot be served.
pub(crate) fn artifact_error(error: ArtifactAccess) -> ApiError {
    let (kind, code) = match &error {
        ArtifactAccess::InvalidPath { .. } => (ErrorKind::Validation, "artifacts.invalid_path"),
        ArtifactAccess::Escapes { .. } => (ErrorKind::Forbidden, "artifacts.path_escape"),
        ArtifactAccess::MetadataOnly { .. } => {
            (ErrorKind::NotFound, "artifacts.content_unavailable")
        }
        ArtifactAccess::Missing { .. } | ArtifactAccess::NotAFile { .. } => {
            (ErrorKind::NotFound, "artifacts.content_missing")
        }
    };
    let api = ApiError::new(kind, code, error.to_string());
    match error {
        ArtifactAccess::MetadataOnly { .. } => api.with_hint(
            "retrieval.mode is metadata_only: treat this record as evidence metadata; no bytes are served",
        ),
        _ => api,
    }
}
