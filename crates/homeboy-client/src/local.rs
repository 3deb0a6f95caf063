//! What the CLI uses to read and record observations on this machine, with or without a daemon.
//!
//! The observation store is shared between processes (see `homeboy_observations::store`), so the CLI opens
//! it itself: `homeboy runs ...` answers through the transport-free handler ([`LocalApi`]) — the same route
//! code the daemon serves, hence the same JSON — and `homeboy lint <component>` runs the tool in the CLI
//! process through the same library function as the daemon's executor ([`run_here`]). With `--via-daemon`
//! the CLI instead submits the run as a daemon job and prints the job's `result` event ([`run_via_daemon`]):
//! the same function produced it, so it is the same JSON.

use std::sync::Arc;

use homeboy_api::jobs::EventKind;
use homeboy_api::tools::AnalysisJobAnswer;
use homeboy_components::ComponentError;
use homeboy_components::analysis::{self, Outcome, Recorder};
use homeboy_components::command::Watcher;
use homeboy_components::tools::{AnalysisRequest, tool_id};
use homeboy_config::Paths;
use homeboy_observations::ObservationStore;
use homeboy_observations::StoredArtifact;
use homeboy_observations::artifact_path::OpenedArtifact;
use homeboy_observations::owner::Owner;
use homeboy_service::{Api, ApiError, ApiRequest, DaemonIdentity};
use serde_json::Value;

use crate::ClientError;
use crate::client::DaemonClient;
use homeboy_build as build_info;

/// The transport-free handler over this machine's observation store (no job store: runs, artifacts,
/// findings, components, rigs, stacks and tools are served; jobs are the daemon's).
pub struct LocalApi {
    api: Api,
    store: Arc<ObservationStore>,
}

impl LocalApi {
    /// Opens the observation store under `paths`.
    pub fn open(paths: &Paths) -> Result<LocalApi, ClientError> {
        let store = Arc::new(
            ObservationStore::open(&paths.observations_store())
                .map_err(ClientError::Observations)?,
        );
        let identity = DaemonIdentity {
            pid: std::process::id(),
            version: build_info::VERSION.to_string(),
            build_id: build_info::BUILD_ID.to_string(),
            started_at: homeboy_config::clock::now_rfc3339(),
        };
        let api = Api::new(identity, paths.clone()).with_observations(store.clone());
        Ok(LocalApi { api, store })
    }

    /// `GET path_and_query`: the envelope's data, or its error.
    pub fn get(&self, path_and_query: &str) -> Result<Value, ApiError> {
        self.api
            .handle(&ApiRequest::get(path_and_query))
            .into_result()
    }

    /// Opens an artifact's bytes (the same lookup and safety checks as the daemon's byte route).
    pub fn open_artifact(
        &self,
        run_id: &str,
        artifact_id: &str,
    ) -> Result<(StoredArtifact, OpenedArtifact), ApiError> {
        self.api.open_artifact(run_id, artifact_id)
    }

    /// The store itself (comparisons read whole runs).
    pub fn store(&self) -> &ObservationStore {
        &self.store
    }
}

/// Runs `request` in this process and records it (the owner is this CLI process).
pub fn run_here(
    paths: &Paths,
    request: AnalysisRequest,
    watcher: &mut dyn Watcher,
) -> Result<Outcome, ComponentError> {
    let prepared = analysis::prepare(paths, request)?;
    let store = ObservationStore::open(&paths.observations_store())?;
    let recorder = Recorder {
        store: &store,
        artifact_root: paths.artifact_root(),
        owner: Owner::this_process("cli"),
        job_id: None,
    };
    analysis::run(&prepared, &recorder, watcher)
}

/// What a daemon-executed run produced.
pub struct DaemonRun {
    pub job_id: String,
    /// The `result` event's data: the same JSON `run_here` returns as `Outcome::result`.
    pub result: Option<Value>,
    /// Why the job ended without a result (its error events).
    pub errors: Vec<String>,
}

/// Submits `request` to the daemon as a job, calls `on_output(stream, line)` for the tool's output as it
/// streams, and returns the job's result.
pub async fn run_via_daemon(
    client: &DaemonClient,
    request: &AnalysisRequest,
    mut on_output: impl FnMut(&str, &str),
) -> Result<DaemonRun, ClientError> {
    let arguments = request.to_json()["arguments"].clone();
    let path = format!("/tools/{}/run", tool_id(request.tool));
    let submitted: AnalysisJobAnswer = client
        .post_as(&path, &arguments, std::time::Duration::from_secs(30))
        .await?;
    let job_id = submitted.job.id;
    let mut result = None;
    let mut errors = Vec::new();
    crate::jobs_view::follow_events(client, &job_id, 0, |event| {
        let message = event.message.as_deref().unwrap_or_default();
        match event.kind {
            EventKind::Stdout | EventKind::Stderr => on_output(event.kind.as_str(), message),
            EventKind::Result if message == "analysis result" => {
                result = Some(event.data.clone().unwrap_or(Value::Null));
            }
            EventKind::Error => errors.push(message.to_string()),
            _ => {}
        }
    })
    .await?;
    Ok(DaemonRun {
        job_id,
        result,
        errors,
    })
}
