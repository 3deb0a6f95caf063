//! The typed tool surface: `GET /tools`, `GET /tools/:id`, `POST /tools/:id/run`, and the analysis entry
//! points `POST /audit`, `POST /lint`, `POST /test`, `POST /bench`.
//!
//! A run request is checked in this order, and nothing is enqueued unless every check passes: the tool id is
//! on the allowlist (else 403 `tools.not_allowed`), the body is JSON, it carries no mutating field (400
//! `validation.mutating_field`) and no undeclared one (400 `validation.unknown_field`), its fields have the
//! declared types, and the declarations allow it (the component exists and declares the tool). Then a
//! daemon-executed job is enqueued (`operation` = the tool id) and the answer is `{job, poll, request}`.

use homeboy_api::jobs::Poll;
use homeboy_api::tools::AnalysisJobAnswer;
use homeboy_components::analysis;
use homeboy_components::tools::{self, Refusal};
use homeboy_config::components::ToolKind;
use homeboy_jobs::{Executor, NewJob};
use serde_json::Value;

use super::domain_errors::component_error;
use super::job_error;
use crate::router::{Call, Cost, Router, data};
use crate::{Api, ApiError, ErrorKind, Method};

pub(crate) fn register(router: &mut Router<Api>) {
    router.add(Method::Get, "/tools", Cost::Inline, list);
    router.add(Method::Get, "/tools/:id", Cost::Inline, show);
    router.add(Method::Post, "/tools/:id/run", Cost::Blocking, run_tool);
    router.add(Method::Post, "/audit", Cost::Blocking, audit);
    router.add(Method::Post, "/lint", Cost::Blocking, lint);
    router.add(Method::Post, "/test", Cost::Blocking, test);
    router.add(Method::Post, "/bench", Cost::Blocking, bench);
}

fn list(_: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    data(tools::catalogue())
}

fn not_allowed(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::Forbidden,
        "tools.not_allowed",
        format!("{id:?} is not on the tool allowlist"),
    )
    .with_detail("tool_id", id)
    .with_hint("GET /tools lists the allowed tools: homeboy.audit, homeboy.lint, homeboy.test, homeboy.bench, homeboy.build, homeboy.review")
}

fn show(_: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let id = call.param("id");
    let tool = tools::find(id).ok_or_else(|| {
        ApiError::new(
            ErrorKind::NotFound,
            "not_found.tool",
            format!("no tool {id:?}"),
        )
        .with_detail("tool_id", id)
        .with_hint("GET /tools lists the allowed tools")
    })?;
    data(tool)
}

fn run_tool(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let id = call.param("id");
    let tool = tools::find(id).ok_or_else(|| not_allowed(id))?;
    enqueue(api, call, tool.kind)
}

fn audit(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    enqueue(api, call, ToolKind::Audit)
}

fn lint(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    enqueue(api, call, ToolKind::Lint)
}

fn test(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    enqueue(api, call, ToolKind::Test)
}

fn bench(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    enqueue(api, call, ToolKind::Bench)
}

fn refusal(refusal: Refusal, tool: ToolKind) -> ApiError {
    match refusal {
        Refusal::Mutating { field } => ApiError::new(
            ErrorKind::Validation,
            "validation.mutating_field",
            format!(
                "`{field}` would let {} change the checkout; analysis tools only read",
                tools::tool_id(tool)
            ),
        )
        .with_detail("field", field)
        .with_detail("problem", "mutating fields are refused"),
        Refusal::Unknown { field } => ApiError::unknown_field(
            field,
            format!(
                "{} accepts component, rig, timeout_secs, label",
                tools::tool_id(tool)
            ),
        ),
        Refusal::Invalid { field, problem } => ApiError::invalid_argument(field, problem),
    }
}

fn enqueue(api: &Api, call: &Call<'_>, tool: ToolKind) -> Result<Value, ApiError> {
    let body: Value = call.req.json_body()?;
    let request = tools::parse_request(tool, &body).map_err(|r| refusal(r, tool))?;
    let store = api.job_store()?;
    analysis::prepare(&api.paths, request.clone()).map_err(component_error)?;
    let enqueued = store
        .enqueue(NewJob {
            operation: tools::tool_id(tool),
            executor: Executor::Daemon,
            request: request.to_json(),
            target_runner_id: None,
            project_id: None,
            submission_key: None,
            max_attempts: Some(1),
        })
        .map_err(job_error)?;
    data(AnalysisJobAnswer {
        poll: Poll::for_job(&enqueued.job.id),
        job: enqueued.job,
        request: enqueued.request,
    })
}
