//! The job store's error type: refusals a client can act on, and storage failures.

/// Everything a job store operation can refuse or fail with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JobError {
    #[error("no job {0}")]
    NotFound(String),
    #[error("invalid `{field}`: {problem}")]
    Invalid { field: String, problem: String },
    /// The same submission key was used with a different request.
    #[error("submission key {key:?} was already used for job {job_id} with a different request")]
    SubmissionConflict { key: String, job_id: String },
    /// The claim's lease has passed (or the job was requeued after it).
    #[error("the claim on job {job_id} has expired")]
    ClaimExpired { job_id: String },
    /// The caller does not hold the job's live claim.
    #[error("job {job_id} is not claimed by this runner with this claim id")]
    ClaimMismatch { job_id: String },
    /// The job is not running (anymore), so it cannot take events or a result.
    #[error("job {job_id} is {status}, not running")]
    NotRunning { job_id: String, status: String },
    /// A transition the state machine forbids (a terminal job never changes).
    #[error("job {job_id} is {from} and cannot become {to}")]
    IllegalTransition {
        job_id: String,
        from: String,
        to: String,
    },
    /// The embedded store or its log failed; the operation did not happen.
    #[error("job store failure: {0}")]
    Storage(String),
    /// The store's database cannot be reached right now (connection lost, server restarting or down). The
    /// operation was not acknowledged; retrying later is safe (a submission key makes a retried enqueue
    /// idempotent). The text never carries a password.
    #[error("job store unavailable: {0}")]
    Unavailable(String),
}

impl JobError {
    pub(crate) fn storage(e: impl std::fmt::Display) -> Self {
        JobError::Storage(e.to_string())
    }

    pub(crate) fn invalid(field: &str, problem: impl Into<String>) -> Self {
        JobError::Invalid {
            field: field.to_string(),
            problem: problem.into(),
        }
    }
}
