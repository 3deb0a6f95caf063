//! `GET /health`, `GET /version`, `GET /config/paths`: who is answering and where its files are.

use serde_json::{Value, json};

use crate::router::{Call, Cost, Router};
use crate::{Api, ApiError, Method};

pub(crate) fn register(router: &mut Router<Api>) {
    router.add(Method::Get, "/health", Cost::Inline, health);
    router.add(Method::Get, "/version", Cost::Inline, version);
    router.add(Method::Get, "/config/paths", Cost::Inline, config_paths);
}

fn health(api: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    let id = &api.identity;
    Ok(json!({
        "status": "ok",
        "pid": id.pid,
        "version": id.version,
        "build_id": id.build_id,
        "started_at": id.started_at,
    }))
}

fn version(api: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    Ok(json!({"version": api.identity.version, "build_id": api.identity.build_id}))
}

fn config_paths(api: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    let p = &api.paths;
    Ok(json!({
        "homeboy": p.config_dir(),
        "data": p.data_dir(),
        "servers": p.servers_dir(),
        "components": p.components_dir(),
        "rigs": p.rigs_dir(),
        "stacks": p.stacks_dir(),
        "daemon_state": p.daemon_state(),
        "daemon_jobs": p.daemon_jobs(),
        "daemon_log": p.daemon_log(),
        "broker_auth": p.broker_auth(),
        "artifacts": p.artifact_root(),
        "observations": p.observations_store(),
    }))
}
