//! The route table, one module per area. Each module registers its routes here.

mod builtins;
mod components;
pub(crate) mod domain_errors;
mod jobs;
mod paging;
mod runner;
mod runs;
mod tools;
mod tunnel;

use crate::Api;
use crate::router::Router;

pub use jobs::job_error;
pub use runs::{MAX_INLINE_BYTES, artifact_content_route};
pub use tunnel::LocalViews;

/// Adds every route of the contract.
pub(crate) fn register(router: &mut Router<Api>) {
    builtins::register(router);
    jobs::register(router);
    runner::register(router);
    components::register(router);
    runs::register(router);
    tools::register(router);
    tunnel::register(router);
}

#[cfg(test)]
mod evidence_tests;
#[cfg(test)]
mod tests;
