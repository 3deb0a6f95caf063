//! The job routes for people and dashboards: `GET /jobs`, `GET /jobs/:id`, `GET /jobs/:id/events`,
//! `POST /jobs/:id/cancel` (and `GET /jobs/events`, whose stream the transport answers); and the one
//! mapping from job store errors to contract errors.

use homeboy_api::jobs::{JobAnswer, JobDetail, JobEvents, JobList};
use homeboy_jobs::{JobError, JobFilter, JobStatus};
use serde_json::Value;

use super::paging::page_limit;
use crate::router::{Call, Cost, Router, data};
use crate::{Api, ApiError, ErrorKind, Method};

pub(crate) fn register(router: &mut Router<Api>) {
    router.add(Method::Get, "/jobs", Cost::Blocking, list);
    // Before `/jobs/:id`: the stream of every job's changes (answered by the transport).
    router.add(
        Method::Get,
        "/jobs/events",
        Cost::Inline,
        changes_need_a_stream,
    );
    router.add(Method::Get, "/jobs/:id", Cost::Blocking, show);
    router.add(Method::Get, "/jobs/:id/events", Cost::Blocking, events);
    router.add(Method::Post, "/jobs/:id/cancel", Cost::Blocking, cancel);
}

fn list(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let req = call.req;
    let status = req
        .query("status")
        .map(|s| {
            JobStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_argument(
                    "status",
                    format!("{s:?} is not one of queued, running, succeeded, failed, cancelled"),
                )
            })
        })
        .transpose()?;
    let filter = JobFilter {
        status,
        operation: req.query("operation").map(str::to_string),
        runner_id: req.query("runner").map(str::to_string),
        limit: page_limit(req.query_u64("limit")?, 50)?,
        cursor: req.query_u64("cursor")?,
    };
    let page = api.job_store()?.list(&filter).map_err(job_error)?;
    data(JobList {
        jobs: page.jobs,
        next_cursor: page.next_cursor,
    })
}

/// `GET /jobs/events` is a Server-Sent Events stream that a transport answers when `follow=true`; asked
/// for anything else (or of a transport that does not stream), it says so.
fn changes_need_a_stream(_: &Api, _: &Call<'_>) -> Result<Value, ApiError> {
    Err(ApiError::invalid_argument(
        "follow",
        "must be `true`: GET /jobs/events is a stream of job changes (Server-Sent Events)",
    ))
}

fn show(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let store = api.job_store()?;
    let id = call.param("id");
    let job = store
        .get(id)
        .map_err(job_error)?
        .ok_or_else(|| job_error(JobError::NotFound(id.to_string())))?;
    let request = store.request(id).map_err(job_error)?;
    data(JobDetail {
        job,
        request: request.unwrap_or(Value::Null),
    })
}

fn events(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let req = call.req;
    let id = call.param("id");
    // `follow=true` is the event stream, which a streaming transport answers before this handler; here it
    // reads as a page. A value that is not a boolean is refused, not read as "no".
    if req
        .query("follow")
        .is_some_and(|f| !matches!(f, "true" | "1" | "false" | "0"))
    {
        return Err(ApiError::invalid_argument(
            "follow",
            "must be `true`, `1`, `false` or `0`",
        ));
    }
    // The header resumes a followed stream; a page is read from `after`, but a malformed header is refused
    // here as well.
    req.last_event_id()?;
    let after = req.query_u64("after")?.unwrap_or(0);
    let limit = page_limit(req.query_u64("limit")?, 100)?;
    let store = api.job_store()?;
    let events = store.events(id, after, limit).map_err(job_error)?;
    let job = store
        .get(id)
        .map_err(job_error)?
        .ok_or_else(|| job_error(JobError::NotFound(id.to_string())))?;
    let next_after = events.last().map_or(after, |e| e.sequence);
    data(JobEvents {
        job_id: id.to_string(),
        status: job.status,
        events,
        next_after,
        last_sequence: job.last_sequence,
        events_dropped: job.events_dropped,
    })
}

fn cancel(api: &Api, call: &Call<'_>) -> Result<Value, ApiError> {
    let job = api
        .job_store()?
        .cancel(call.param("id"))
        .map_err(job_error)?;
    data(JobAnswer { job })
}

/// The contract's view of a job store error.
pub fn job_error(error: JobError) -> ApiError {
    match error {
        JobError::NotFound(id) => {
            ApiError::new(ErrorKind::NotFound, "not_found.job", format!("no job {id}"))
                .with_detail("job_id", id)
        }
        JobError::Invalid { field, problem } => ApiError::invalid_argument(field, problem),
        e @ JobError::SubmissionConflict { .. } => {
            let JobError::SubmissionConflict { job_id, .. } = &e else {
                unreachable!()
            };
            let job_id = job_id.clone();
            ApiError::new(ErrorKind::Conflict, "validation.conflict", e.to_string())
                .with_detail("field", "metadata.submission_key")
                .with_detail("problem", "already used with a different request")
                .with_detail("job_id", job_id)
        }
        JobError::ClaimExpired { job_id } => ApiError::new(
            ErrorKind::Conflict,
            "broker.claim_expired",
            format!("the claim on job {job_id} has expired; the job may have been requeued"),
        )
        .with_detail("job_id", job_id)
        .with_hint("stop working on this job and claim again"),
        JobError::ClaimMismatch { job_id } => ApiError::new(
            ErrorKind::Conflict,
            "broker.claim_mismatch",
            format!("job {job_id} is not claimed by this runner with this claim_id"),
        )
        .with_detail("job_id", job_id),
        JobError::NotRunning { job_id, status } => ApiError::new(
            ErrorKind::Conflict,
            "broker.job_not_running",
            format!("job {job_id} is {status}, not running"),
        )
        .with_detail("job_id", job_id)
        .with_detail("status", status),
        JobError::IllegalTransition { job_id, from, to } => ApiError::new(
            ErrorKind::Conflict,
            "jobs.illegal_transition",
            format!("job {job_id} is {from} and cannot become {to}"),
        )
        .with_detail("job_id", job_id)
        .with_detail("status", from),
        JobError::Storage(detail) => ApiError::internal("the job store failed; see the daemon log")
            .with_internal_detail(detail),
        JobError::Unavailable(detail) => ApiError::new(
            ErrorKind::Unavailable,
            "store.unavailable",
            "the job store is unavailable right now; nothing was changed",
        )
        .with_hint("retry shortly; the daemon reconnects on its own")
        .with_internal_detail(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_store_answers_503_store_unavailable_without_its_detail() {
        let detail = "connection to 127.0.0.1:5432 refused (user homeboy)";
        let error = job_error(JobError::Unavailable(detail.into()));
        assert_eq!(error.status(), 503);
        let body = error.to_json();
        assert_eq!(body["code"], "store.unavailable");
        assert!(
            !body.to_string().contains("127.0.0.1"),
            "the store's detail is for the log only: {body}"
        );
    }
}
