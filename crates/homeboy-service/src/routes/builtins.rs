//! `GET /health`, `GET /version`, `GET /config/paths`: who is answering and where its files are.

use homeboy_api::identity::{ConfigPaths, Health, Version};
use serde_json::Value;

use crate::router::{Call, Cost, Router, data};
use crate::{Api, ApiError, Method};

pub(crate) fn register(router: &mut Router<Api>) {
    router.add(Method::Get, "/health", Cost::Inline, health);
    router.add(Method::Get, "/version", Cost::Inline, version);
    router.add(Method::Get, "/config/paths", Cost::Inline, config_paths);
}

fn health(api: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    data(Health::of(&api.identity))
}

fn version(api: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    data(Version {
        version: api.identity.version.clone(),
        build_id: api.identity.build_id.clone(),
    })
}

fn config_paths(api: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    let p = &api.paths;
    let shown = |path: &std::path::Path| path.display().to_string();
    data(ConfigPaths {
        homeboy: shown(p.config_dir()),
        data: shown(p.data_dir()),
        servers: shown(&p.servers_dir()),
        components: shown(&p.components_dir()),
        rigs: shown(&p.rigs_dir()),
        stacks: shown(&p.stacks_dir()),
        daemon_state: shown(&p.daemon_state()),
        daemon_jobs: shown(&p.daemon_jobs()),
        daemon_log: shown(&p.daemon_log()),
        broker_auth: shown(&p.broker_auth()),
        artifacts: shown(p.artifact_root()),
        observations: shown(&p.observations_store()),
    })
}
