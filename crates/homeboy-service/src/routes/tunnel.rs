//! `GET /tunnel/services` and `GET /tunnel/previews`: this machine's managed services and the preview
//! sessions of its route table, for the dashboard. Computing them is `homeboy-tunnel`'s and
//! `homeboy-preview`'s, which sit beside the daemon, not below it: the binary that serves the daemon hands
//! the handler a [`LocalViews`] (`Api::with_local_views`). Without one (`homeboy-broker`), both routes answer
//! `not_found.route`.

use homeboy_config::Paths;
use serde_json::Value;

use crate::router::{Call, Cost, Router, data};
use crate::{Api, ApiError, Method};

/// What the daemon shows of managed services and preview sessions.
pub trait LocalViews: Send + Sync + std::fmt::Debug {
    /// `GET /tunnel/services`.
    fn managed_services(
        &self,
        paths: &Paths,
    ) -> Result<homeboy_api::tunnel::ManagedServices, ApiError>;

    /// `GET /tunnel/previews`.
    fn preview_sessions(
        &self,
        paths: &Paths,
    ) -> Result<homeboy_api::preview::RouteStatusReport, ApiError>;
}

pub(crate) fn register(router: &mut Router<Api>) {
    router.add(Method::Get, "/tunnel/services", Cost::Blocking, services);
    router.add(Method::Get, "/tunnel/previews", Cost::Blocking, previews);
}

fn views<'a>(api: &'a Api, call: &Call<'_>) -> Result<&'a dyn LocalViews, ApiError> {
    api.local_views.as_deref().ok_or_else(|| {
        ApiError::route_not_found(call.req.method.as_str(), &call.req.path)
            .with_hint("homeboy-broker does not read managed services; `homeboy daemon` does")
    })
}

fn services(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    data(views(api, call)?.managed_services(&api.paths)?)
}

fn previews(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    data(views(api, call)?.preview_sessions(&api.paths)?)
}
