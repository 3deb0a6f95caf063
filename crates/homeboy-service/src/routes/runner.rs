//! The reverse-runner broker routes: `POST /runner/sessions`, `/runner/jobs` (submit), `/runner/jobs/claim`,
//! and the claim-scoped `/runner/jobs/:id/heartbeat|events|finish`.
//!
//! Every route checks the broker credential first (scope and runner id; see `homeboy_config::broker_auth`)
//! unless the daemon runs with unauthenticated loopback access. A submission may not carry secret values:
//! environment values with sensitive-looking names are refused in favour of `secret_env_names`, which the
//! runner resolves from its own configuration at execution time.

use homeboy_api::jobs::{
    ClaimAnswer, ClaimBody, ClaimRef, ClaimedJob, DEFAULT_LEASE_MS, EventAnswer, EventItem,
    EventsAnswer, EventsBody, FinishBody, HeartbeatAnswer, HeartbeatBody, JobAnswer,
    MAX_CLAIM_WAIT_MS, MAX_SESSION_FIELD_CHARS, Poll, RunnerJobRequest, RunnerSession,
    SessionAnswer, SessionRequest, SubmitAnswer, SubmitRequest,
};
use homeboy_config::ConfigError;
use homeboy_config::broker_auth::Scope;
use homeboy_config::secrets::is_sensitive_env;
use homeboy_jobs::{Actor, ClaimRequest, EventKind, Executor, NewEvent, NewJob};
use serde_json::Value;

use super::job_error;
use crate::router::{Call, Cost, Router, data};
use crate::{Api, ApiError, ErrorKind, Method, RunnerAuth};

pub(crate) fn register(router: &mut Router<Api>) {
    router.add(Method::Post, "/runner/sessions", Cost::Blocking, sessions);
    router.add(Method::Post, "/runner/jobs", Cost::Blocking, submit);
    router.add(Method::Post, "/runner/jobs/claim", Cost::Blocking, claim);
    router.add(
        Method::Post,
        "/runner/jobs/:id/heartbeat",
        Cost::Blocking,
        heartbeat,
    );
    router.add(
        Method::Post,
        "/runner/jobs/:id/events",
        Cost::Blocking,
        events,
    );
    router.add(
        Method::Post,
        "/runner/jobs/:id/finish",
        Cost::Blocking,
        finish,
    );
}

/// Checks the request's broker credential for `scope` acting as `runner_id`.
fn authorize(api: &Api, call: &Call<'_>, scope: Scope, runner_id: &str) -> Result<(), ApiError> {
    let token = call.req.bearer_token();
    if token.is_none() && api.runner_auth == RunnerAuth::AllowUnauthenticatedLoopback {
        return Ok(());
    }
    let verdict = api
        .broker_credentials
        .verify(token, scope, Some(runner_id))
        .map_err(credential_error)?;
    verdict.map(|_| ()).map_err(|denial| {
        ApiError::new(
            ErrorKind::Unauthorized,
            "broker.auth_denied",
            denial.explain(),
        )
        .with_detail("reason", denial.reason())
        .with_detail("scope", scope.as_str())
        .with_hint(
            "pair a token with `homeboy runner broker pair --runner-id <id> --scopes work|submit`",
        )
    })
}

/// A credential store failure: 503 `store.unavailable` while its database is unreachable (as for the job
/// store), else internal. The detail is for the log only.
fn credential_error(e: ConfigError) -> ApiError {
    match e {
        ConfigError::Unavailable(detail) => job_error(homeboy_jobs::JobError::Unavailable(detail)),
        other => ApiError::internal("the broker credentials could not be read")
            .with_internal_detail(other.to_string()),
    }
}

fn required(field: &str, value: &str) -> Result<(), ApiError> {
    if value.trim().is_empty() {
        return Err(ApiError::invalid_argument(field, "must not be empty"));
    }
    Ok(())
}

/// Runner sessions kept in memory; the oldest is forgotten first (they are informational only).
pub(crate) const MAX_SESSIONS: usize = 256;

fn sessions(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let body: SessionRequest = call.req.json_body()?;
    required("runner_id", &body.runner_id)?;
    authorize(api, call, Scope::Work, &body.runner_id)?;
    for (field, value) in [
        ("runner_id", Some(&body.runner_id)),
        ("controller_id", body.controller_id.as_ref()),
        ("homeboy_version", body.homeboy_version.as_ref()),
        ("build_id", body.build_id.as_ref()),
    ] {
        if value.is_some_and(|v| v.chars().count() > MAX_SESSION_FIELD_CHARS) {
            return Err(ApiError::invalid_argument(
                field,
                format!("must be at most {MAX_SESSION_FIELD_CHARS} characters"),
            ));
        }
    }
    let session = RunnerSession {
        id: format!("sess_{}", uuid_like()),
        runner_id: body.runner_id,
        controller_id: body.controller_id,
        homeboy_version: body.homeboy_version,
        build_id: body.build_id,
        worker_pid: body.worker_pid,
        created_at_ms: homeboy_config::clock::now_ms(),
    };
    if api
        .broker_credentials
        .record_session(&session)
        .map_err(credential_error)?
    {
        return data(SessionAnswer { session });
    }
    if let Ok(mut all) = api.sessions.lock() {
        while all.len() >= MAX_SESSIONS {
            let oldest = all
                .iter()
                .min_by_key(|(_, s)| s.created_at_ms)
                .map(|(id, _)| id.clone());
            match oldest {
                Some(oldest) => all.remove(&oldest),
                None => break,
            };
        }
        all.insert(session.id.clone(), session.clone());
    }
    data(SessionAnswer { session })
}

fn inline_secret(field: String) -> ApiError {
    ApiError::new(
        ErrorKind::Validation,
        "validation.inline_secret",
        format!("`{field}` would carry a secret value inside the job; name it in secret_env_names instead"),
    )
    .with_detail("field", field)
    .with_detail("problem", "inline secret values are refused")
    .with_hint("the runner resolves secret_env_names from runner.secret_env in its server config")
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn submit(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let body: SubmitRequest = call.req.json_body()?;
    required("runner_id", &body.runner_id)?;
    authorize(api, call, Scope::Submit, &body.runner_id)?;
    for key in body.other.keys() {
        if ["secret_env", "secrets", "secret_values", "secret"].contains(&key.as_str()) {
            return Err(inline_secret(key.clone()));
        }
    }
    required("operation", &body.operation)?;
    match body.command.first() {
        Some(program) if !program.trim().is_empty() => {}
        _ => {
            return Err(ApiError::invalid_argument(
                "command",
                "must name a program (argv, no shell)",
            ));
        }
    }
    for (name, value) in &body.env {
        if !is_env_name(name) {
            return Err(ApiError::invalid_argument(
                format!("env.{name}"),
                "is not an environment variable name",
            ));
        }
        if is_sensitive_env(name, value) {
            return Err(inline_secret(format!("env.{name}")));
        }
    }
    for name in &body.secret_env_names {
        if !is_env_name(name) {
            return Err(ApiError::invalid_argument(
                "secret_env_names",
                format!("{name:?} is not an environment variable name"),
            ));
        }
    }
    let submission_key = match body.metadata.as_ref().and_then(|m| m.get("submission_key")) {
        None | Some(Value::Null) => None,
        Some(Value::String(key)) if !key.is_empty() => Some(key.clone()),
        Some(_) => {
            return Err(ApiError::invalid_argument(
                "metadata.submission_key",
                "must be a non-empty string",
            ));
        }
    };
    let request = data(RunnerJobRequest {
        runner_id: body.runner_id.clone(),
        project_id: body.project_id.clone(),
        operation: body.operation.clone(),
        command: body.command,
        cwd: body.cwd,
        env: body.env,
        secret_env_names: body.secret_env_names,
        metadata: body.metadata,
    })?;
    let enqueued = api
        .job_store()?
        .enqueue(NewJob {
            operation: body.operation.clone(),
            executor: Executor::Runner,
            request,
            target_runner_id: Some(body.runner_id.clone()),
            project_id: body.project_id.clone(),
            submission_key,
            max_attempts: body.max_attempts,
        })
        .map_err(job_error)?;
    data(SubmitAnswer {
        poll: Poll::for_job(&enqueued.job.id),
        job: enqueued.job,
        request: enqueued.request,
        created: enqueued.created,
    })
}

fn claim(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let body: ClaimBody = call.req.json_body()?;
    required("runner_id", &body.runner_id)?;
    authorize(api, call, Scope::Work, &body.runner_id)?;
    if body.wait_ms.is_some_and(|w| w > MAX_CLAIM_WAIT_MS) {
        return Err(ApiError::invalid_argument(
            "wait_ms",
            format!("must be at most {MAX_CLAIM_WAIT_MS}"),
        ));
    }
    let lease_ms = body.lease_ms.unwrap_or(DEFAULT_LEASE_MS);
    if lease_ms == 0 {
        return Err(ApiError::invalid_argument("lease_ms", "must be at least 1"));
    }
    let claimed = api
        .job_store()?
        .claim(ClaimRequest {
            runner_id: body.runner_id,
            project_id: body.project_id,
            lease_ms,
        })
        .map_err(job_error)?;
    data(ClaimAnswer {
        claim: claimed.map(|c| ClaimedJob {
            job: c.job,
            request: c.request,
        }),
    })
}

/// The store's view of who acts on a claimed job.
fn actor(claim: &ClaimRef) -> Actor {
    Actor::Runner {
        runner_id: claim.runner_id.clone(),
        claim_id: claim.claim_id.clone(),
    }
}

fn heartbeat(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let body: HeartbeatBody = call.req.json_body()?;
    authorize(api, call, Scope::Work, &body.claim.runner_id)?;
    let lease_ms = body.lease_ms.unwrap_or(DEFAULT_LEASE_MS).max(1);
    let job = api
        .job_store()?
        .heartbeat(call.param("id"), &actor(&body.claim), lease_ms)
        .map_err(job_error)?;
    let cancelled = job.status == homeboy_jobs::JobStatus::Cancelled;
    data(HeartbeatAnswer { job, cancelled })
}

fn parse_event(item: EventItem, field: &str) -> Result<NewEvent, ApiError> {
    let kind = match EventKind::parse(&item.kind) {
        Some(EventKind::Status) => {
            return Err(ApiError::invalid_argument(
                field,
                "status events are written by the broker only",
            ));
        }
        Some(kind) => kind,
        None => {
            return Err(ApiError::invalid_argument(
                field,
                format!(
                    "{:?} is not one of stdout, stderr, progress, result, error",
                    item.kind
                ),
            ));
        }
    };
    Ok(NewEvent {
        kind,
        message: item.message,
        data: item.data,
    })
}

fn events(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let body: EventsBody = call.req.json_body()?;
    authorize(api, call, Scope::Work, &body.claim.runner_id)?;
    let (batch, items) = match (body.events, body.single) {
        (Some(items), _) => (true, items),
        (None, Some(item)) => (false, vec![item]),
        (None, None) => {
            return Err(ApiError::invalid_argument(
                "kind",
                "is required (or send `events`)",
            ));
        }
    };
    if items.is_empty() {
        return Err(ApiError::invalid_argument("events", "must not be empty"));
    }
    let parsed = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            parse_event(
                item,
                &if batch {
                    format!("events[{i}].kind")
                } else {
                    "kind".into()
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let appended = api
        .job_store()?
        .append_events(call.param("id"), &actor(&body.claim), parsed)
        .map_err(job_error)?;
    if batch {
        data(EventsAnswer { events: appended })
    } else {
        data(EventAnswer {
            event: appended.into_iter().next(),
        })
    }
}

fn finish(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let body: FinishBody = call.req.json_body()?;
    authorize(api, call, Scope::Work, &body.claim.runner_id)?;
    let job = api
        .job_store()?
        .finish(call.param("id"), &actor(&body.claim), body.result)
        .map_err(job_error)?;
    data(JobAnswer { job })
}

fn uuid_like() -> String {
    homeboy_config::secrets::random_hex(8)
        .unwrap_or_else(|_| format!("{:x}", homeboy_config::clock::now_ms()))
}
