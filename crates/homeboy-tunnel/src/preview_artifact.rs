//! The `homeboy/preview-url/v1` artifact: how a run's reviewer reaches a managed service (local URL,
//! optional public URL, backend), under which preview policy, when it is cleaned up, and which run and
//! workflow own it. Field names are fixed by the wire contract.
//!
//! Where it is written: a start with `--source-run-id R` writes `<artifact_root>/runs/R/preview-url.json`,
//! the run's artifact directory, and when the observation store has run `R` the file is recorded as one of
//! its artifacts (so `GET /runs/R/artifacts` lists it and its content route serves it); a run id the store
//! does not know (a CI or workflow run) keeps only the file. Without a run id it goes next to the service's
//! runtime state (`<data>/tunnel/services/<id>/preview-url.json`).

use std::path::{Path, PathBuf};

use homeboy_config::Paths;
use homeboy_config::tunnel_services::{PreviewMode, PreviewPolicy};
use serde::{Deserialize, Serialize};

use crate::TunnelError;
use crate::service::state::{BackendKind, RuntimeState, ServiceFiles, SourceIds};

/// Schema name of the artifact.
pub const PREVIEW_URL_SCHEMA: &str = "homeboy/preview-url/v1";

/// File name of the artifact in a run's artifact directory.
pub const PREVIEW_URL_FILE: &str = "preview-url.json";

/// The artifact, exactly as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewUrlArtifact {
    pub schema: String,
    /// Always `preview_url`.
    pub kind: String,
    pub service_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    pub local_url: String,
    /// `none` or `command`.
    pub backend: String,
    pub policy: PreviewPolicy,
    pub cleanup: Cleanup,
    pub source: SourceIds,
}

/// When and how the preview goes away.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleanup {
    /// `stop_with_service`, `keep_on_failure`, `after_manual_approval` or `at_expiry`.
    pub cleanup_policy: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Whether cleaning up the preview also stops the managed service (always true: the preview is the
    /// service).
    pub stop_on_cleanup: bool,
}

/// Whether the policy asks for preview artifacts at all (`none` does not).
pub fn applies(policy: &PreviewPolicy) -> bool {
    policy.mode != PreviewMode::None
}

/// The artifact for a started service.
pub fn build(policy: &PreviewPolicy, runtime: &RuntimeState) -> PreviewUrlArtifact {
    let cleanup_policy = match policy.mode {
        PreviewMode::None | PreviewMode::Always => "stop_with_service",
        PreviewMode::OnFailure => "keep_on_failure",
        PreviewMode::ManualApproval => "after_manual_approval",
        PreviewMode::KeepAliveUntil => "at_expiry",
    };
    let expires_at = match policy.mode {
        PreviewMode::KeepAliveUntil => policy.keep_alive_until.clone(),
        _ => None,
    };
    PreviewUrlArtifact {
        schema: PREVIEW_URL_SCHEMA.to_string(),
        kind: "preview_url".to_string(),
        service_id: runtime.service_id.clone(),
        public_url: runtime.public_url.clone(),
        local_url: runtime.local_url.clone(),
        backend: match runtime.backend {
            BackendKind::None => "none",
            BackendKind::Command => "command",
        }
        .to_string(),
        policy: policy.clone(),
        cleanup: Cleanup {
            cleanup_policy: cleanup_policy.to_string(),
            expires_at,
            stop_on_cleanup: true,
        },
        source: runtime.source.clone(),
    }
}

/// Where the artifact of this start goes (see the module docs).
pub fn location(paths: &Paths, files: &ServiceFiles, source: &SourceIds) -> PathBuf {
    match &source.run_id {
        Some(run_id) => paths
            .artifact_root()
            .join(homeboy_observations::artifacts::stored_path(
                run_id,
                PREVIEW_URL_FILE,
            )),
        None => files.preview_artifact(),
    }
}

/// Writes the artifact atomically.
pub fn write(path: &Path, artifact: &PreviewUrlArtifact) -> Result<(), TunnelError> {
    Ok(homeboy_config::write_json_atomic(path, artifact)?)
}

/// Records the artifact written for run `run_id` in the observation store, when the store has that run.
/// Returns whether it was recorded.
pub fn record_in_run(paths: &Paths, run_id: &str) -> Result<bool, TunnelError> {
    use homeboy_observations::artifacts::{ArtifactSource, describe_kept};
    let store_path = paths.observations_store();
    if !store_path.exists() {
        return Ok(false);
    }
    let store = homeboy_observations::ObservationStore::open(&store_path)?;
    if !store.has_run(run_id)? {
        return Ok(false);
    }
    let source = ArtifactSource {
        run_id,
        kind: "file",
        name: PREVIEW_URL_FILE,
        source_path: None,
    };
    store.attach_artifact(describe_kept(paths.artifact_root(), &source)?)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::readiness::ReadinessSpec;
    use crate::service::state::{LogPaths, ProcessRecord, RUNTIME_SCHEMA};

    fn runtime() -> RuntimeState {
        RuntimeState {
            schema: RUNTIME_SCHEMA.into(),
            service_id: "site-preview".into(),
            started_at: "2026-06-12T03:00:00Z".into(),
            cwd: "/w".into(),
            host: "127.0.0.1".into(),
            port: 7331,
            local_url: "http://127.0.0.1:7331".into(),
            health_path: Some("/".into()),
            env_names: vec![],
            process: ProcessRecord {
                command: "serve".into(),
                pid: 1,
                pgid: 1,
                logs: LogPaths {
                    stdout: "/o".into(),
                    stderr: "/e".into(),
                },
                exit_code_file: "/x".into(),
                started: None,
            },
            readiness: ReadinessSpec::default(),
            backend: BackendKind::Command,
            backend_process: None,
            public_url: Some("https://preview.example.test/run-123".into()),
            source: SourceIds {
                run_id: Some("run-123".into()),
                workflow_id: Some("workflow-abc".into()),
            },
            preview_artifact_path: None,
            ended: None,
        }
    }

    #[test]
    fn wire_field_names() {
        let policy = PreviewPolicy {
            mode: PreviewMode::KeepAliveUntil,
            keep_alive_until: Some("2026-06-12T03:30:00Z".into()),
        };
        let value = serde_json::to_value(build(&policy, &runtime())).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "schema": "homeboy/preview-url/v1",
                "kind": "preview_url",
                "service_id": "site-preview",
                "public_url": "https://preview.example.test/run-123",
                "local_url": "http://127.0.0.1:7331",
                "backend": "command",
                "policy": {"mode": "keep-alive-until", "keep_alive_until": "2026-06-12T03:30:00Z"},
                "cleanup": {"cleanup_policy": "at_expiry", "expires_at": "2026-06-12T03:30:00Z",
                            "stop_on_cleanup": true},
                "source": {"run_id": "run-123", "workflow_id": "workflow-abc"}
            })
        );
        assert!(!applies(&PreviewPolicy::default()));
        let paths = Paths::at("/c", "/d");
        let files = ServiceFiles::new(&paths, "site-preview").unwrap();
        assert_eq!(
            location(&paths, &files, &runtime().source),
            Path::new("/d/artifacts/runs/run-123/preview-url.json")
        );
        assert_eq!(
            location(&paths, &files, &SourceIds::default()),
            Path::new("/d/tunnel/services/site-preview/preview-url.json")
        );
    }
}
