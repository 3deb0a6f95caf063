//! The request handler: one [`Api`] value answers every route of the contract, whatever the transport.
//!
//! The route table is assembled from the area modules in `routes/`; each handler reads the shared context
//! and returns JSON data or an [`ApiError`], and the envelope is added here, once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use homeboy_config::Paths;
use homeboy_config::broker_auth::{BrokerAuthFile, CredentialStore};
use homeboy_jobs::JobStore;
use homeboy_observations::ObservationStore;

use crate::read_cache::ReadCache;
use crate::router::{Cost, Data, Router};
use crate::{ApiError, ApiRequest, ApiResponse, DaemonIdentity, JsonBytes, Method, routes};

/// A serialised answer: status, envelope bytes, and for internal failures the detail for the server's log
/// under the error id the envelope carries.
#[derive(Debug, Clone)]
pub struct JsonAnswer {
    pub status: u16,
    pub json: JsonBytes,
    pub internal_detail: Option<Box<str>>,
    pub error_id: Option<String>,
}

/// How the runner routes (`/runner/*`) authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunnerAuth {
    /// A paired token with the right scope and runner id is required (the default).
    Required,
    /// Requests without a token are accepted (an explicit operator choice for a loopback-only daemon);
    /// a presented token is still checked.
    AllowUnauthenticatedLoopback,
}

/// The contract's request handler over homeboy's local state.
pub struct Api {
    pub(crate) identity: DaemonIdentity,
    /// Serialised answers of the routes that cannot change while the daemon runs (`GET /health`, ...).
    constant: Vec<(&'static str, Arc<[u8]>)>,
    pub(crate) paths: Paths,
    pub(crate) router: Router<Api>,
    pub(crate) jobs: Option<Arc<dyn JobStore>>,
    pub(crate) observations: Option<Arc<ObservationStore>>,
    pub(crate) runner_auth: RunnerAuth,
    pub(crate) broker_credentials: Arc<dyn CredentialStore>,
    /// Runner sessions registered since the daemon started, when the credential store keeps none
    /// (informational, not durable).
    pub(crate) sessions: Mutex<HashMap<String, homeboy_api::jobs::RunnerSession>>,
    /// Managed services and preview sessions, when the binary serving the daemon reads them.
    pub(crate) local_views: Option<Arc<dyn routes::LocalViews>>,
    /// Kept answers of the run readers, valid while the observation store's generation holds.
    pub(crate) read_cache: ReadCache,
}

impl Api {
    /// A handler for the daemon described by `identity`, over the state under `paths`.
    pub fn new(identity: DaemonIdentity, paths: Paths) -> Self {
        let mut router = Router::new();
        routes::register(&mut router);
        let mut api = Api {
            identity,
            constant: Vec::new(),
            broker_credentials: Arc::new(BrokerAuthFile::new(paths.broker_auth())),
            paths,
            router,
            jobs: None,
            observations: None,
            runner_auth: RunnerAuth::Required,
            sessions: Mutex::new(HashMap::new()),
            local_views: None,
            read_cache: ReadCache::default(),
        };
        api.constant = ["/health", "/version", "/config/paths", "/tools"]
            .into_iter()
            .map(|path| (path, api.handle(&ApiRequest::get(path)).to_json().into()))
            .collect();
        api
    }

    /// Serves jobs and the runner broker from `store`.
    pub fn with_jobs(mut self, store: Arc<dyn JobStore>) -> Self {
        self.jobs = Some(store);
        self
    }

    /// Serves runs, artifacts and findings from `store`.
    pub fn with_observations(mut self, store: Arc<ObservationStore>) -> Self {
        self.observations = Some(store);
        self
    }

    /// Answers `GET /tunnel/services` and `GET /tunnel/previews` with `views`.
    pub fn with_local_views(mut self, views: Arc<dyn routes::LocalViews>) -> Self {
        self.local_views = Some(views);
        self
    }

    /// Authenticates runners against `store` (default: `<config>/broker_auth.json`); runner sessions are
    /// recorded there too when it keeps them.
    pub fn with_credentials(mut self, store: Arc<dyn CredentialStore>) -> Self {
        self.broker_credentials = store;
        self
    }

    /// Sets how runner routes authenticate.
    pub fn with_runner_auth(mut self, auth: RunnerAuth) -> Self {
        self.runner_auth = auth;
        self
    }

    /// Answers one request. Never panics on client input; every outcome carries the envelope.
    pub fn handle(&self, req: &ApiRequest) -> ApiResponse {
        match self.router.dispatch(self, req) {
            Ok(data) => ApiResponse::ok(data),
            Err(error) => ApiResponse::error(&error),
        }
    }

    /// Answers one request with the envelope already serialised — what a transport writes. Routes that
    /// serialise their own data (the run and finding readers) never build a JSON value tree here.
    pub fn handle_json(&self, req: &ApiRequest) -> JsonAnswer {
        self.handle_json_up_to(req, Cost::Blocking)
            .unwrap_or_else(|| serialise(Err(ApiError::internal("route refused to run"))))
    }

    /// Like [`Api::handle_json`] for a route that costs at most `max_cost` (and for every error, answered
    /// at once); `None`, having run nothing, when the route costs more. A transport asks with
    /// [`Cost::Read`] on its event loop and hands only the `None`s to its blocking pool: one routing pass
    /// for what it answers itself.
    pub fn handle_json_up_to(&self, req: &ApiRequest, max_cost: Cost) -> Option<JsonAnswer> {
        if matches!(req.method, Method::Get | Method::Head)
            && let Some((_, bytes)) = self.constant.iter().find(|(path, _)| *path == req.path)
        {
            return Some(JsonAnswer {
                status: 200,
                json: JsonBytes::Shared(bytes.clone()),
                internal_detail: None,
                error_id: None,
            });
        }
        self.router
            .dispatch_data(self, req, max_cost)
            .map(serialise)
    }

    /// The identity this handler reports.
    pub fn identity(&self) -> &DaemonIdentity {
        &self.identity
    }

    /// The job store, if this handler serves jobs (transports use it for streams and long polls).
    pub fn jobs(&self) -> Option<&Arc<dyn JobStore>> {
        self.jobs.as_ref()
    }

    /// The observation store, if this handler serves runs.
    pub fn observations(&self) -> Option<&Arc<ObservationStore>> {
        self.observations.as_ref()
    }

    /// The local state this handler answers about.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub(crate) fn observation_store(&self) -> Result<&Arc<ObservationStore>, ApiError> {
        self.observations.as_ref().ok_or_else(|| {
            ApiError::new(
                crate::ErrorKind::Unavailable,
                "observations.unavailable",
                "this handler has no observation store",
            )
        })
    }

    /// The answer of a run reader: kept from an earlier request while the observation store's generation
    /// holds, else computed by `compute` — the data's JSON and whether it may be kept (see `read_cache.rs`).
    pub(crate) fn kept_read(
        &self,
        req: &ApiRequest,
        compute: impl FnOnce(&ObservationStore) -> Result<(Vec<u8>, bool), ApiError>,
    ) -> Result<Data, ApiError> {
        let store = self.observation_store()?;
        let generation = store
            .generation()
            .map_err(crate::routes::domain_errors::observation_error)?;
        let key = crate::read_cache::request_key(req);
        if let Some(kept) = self.read_cache.get(generation, &key) {
            return Ok(Data::Envelope(kept));
        }
        let (data, keep) = compute(store)?;
        if !keep {
            return Ok(Data::Raw(data));
        }
        let envelope: Arc<[u8]> = homeboy_api::success_bytes(&data).into();
        self.read_cache.put(generation, key, envelope.clone());
        Ok(Data::Envelope(envelope))
    }

    pub(crate) fn job_store(&self) -> Result<&Arc<dyn JobStore>, ApiError> {
        self.jobs.as_ref().ok_or_else(|| {
            ApiError::new(
                crate::ErrorKind::Unavailable,
                "jobs.unavailable",
                "this handler has no job store",
            )
        })
    }
}

/// A handler's result as the serialised envelope.
fn serialise(result: Result<Data, ApiError>) -> JsonAnswer {
    match result {
        Ok(Data::Envelope(envelope)) => JsonAnswer {
            status: 200,
            json: JsonBytes::Shared(envelope),
            internal_detail: None,
            error_id: None,
        },
        Ok(Data::Raw(data)) => JsonAnswer {
            status: 200,
            json: JsonBytes::Owned(homeboy_api::success_bytes(&data)),
            internal_detail: None,
            error_id: None,
        },
        Ok(Data::Value(data)) => JsonAnswer {
            status: 200,
            json: JsonBytes::Owned(ApiResponse::ok(data).to_json()),
            internal_detail: None,
            error_id: None,
        },
        Err(error) => JsonAnswer::from(ApiResponse::error(&error)),
    }
}

impl From<ApiResponse> for JsonAnswer {
    fn from(answer: ApiResponse) -> Self {
        JsonAnswer {
            status: answer.status,
            json: JsonBytes::Owned(answer.to_json()),
            error_id: answer.error_id().map(str::to_string),
            internal_detail: answer.internal_detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api() -> Api {
        Api::new(
            DaemonIdentity {
                pid: 42,
                version: "0.1.0".into(),
                build_id: "abc1234".into(),
                started_at: "2026-01-01T00:00:00Z".into(),
            },
            Paths::at("/c", "/d"),
        )
    }

    #[test]
    fn builtins_answer_in_the_envelope() {
        let api = api();
        let r = api.handle(&ApiRequest::get("/health"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body["success"], true);
        assert_eq!(r.body["data"]["status"], "ok");
        assert_eq!(r.body["data"]["pid"], 42);
        assert_eq!(r.body["data"]["build_id"], "abc1234");
        let r = api.handle(&ApiRequest::get("/version"));
        assert_eq!(
            r.body["data"],
            json!({"version": "0.1.0", "build_id": "abc1234"})
        );
        let answer = api
            .handle_json_up_to(&ApiRequest::get("/health"), Cost::Inline)
            .unwrap();
        let (status, bytes) = (answer.status, answer.json);
        assert_eq!(status, 200);
        let cached: serde_json::Value = serde_json::from_slice(bytes.as_ref()).unwrap();
        assert_eq!(cached, api.handle(&ApiRequest::get("/health")).body);
        let r = api.handle(&ApiRequest::get("/config/paths"));
        assert_eq!(r.body["data"]["daemon_state"], "/c/daemon/state.json");
        assert_eq!(r.body["data"]["daemon_jobs"], "/c/daemon/jobs.redb");
        assert_eq!(r.body["data"]["servers"], "/c/servers");
        assert_eq!(r.body["data"]["artifacts"], "/d/artifacts");
    }

    #[test]
    fn errors_answer_in_the_envelope() {
        let api = api();
        let r = api.handle(&ApiRequest::get("/nope"));
        assert_eq!(r.status, 404);
        assert_eq!(r.body["success"], false);
        assert_eq!(r.body["error"]["code"], "not_found.route");
        let r = api.handle(&ApiRequest::post_json("/health", &json!({})));
        assert_eq!(r.status, 405);
        assert_eq!(r.body["error"]["code"], "method_not_allowed");
        let r = api.handle(&ApiRequest::get("/jobs"));
        assert_eq!(r.status, 503, "no store configured");
    }
}
